//! Batches: one `batch` span (no parent) serving two requests' model spans,
//! linked both ways with `follows_from`, as a dynamic batcher makes them. Each
//! captured request carries the batch, its size and its children, the
//! attribution splits the bottleneck's time around it, and every export
//! shows it.

mod batch_support;

use batch_support::{batch_for, requests};
use hdrtrace::export::{chrome_trace_json, render_text};
use hdrtrace::{
    limits, BatchCause, LatencySnapshot, RequestTrace, SpanClass, SpanTrace, TracingConfig,
    TracingLevel,
};
use std::sync::{Arc, Mutex};
use std::thread::sleep;
use std::time::Duration;
use tracing::subscriber::with_default;

/// One scenario at a time: scoped subscribers built and dropped on several
/// test threads at once race in tracing-core's interest cache.
static SERIAL: Mutex<()> = Mutex::new(());

fn config() -> TracingConfig {
    TracingConfig {
        sampling_rate: 1.0,
        level: TracingLevel::Verbose,
        latency_target: Duration::from_millis(5),
        ..TracingConfig::default()
    }
}

/// `config` with the smallest memory budget: its batch share holds a few
/// dozen records.
fn small_budget() -> TracingConfig {
    TracingConfig {
        memory_budget: 64 << 10,
        capture_capacity: 2,
        max_capture_spans: 16,
        ..config()
    }
}

/// Two requests (ids 1 and 2) whose `Causal` model spans wait `wait` for a
/// batch of 2 that runs `run`; the batch span closes before the model spans,
/// or, with `batch_last`, after both requests' roots.
fn two_requests_one_batch(
    wait: Duration,
    run: Duration,
    batch_last: bool,
) -> (Vec<Arc<RequestTrace>>, LatencySnapshot) {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (subscriber, guard) = hdrtrace::build(&config()).unwrap();
    with_default(subscriber, || {
        let (roots, models) = requests(1..=2);
        sleep(wait);
        let batch = batch_for(&models, 2);
        batch.in_scope(|| {
            tracing::trace_span!("forward").in_scope(|| sleep(run));
            tracing::trace_span!("scatter").in_scope(|| {});
        });
        if batch_last {
            drop(models);
            drop(roots);
            sleep(Duration::from_millis(20));
            drop(batch);
        } else {
            drop(batch);
            drop(models);
            drop(roots);
        }
    });
    let snapshot = guard.flushed_snapshot();
    let mut traces: Vec<Arc<RequestTrace>> = snapshot.captured().to_vec();
    traces.sort_by_key(|t| t.request_id());
    assert_eq!(
        traces.iter().map(|t| t.request_id()).collect::<Vec<_>>(),
        [1, 2],
        "{:?}",
        snapshot.counters()
    );
    (traces, snapshot)
}

fn batch_of(t: &RequestTrace) -> &SpanTrace {
    t.spans()
        .iter()
        .find(|s| s.class == SpanClass::Batch)
        .unwrap_or_else(|| panic!("no batch span in\n{}", render_text(t)))
}

fn model_of(t: &RequestTrace) -> &SpanTrace {
    t.models().next().expect("a model span")
}

#[test]
fn two_requests_carry_the_batch_that_served_them_linked_both_ways() {
    let (traces, snapshot) =
        two_requests_one_batch(Duration::from_millis(2), Duration::from_millis(30), false);
    let batch_ids: Vec<u64> = traces.iter().map(|t| batch_of(t).id).collect();
    assert_eq!(batch_ids[0], batch_ids[1], "one batch served both");
    for t in &traces {
        let text = render_text(t);
        assert!(t.complete(), "{text}");
        let (batch, model) = (batch_of(t), model_of(t));
        assert!(batch.shared, "{text}");
        assert!(!model.shared);
        assert_eq!(batch.model.as_deref(), Some("Causal"));
        assert_eq!(
            batch.field("batch_size"),
            Some(hdrtrace::FieldValue::U64(2))
        );
        assert_eq!(model.links, [batch.id], "{text}");
        assert_eq!(batch.links, [model.id], "{text}");
        // Its children, recorded at Verbose, come along, shared too.
        for name in ["forward", "scatter"] {
            let child = t.spans().iter().find(|s| s.name == name).expect(name);
            assert_eq!(child.parent, batch.id);
            assert!(child.shared);
        }
        // The tree hangs the batch under the model span it served.
        let tree = t.index();
        let at = |id| tree.position(id).unwrap();
        assert_eq!(tree.parent(at(batch.id)), Some(at(model.id)));
        let model_line = text.lines().position(|l| l.contains("model{")).unwrap();
        let batch_line = text.lines().position(|l| l.contains("batch{")).unwrap();
        assert_eq!(batch_line, model_line + 1, "{text}");
        let line = text.lines().nth(batch_line).unwrap();
        assert!(
            line.contains("[shared]") && line.contains("batch_size=2"),
            "{text}"
        );
        assert!(!line.contains("parent missing"), "{text}");

        let a = t.attribution().expect("attribution");
        let share = a.batch.as_ref().expect("a batch share");
        assert_eq!(share.span, batch.id);
        assert_eq!(share.size, 2);
        let mut served = share.requests.clone();
        served.sort_unstable();
        assert_eq!(served, [1, 2]);
        assert_eq!(share.cause, BatchCause::Run, "{share:?}");
        assert!(share.run >= Duration::from_millis(30), "{share:?}");
        assert!(
            t.verdict()
                .strip_prefix(outcome_lead(t).as_str())
                .is_some_and(|v| v.starts_with("Causal: batch of 2 ran ")),
            "{}",
            t.verdict()
        );
        assert!(
            text.contains(&format!("Bottleneck: {}", t.verdict())),
            "{text}"
        );
    }
    let causal = snapshot.model("Causal").unwrap();
    assert_eq!(causal.count(), 2, "the batch's wall is not a model span's");
    let sizes = causal.batch_size().expect("batch sizes");
    assert_eq!((sizes.len(), sizes.max()), (1, 2));
    let waits = causal.batch_wait().expect("batch waits");
    assert_eq!(waits.count(), 2, "one wait per served request");
    assert!(waits.min() >= Duration::from_millis(2));
    assert_eq!(snapshot.stage("batch").unwrap().count(), 1);
    assert_eq!(snapshot.counters().dropped_links, 0);
}

#[test]
fn a_long_wait_for_the_batch_is_named_even_when_the_batch_closes_last() {
    let (traces, _) =
        two_requests_one_batch(Duration::from_millis(40), Duration::from_millis(1), true);
    for t in &traces {
        let batch = batch_of(t);
        let share = t.attribution().unwrap().batch.as_ref().unwrap();
        assert_eq!(share.span, batch.id);
        assert_eq!(share.cause, BatchCause::Wait, "{share:?}");
        assert!(share.wait >= Duration::from_millis(40), "{share:?}");
        assert!(
            t.verdict()
                .strip_prefix(outcome_lead(t).as_str())
                .is_some_and(|v| v.starts_with("Causal: waited "))
                && t.verdict().ends_with("for a batch of 2 to fill"),
            "{}",
            t.verdict()
        );
        assert!(t.complete());
    }
}

#[test]
fn perfetto_draws_a_flow_from_each_model_span_to_its_batch() {
    let (traces, _) =
        two_requests_one_batch(Duration::from_millis(1), Duration::from_millis(5), false);
    let json = chrome_trace_json(&traces);
    let events = json["traceEvents"].as_array().unwrap();
    let flows =
        |ph: &str| -> Vec<&serde_json::Value> { events.iter().filter(|e| e["ph"] == ph).collect() };
    let (starts, finishes) = (flows("s"), flows("f"));
    assert_eq!(starts.len(), 2, "one arrow per request");
    assert_eq!(finishes.len(), 2);
    for s in &starts {
        let f = finishes
            .iter()
            .find(|f| f["id"] == s["id"])
            .expect("a finish with the start's id");
        assert_eq!(f["pid"], s["pid"]);
        // The arrow starts on the model span and ends on the batch span.
        let slice_at = |e: &serde_json::Value| {
            events
                .iter()
                .find(|x| {
                    x["ph"] == "X"
                        && x["pid"] == e["pid"]
                        && x["tid"] == e["tid"]
                        && x["ts"] == e["ts"]
                })
                .map(|x| x["cat"].as_str().unwrap().to_string())
        };
        assert_eq!(slice_at(s).as_deref(), Some("model"));
        assert_eq!(slice_at(f).as_deref(), Some("batch"));
    }
    let root_verdicts: Vec<&str> = events
        .iter()
        .filter_map(|e| e["args"]["verdict"].as_str())
        .collect();
    let expected: Vec<&str> = traces.iter().map(|t| t.verdict()).collect();
    assert_eq!(
        root_verdicts, expected,
        "Perfetto shows the trace's one verdict"
    );
}

#[test]
fn links_past_max_links_are_counted_as_dropped() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (subscriber, guard) = hdrtrace::build(&config()).unwrap();
    let extra = 3;
    with_default(subscriber, || {
        let (roots, models) = requests(1..=(limits::MAX_LINKS + extra) as u64);
        let batch = batch_for(&models, 7);
        drop(batch);
        drop(models);
        drop(roots);
    });
    let snapshot = guard.flushed_snapshot();
    assert_eq!(snapshot.counters().dropped_links, extra as u64);
    // The batch kept MAX_LINKS links of its own, but every request it served
    // links to it from its side: each carries it.
    let traces = snapshot.captured();
    assert_eq!(traces.len(), limits::MAX_LINKS + extra);
    for t in traces {
        let batch = batch_of(t);
        assert_eq!(batch.links, [model_of(t).id], "{}", render_text(t));
        let share = t.attribution().unwrap().batch.as_ref().unwrap();
        assert_eq!(share.requests.len(), limits::MAX_LINKS + extra);
    }
}

#[test]
fn batches_beyond_their_share_of_the_budget_are_dropped_and_counted() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (subscriber, guard) = hdrtrace::build(&small_budget()).unwrap();
    const BATCHES: u64 = 300;
    with_default(subscriber, || {
        for _ in 0..BATCHES {
            let batch =
                tracing::info_span!(parent: None, "batch", model_id = "Causal", batch_size = 4u64);
            batch.in_scope(|| {
                tracing::trace_span!("batch_wait").in_scope(|| {});
                tracing::trace_span!("forward").in_scope(|| {});
                tracing::trace_span!("scatter").in_scope(|| {});
            });
        }
        // The newest batch is still held: a request it serves carries it.
        let (roots, models) = requests([9]);
        drop(batch_for(&models, 1));
        drop(models);
        drop(roots);
    });
    let snapshot = guard.flushed_snapshot();
    let c = snapshot.counters();
    assert!(c.dropped_batch_records > 0, "{c:?}");
    assert!(
        c.dropped_batch_records <= BATCHES * 4,
        "only what was held can be dropped: {c:?}"
    );
    // The histograms count every batch whatever the store kept.
    let causal = snapshot.model("Causal").unwrap();
    assert_eq!(causal.batch_size().unwrap().len(), BATCHES + 1);
    assert_eq!(snapshot.stage("batch").unwrap().count(), BATCHES + 1);
    let t = &snapshot.captured()[0];
    assert_eq!(t.request_id(), 9);
    assert_eq!(
        batch_of(t).field("batch_size"),
        Some(hdrtrace::FieldValue::U64(1))
    );
}

/// Spans of a service outside any request and outside any batch (children
/// of a background root) are not held for batches: they take none of the
/// batches' share of the budget, so a batch served after a flood of them
/// still carries its children, and nothing is counted as a dropped batch record.
#[test]
fn spans_outside_requests_and_batches_are_not_held_for_batches() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (subscriber, guard) = hdrtrace::build(&small_budget()).unwrap();
    with_default(subscriber, || {
        let background = tracing::info_span!(parent: None, "housekeeping");
        background.in_scope(|| {
            for i in 0..5_000 {
                tracing::info_span!("sweep").in_scope(|| {});
                if i % 1_000 == 999 {
                    // Drained as it goes: the ring keeps every record.
                    guard.flush();
                }
            }
        });
        let (roots, models) = requests([7]);
        let batch = batch_for(&models, 1);
        batch.in_scope(|| {
            tracing::trace_span!("forward").in_scope(|| {});
            tracing::trace_span!("scatter").in_scope(|| {});
        });
        drop(batch);
        drop(models);
        drop(roots);
    });
    let snapshot = guard.flushed_snapshot();
    let c = snapshot.counters();
    assert_eq!(c.dropped_batch_records, 0, "{c:?}");
    assert_eq!(snapshot.stage("sweep").unwrap().count(), 5_000, "{c:?}");
    let t = &snapshot.captured()[0];
    let batch = batch_of(t).id;
    let below: Vec<&str> = t
        .spans()
        .iter()
        .filter(|s| s.parent == batch)
        .map(|s| s.name)
        .collect();
    assert_eq!(below, ["forward", "scatter"], "{}", render_text(t));
}

/// Batch size and batch wait travel in snapshot bytes, add up when snapshots
/// are merged, and are exported as Prometheus histograms labelled by model.
#[cfg(feature = "prometheus")]
#[test]
fn batch_histograms_travel_in_bytes_merge_and_reach_prometheus() {
    use hdrtrace::export::prometheus::{render_with, Buckets, Format};
    let (_, snapshot) =
        two_requests_one_batch(Duration::from_millis(1), Duration::from_millis(2), false);
    let bytes = snapshot.to_bytes().unwrap();
    let back = LatencySnapshot::from_bytes(&bytes).unwrap();
    let (a, b) = (
        snapshot.model("Causal").unwrap(),
        back.model("Causal").unwrap(),
    );
    assert_eq!(b.batch_size(), a.batch_size());
    assert_eq!(
        b.batch_wait().unwrap().histogram(),
        a.batch_wait().unwrap().histogram()
    );
    let merged = LatencySnapshot::merged(&[snapshot.clone(), back]).unwrap();
    let m = merged.model("Causal").unwrap();
    assert_eq!(m.batch_size().unwrap().len(), 2);
    assert_eq!(m.batch_wait().unwrap().count(), 4);

    for format in [Format::OpenMetrics, Format::Text] {
        let text = render_with(&merged, format, &Buckets::default());
        let sample = |series: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.split(' ').next())
                .unwrap_or_else(|| panic!("no {series} in\n{text}"))
                .parse()
                .unwrap()
        };
        assert!(
            text.contains("# TYPE hdrtrace_model_batch_size histogram"),
            "{text}"
        );
        assert_eq!(
            sample(r#"hdrtrace_model_batch_size_bucket{model="Causal",le="1"}"#),
            0.0
        );
        assert_eq!(
            sample(r#"hdrtrace_model_batch_size_bucket{model="Causal",le="2"}"#),
            2.0
        );
        assert_eq!(
            sample(r#"hdrtrace_model_batch_size_bucket{model="Causal",le="+Inf"}"#),
            2.0
        );
        assert_eq!(
            sample(r#"hdrtrace_model_batch_size_count{model="Causal"}"#),
            2.0
        );
        assert_eq!(
            sample(r#"hdrtrace_model_batch_size_sum{model="Causal"}"#),
            4.0
        );
        assert!(
            text.contains("# TYPE hdrtrace_model_batch_wait_seconds histogram"),
            "{text}"
        );
        assert_eq!(
            sample(r#"hdrtrace_model_batch_wait_seconds_bucket{model="Causal",le="+Inf"}"#),
            4.0
        );
        assert!(sample(r#"hdrtrace_model_batch_wait_seconds_sum{model="Causal"}"#) >= 0.004);
        // Stages never ran batched: no stage family for either.
        assert!(
            !text.contains("hdrtrace_stage_batch_wait_seconds_bucket"),
            "{text}"
        );
    }
}

/// A batch whose forward pass fails fails every request it served: each
/// model span gets the error, the verdict says so, and the batch's own error
/// event comes along with the shared batch.
#[test]
fn a_failed_batch_fails_every_request_it_served() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (subscriber, guard) = hdrtrace::build(&config()).unwrap();
    with_default(subscriber, || {
        let (_roots, models) = requests(1..=2);
        let batch = batch_for(&models, 2);
        batch.in_scope(|| {
            sleep(Duration::from_millis(10));
            tracing::error!("forward pass failed");
        });
        drop(batch);
        for m in &models {
            tracing::error!(parent: m, "model Causal failed");
        }
    });
    let snapshot = guard.flushed_snapshot();
    assert_eq!(snapshot.captured().len(), 2);
    for t in snapshot.captured() {
        let batch = batch_of(t);
        assert_eq!(batch.status, hdrtrace::Status::Error);
        let event = t
            .events()
            .iter()
            .find(|e| e.span == batch.id)
            .expect("the batch's error event");
        assert_eq!(event.message, "forward pass failed");
        assert!(t.reason().failed);
        assert!(
            t.verdict()
                .strip_prefix(outcome_lead(t).as_str())
                .is_some_and(|v| v.starts_with("Causal: batch of 2 ran "))
                && t.verdict().ends_with(", and it failed"),
            "{}",
            t.verdict()
        );
        let text = render_text(t);
        assert!(
            text.contains("[ERROR @") && text.contains("forward pass failed"),
            "{text}"
        );
    }
    assert_eq!(snapshot.model("Causal").unwrap().errors(), 2);
}

/// How a verdict opens: its outcome's name, unless the request met its
/// target.
fn outcome_lead(t: &hdrtrace::RequestTrace) -> String {
    match t.outcome() {
        hdrtrace::Outcome::Met => String::new(),
        o => format!("{}: ", o.name()),
    }
}
