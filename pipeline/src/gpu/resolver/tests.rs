//! The resolver against a fake event source: answers, order, late delivery
//! into the histogram and the captured request, a call the device never
//! finishes, a device fault, reuse of marks, the thread's end.

use super::*;
use hdrtrace::{RequestSink, RequestTrace, Status, TracingConfig, TracingGuard, TracingLevel};
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use tracing::dispatcher::Dispatch;

/// How a fake call ended on the fake device (one not set still runs).
#[derive(Clone, Copy)]
enum On {
    Done(DevicePhases),
    Fault,
}

/// A device whose calls finish when the test says.
#[derive(Default)]
struct Fake {
    state: Arc<FakeState>,
    dropped: Arc<AtomicBool>,
}

#[derive(Default)]
struct FakeState {
    calls: Mutex<HashMap<u32, On>>,
    recycled: Mutex<Vec<u32>>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

impl EventSource for Fake {
    type Marks = u32;

    fn query(&self, marks: &u32) -> Result<Option<DevicePhases>, GpuError> {
        match self.state.calls.lock().unwrap().get(marks).copied() {
            None => Ok(None),
            Some(On::Done(p)) => Ok(Some(p)),
            // (A `GpuError::Driver` would ask the CUDA library for its text.)
            Some(On::Fault) => Err(GpuError::Invalid(
                "fake device fault: illegal address".into(),
            )),
        }
    }

    fn recycle(&self, marks: u32) {
        self.state.recycled.lock().unwrap().push(marks);
    }
}

impl FakeState {
    fn set(&self, call: u32, on: On) {
        self.calls.lock().unwrap().insert(call, on);
    }
}

fn phases(device_ns: u64) -> DevicePhases {
    DevicePhases {
        upload_ns: 1_000,
        device_ns,
        download_ns: 2_000,
    }
}

const FIELD: &str = "gpu_ns";

fn options() -> ResolverOptions {
    ResolverOptions {
        give_up: Duration::from_secs(30),
        ..ResolverOptions::default()
    }
}

fn resolver<P: Send + 'static>(options: ResolverOptions) -> Resolver<Fake, P> {
    Resolver::start(Fake::default(), FIELD.into(), options).unwrap()
}

/// Polls `f` until it holds (at most 10 s).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < until, "never: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_waiting_call_gets_its_buffers_back_with_its_device_time() {
    let r = resolver::<&str>(options());
    let pending = r.submit(1, "buffers", tracing::Span::none());
    std::thread::sleep(Duration::from_millis(20));
    r.source().state.set(1, On::Done(phases(50_000)));
    let (keep, got) = pending.wait().unwrap();
    assert_eq!((keep, got), ("buffers", phases(50_000)));
    // Counted right after the answer is sent.
    eventually("counted", || r.stats().delivered == 1);
    let stats = r.stats();
    assert_eq!((stats.submitted, stats.delivered, stats.late), (1, 1, 0));
    eventually("marks recycled", || {
        *r.source().state.recycled.lock().unwrap() == [1]
    });
}

#[test]
fn a_call_that_finished_is_not_held_up_behind_one_still_running() {
    let r = resolver::<u32>(options());
    let first = r.submit(1, 1, tracing::Span::none());
    let second = r.submit(2, 2, tracing::Span::none());
    r.source().state.set(2, On::Done(phases(7_000)));
    // The second answers while the first still runs (another stream).
    assert_eq!(second.wait().unwrap(), (2, phases(7_000)));
    eventually("counted", || r.stats().delivered == 1);
    r.source().state.set(1, On::Done(phases(9_000)));
    assert_eq!(first.wait().unwrap(), (1, phases(9_000)));
    // Two calls on one stream reach their marks in order and are answered in
    // the order they came.
    let a = r.submit(3, 3, tracing::Span::none());
    let b = r.submit(4, 4, tracing::Span::none());
    r.source().state.set(3, On::Done(phases(1)));
    r.source().state.set(4, On::Done(phases(2)));
    assert_eq!(a.wait().unwrap().1.device_ns, 1);
    assert_eq!(b.wait().unwrap().1.device_ns, 2);
    eventually("four recycled", || {
        r.source().state.recycled.lock().unwrap().len() == 4
    });
    let rec = r.source().state.recycled.lock().unwrap().clone();
    assert_eq!(&rec[..2], [2, 1]);
    assert!(
        rec[2..] == [3, 4],
        "answered in the order they came: {rec:?}"
    );
}

/// Keeps every captured request.
#[derive(Clone, Default)]
struct Keep(Arc<Mutex<Vec<Arc<RequestTrace>>>>);

impl RequestSink for Keep {
    fn captured(&mut self, trace: &Arc<RequestTrace>) {
        self.0.lock().unwrap().push(trace.clone());
    }
}

/// A subscriber that keeps every request, and its captures.
fn traced() -> (TracingGuard, Dispatch, Keep) {
    let config = TracingConfig {
        level: TracingLevel::Standard,
        sampling_rate: 1.0,
        flush_interval: Duration::from_millis(20),
        ..TracingConfig::default()
    };
    let keep = Keep::default();
    let (subscriber, guard) = hdrtrace::Builder::new(&config)
        .sink(keep.clone())
        .build()
        .unwrap();
    (guard, Dispatch::new(subscriber), keep)
}

/// A request span with one model span under it, as the pipeline makes them.
fn request(dispatch: &Dispatch, model: &str) -> (tracing::Span, tracing::Span) {
    tracing::dispatcher::with_default(dispatch, || {
        let root = tracing::info_span!("embed_pipeline", request_id = 7u64);
        let span = tracing::debug_span!(
            parent: &root,
            "model",
            model_id = model,
            gpu_ns = tracing::field::Empty
        );
        (root, span)
    })
}

/// The captured request's model span.
fn captured_model(keep: &Keep) -> Option<(Arc<RequestTrace>, usize)> {
    let traces = keep.0.lock().unwrap();
    let trace = traces.last()?.clone();
    let at = trace
        .spans()
        .iter()
        .position(|s| s.class == hdrtrace::SpanClass::Model)?;
    Some((trace, at))
}

#[test]
fn a_caller_that_left_still_gets_its_device_time_into_the_histogram_and_the_request() {
    let (guard, dispatch, keep) = traced();
    let r = resolver::<()>(options());
    let (root, span) = request(&dispatch, "Late");
    // The call is handed over, then its caller gives up (a request that
    // timed out drops its model future) and the request ends.
    drop(r.submit(1, (), span.clone()));
    drop(span);
    drop(root);
    std::thread::sleep(Duration::from_millis(50));
    guard.flush();
    assert!(
        keep.0.lock().unwrap().is_empty(),
        "the request waits for its model span"
    );
    r.source().state.set(1, On::Done(phases(1_500_000)));
    eventually("the late time delivered", || r.stats().late == 1);
    eventually("the request captured", || {
        guard.flush();
        captured_model(&keep).is_some()
    });
    let gpu = guard
        .snapshot()
        .model("Late")
        .unwrap()
        .gpu()
        .unwrap()
        .clone();
    assert_eq!(gpu.count(), 1);
    let p50 = gpu.quantile(0.5).as_nanos() as f64;
    assert!((p50 - 1.5e6).abs() < 1.5e6 * 1e-3, "{p50}");
    let (trace, at) = captured_model(&keep).unwrap();
    assert!(trace.complete());
    assert_eq!(trace.spans()[at].device, Some(Duration::from_micros(1_500)));
    assert_eq!(r.stats().undeclared, 0);
}

#[test]
fn the_time_is_on_the_span_before_the_waiting_caller_wakes() {
    let (guard, dispatch, keep) = traced();
    let r = resolver::<()>(options());
    let (root, span) = request(&dispatch, "Waiting");
    let pending = r.submit(1, (), span.clone());
    r.source().state.set(1, On::Done(phases(80_000)));
    pending.wait().unwrap();
    // The caller does nothing with the answer: the time is already recorded.
    drop((span, root));
    eventually("the request captured", || {
        guard.flush();
        captured_model(&keep).is_some()
    });
    let (trace, at) = captured_model(&keep).unwrap();
    assert_eq!(trace.spans()[at].device, Some(Duration::from_micros(80)));
    assert_eq!(
        guard
            .snapshot()
            .model("Waiting")
            .unwrap()
            .gpu()
            .unwrap()
            .count(),
        1
    );
    eventually("counted", || r.stats().delivered == 1);
    assert_eq!(r.stats().late, 0);
}

#[test]
fn a_device_fault_is_the_calls_error_and_marks_its_span_when_the_caller_left() {
    let r = resolver::<()>(options());
    let waiting = r.submit(1, (), tracing::Span::none());
    r.source().state.set(1, On::Fault);
    let err = waiting.wait().unwrap_err().to_string();
    assert!(err.contains("illegal address"), "{err}");

    let (guard, dispatch, keep) = traced();
    let (root, span) = request(&dispatch, "Faulty");
    drop(r.submit(2, (), span.clone()));
    drop((span, root));
    r.source().state.set(2, On::Fault);
    eventually("the request captured", || {
        guard.flush();
        captured_model(&keep).is_some()
    });
    let (trace, at) = captured_model(&keep).unwrap();
    assert_eq!(trace.spans()[at].status, Status::Error);
    assert_eq!(trace.status(), Status::Error);
    eventually("counted", || r.stats().failed == 2);
    // A failed call's marks are not reused.
    assert!(r.source().state.recycled.lock().unwrap().is_empty());
}

#[test]
fn a_call_the_device_never_finishes_is_given_up_but_its_buffers_stay_reserved() {
    let r = resolver::<Arc<()>>(ResolverOptions {
        give_up: Duration::from_millis(50),
        ..ResolverOptions::default()
    });
    let buffers = Arc::new(());
    let started = Instant::now();
    let err = r
        .submit(1, buffers.clone(), tracing::Span::none())
        .wait()
        .unwrap_err();
    assert!(matches!(err, GpuError::Unresolved(after) if after >= Duration::from_millis(50)));
    assert!(started.elapsed() < Duration::from_secs(5));
    eventually("counted", || r.stats().expired == 1);
    // The device may still use them: not released.
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(Arc::strong_count(&buffers), 2);
    // Once the device does get there, they are.
    r.source().state.set(1, On::Done(phases(1)));
    eventually("released", || Arc::strong_count(&buffers) == 1);
    assert_eq!(r.stats().delivered, 0);
}

#[test]
fn a_late_time_on_a_span_without_the_field_is_counted() {
    let (_guard, dispatch, _keep) = traced();
    let r = resolver::<()>(options());
    let span = tracing::dispatcher::with_default(&dispatch, || {
        tracing::info_span!("embed_pipeline", request_id = 1u64)
    });
    drop(r.submit(1, (), span));
    r.source().state.set(1, On::Done(phases(5)));
    eventually("counted", || r.stats().undeclared == 1);
    assert_eq!(r.stats().late, 1);
}

/// A subscriber whose `record` and `try_close` panic on the resolver's
/// thread (as a user's layer might).
struct PanicsOnTheResolver;

impl tracing::Subscriber for PanicsOnTheResolver {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::Id {
        tracing::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::Id, _: &tracing::span::Record<'_>) {
        if std::thread::current().name() == Some("gpu-resolver") {
            panic!("a layer's record panicked");
        }
    }
    fn record_follows_from(&self, _: &tracing::Id, _: &tracing::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::Id) {}
    fn exit(&self, _: &tracing::Id) {}
    fn try_close(&self, _: tracing::Id) -> bool {
        if std::thread::current().name() == Some("gpu-resolver") {
            panic!("a layer's close panicked");
        }
        false
    }
}

#[test]
fn a_subscriber_that_panics_is_counted_and_the_resolver_goes_on() {
    let r = resolver::<()>(options());
    let span = tracing::subscriber::with_default(PanicsOnTheResolver, || {
        tracing::debug_span!("model", model_id = "M", gpu_ns = tracing::field::Empty)
    });
    let pending = r.submit(1, (), span.clone());
    r.source().state.set(1, On::Done(phases(10)));
    // The caller still gets its answer.
    assert_eq!(pending.wait().unwrap().1, phases(10));
    // Recording the time and closing the span both panicked, both counted.
    eventually("counted", || r.stats().subscriber_panics == 2);
    // And the resolver still answers.
    let next = r.submit(2, (), tracing::Span::none());
    r.source().state.set(2, On::Done(phases(20)));
    assert_eq!(next.wait().unwrap().1, phases(20));
    drop(span);
}

#[test]
fn the_thread_ends_once_the_handles_are_gone_and_the_calls_resolved() {
    let r = resolver::<()>(options());
    let dropped = r.source().dropped.clone();
    let state = r.source().state.clone();
    let pending = r.submit(1, (), tracing::Span::none());
    drop(r);
    std::thread::sleep(Duration::from_millis(30));
    assert!(!dropped.load(Ordering::SeqCst), "a call is still in flight");
    state.set(1, On::Done(phases(3)));
    assert_eq!(pending.wait().unwrap().1.device_ns, 3);
    eventually("the thread ended", || dropped.load(Ordering::SeqCst));
}

/// How a call in the property test ends.
#[derive(Debug, Clone, Copy)]
enum Ends {
    Done,
    Fault,
    Never,
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(40))]

    /// Calls finishing in any order, failing or never finishing, their
    /// callers waiting or gone: each waiting caller gets exactly its own
    /// answer, every call is counted once under what became of it, and only
    /// the marks of finished calls come back.
    #[test]
    fn every_call_is_answered_and_counted_once(
        calls in proptest::collection::vec(
            (
                proptest::prop_oneof![
                    4 => proptest::strategy::Just(Ends::Done),
                    1 => proptest::strategy::Just(Ends::Fault),
                    1 => proptest::strategy::Just(Ends::Never),
                ],
                proptest::bool::ANY,
                0u8..255,
            ),
            1..20,
        )
    ) {
        let r = resolver::<u32>(ResolverOptions {
            give_up: Duration::from_millis(30),
            ..ResolverOptions::default()
        });
        let waiting: Vec<Option<Pending<u32>>> = calls
            .iter()
            .enumerate()
            .map(|(i, &(_, leaves, _))| {
                let pending = r.submit(i as u32, i as u32, tracing::Span::none());
                (!leaves).then_some(pending)
            })
            .collect();
        let mut order: Vec<usize> = (0..calls.len()).collect();
        order.sort_by_key(|&i| calls[i].2);
        for i in order {
            let state = &r.source().state;
            match calls[i].0 {
                Ends::Done => state.set(i as u32, On::Done(phases(i as u64))),
                Ends::Fault => state.set(i as u32, On::Fault),
                Ends::Never => {}
            }
        }
        for (i, pending) in waiting.into_iter().enumerate() {
            let Some(pending) = pending else { continue };
            match (calls[i].0, pending.wait()) {
                (Ends::Done, Ok((keep, got))) => {
                    proptest::prop_assert_eq!(keep, i as u32);
                    proptest::prop_assert_eq!(got, phases(i as u64));
                }
                (Ends::Fault, Err(GpuError::Invalid(_))) => {}
                (Ends::Never, Err(GpuError::Unresolved(_))) => {}
                (ends, got) => proptest::prop_assert!(false, "call {i} {ends:?}: {got:?}"),
            }
        }
        let count = |f: &dyn Fn(Ends, bool) -> bool| {
            calls.iter().filter(|&&(ends, leaves, _)| f(ends, leaves)).count() as u64
        };
        let want = ResolverStats {
            submitted: calls.len() as u64,
            delivered: count(&|e, leaves| matches!(e, Ends::Done) && !leaves),
            late: count(&|e, leaves| matches!(e, Ends::Done) && leaves),
            failed: count(&|e, _| matches!(e, Ends::Fault)),
            expired: count(&|e, _| matches!(e, Ends::Never)),
            undeclared: 0,
            subscriber_panics: 0,
        };
        eventually("every call counted", || r.stats() == want);
        let mut recycled = r.source().state.recycled.lock().unwrap().clone();
        recycled.sort_unstable();
        let done: Vec<u32> = (0..calls.len() as u32)
            .filter(|&i| matches!(calls[i as usize].0, Ends::Done))
            .collect();
        proptest::prop_assert_eq!(recycled, done);
    }
}
