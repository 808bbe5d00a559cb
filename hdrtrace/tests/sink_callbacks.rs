//! A `RequestSink` runs on the aggregator thread and may call back into the
//! subscriber it is fed by: flushing returns an error at once, dropping the
//! guard stops the aggregator without joining itself, and spans it records
//! there are ignored and counted instead of feeding the sink forever.

use hdrtrace::{Builder, FlushError, HdrSubscriber, RequestSink, RequestTrace, TracingConfig};
use hdrtrace::{TracingGuard, TracingLevel};
use std::sync::{mpsc, Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

/// Far longer than any of these steps takes; a step past it has hung.
const HANG: Duration = Duration::from_secs(10);

/// Every request captured, so each one reaches the sink.
fn config() -> TracingConfig {
    TracingConfig {
        sampling_rate: 1.0,
        level: TracingLevel::Verbose,
        ..TracingConfig::default()
    }
}

fn one_request(subscriber: &HdrSubscriber, id: u64) {
    tracing::subscriber::with_default(subscriber.clone(), || {
        hdrtrace::__bench::pipeline_request(id, None)
    });
}

/// Runs `f` on another thread; `None` when it has not returned within `HANG`.
fn bounded<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(HANG).ok()
}

/// Calls `on_capture` with every captured request.
struct Callback<F>(F);

impl<F: FnMut(&Arc<RequestTrace>) + Send + 'static> RequestSink for Callback<F> {
    fn captured(&mut self, trace: &Arc<RequestTrace>) {
        (self.0)(trace)
    }
}

/// A subscriber whose sink calls `on_capture` with the subscriber's own
/// guard for every captured request (the sink holds the shared guard
/// weakly, and calls nothing before it is in place).
fn sink_with_guard(
    mut on_capture: impl FnMut(&TracingGuard) + Send + 'static,
) -> (HdrSubscriber, Arc<TracingGuard>) {
    let guard_slot: Arc<OnceLock<Weak<TracingGuard>>> = Arc::new(OnceLock::new());
    let slot = guard_slot.clone();
    let sink = Callback(move |_: &Arc<RequestTrace>| {
        if let Some(guard) = slot.get().and_then(Weak::upgrade) {
            on_capture(&guard);
        }
    });
    let (subscriber, guard) = Builder::new(&config()).sink(sink).build().unwrap();
    let guard = Arc::new(guard);
    guard_slot.set(Arc::downgrade(&guard)).unwrap();
    (subscriber, guard)
}

#[test]
fn flush_inside_a_sink_returns_an_error_at_once() {
    let (tx, rx) = mpsc::channel();
    let (subscriber, guard) = sink_with_guard(move |guard| {
        let _ = tx.send(guard.try_flush().map_err(|e| e.to_string()));
        // `flush` too must come back.
        guard.flush();
    });
    one_request(&subscriber, 1);
    let g = guard.clone();
    let flushed = bounded(move || g.try_flush().map_err(|e| e.to_string()));
    assert_eq!(
        flushed,
        Some(Ok(())),
        "a flush from the test thread must be answered"
    );
    let inside = rx
        .recv_timeout(HANG)
        .expect("the sink's flush never returned");
    let why = inside.expect_err("a flush on the aggregator thread cannot succeed");
    assert!(why.contains("aggregator thread"), "{why}");
    assert!(guard.snapshot().version() > 0);
    // And the aggregator goes on.
    one_request(&subscriber, 2);
    let g = guard.clone();
    let snap = bounded(move || g.flushed_snapshot()).expect("a later flush hung");
    assert_eq!(snap.counters().requests, 2);
    assert!(snap.aggregator_failure().is_none());
}

#[test]
fn try_flush_on_the_aggregator_thread_names_the_error() {
    let (tx, rx) = mpsc::channel();
    let (subscriber, _guard) = sink_with_guard(move |guard| {
        let _ = tx.send(matches!(
            guard.try_flush(),
            Err(FlushError::OnAggregatorThread { .. })
        ));
    });
    one_request(&subscriber, 1);
    assert_eq!(rx.recv_timeout(HANG), Ok(true));
}

#[test]
fn dropping_the_guard_inside_a_sink_stops_without_joining_itself() {
    let guard_slot: Arc<Mutex<Option<TracingGuard>>> = Arc::new(Mutex::new(None));
    let (tx, rx) = mpsc::channel();
    let slot = guard_slot.clone();
    let sink = Callback(move |_: &Arc<RequestTrace>| {
        let taken = slot.lock().unwrap().take();
        if let Some(guard) = taken {
            drop(guard);
            let _ = tx.send(());
        }
    });
    let (subscriber, guard) = Builder::new(&config()).sink(sink).build().unwrap();
    let source = guard.snapshot_source();
    *guard_slot.lock().unwrap() = Some(guard);
    one_request(&subscriber, 1);
    rx.recv_timeout(HANG)
        .expect("dropping the guard inside the sink panicked or hung");
    // The drop asked the aggregator to stop: it publishes a final snapshot
    // with the request in it, and no sink failed.
    let last = bounded(move || loop {
        let snap = source.snapshot();
        if snap.counters().requests == 1 {
            return snap;
        }
        std::thread::sleep(Duration::from_millis(10));
    })
    .expect("no snapshot with the request was published");
    assert_eq!(last.counters().failed_sinks, 0, "{:?}", last.counters());
    assert!(last.aggregator_failure().is_none());
}

#[test]
fn spans_a_sink_records_are_ignored_and_counted() {
    let sub_slot: Arc<OnceLock<HdrSubscriber>> = Arc::new(OnceLock::new());
    let slot = sub_slot.clone();
    let mut next = 1_000u64;
    let sink = Callback(move |_: &Arc<RequestTrace>| {
        if let Some(subscriber) = slot.get() {
            // A request span per captured request: if it were aggregated, it
            // would be captured and come back here, forever.
            next += 1;
            one_request(subscriber, next);
            tracing::subscriber::with_default(subscriber.clone(), || {
                tracing::info!("captured one");
            });
        }
    });
    let (subscriber, guard) = Builder::new(&config()).sink(sink).build().unwrap();
    sub_slot.set(subscriber.clone()).unwrap();
    one_request(&subscriber, 1);
    let guard = Arc::new(guard);
    let g = guard.clone();
    let snap = bounded(move || g.flushed_snapshot()).expect("flush hung: the sink fed itself");
    let c = snap.counters();
    assert_eq!(c.requests, 1, "{c:?}");
    assert_eq!(c.captured_requests, 1, "{c:?}");
    // The sink's one pipeline request (its event, outside any request, is
    // only a log line).
    assert_eq!(
        c.aggregator_thread_records,
        hdrtrace::__bench::SPANS_PER_REQUEST,
        "{c:?}"
    );
    // The aggregator still publishes and records what other threads do.
    one_request(&subscriber, 2);
    let g = guard.clone();
    let snap = bounded(move || g.flushed_snapshot()).expect("a later flush hung");
    assert_eq!(snap.counters().requests, 2);
}
