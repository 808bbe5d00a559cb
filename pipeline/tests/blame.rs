//! The demo's `--slow Causal=180ms` through the API: Causal answers after the
//! 150 ms deadline, so every request returns without it, under the 200 ms
//! target. Each is degraded and blamed on Causal, timed out, in the
//! snapshot, in its traces and in the Prometheus text.

mod pipeline_support;

use hdrtrace::export::prometheus::render;
use hdrtrace::{BlameReason, Outcome, Status, TracingConfig};
use pipeline_support::faults::Fault;
use pipeline_support::{embed_from_workers, faults, reference_pipeline, start, Keep};
use std::time::Duration;

const REQUESTS: u64 = 120;
const WORKERS: u64 = 8;

#[test]
fn a_model_past_the_deadline_is_blamed_for_every_degraded_request() {
    let keep = Keep::default();
    let config = TracingConfig {
        sampling_rate: 0.0,
        latency_target: Duration::from_millis(200),
        capture_capacity: REQUESTS as usize,
        ..TracingConfig::default()
    };
    let (guard, _dispatch, rt) = start(hdrtrace::Builder::new(&config).sink(keep.clone()), 2);
    let p = reference_pipeline(
        faults(&[("Causal", Fault::Delay(Duration::from_millis(180)))]),
        Duration::from_millis(150),
    );
    let answered: Vec<usize> = embed_from_workers(
        &rt,
        &p,
        WORKERS as usize,
        (REQUESTS / WORKERS) as usize,
        |w, i| format!("worker {w} request {i}"),
    )
    .into_iter()
    .map(|fused| fused.expect("the request returns").models.len())
    .collect();
    assert_eq!(
        answered,
        vec![11; REQUESTS as usize],
        "every one without Causal"
    );

    assert!(keep.wait_for(&guard, REQUESTS as usize, Duration::from_secs(20)));
    let snap = guard.snapshot();
    let c = snap.counters();
    assert_eq!(
        (c.requests, c.degraded_requests),
        (REQUESTS, REQUESTS),
        "{c:?}"
    );
    let causal = snap.model("Causal").unwrap();
    assert_eq!(causal.timeouts(), REQUESTS);
    assert_eq!(causal.blamed_for(BlameReason::TimedOut), REQUESTS);
    assert_eq!(causal.blamed(), REQUESTS);
    for (name, m) in snap.models().filter(|(n, _)| *n != "Causal") {
        assert_eq!(m.blamed(), 0, "{name}");
    }

    let traces = keep.traces();
    assert_eq!(traces.len() as u64, REQUESTS);
    for t in &traces {
        assert_eq!(t.outcome(), Outcome::Degraded, "{}", t.verdict());
        assert_eq!(t.blame(), Some(BlameReason::TimedOut));
        let a = t.attribution().expect("an attribution");
        assert_eq!((a.model.as_str(), a.status), ("Causal", Status::Timeout));
        assert!(
            t.verdict().starts_with("degraded: Causal "),
            "{}",
            t.verdict()
        );
    }

    let text = render(&snap);
    let line = format!(
        "hdrtrace_model_blamed_total{{model=\"Causal\",reason=\"timed_out\"}} {REQUESTS}\n"
    );
    assert!(text.contains(&line), "{line} not in\n{text}");
    assert!(
        text.contains("hdrtrace_model_blamed_total{model=\"Causal\",reason=\"over_target\"} 0\n"),
        "{text}"
    );
}
