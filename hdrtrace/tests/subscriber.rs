//! Behaviour of the hand-written subscriber: classification, parents, levels,
//! the on/off switch, sampling and windows.

use hdrtrace::{SpanClass, Status, TracingConfig, TracingLevel};
use std::time::Duration;
use tracing::subscriber::with_default;

fn config() -> TracingConfig {
    TracingConfig {
        sampling_rate: 1.0,
        ..TracingConfig::default()
    }
}

#[test]
fn spans_are_classified_and_linked() {
    let (sub, guard) = hdrtrace::build(&config()).unwrap();
    with_default(sub, || {
        let root = tracing::info_span!("embed_pipeline", request_id = 42u64, content_len = 9u64);
        let _r = root.enter();
        tracing::debug_span!("tokenize").in_scope(|| {});
        let exec = tracing::info_span!("model_execution", model_count = 2u64);
        // Explicit parent, entered on another thread.
        let explicit =
            tracing::debug_span!(parent: &exec, "model", model_id = "Causal", input_tokens = 5u64);
        std::thread::spawn(move || {
            explicit.in_scope(|| std::thread::sleep(Duration::from_millis(2)))
        })
        .join()
        .unwrap();
        // Contextual parent, a numeric model id.
        exec.in_scope(|| tracing::debug_span!("model", model_id = 7u64).in_scope(|| {}));
    });
    let snap = guard.flushed_snapshot();
    assert_eq!(snap.model("Causal").unwrap().count(), 1);
    assert_eq!(snap.model("7").unwrap().count(), 1);
    assert!(snap.model("Causal").unwrap().busy().min() >= Duration::from_millis(2));
    for stage in ["embed_pipeline", "tokenize", "model_execution"] {
        assert_eq!(snap.stage(stage).unwrap().count(), 1, "{stage}");
    }
    let trace = &snap.captured()[0];
    assert_eq!(trace.request_id(), 42);
    assert_eq!(trace.spans().len(), 5);
    assert!(trace.complete());
    let exec_id = trace
        .spans()
        .iter()
        .find(|s| s.name == "model_execution")
        .unwrap()
        .id;
    for m in trace.models() {
        assert_eq!(
            m.parent,
            exec_id,
            "{} is a child of model_execution",
            m.label()
        );
        assert_eq!(m.class, SpanClass::Model);
    }
    assert_eq!(
        trace.root().unwrap().field("content_len"),
        Some(hdrtrace::FieldValue::U64(9))
    );
    // The model that finished last gated the request.
    assert_eq!(trace.attribution().unwrap().model, "7");
}

#[test]
fn error_and_timeout_events_mark_their_spans() {
    let (sub, guard) = hdrtrace::build(&TracingConfig {
        sampling_rate: 0.0,
        ..config()
    })
    .unwrap();
    with_default(sub, || {
        let root = tracing::info_span!("embed_pipeline", request_id = 1u64);
        let _r = root.enter();
        tracing::debug_span!("model", model_id = "Code").in_scope(|| tracing::error!("failed"));
        let hung = tracing::debug_span!("model", model_id = "Sparse");
        tracing::warn!(parent: &hung, timeout = true, after_ms = 150.0, "model timed out");
        tracing::debug_span!("model", model_id = "Semantic").in_scope(|| {});
    });
    let snap = guard.flushed_snapshot();
    assert_eq!(snap.model("Code").unwrap().errors(), 1);
    assert_eq!(snap.model("Sparse").unwrap().timeouts(), 1);
    assert_eq!(snap.model("Semantic").unwrap().errors(), 0);
    // Not sampled, but failed: captured anyway, with its events.
    let trace = &snap.captured()[0];
    assert!(!trace.reason().sampled && trace.reason().failed);
    assert_eq!(trace.status(), Status::Timeout);
    assert_eq!(trace.events().len(), 2);
    assert_eq!(trace.attribution().unwrap().model, "Sparse");
}

#[test]
fn levels_filter_callsites() {
    let (sub, guard) = hdrtrace::build(&TracingConfig {
        level: TracingLevel::Minimal,
        ..config()
    })
    .unwrap();
    with_default(sub, || {
        let root = tracing::info_span!("embed_pipeline", request_id = 1u64);
        let _r = root.enter();
        tracing::debug_span!("tokenize").in_scope(|| {});
        tracing::debug_span!("model", model_id = "Code").in_scope(|| {});
        tracing::trace_span!("batch_internals").in_scope(|| {});
    });
    let snap = guard.flushed_snapshot();
    assert!(snap.model("Code").is_none(), "Minimal has no model spans");
    assert!(
        snap.stage("batch_internals").is_none(),
        "TRACE spans only at Verbose"
    );
    assert_eq!(snap.stage("tokenize").unwrap().count(), 1);

    let (sub, guard) = hdrtrace::build(&TracingConfig {
        level: TracingLevel::Verbose,
        ..config()
    })
    .unwrap();
    with_default(sub, || {
        tracing::trace_span!("batch_internals").in_scope(|| {});
    });
    assert_eq!(
        guard
            .flushed_snapshot()
            .stage("batch_internals")
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn switching_off_and_on_at_run_time() {
    let (sub, guard) = hdrtrace::build(&TracingConfig {
        enabled: false,
        ..config()
    })
    .unwrap();
    use tracing::level_filters::LevelFilter;
    use tracing::Subscriber as _;
    // Switched off, the subscriber's hint is OFF, so with no other dispatcher
    // alive `LevelFilter::current()` is OFF: one relaxed load per site.
    assert_eq!(sub.max_level_hint(), Some(LevelFilter::OFF));
    let dispatch = tracing::Dispatch::new(sub.clone());
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::debug_span!("model", model_id = "Code").in_scope(|| {});
        guard.set_enabled(true);
        assert!(guard.is_enabled());
        assert_eq!(sub.max_level_hint(), Some(LevelFilter::DEBUG));
        tracing::debug_span!("model", model_id = "Code").in_scope(|| {});
        guard.set_enabled(false);
        tracing::debug_span!("model", model_id = "Code").in_scope(|| {});
    });
    assert_eq!(guard.flushed_snapshot().model("Code").unwrap().count(), 1);
}

#[test]
fn sampling_rate_changes_at_run_time_and_is_validated() {
    let (sub, guard) = hdrtrace::build(&TracingConfig {
        sampling_rate: 0.0,
        ..config()
    })
    .unwrap();
    assert!(guard.set_sampling_rate(1.5).is_err());
    assert!(guard.set_sampling_rate(f32::NAN).is_err());
    with_default(sub, || {
        for i in 0..100u64 {
            tracing::info_span!("embed_pipeline", request_id = i).in_scope(|| {});
        }
        guard.set_sampling_rate(1.0).unwrap();
        for i in 100..200u64 {
            tracing::info_span!("embed_pipeline", request_id = i).in_scope(|| {});
        }
    });
    let c = guard.flushed_snapshot().counters();
    assert_eq!(c.requests, 200);
    assert_eq!(c.sampled_requests, 100);
}

#[test]
fn request_ids_of_any_type_are_deterministic() {
    // A Display request id (as the spec's uuid) is hashed to a number without
    // allocating; the same id always gets the same number and decision.
    let (sub, guard) = hdrtrace::build(&config()).unwrap();
    with_default(sub, || {
        for _ in 0..2 {
            tracing::info_span!("embed_pipeline", request_id = %"abc-123").in_scope(|| {});
        }
    });
    let snap = guard.flushed_snapshot();
    let ids: Vec<u64> = snap.captured().iter().map(|t| t.request_id()).collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1]);
}

#[test]
fn the_recent_window_forgets_old_samples() {
    let (sub, guard) = hdrtrace::build(&TracingConfig {
        window: Duration::from_millis(200),
        ..config()
    })
    .unwrap();
    with_default(sub, || {
        tracing::debug_span!("model", model_id = "Code").in_scope(|| {})
    });
    let snap = guard.flushed_snapshot();
    assert_eq!(snap.recent().model("Code").unwrap().count(), 1);
    std::thread::sleep(Duration::from_millis(300));
    let later = guard.flushed_snapshot();
    assert_eq!(later.recent().model("Code").unwrap().count(), 0);
    assert_eq!(
        later.model("Code").unwrap().count(),
        1,
        "cumulative keeps it"
    );
    assert!(later.version() > snap.version());
}

/// One thread alternating between subscribers (each keeps its own per-thread
/// state), nesting one inside another, and making a new one after an old one
/// shut down: every span lands in its own subscriber, none is lost.
#[test]
fn one_thread_alternates_between_subscribers() {
    let (a, guard_a) = hdrtrace::build(&config()).unwrap();
    let (b, guard_b) = hdrtrace::build(&config()).unwrap();
    let a = tracing::Dispatch::new(a);
    let b = tracing::Dispatch::new(b);
    // One model span under `dispatch`, opened, entered and closed.
    let model_span = |dispatch: &tracing::Dispatch, model: &'static str| {
        tracing::dispatcher::with_default(dispatch, || {
            tracing::debug_span!("model", model_id = model).in_scope(|| {})
        })
    };
    for _ in 0..100 {
        tracing::dispatcher::with_default(&a, || {
            // A span of B opened, entered and closed while A's is entered.
            tracing::debug_span!("model", model_id = "A").in_scope(|| model_span(&b, "B"))
        });
        model_span(&b, "B");
    }
    let snap_a = guard_a.flushed_snapshot();
    assert_eq!(snap_a.model("A").unwrap().count(), 100);
    assert!(snap_a.model("B").is_none());
    drop(a);
    drop(guard_a);
    // A new subscriber on the same thread, after A shut down.
    let (c, guard_c) = hdrtrace::build(&config()).unwrap();
    let c = tracing::Dispatch::new(c);
    for _ in 0..10 {
        model_span(&c, "C");
        model_span(&b, "B");
    }
    let snap_b = guard_b.flushed_snapshot();
    assert_eq!(snap_b.model("B").unwrap().count(), 210);
    assert!(snap_b.model("A").is_none());
    assert_eq!(snap_b.dropped_records(), 0);
    let snap_c = guard_c.flushed_snapshot();
    assert_eq!(snap_c.model("C").unwrap().count(), 10);
}

/// An event that names a model in a field keeps its message as its text: the
/// model field is a span's key, not an event's (an event's model is its
/// span's). A numeric model field on an event is kept as a field.
#[test]
fn an_event_s_model_field_does_not_replace_its_message() {
    let (sub, guard) = hdrtrace::build(&config()).unwrap();
    with_default(sub, || {
        let root = tracing::info_span!("embed_pipeline", request_id = 7u64);
        let _r = root.enter();
        tracing::debug_span!("model", model_id = "Causal").in_scope(|| {
            tracing::error!(model_id = "Other", "load failed");
            tracing::warn!(model_id = 12u64, "slow load");
        });
    });
    let snap = guard.flushed_snapshot();
    let trace = snap
        .captured()
        .iter()
        .find(|t| t.request_id() == 7)
        .unwrap();
    let mut messages: Vec<_> = trace.events().iter().map(|e| e.message.as_str()).collect();
    messages.sort_unstable();
    assert_eq!(messages, ["load failed", "slow load"]);
    let slow = trace
        .events()
        .iter()
        .find(|e| e.message == "slow load")
        .unwrap();
    assert!(
        slow.fields
            .iter()
            .any(|(k, v)| *k == "model_id" && *v == hdrtrace::FieldValue::U64(12)),
        "{:?}",
        slow.fields
    );
    assert_eq!(snap.model("Causal").unwrap().errors(), 1);
}
