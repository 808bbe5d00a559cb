//! A real Prometheus server scrapes the metrics endpoint and finds each
//! model's recent p95 and its histogram. Needs the `prometheus` binary
//! (Debian's `prometheus` package, which `.ci/run` installs): under `CI=true`
//! its absence fails the test, elsewhere the test says loudly that it skipped.
#![cfg(feature = "prometheus")]

mod prometheus_support;

use hdrtrace::export::prometheus::{self, CONTENT_TYPE, TEXT_CONTENT_TYPE};
use hdrtrace::{LatencySnapshot, TracingConfig};
use prometheus_support::{binary_or_skip, label, Prometheus};
use std::time::{Duration, Instant};

const MODELS: [&str; 3] = ["Alpha", "Beta \"quoted\"", "Gamma"];
const POLL_FOR: Duration = Duration::from_secs(60);

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

#[test]
fn prometheus_scrapes_each_model_p95() {
    let Some(binary) = binary_or_skip("prometheus", "prometheus_scrapes_each_model_p95") else {
        return;
    };
    let started = Instant::now();
    // A recent window longer than the test, so the recent quantiles
    // Prometheus reads are the ones recorded.
    let config = TracingConfig {
        window: Duration::from_secs(600),
        ..TracingConfig::default()
    };
    let (subscriber, guard) = hdrtrace::build(&config).unwrap();
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
    let mut plain = ureq::get(&server.url())
        .header("Accept", "text/plain;version=0.0.4")
        .call()
        .expect("GET /metrics as text");
    assert_eq!(
        plain
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some(TEXT_CONTENT_TYPE)
    );
    let plain = plain.body_mut().read_to_string().unwrap();
    assert!(!plain.contains("# EOF") && plain.contains("# TYPE hdrtrace_spans_total counter"));
    let missing = ureq::get(&format!("http://{}/other", server.local_addr())).call();
    assert!(
        matches!(missing, Err(ureq::Error::StatusCode(404))),
        "{missing:?}"
    );

    let mut prom = Prometheus::start(&binary, &[server.local_addr().to_string()], &[]);
    let p95s: Vec<(&str, String)> = MODELS
        .iter()
        .map(|m| {
            let q = format!(
                "hdrtrace_model_recent_latency_seconds{{model=\"{}\",quantile=\"0.95\"}}",
                label(m)
            );
            (*m, q)
        })
        .collect();
    let found = prom.wait_for("a p95 for every model", POLL_FOR, |prom| {
        let values: Vec<Option<f64>> = p95s
            .iter()
            .map(|(_, q)| prom.query_one(q).ok().flatten())
            .collect();
        Ok(values.into_iter().collect::<Option<Vec<f64>>>())
    });

    for ((model, _), scraped) in p95s.iter().zip(&found) {
        let m = snapshot.model(model).expect("recorded model");
        let recent = snapshot.recent().model(model).expect("recorded model");
        let expected = recent.quantile(0.95).as_secs_f64();
        assert!(
            (scraped - expected).abs() <= expected * 1e-3,
            "{model}: Prometheus has p95 {scraped} s, the snapshot {expected} s"
        );
        let count = prom
            .query_one(&format!(
                "hdrtrace_model_latency_seconds_count{{model=\"{}\"}}",
                label(model)
            ))
            .unwrap();
        assert_eq!(count, Some(m.count() as f64), "{model} count");
    }
    let errors = prom
        .query_one("hdrtrace_model_errors_total{model=\"Alpha\"}")
        .unwrap();
    assert_eq!(errors, Some(1.0));
    // Request 3 came back without Alpha: degraded, and Alpha blamed for it.
    let blamed = prom
        .query_one("hdrtrace_model_blamed_total{model=\"Alpha\",reason=\"failed\"}")
        .unwrap();
    assert_eq!(blamed, Some(1.0));
    let over = prom
        .query_one("sum(hdrtrace_model_blamed_total{reason=\"over_target\"})")
        .unwrap();
    assert_eq!(over, Some(0.0));
    let p95 = prom
        .query_one(
            "hdrtrace_stage_recent_latency_seconds{stage=\"embed_pipeline\",quantile=\"0.95\"}",
        )
        .unwrap();
    let stage = snapshot
        .recent()
        .stage("embed_pipeline")
        .unwrap()
        .quantile(0.95);
    assert!(p95.is_some_and(|v| (v - stage.as_secs_f64()).abs() <= stage.as_secs_f64() * 1e-3));
    let spans = prom.query_one("hdrtrace_spans_total").unwrap();
    assert_eq!(spans, Some(snapshot.counters().spans as f64));
    eprintln!(
        "prometheus_scrapes_each_model_p95: Prometheus found every p95 in {:.1?}",
        started.elapsed()
    );
}
