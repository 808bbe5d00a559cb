//! Blame by reason: a request that went on without a model (it timed out or
//! failed) is degraded and blamed on that model, whether or not it passed
//! its latency target; a request over its target with every model back is
//! blamed on the last model to return. The counts agree in the snapshot, in
//! its bytes and merges, and in the Prometheus text.

use hdrtrace::export::prometheus::{render_with, Buckets, Format};
use hdrtrace::export::{chrome_trace_json, render_text};
use hdrtrace::{BlameReason, LatencySnapshot, Outcome, TracingConfig};
use std::sync::Mutex;
use std::time::Duration;

/// How each model of one request ends.
#[derive(Clone, Copy, PartialEq)]
enum End {
    Returns,
    TimesOut,
    Fails,
}

const MODELS: [&str; 3] = ["Semantic", "Causal", "Code"];

/// One `embed_pipeline` request whose models run one after the other (the
/// last listed returns last), each ending as `ends` says; `root_fails`: an
/// `ERROR` event in the root after the models.
fn request(id: u64, ends: [End; 3], root_fails: bool) {
    let root = tracing::info_span!("embed_pipeline", request_id = id);
    let _r = root.enter();
    for (name, end) in MODELS.into_iter().zip(ends) {
        let span = tracing::info_span!("model", model_id = name);
        let _m = span.enter();
        match end {
            End::Returns => {}
            End::TimesOut => tracing::warn!(timeout = true, after_ms = 150u64, "model timed out"),
            End::Fails => tracing::error!("model failed"),
        }
    }
    if root_fails {
        tracing::error!("request failed");
    }
}

/// The flushed snapshot after running `requests` under `target`. One at a
/// time: scoped subscribers built on several test threads at once race in
/// tracing-core's interest cache.
fn run(target: Duration, requests: impl FnOnce()) -> LatencySnapshot {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = TracingConfig {
        sampling_rate: 0.0,
        latency_target: target,
        ..TracingConfig::default()
    };
    let (subscriber, guard) = hdrtrace::build(&cfg).expect("valid config");
    tracing::subscriber::with_default(subscriber, requests);
    guard.flush();
    guard.snapshot()
}

fn blamed(s: &LatencySnapshot, model: &str) -> [u64; 3] {
    let m = s.model(model).unwrap_or_else(|| panic!("no model {model}"));
    BlameReason::ALL.map(|r| m.blamed_for(r))
}

fn prometheus(s: &LatencySnapshot, format: Format) -> String {
    render_with(s, format, &Buckets::default())
}

#[test]
fn a_timed_out_model_is_blamed_for_requests_within_the_target() {
    const N: u64 = 7;
    let snap = run(Duration::from_secs(60), || {
        for id in 1..=N {
            request(id, [End::Returns, End::TimesOut, End::Returns], false);
        }
    });
    let c = snap.counters();
    assert_eq!((c.requests, c.degraded_requests), (N, N), "{c:?}");
    assert_eq!(blamed(&snap, "Causal"), [0, N, 0]);
    assert_eq!(snap.model("Causal").unwrap().blamed(), N);
    for other in ["Semantic", "Code"] {
        assert_eq!(blamed(&snap, other), [0, 0, 0], "{other}");
    }
    assert_eq!(snap.captured().len() as u64, N);
    for t in snap.captured() {
        assert!(t.total() < t.target(), "within its target");
        assert_eq!(t.outcome(), Outcome::Degraded);
        assert_eq!(t.blame(), Some(BlameReason::TimedOut));
        assert_eq!(t.attribution().unwrap().model, "Causal");
        assert!(
            t.verdict().starts_with("degraded: Causal timed out"),
            "{}",
            t.verdict()
        );
    }

    let text = prometheus(&snap, Format::Text);
    assert!(
        text.contains("# TYPE hdrtrace_model_blamed_total counter\n"),
        "{text}"
    );
    for (model, reason, n) in [
        ("Causal", "timed_out", N),
        ("Causal", "over_target", 0),
        ("Causal", "failed", 0),
        ("Semantic", "timed_out", 0),
    ] {
        let line =
            format!("hdrtrace_model_blamed_total{{model=\"{model}\",reason=\"{reason}\"}} {n}\n");
        assert!(text.contains(&line), "{line} not in\n{text}");
    }
    assert_eq!(text.matches("hdrtrace_model_blamed_total{").count(), 9);
    let open = prometheus(&snap, Format::OpenMetrics);
    assert!(
        open.contains("# TYPE hdrtrace_model_blamed counter\n"),
        "{open}"
    );
    assert!(
        open.contains("hdrtrace_model_blamed_total{model=\"Causal\",reason=\"timed_out\"} 7\n"),
        "{open}"
    );
}

#[test]
fn each_blamed_request_has_one_reason() {
    let snap = run(Duration::from_nanos(1), || {
        use End::*;
        // Over the 1 ns target with every model back: the last, Code.
        request(1, [Returns, Returns, Returns], false);
        request(2, [Returns, Returns, Returns], false);
        // A model that did not return is blamed ahead of the last to return.
        request(3, [TimesOut, Returns, Returns], false);
        request(4, [Returns, Fails, Returns], false);
        // Two that did not return: the later.
        request(5, [Fails, TimesOut, Returns], false);
        // The request itself failed: failed, not degraded; its model blamed.
        request(6, [Fails, Returns, Returns], true);
    });
    let c = snap.counters();
    assert_eq!((c.requests, c.degraded_requests), (6, 3), "{c:?}");
    // [over_target, timed_out, failed]
    assert_eq!(blamed(&snap, "Code"), [2, 0, 0]);
    assert_eq!(blamed(&snap, "Semantic"), [0, 1, 1]);
    assert_eq!(blamed(&snap, "Causal"), [0, 1, 1]);
    let blamed_total: u64 = snap.models().map(|(_, m)| m.blamed()).sum();
    assert_eq!(blamed_total, 6, "one model per request");

    let outcome = |id: u64| {
        let t = snap
            .captured()
            .iter()
            .find(|t| t.request_id() == id)
            .unwrap_or_else(|| panic!("request {id} not captured"));
        (
            t.outcome(),
            t.blame(),
            t.attribution().unwrap().model.clone(),
        )
    };
    use BlameReason::*;
    assert_eq!(
        outcome(1),
        (Outcome::OverTarget, Some(OverTarget), "Code".into())
    );
    assert_eq!(
        outcome(3),
        (Outcome::Degraded, Some(TimedOut), "Semantic".into())
    );
    assert_eq!(
        outcome(4),
        (Outcome::Degraded, Some(Failed), "Causal".into())
    );
    assert_eq!(
        outcome(5),
        (Outcome::Degraded, Some(TimedOut), "Causal".into())
    );
    assert_eq!(
        outcome(6),
        (Outcome::Failed, Some(Failed), "Semantic".into())
    );
}

#[test]
fn blame_by_reason_survives_bytes_and_merges() {
    let snap = run(Duration::from_nanos(1), || {
        request(1, [End::Returns, End::TimesOut, End::Returns], false);
        request(2, [End::Returns, End::Returns, End::Fails], false);
        request(3, [End::Returns, End::Returns, End::Returns], false);
    });
    let bytes = snap.to_bytes().expect("encodes");
    let back = LatencySnapshot::from_bytes(&bytes).expect("decodes");
    for model in MODELS {
        assert_eq!(blamed(&back, model), blamed(&snap, model), "{model}");
    }
    assert_eq!(blamed(&back, "Causal"), [0, 1, 0]);
    assert_eq!(blamed(&back, "Code"), [1, 0, 1]);
    let merged = LatencySnapshot::merged(&[snap.clone(), back]).expect("merges");
    assert_eq!(blamed(&merged, "Code"), [2, 0, 2]);
    assert_eq!(merged.model("Code").unwrap().blamed(), 4);
}

#[test]
fn every_view_shows_the_one_verdict_led_by_the_outcome() {
    let snap = run(Duration::from_nanos(1), || {
        use End::*;
        request(1, [Returns, Returns, Returns], false);
        request(2, [Returns, TimesOut, Returns], false);
        request(3, [Fails, Returns, Returns], true);
    });
    let mut seen = Vec::new();
    for t in snap.captured() {
        let outcome = t.outcome();
        seen.push(outcome);
        let lead = format!("{}: ", outcome.name());
        assert!(t.verdict().starts_with(&lead), "{}", t.verdict());
        let text = render_text(t);
        assert!(
            text.contains(&format!("\nBottleneck: {}\n", t.verdict())),
            "{text}"
        );
        let json = chrome_trace_json(std::slice::from_ref(t));
        let events = json["traceEvents"].as_array().expect("events");
        let verdicts: Vec<&str> = events
            .iter()
            .filter_map(|e| e["args"]["verdict"].as_str())
            .collect();
        assert_eq!(verdicts, [t.verdict()], "on the root only");
        let process = events
            .iter()
            .find(|e| e["name"] == "process_name")
            .and_then(|e| e["args"]["name"].as_str())
            .expect("a process name");
        let want = format!("request {} ({}", t.request_id(), outcome.name());
        assert!(process.starts_with(&want), "{process}");
    }
    seen.sort_by_key(|o| o.name());
    assert_eq!(
        seen,
        [Outcome::Degraded, Outcome::Failed, Outcome::OverTarget]
    );
}

#[test]
fn blame_by_reason_in_bytes_is_checked_and_older_bytes_read_as_over_target() {
    let snap = run(Duration::from_secs(60), || {
        request(1, [End::Returns, End::TimesOut, End::Returns], false);
        request(2, [End::Returns, End::TimesOut, End::Returns], false);
    });
    let bytes = snap.to_bytes().expect("encodes");
    // An entry: name (u32 length, bytes), errors, timeouts, blamed (u64
    // each), flags (u8), then with flag bit 3 the three reasons (u64 each).
    let name = b"\x06\x00\x00\x00Causal";
    let at = bytes
        .windows(name.len())
        .position(|w| w == name)
        .expect("Causal's entry")
        + name.len();
    let u64_at = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
    let (total, flags, reasons) = (at + 16, at + 24, at + 25);
    assert_eq!(u64_at(&bytes, total), 2);
    assert_eq!(bytes[flags] & 8, 8, "blame by reason follows");
    assert_eq!(
        [0, 1, 2].map(|k| u64_at(&bytes, reasons + 8 * k)),
        [0, 2, 0]
    );

    // Reasons that do not add up to the total are refused.
    let mut bad = bytes.clone();
    bad[reasons] = 1;
    let err = LatencySnapshot::from_bytes(&bad).expect_err("a sum that does not match");
    assert!(err.to_string().contains("do not add up"), "{err}");

    // Bytes of a build before blame by reason: the total, no bit 3, no
    // reasons; their blame was over target.
    let mut old = bytes[..reasons].to_vec();
    old[flags] &= !8;
    old.extend_from_slice(&bytes[reasons + 24..]);
    let back = LatencySnapshot::from_bytes(&old).expect("older bytes decode");
    assert_eq!(blamed(&back, "Causal"), [2, 0, 0]);
}
