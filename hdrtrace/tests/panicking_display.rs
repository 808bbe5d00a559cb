//! A `Display` that panics while the subscriber formats it (a log line, an
//! event field, a span field, a recorded value), caught by `catch_unwind` as
//! tokio catches every task's panic. The thread's state must come through the
//! unwind intact: later spans on that thread are recorded, and what was being
//! formatted is dropped and counted.

mod writer_support;

use hdrtrace::TracingConfig;
use std::panic::{catch_unwind, AssertUnwindSafe};

struct Bomb;

impl std::fmt::Display for Bomb {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("Display of Bomb")
    }
}

fn requests(n: u64, from: u64) {
    for i in from..from + n {
        let root = tracing::info_span!("embed_pipeline", request_id = i);
        let _r = root.enter();
        tracing::info_span!("model", model_id = "After").in_scope(|| {});
    }
}

fn quietly<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    catch_unwind(AssertUnwindSafe(f))
}

/// Every way a user's `Display` reaches the subscriber, each panicking once.
/// The subscriber formats a log line whole, and of a span or event only the
/// fields it keeps (the model id, the request id, an event's message).
fn detonate_everywhere() -> usize {
    let in_request = |id: u64, f: &dyn Fn()| {
        quietly(|| {
            let root = tracing::info_span!("embed_pipeline", request_id = id);
            let _r = root.enter();
            f();
        })
        .is_err() as usize
    };
    let mut caught = 0;
    // A log line's message, outside any request.
    caught += quietly(|| tracing::warn!("{}", Bomb)).is_err() as usize;
    // A log line's field, inside a request.
    caught += in_request(1_000_000, &|| tracing::error!(detail = %Bomb, "failed"));
    // An event below the log level, kept for a sampled request's trace.
    caught += in_request(1_000_001, &|| tracing::info!("{}", Bomb));
    // A model span's id, at creation and recorded later.
    caught += in_request(1_000_002, &|| {
        let _s = tracing::info_span!("model", model_id = %Bomb);
    });
    caught += in_request(1_000_003, &|| {
        let s = tracing::info_span!("model", model_id = tracing::field::Empty);
        s.record("model_id", tracing::field::display(Bomb));
    });
    // A request's id.
    caught += quietly(|| {
        let _s = tracing::info_span!("embed_pipeline", request_id = %Bomb);
    })
    .is_err() as usize;
    caught
}

#[test]
fn a_panicking_display_leaves_the_thread_recording() {
    let config = TracingConfig {
        sampling_rate: 1.0,
        ring_capacity: 1 << 16,
        log_level: tracing::level_filters::LevelFilter::WARN,
        ..TracingConfig::default()
    };
    let (out, sub, guard) = writer_support::logged(&config);
    let caught = tracing::subscriber::with_default(sub, || {
        requests(100, 0);
        let caught = detonate_everywhere();
        requests(1_000, 100);
        // A log line after the panics is written whole.
        tracing::warn!("still logging");
        caught
    });
    assert_eq!(caught, 6, "every Bomb panicked through to the caller");
    let snapshot = guard.flushed_snapshot();
    drop(guard);
    assert_eq!(
        snapshot.model("After").map(|m| m.count()),
        Some(1_100),
        "spans after a caught panic were not recorded"
    );
    let c = snapshot.counters();
    assert_eq!(c.dropped_spans, 0, "{c:?}");
    // Each panic lost what was being formatted (two log lines, an event,
    // two spans, a recorded value), and each is counted once.
    assert_eq!(c.format_panics, 6, "{c:?}");
    let lines = out.lines();
    assert!(
        lines.iter().any(|l| l.ends_with("still logging")),
        "{lines:#?}"
    );
}

#[test]
fn caught_task_panics_leave_every_worker_recording() {
    // Rings large enough that no record is lost to a busy machine: a
    // poisoned thread shows as untracked spans, not as full rings.
    let config = TracingConfig {
        ring_capacity: 1 << 16,
        ..TracingConfig::default()
    };
    let (_out, sub, guard) = writer_support::logged(&config);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(sub);
    rt.block_on(async {
        // The panics first (tokio catches each), then the requests, on
        // whichever workers the scheduler picks.
        let mut panicked = 0;
        let bombs: Vec<_> = (0..8)
            .map(|_| {
                let d = dispatch.clone();
                tokio::spawn(async move {
                    tracing::dispatcher::with_default(&d, || tracing::warn!("{}", Bomb))
                })
            })
            .collect();
        for task in bombs {
            panicked += task.await.is_err() as usize;
        }
        assert!(panicked > 0, "no Bomb went off");
        let work: Vec<_> = (0..8u64)
            .map(|t| {
                let d = dispatch.clone();
                tokio::spawn(async move {
                    tracing::dispatcher::with_default(&d, || requests(500, 10_000 * (t + 1)))
                })
            })
            .collect();
        for task in work {
            task.await.unwrap();
        }
    });
    let snapshot = guard.flushed_snapshot();
    let c = snapshot.counters();
    // Every span after the panics was tracked (none untracked for a thread
    // left busy), and each is aggregated or counted as lost.
    assert_eq!(c.dropped_spans, 0, "{c:?}");
    assert_eq!(c.spans + c.dropped_records, 8_000, "{c:?}");
    assert_eq!(c.format_panics, 8, "{c:?}");
}
