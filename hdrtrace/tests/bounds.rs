//! The aggregator's bounds: exact accounting under overload with a tiny memory
//! budget, the cardinality caps and their overflow series, exact long keys,
//! requests that lost records to the budget marked incomplete (the oldest
//! pending records going first), every slow or failed request whose records
//! all arrived still captured and attributed, captured traces capped, and
//! clear errors for bad bounds.

use hdrtrace::{LatencySnapshot, TracingConfig, TracingGuard};
use std::time::Duration;

use hdrtrace::__bench::{pipeline_request, MODEL_NAMES};

/// The smallest budget the config accepts, with a capture store that fits it.
fn tiny() -> TracingConfig {
    TracingConfig {
        memory_budget: 64 << 10,
        capture_capacity: 2,
        max_capture_spans: 16,
        ..TracingConfig::default()
    }
}

fn counted(snap: &LatencySnapshot) -> u64 {
    snap.models().map(|(_, m)| m.count()).sum::<u64>()
        + snap.stages().map(|(_, m)| m.count()).sum::<u64>()
}

/// Runs `f` under a fresh subscriber; returns the guard (still running) and
/// what `f` returned.
fn traced<R: Send>(config: TracingConfig, f: impl Fn() -> R + Sync) -> (TracingGuard, R) {
    let (subscriber, guard) = hdrtrace::build(&config).expect("a valid config");
    let out = tracing::subscriber::with_default(subscriber, f);
    (guard, out)
}

#[test]
fn closed_equals_counted_plus_dropped_under_overload_with_a_tiny_budget() {
    const REQUESTS: u64 = 40_000;
    let (subscriber, guard) = hdrtrace::build(&TracingConfig {
        ring_capacity: 64,
        ..tiny()
    })
    .unwrap();
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            let sub = subscriber.clone();
            std::thread::spawn(move || {
                tracing::subscriber::with_default(sub, || {
                    for i in 0..REQUESTS {
                        pipeline_request(t << 32 | i, None);
                    }
                })
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    guard.flush();
    let snap = guard.snapshot();
    let c = snap.counters();
    let closed = 2 * REQUESTS * 14;
    assert_eq!(counted(&snap) + c.dropped_records + c.dropped_spans, closed);
    assert_eq!(c.spans, counted(&snap));
    // Requests whose root was lost to a full ring wait for it until the
    // budget drops them: the budget was reached, and counted.
    assert!(
        c.dropped_records > 0 && c.budget_dropped_records > 0,
        "{c:?}"
    );
}

#[test]
fn keys_past_the_cap_go_to_one_overflow_series() {
    let (guard, ()) = traced(
        TracingConfig {
            max_models: 4,
            max_stages: 2,
            ..TracingConfig::default()
        },
        || {
            for round in 0..2 {
                for i in 0..10 {
                    let name = format!("m{i}");
                    tracing::debug_span!("model", model_id = %name).in_scope(|| {});
                }
                // Three stage names, two fit.
                tracing::info_span!("tokenize", round).in_scope(|| {});
                tracing::info_span!("fusion").in_scope(|| {});
                tracing::info_span!("normalize").in_scope(|| {});
            }
        },
    );
    let snap = guard.flushed_snapshot();
    for i in 0..4 {
        assert_eq!(snap.model(&format!("m{i}")).map(|m| m.count()), Some(2));
    }
    assert!(
        snap.model("m4").is_none(),
        "past the cap: no series of its own"
    );
    let other = snap
        .model(hdrtrace::limits::OVERFLOW)
        .expect("the overflow series");
    assert_eq!(other.count(), 12, "six keys past the cap, twice each");
    assert_eq!(snap.models().count(), 5);
    assert_eq!(snap.stage("tokenize").map(|s| s.count()), Some(2));
    assert_eq!(snap.stage("fusion").map(|s| s.count()), Some(2));
    assert!(snap.stage("normalize").is_none());
    assert_eq!(
        snap.stage(hdrtrace::limits::OVERFLOW).map(|s| s.count()),
        Some(2)
    );
    assert_eq!(snap.counters().overflow_spans, 12 + 2);
}

#[test]
fn long_model_ids_sharing_a_prefix_stay_apart() {
    let prefix = "an-embedding-model-whose-id-is-longer-than-forty-bytes";
    let (alpha, beta) = (format!("{prefix}-alpha"), format!("{prefix}-beta"));
    let (guard, ()) = traced(TracingConfig::default(), || {
        for _ in 0..3 {
            tracing::debug_span!("model", model_id = alpha.as_str()).in_scope(|| {});
        }
        tracing::debug_span!("model", model_id = %beta).in_scope(|| {});
    });
    let snap = guard.flushed_snapshot();
    assert_eq!(snap.model(&alpha).map(|m| m.count()), Some(3));
    assert_eq!(snap.model(&beta).map(|m| m.count()), Some(1));
    assert_eq!(snap.models().count(), 2);
    assert_eq!(snap.counters().truncated_keys, 2);
}

#[test]
fn a_request_that_lost_records_to_the_budget_is_incomplete() {
    let (subscriber, guard) = hdrtrace::build(&TracingConfig {
        sampling_rate: 1.0,
        ..tiny()
    })
    .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        let root = tracing::info_span!("embed_pipeline", request_id = 7u64);
        let _r = root.enter();
        // Far more children than the budget holds while the root is open
        // (flushed as they go, so no ring fills).
        for i in 0..5_000u64 {
            tracing::debug_span!("model", model_id = MODEL_NAMES[(i % 12) as usize])
                .in_scope(|| {});
            if i % 512 == 0 {
                guard.flush();
            }
        }
    });
    guard.flush();
    let source = guard.snapshot_source();
    // Dropping the guard finalizes what still waits for stragglers.
    drop(guard);
    let snap = source.snapshot();
    let c = snap.counters();
    assert!(c.budget_dropped_records > 0, "{c:?}");
    assert_eq!(c.dropped_records, 0, "lost to the budget, not to a ring");
    let trace = snap
        .captured()
        .iter()
        .find(|t| t.request_id() == 7)
        .expect("the sampled request is captured");
    assert!(!trace.complete(), "it lost records: incomplete");
    // Its spans are all in the histograms even so.
    assert_eq!(counted(&snap), 5_001);
}

#[test]
fn slow_or_failed_requests_whose_records_all_arrived_are_captured_and_attributed() {
    // A 1 ns target: every request is over it.
    let (guard, ()) = traced(
        TracingConfig {
            latency_target: Duration::from_nanos(1),
            sampling_rate: 0.0,
            capture_capacity: 64,
            ..TracingConfig::default()
        },
        || {
            for i in 0..60u64 {
                pipeline_request(i, (i % 3 == 0).then_some("Code"));
            }
        },
    );
    let snap = guard.flushed_snapshot();
    let c = snap.counters();
    assert_eq!(c.captured_requests, 60);
    assert_eq!(snap.captured().len(), 60);
    for t in snap.captured() {
        assert!(t.complete(), "request {} complete", t.request_id());
        assert!(t.reason().over_budget);
        assert_eq!(t.reason().failed, t.request_id() % 3 == 0);
        assert_eq!(t.spans().len(), 14);
        let a = t.attribution().expect("a model gated it");
        assert!(MODEL_NAMES.contains(&a.model.as_str()));
    }
    // The gating model is blamed once per over-budget request.
    let blamed: u64 = snap.models().map(|(_, m)| m.blamed()).sum();
    assert_eq!(blamed, 60);
}

#[test]
fn a_huge_captured_request_keeps_at_most_max_capture_spans() {
    let (guard, ()) = traced(
        TracingConfig {
            sampling_rate: 1.0,
            max_capture_spans: 10,
            ..TracingConfig::default()
        },
        || {
            let root = tracing::info_span!("embed_pipeline", request_id = 1u64);
            let _r = root.enter();
            for i in 0..100u64 {
                tracing::debug_span!("model", model_id = MODEL_NAMES[(i % 2) as usize])
                    .in_scope(|| {});
                tracing::info_span!("tokenize").in_scope(|| {});
            }
        },
    );
    let snap = guard.flushed_snapshot();
    let t = &snap.captured()[0];
    assert!(t.complete());
    // Root plus nine children, plus the gating model if it came later.
    assert!((10..=11).contains(&t.spans().len()), "{}", t.spans().len());
    let omitted: u64 = t.omitted().iter().map(|(_, n)| n).sum();
    assert_eq!(t.spans().len() as u64 - 1 + omitted, 200);
    assert!(t.omitted().iter().any(|(n, _)| *n == "model"));
    assert!(t.omitted().iter().any(|(n, _)| *n == "tokenize"));
    let gate = t.attribution().expect("attributed over every span");
    assert!(t.span(gate.span).is_some(), "the gating span is kept");
    let text = hdrtrace::export::render_text(t);
    assert!(text.contains("Omitted past max_capture_spans: "), "{text}");
}

#[test]
fn the_budget_drops_the_oldest_pending_records_first() {
    let (subscriber, guard) = hdrtrace::build(&TracingConfig {
        sampling_rate: 1.0,
        ..tiny()
    })
    .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        // A long request, open throughout, whose children fill the budget.
        let long = tracing::info_span!("embed_pipeline", request_id = 1u64);
        long.in_scope(|| {
            for i in 0..2_000u64 {
                tracing::debug_span!("model", model_id = MODEL_NAMES[(i % 12) as usize])
                    .in_scope(|| {});
                if i % 512 == 0 {
                    guard.flush();
                }
            }
        });
        guard.flush();
        // Short requests meanwhile: the long one is older, so its records
        // make room for theirs.
        for id in 2..12u64 {
            let _root = tracing::info_span!("embed_pipeline", request_id = id).entered();
            request_children();
        }
        drop(long);
    });
    let source = guard.snapshot_source();
    drop(guard);
    let snap = source.snapshot();
    let c = snap.counters();
    assert!(c.budget_dropped_records > 0, "{c:?}");
    for t in snap.captured() {
        if t.request_id() == 1 {
            assert!(!t.complete(), "the long request lost its oldest records");
        } else {
            assert!(t.complete(), "request {} lost nothing", t.request_id());
            assert_eq!(t.spans().len(), 14);
        }
    }
    // The store keeps two: the long request (closed last) and request 11.
    assert_eq!(snap.captured().len(), 2, "{c:?}");
    assert_eq!(c.captured_requests, 11);
}

/// The stage and twelve models of a request whose root is entered.
fn request_children() {
    let stage = tracing::info_span!("model_execution");
    let _s = stage.enter();
    for model in MODEL_NAMES {
        tracing::debug_span!("model", model_id = model).in_scope(|| {});
    }
}

#[test]
fn bad_bounds_are_clear_config_errors() {
    let field_of = |c: TracingConfig| match c.validate() {
        Err(hdrtrace::ConfigError::Invalid { field, .. }) => Some(field),
        _ => None,
    };
    let d = TracingConfig::default;
    assert_eq!(field_of(d()), None);
    for (config, field) in [
        (
            TracingConfig {
                max_models: 0,
                ..d()
            },
            "max_models",
        ),
        (
            TracingConfig {
                max_stages: 1 << 20,
                ..d()
            },
            "max_stages",
        ),
        (
            TracingConfig {
                max_capture_spans: 0,
                ..d()
            },
            "max_capture_spans",
        ),
        (
            TracingConfig {
                memory_budget: 1024,
                ..d()
            },
            "memory_budget",
        ),
        // The capture store alone would take more than half the budget.
        (
            TracingConfig {
                capture_capacity: hdrtrace::limits::MAX_CAPTURES,
                ..d()
            },
            "memory_budget",
        ),
    ] {
        assert_eq!(field_of(config), Some(field));
    }
    let env = |k: &str| (k == "HDRTRACE_MAX_MODELS").then(|| "7".to_string());
    assert_eq!(TracingConfig::from_lookup(env).unwrap().max_models, 7);
    let bad = |k: &str| (k == "HDRTRACE_MEMORY_BUDGET").then(|| "12".to_string());
    match TracingConfig::from_lookup(bad) {
        Err(hdrtrace::ConfigError::Env { var, .. }) => assert_eq!(var, "HDRTRACE_MEMORY_BUDGET"),
        other => panic!("expected InvalidEnv, got {other:?}"),
    }
}
