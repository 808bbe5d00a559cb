//! Misuse must not poison a thread or the subscriber: unbalanced enters and
//! exits, deep recursion, idle threads holding span slots, a request id
//! recorded late, a sink that panics.

use hdrtrace::{Builder, RequestSink, RequestTrace, SpanTrace, TracingConfig};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};
use tracing::subscriber::with_default;

fn config() -> TracingConfig {
    TracingConfig {
        sampling_rate: 1.0,
        ring_capacity: 1 << 12,
        ..TracingConfig::default()
    }
}

fn spin(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// A request with three model children, each busy for a moment, on this
/// thread; returns its request id.
fn request(id: u64) -> u64 {
    let root = tracing::info_span!("embed_pipeline", request_id = id);
    let _r = root.enter();
    spin(Duration::from_micros(200));
    for model in ["Semantic", "Causal", "Code"] {
        tracing::info_span!("model", model_id = model).in_scope(|| spin(Duration::from_micros(50)));
    }
    id
}

/// The captured request `id`, checked whole: every model span present, a
/// child of the root, and the root's busy time counted.
fn assert_whole(traces: &[Arc<RequestTrace>], id: u64) {
    let t = traces
        .iter()
        .find(|t| t.request_id() == id)
        .unwrap_or_else(|| panic!("request {id} was not captured"));
    assert!(t.complete(), "request {id} incomplete");
    assert_eq!(t.spans().len(), 4, "request {id}: {:?}", names(t.spans()));
    let root = t.root().unwrap().id;
    for m in t.models() {
        assert_eq!(m.parent, root, "{} re-parented", m.label());
    }
    assert!(
        t.root().unwrap().busy >= Duration::from_micros(200),
        "root busy {:?}",
        t.root().unwrap().busy
    );
}

fn names(spans: &[SpanTrace]) -> Vec<&str> {
    spans.iter().map(|s| s.label()).collect()
}

#[test]
fn forgotten_enter_guards_do_not_poison_the_thread() {
    let (sub, guard) = hdrtrace::build(&config()).unwrap();
    with_default(sub, || {
        // The reproduction: 64 forgotten guards filled the stack for
        // good, and every later request was captured with its root alone.
        for _ in 0..100 {
            let span = tracing::info_span!("leaky");
            std::mem::forget(span.enter());
        }
        request(1);
        request(2);
    });
    let snap = guard.flushed_snapshot();
    assert_whole(snap.captured(), 1);
    assert_whole(snap.captured(), 2);
    assert!(
        snap.counters().unmatched_enters >= 100,
        "{:?}",
        snap.counters()
    );
}

#[test]
fn a_span_exited_on_another_thread_leaves_both_threads_exact() {
    let (sub, guard) = hdrtrace::build(&config()).unwrap();
    let dispatch = tracing::Dispatch::new(sub);
    tracing::dispatcher::with_default(&dispatch, || {
        for _ in 0..100 {
            let span = tracing::info_span!("handed_over");
            let id = span.id().expect("tracked");
            dispatch.enter(&id);
            let d = dispatch.clone();
            std::thread::spawn(move || {
                d.exit(&id);
                drop(span);
            })
            .join()
            .unwrap();
        }
        request(3);
    });
    let d = dispatch.clone();
    std::thread::spawn(move || tracing::dispatcher::with_default(&d, || request(4)))
        .join()
        .unwrap();
    let snap = guard.flushed_snapshot();
    assert_whole(snap.captured(), 3);
    assert_whole(snap.captured(), 4);
    assert!(
        snap.counters().unmatched_enters >= 200,
        "{:?}",
        snap.counters()
    );
}

fn recurse(depth: u64) {
    let span = tracing::info_span!("level", depth);
    let _e = span.enter();
    if depth > 0 {
        recurse(depth - 1);
    } else {
        tracing::error!("innermost");
    }
}

#[test]
fn recursion_deeper_than_the_stack_keeps_every_parent() {
    const DEPTH: u64 = 100;
    let (sub, guard) = hdrtrace::build(&config()).unwrap();
    with_default(sub, || {
        let root = tracing::info_span!("embed_pipeline", request_id = 5u64);
        root.in_scope(|| recurse(DEPTH - 1));
    });
    let snap = guard.flushed_snapshot();
    let t = snap
        .captured()
        .iter()
        .find(|t| t.request_id() == 5)
        .unwrap();
    assert!(t.complete());
    assert_eq!(t.spans().len() as u64, DEPTH + 1);
    let depth_of = |s: &SpanTrace| match s.field("depth") {
        Some(hdrtrace::FieldValue::U64(d)) => d,
        other => panic!("{} has depth {other:?}", s.name),
    };
    for s in t.spans().iter().filter(|s| s.name == "level") {
        let d = depth_of(s);
        let parent = t.span(s.parent).expect("the parent is in the trace");
        if d == DEPTH - 1 {
            assert_eq!(parent.id, t.root().unwrap().id);
        } else {
            assert_eq!(depth_of(parent), d + 1, "level {d} re-parented");
        }
    }
    let innermost = t
        .events()
        .iter()
        .find(|e| e.message == "innermost")
        .unwrap();
    assert_eq!(depth_of(t.span(innermost.span).unwrap()), 0);
}

#[test]
fn idle_threads_cannot_take_the_slots_of_others() {
    const THREADS: usize = 1100;
    let config = TracingConfig {
        ring_capacity: 64,
        ..TracingConfig::default()
    };
    let (sub, guard) = hdrtrace::build(&config).unwrap();
    let capacity = guard.slot_capacity();
    let dispatch = tracing::Dispatch::new(sub);
    let closed = Arc::new(Barrier::new(THREADS + 1));
    let release = Arc::new(Barrier::new(THREADS + 1));
    let idle: Vec<_> = (0..THREADS)
        .map(|_| {
            let (d, closed, release) = (dispatch.clone(), closed.clone(), release.clone());
            std::thread::Builder::new()
                .stack_size(128 << 10)
                .spawn(move || {
                    tracing::dispatcher::with_default(&d, || {
                        tracing::info_span!("model", model_id = "Idle").in_scope(|| {})
                    });
                    closed.wait();
                    release.wait();
                })
                .unwrap()
        })
        .collect();
    closed.wait();
    // Every thread closed a span and keeps its cache; the main thread can
    // still hold `slot_capacity` spans open at once.
    let held: Vec<tracing::Span> = tracing::dispatcher::with_default(&dispatch, || {
        (0..capacity)
            .map(|_| tracing::info_span!("model", model_id = "Held"))
            .collect()
    });
    assert!(held.iter().all(|s| s.id().is_some()));
    drop(held);
    release.wait();
    for t in idle {
        t.join().unwrap();
    }
    let snap = guard.flushed_snapshot();
    assert_eq!(snap.dropped_spans(), 0, "a span went untracked");
    // The main thread's small ring overflows as it closes them all at once:
    // every span is tracked and each record is either counted or dropped.
    let idle = snap.model("Idle").unwrap().count();
    let held = snap.model("Held").unwrap().count();
    assert_eq!(
        idle + held + snap.dropped_records(),
        (THREADS + capacity) as u64
    );
}

#[test]
fn a_request_id_recorded_later_is_the_requests_id() {
    let (sub, guard) = hdrtrace::build(&config()).unwrap();
    with_default(sub, || {
        let root = tracing::info_span!("embed_pipeline", request_id = tracing::field::Empty);
        root.record("request_id", 4242u64);
        let _r = root.enter();
        tracing::info_span!("model", model_id = "Causal").in_scope(|| {});
    });
    let snap = guard.flushed_snapshot();
    let ids: Vec<u64> = snap.captured().iter().map(|t| t.request_id()).collect();
    assert_eq!(ids, [4242]);
}

/// Collects the ids of captured requests.
#[derive(Clone, Default)]
struct Ids(Arc<Mutex<Vec<u64>>>);
impl RequestSink for Ids {
    fn captured(&mut self, trace: &Arc<RequestTrace>) {
        self.0.lock().unwrap().push(trace.request_id());
    }
}

#[test]
fn a_request_id_recorded_later_decides_sampling() {
    let half = TracingConfig {
        sampling_rate: 0.5,
        ..config()
    };
    let run = |late: bool| -> Vec<u64> {
        let ids = Ids::default();
        let (sub, guard) = Builder::new(&half).sink(ids.clone()).build().unwrap();
        with_default(sub, || {
            for id in 1000..1200u64 {
                let root = if late {
                    let root =
                        tracing::info_span!("embed_pipeline", request_id = tracing::field::Empty);
                    root.record("request_id", id);
                    root
                } else {
                    tracing::info_span!("embed_pipeline", request_id = id)
                };
                root.in_scope(|| tracing::info_span!("model", model_id = "M").in_scope(|| {}));
            }
        });
        guard.flush();
        let mut ids = ids.0.lock().unwrap().clone();
        ids.sort_unstable();
        ids
    };
    let at_creation = run(false);
    assert!(
        (40..160).contains(&at_creation.len()),
        "{} of 200 sampled at 0.5",
        at_creation.len()
    );
    assert_eq!(run(true), at_creation);
}

/// Panics on its first captured request.
struct Panicking;
impl RequestSink for Panicking {
    fn captured(&mut self, _trace: &Arc<RequestTrace>) {
        panic!("this sink fails");
    }
}

#[derive(Clone, Default)]
struct Count(Arc<AtomicU64>);
impl RequestSink for Count {
    fn captured(&mut self, _trace: &Arc<RequestTrace>) {
        // Relaxed: read after `flush`, whose handshake orders it.
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn a_panicking_sink_is_dropped_and_aggregation_goes_on() {
    const REQUESTS: u64 = 2000;
    let count = Count::default();
    let (sub, guard) = Builder::new(&config())
        .sink(Panicking)
        .sink(count.clone())
        .build()
        .unwrap();
    with_default(sub, || {
        for id in 0..REQUESTS {
            request(10_000 + id);
        }
    });
    guard.try_flush().expect("the aggregator survives its sink");
    let snap = guard.snapshot();
    let c = snap.counters();
    assert_eq!(c.failed_sinks, 1);
    // The sink after the failed one saw every captured request: all of them,
    // unless a loaded machine made a ring overflow (counted).
    assert_eq!(count.0.load(Ordering::Relaxed), c.captured_requests);
    if c.dropped_records == 0 {
        assert_eq!(c.requests, REQUESTS, "{c:?}");
        assert_eq!(c.captured_requests, REQUESTS, "{c:?}");
    } else {
        assert!(c.captured_requests > 0, "{c:?}");
    }
    assert_eq!(snap.aggregator_failure(), None);
}
