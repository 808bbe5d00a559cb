//! A real Prometheus server scrapes the metrics endpoint and finds each
//! model's p95. Needs the `prometheus` binary (Debian's `prometheus` package,
//! which `.ci/run` installs): under `CI=true` its absence fails the test,
//! elsewhere the test says loudly that it skipped.
#![cfg(feature = "prometheus")]

use hdrtrace::export::prometheus::{self, CONTENT_TYPE};
use hdrtrace::{LatencySnapshot, TracingConfig};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MODELS: [&str; 3] = ["Alpha", "Beta \"quoted\"", "Gamma"];
const POLL_FOR: Duration = Duration::from_secs(60);

fn prometheus_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("prometheus"))
        .find(|p| p.is_file())
}

/// The child Prometheus, killed when the test ends however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    l.local_addr().expect("local addr").port()
}

/// Records a few spans per model, each model a different length of sleep,
/// plus an error for the first model.
fn record(guard: &hdrtrace::TracingGuard, subscriber: hdrtrace::HdrSubscriber) -> LatencySnapshot {
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..20u64 {
            let request = tracing::info_span!("embed_pipeline", request_id = i);
            let _r = request.enter();
            for (k, model) in MODELS.iter().enumerate() {
                tracing::debug_span!("model", model_id = *model).in_scope(|| {
                    std::thread::sleep(Duration::from_micros(50 * (k as u64 + 1) * (i % 5 + 1)));
                    if k == 0 && i == 3 {
                        tracing::error!("model failed");
                    }
                });
            }
        }
    });
    guard.flushed_snapshot()
}

/// Runs one PromQL instant query; the first sample's value, if any.
fn query(prom: &str, promql: &str) -> Result<Option<f64>, String> {
    let body = ureq::get(&format!("{prom}/api/v1/query"))
        .query("query", promql)
        .call()
        .map_err(|e| e.to_string())?
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    let json: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    let value = json["data"]["result"]
        .get(0)
        .and_then(|r| r["value"][1].as_str())
        .map(|v| v.parse::<f64>().map_err(|e| format!("{v}: {e}")))
        .transpose()?;
    Ok(value)
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[test]
fn prometheus_scrapes_each_model_p95() {
    let Some(binary) = prometheus_binary() else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true but no `prometheus` on PATH (.ci/run installs Debian's package)");
        }
        // Straight to the process's stderr: libtest hides `eprintln!` of
        // passing tests.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"\n\n**************************************************************\n\
              SKIPPED prometheus_scrapes_each_model_p95: no `prometheus` binary\n\
              on PATH. Install it (apt-get install prometheus) to run this test.\n\
              **************************************************************\n\n",
        );
        return;
    };
    let started = Instant::now();
    let (subscriber, guard) = hdrtrace::build(&TracingConfig::default()).unwrap();
    let snapshot = record(&guard, subscriber);
    let server = prometheus::serve("127.0.0.1:0", guard.snapshot_source()).unwrap();

    // Our endpoint, read directly first.
    let mut response = ureq::get(&server.url()).call().expect("GET /metrics");
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some(CONTENT_TYPE)
    );
    let text = response.body_mut().read_to_string().unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(text, prometheus::render(&guard.snapshot()));
    let missing = ureq::get(&format!("http://{}/other", server.local_addr())).call();
    assert!(
        matches!(missing, Err(ureq::Error::StatusCode(404))),
        "{missing:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: hdrtrace\n    scrape_interval: 1s\n    \
             scrape_timeout: 1s\n    static_configs:\n      - targets: ['{}']\n",
            server.local_addr()
        ),
    )
    .unwrap();
    let log_path = dir.path().join("prometheus.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let prom_addr = format!("127.0.0.1:{}", free_port());
    let mut prom = Server(
        Command::new(&binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={prom_addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );
    let prom_url = format!("http://{prom_addr}");

    let p95s: Vec<(&str, String)> = MODELS
        .iter()
        .map(|m| {
            let q = format!(
                "hdrtrace_model_latency_seconds{{model=\"{}\",quantile=\"0.95\"}}",
                label(m)
            );
            (*m, q)
        })
        .collect();
    let deadline = Instant::now() + POLL_FOR;
    let found = loop {
        if let Ok(Some(status)) = prom.0.try_wait() {
            panic!("prometheus exited ({status}):\n{}", read_log(&log_path));
        }
        let values: Vec<Option<f64>> = p95s
            .iter()
            .map(|(_, q)| query(&prom_url, q).ok().flatten())
            .collect();
        if values.iter().all(Option::is_some) {
            break values.into_iter().flatten().collect::<Vec<_>>();
        }
        if Instant::now() > deadline {
            let up = query(&prom_url, "up");
            panic!(
                "no p95 for every model after {POLL_FOR:?} (found {values:?}; up = {up:?})\n\
                 prometheus log:\n{}",
                read_log(&log_path)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    };

    for ((model, _), scraped) in p95s.iter().zip(&found) {
        let m = snapshot.model(model).expect("recorded model");
        let expected = m.quantile(0.95).as_secs_f64();
        assert!(
            (scraped - expected).abs() <= expected * 1e-3,
            "{model}: Prometheus has p95 {scraped} s, the snapshot {expected} s"
        );
        let count = query(
            &prom_url,
            &format!(
                "hdrtrace_model_latency_seconds_count{{model=\"{}\"}}",
                label(model)
            ),
        )
        .unwrap();
        assert_eq!(count, Some(m.count() as f64), "{model} count");
    }
    let errors = query(&prom_url, "hdrtrace_model_errors_total{model=\"Alpha\"}").unwrap();
    assert_eq!(errors, Some(1.0));
    let p95 = query(
        &prom_url,
        "hdrtrace_stage_latency_seconds{stage=\"embed_pipeline\",quantile=\"0.95\"}",
    )
    .unwrap();
    let stage = snapshot.stage("embed_pipeline").unwrap().quantile(0.95);
    assert!(p95.is_some_and(|v| (v - stage.as_secs_f64()).abs() <= stage.as_secs_f64() * 1e-3));
    let spans = query(&prom_url, "hdrtrace_spans_total").unwrap();
    assert_eq!(spans, Some(snapshot.counters().spans as f64));
    eprintln!(
        "prometheus_scrapes_each_model_p95: Prometheus found every p95 in {:.1?}",
        started.elapsed()
    );
}
