//! The spec's "trace identifies bottleneck model in artificial slow test": with
//! one model made slow, every over-budget request names it and its p95 stands
//! out; a model that never answers is recorded as timed out while the other
//! eleven fuse; failing and panicking models become errors, not crashes.

mod pipeline_support;

use hdrtrace::TracingConfig;
use hdrtrace::{SpanClass, Status};
use hdrtrace_pipeline::{FusedEmbedding, TraceEvent, TraceEventCollector};
use pipeline_support::faults::{quiet_injected_panics, Fault};
use pipeline_support::{
    embed_from_workers, errors, faults, names, reference_pipeline, start, timeouts, wait_for, Keep,
};
use std::time::Duration;

const TEXT: &str = "Causal chains in long documents: the outage began when the cache expired.";

#[test]
fn slow_model_is_named_for_every_over_budget_request() {
    const REQUESTS: usize = 24;
    const SLOW: Duration = Duration::from_millis(260);
    let keep = Keep::default();
    let config = TracingConfig {
        sampling_rate: 0.0,
        latency_target: Duration::from_millis(200),
        ..TracingConfig::default()
    };
    let (guard, _dispatch, rt) = start(hdrtrace::Builder::new(&config).sink(keep.clone()), 2);
    // A deadline far past the delay: the slow model answers, late.
    let p = reference_pipeline(
        faults(&[("Causal", Fault::Delay(SLOW))]),
        Duration::from_secs(2),
    );
    let results = embed_from_workers(&rt, &p, 4, REQUESTS / 4, |w, i| {
        format!("{TEXT} worker {w} request {i}")
    });
    assert_eq!(results.len(), REQUESTS);
    for r in &results {
        let fused = r.as_ref().unwrap();
        assert_eq!(fused.models.len(), 12);
    }

    // Every request took at least the delay, so every one is over the 200 ms
    // target and captured despite a sampling rate of zero.
    assert!(keep.wait_for(&guard, REQUESTS, Duration::from_secs(10)));
    let traces = keep.traces();
    assert_eq!(traces.len(), REQUESTS);
    for t in &traces {
        assert!(
            t.reason().over_budget && !t.reason().sampled,
            "{:?}",
            t.reason()
        );
        let a = t.attribution().expect("an attribution");
        assert_eq!(a.model, "Causal", "request {}", t.request_id());
        assert_eq!(a.status, Status::Ok);
        assert!(a.busy >= SLOW, "the delay counts as busy time: {a:?}");
        assert!(!a.starved, "slow while running, not starved: {a:?}");
    }

    let snap = guard.snapshot();
    let causal = snap.model("Causal").unwrap();
    assert_eq!(causal.count(), REQUESTS as u64);
    assert_eq!(causal.blamed(), REQUESTS as u64);
    let p95 = causal.quantile(0.95);
    assert!(p95 >= SLOW, "{p95:?}");
    for (name, m) in snap.models() {
        assert_eq!(m.count(), REQUESTS as u64, "{name}");
        if name != "Causal" {
            assert!(m.quantile(0.95) < p95, "{name}: {:?}", m.quantile(0.95));
            assert_eq!(m.blamed(), 0, "{name}");
        }
    }
}

#[test]
fn hung_model_times_out_and_the_other_eleven_fuse() {
    const REQUESTS: usize = 4;
    let keep = Keep::default();
    let events = TraceEventCollector::new();
    let config = TracingConfig {
        sampling_rate: 1.0,
        ..TracingConfig::default()
    };
    let (guard, dispatch, rt) = start(
        hdrtrace::Builder::new(&config)
            .sink(keep.clone())
            .sink(events.clone()),
        2,
    );
    let deadline = Duration::from_millis(400);
    let p = reference_pipeline(faults(&[("Semantic", Fault::Hang)]), deadline);
    let mut ids = Vec::new();
    for i in 0..REQUESTS {
        let fused = tracing::dispatcher::with_default(&dispatch, || {
            rt.block_on(p.embed(&format!("{TEXT} {i}")))
        })
        .unwrap();
        assert_eq!(fused.models.len(), 11);
        assert!(!fused.models.contains("Semantic"));
        assert_eq!(fused.timed_out, names(&["Semantic"]));
        assert!(fused.failed.is_empty());
        assert_eq!(fused.dim(), FusedEmbedding::DIM);
        ids.push(fused.request_id);
    }

    assert!(keep.wait_for(&guard, REQUESTS, Duration::from_secs(10)));
    let snap = guard.snapshot();
    let semantic = snap.model("Semantic").unwrap();
    assert_eq!(semantic.timeouts(), REQUESTS as u64);
    assert_eq!(semantic.errors(), 0);
    for (name, m) in snap.models() {
        if name != "Semantic" {
            assert_eq!(m.timeouts(), 0, "{name}");
        }
    }

    let traces = keep.traces();
    assert_eq!(traces.len(), REQUESTS);
    for t in &traces {
        assert!(ids.contains(&t.request_id()));
        assert!(t.reason().failed);
        assert_eq!(t.status(), Status::Timeout);
        let models: Vec<_> = t.models().collect();
        assert_eq!(models.len(), 12);
        for s in &models {
            let want = if s.label() == "Semantic" {
                Status::Timeout
            } else {
                Status::Ok
            };
            assert_eq!(s.status, want, "{}", s.label());
        }
        let a = t.attribution().unwrap();
        assert_eq!((a.model.as_str(), a.status), ("Semantic", Status::Timeout));
        let fusion = t.spans().iter().find(|s| s.name == "fusion").unwrap();
        assert_eq!(fusion.class, SpanClass::Stage);

        let ev = events.for_request(t.request_id());
        let timeouts = timeouts(&ev);
        assert_eq!(timeouts.len(), 1);
        assert_eq!(timeouts[0].0, "Semantic");
        assert!(
            timeouts[0].1 >= deadline.as_secs_f64() * 1e3,
            "{timeouts:?}"
        );
        let completed = ev
            .iter()
            .filter(|e| matches!(e, TraceEvent::ModelCompleted { .. }))
            .count();
        assert_eq!(completed, 11);
        assert!(ev.contains(&TraceEvent::FusionStarted {
            embedding_count: 11
        }));
        assert!(ev.iter().any(|e| matches!(
            e,
            TraceEvent::FusionCompleted {
                output_dim: FusedEmbedding::DIM,
                ..
            }
        )));
    }
}

#[test]
fn failing_and_panicking_models_become_errors() {
    const REQUESTS: usize = 3;
    let events = TraceEventCollector::all_captured();
    let config = TracingConfig {
        sampling_rate: 0.0,
        ..TracingConfig::default()
    };
    let (guard, dispatch, rt) = start(hdrtrace::Builder::new(&config).sink(events.clone()), 2);
    quiet_injected_panics();
    let plan = faults(&[("Code", Fault::Error), ("Sparse", Fault::Panic)]);
    let p = reference_pipeline(plan, Duration::from_secs(2));
    let mut ids = Vec::new();
    for i in 0..REQUESTS {
        let fused = tracing::dispatcher::with_default(&dispatch, || {
            rt.block_on(p.embed(&format!("{TEXT} {i}")))
        })
        .unwrap();
        assert_eq!(fused.models.len(), 10);
        assert_eq!(fused.failed, names(&["Code", "Sparse"]));
        assert!(fused.timed_out.is_empty());
        ids.push(fused.request_id);
    }
    assert!(wait_for(Duration::from_secs(10), || {
        guard.flush();
        ids.iter().all(|id| !events.for_request(*id).is_empty())
    }));
    let snap = guard.snapshot();
    for name in ["Code", "Sparse"] {
        assert_eq!(
            snap.model(name).unwrap().errors(),
            REQUESTS as u64,
            "{name}"
        );
    }
    assert_eq!(snap.model("Causal").unwrap().errors(), 0);
    for id in ids {
        let ev = events.for_request(id);
        let errors = errors(&ev);
        assert_eq!(errors.len(), 2, "{ev:?}");
        for (model, error) in errors {
            match model {
                "Code" => assert!(error.contains("injected error"), "{error}"),
                "Sparse" => assert!(error.contains("panicked"), "{error}"),
                other => panic!("unexpected error from {other}"),
            }
        }
    }
}
