//! A real Prometheus server for the tests: found on PATH, started on a free
//! port against the given targets, queried over its HTTP API, killed when
//! dropped; and the instances of a fleet it scrapes.
#![allow(dead_code)] // each test file uses part of it

use hdrhistogram::Histogram;
use hdrtrace::export::prometheus::{self, Buckets};
use hdrtrace::{TracingConfig, TracingGuard};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `name` on PATH, or `None` after a loud skip notice; under `CI=true` its
/// absence fails the test (`.ci/run` installs Debian's `prometheus`, which
/// ships `promtool` too).
pub fn binary_or_skip(name: &str, test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "CI=true but no `{name}` on PATH (.ci/run installs Debian's prometheus package)"
            );
        }
        // Straight to the process's stderr: libtest hides `eprintln!` of
        // passing tests.
        let notice = format!(
            "\n\n**************************************************************\n\
             SKIPPED {test}: no `{name}` binary on PATH.\n\
             Install it (apt-get install prometheus) to run this test.\n\
             **************************************************************\n\n"
        );
        let _ = std::io::Write::write_all(&mut std::io::stderr(), notice.as_bytes());
    }
    found
}

/// A Prometheus child process scraping `targets` every second; killed when
/// dropped, however the test ends.
pub struct Prometheus {
    child: Child,
    pub url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    pub fn start(binary: &Path, targets: &[String], features: &[&str]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let targets = targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: hdrtrace\n    scrape_interval: 1s\n    \
                 scrape_timeout: 1s\n    static_configs:\n      - targets: [{targets}]\n"
            ),
        )
        .unwrap();
        let log = dir.path().join("prometheus.log");
        let addr = format!("127.0.0.1:{}", free_port());
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if !features.is_empty() {
            command.arg(format!("--enable-feature={}", features.join(",")));
        }
        let child = command.spawn().expect("start prometheus");
        Prometheus {
            child,
            url: format!("http://{addr}"),
            log,
            _dir: dir,
        }
    }

    /// Panics with the log if the server has exited.
    pub fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("prometheus exited ({status}):\n{}", self.log());
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One instant query: every sample's labels and value.
    pub fn query(&self, promql: &str) -> Result<Vec<(serde_json::Value, f64)>, String> {
        let json = self.get("/api/v1/query", &[("query", promql)])?;
        let results = json["data"]["result"]
            .as_array()
            .ok_or_else(|| format!("no result array: {json}"))?;
        results
            .iter()
            .map(|r| {
                let v = r["value"][1]
                    .as_str()
                    .ok_or_else(|| format!("no value: {r}"))?;
                let v = v.parse::<f64>().map_err(|e| format!("{v}: {e}"))?;
                Ok((r["metric"].clone(), v))
            })
            .collect()
    }

    /// The first sample's value of an instant query, if any.
    pub fn query_one(&self, promql: &str) -> Result<Option<f64>, String> {
        Ok(self.query(promql)?.first().map(|(_, v)| *v))
    }

    /// `GET path?params` on the server's API, as JSON.
    pub fn get(&self, path: &str, params: &[(&str, &str)]) -> Result<serde_json::Value, String> {
        let mut request = ureq::get(&format!("{}{path}", self.url));
        for (k, v) in params {
            request = request.query(*k, *v);
        }
        let body = request
            .call()
            .map_err(|e| e.to_string())?
            .body_mut()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        serde_json::from_str(&body).map_err(|e| e.to_string())
    }

    /// Polls `ready` every 250 ms until it returns `Some`, for at most
    /// `limit`; panics with `what`, the last attempt and the log otherwise.
    pub fn wait_for<T>(
        &mut self,
        what: &str,
        limit: Duration,
        mut ready: impl FnMut(&Prometheus) -> Result<Option<T>, String>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            self.check_alive();
            let last = ready(self);
            if let Ok(Some(v)) = last {
                return v;
            }
            if Instant::now() > deadline {
                let up = self.query("up");
                panic!(
                    "{what}: not after {limit:?} (last attempt {:?}; up = {up:?})\nprometheus log:\n{}",
                    last.map(|v| v.is_some()),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One instance of a fleet: its own subscriber and its own metrics endpoint.
pub struct Instance {
    pub dispatch: tracing::Dispatch,
    pub guard: TracingGuard,
    pub server: prometheus::MetricsServer,
}

impl Instance {
    /// A subscriber built from `config`, served on a free loopback port.
    pub fn start(config: &TracingConfig) -> Instance {
        let (subscriber, guard) = hdrtrace::build(config).unwrap();
        let server = prometheus::serve("127.0.0.1:0", guard.snapshot_source()).unwrap();
        Instance {
            dispatch: tracing::Dispatch::new(subscriber),
            guard,
            server,
        }
    }

    /// Runs `requests` with this instance's subscriber as the default, then
    /// flushes.
    pub fn record(&self, requests: impl FnOnce()) {
        tracing::dispatcher::with_default(&self.dispatch, requests);
        self.guard.flush();
    }

    /// The endpoint's address, as a scrape target.
    pub fn target(&self) -> String {
        self.server.local_addr().to_string()
    }
}

/// The `le` label values of `buckets`' series, `+Inf` last.
pub fn les(buckets: &Buckets) -> Vec<String> {
    buckets
        .bounds()
        .map(|b| b.as_secs_f64().to_string())
        .chain(["+Inf".to_string()])
        .collect()
}

/// Asserts that `sum by (le)` of `model`'s classic bucket series, over every
/// instance Prometheus scrapes, is `histogram`'s cumulative counts in
/// `buckets`, exactly, for every `le`.
pub fn assert_summed_buckets(
    prom: &Prometheus,
    buckets: &Buckets,
    model: &str,
    histogram: &Histogram<u64>,
) {
    let want = buckets.cumulative_counts(histogram);
    let summed: HashMap<String, f64> = prom
        .query(&format!(
            "sum by (le) (hdrtrace_model_latency_seconds_bucket{{model=\"{}\"}})",
            label(model)
        ))
        .unwrap()
        .into_iter()
        .map(|(m, v)| (m["le"].as_str().unwrap().to_string(), v))
        .collect();
    for (le, want) in les(buckets).iter().zip(&want) {
        assert_eq!(
            summed.get(le),
            Some(&(*want as f64)),
            "{model} le={le}: {summed:?}"
        );
    }
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    l.local_addr().expect("local addr").port()
}

/// A label value escaped for PromQL and the exposition.
pub fn label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// How long any socket read or write of [`scrape`] may block the test.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// A `GET /metrics` to the metrics server at `addr`, with these `Accept`
/// headers, each on its own line: the answer's `Content-Type` and body (a
/// 200 is asserted; every socket operation is bounded by [`SCRAPE_TIMEOUT`]).
pub fn scrape(addr: SocketAddr, accepts: &[&str]) -> (String, Vec<u8>) {
    let mut request = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_string();
    for a in accepts {
        request.push_str(&format!("Accept: {a}\r\n"));
    }
    request.push_str("\r\n");
    let mut stream = TcpStream::connect_timeout(&addr, SCRAPE_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(SCRAPE_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(SCRAPE_TIMEOUT)).unwrap();
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("the whole answer in time");
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&answer[..end]).to_string();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let content_type = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no Content-Type in {head}"));
    (content_type, answer[end + 4..].to_vec())
}
