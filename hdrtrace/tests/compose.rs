//! `HdrLayer` composed with tracing-subscriber's `fmt` layer and an
//! `EnvFilter` on one Registry, as a service that already runs that stack
//! would: fmt prints the lines, the histograms are right.

mod batch_support;
mod writer_support;

use hdrtrace::{Builder, TracingConfig};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{fmt, EnvFilter, Registry};
use writer_support::Shared;

#[test]
fn hdr_layer_beside_fmt_and_env_filter() {
    let out = Shared::default();
    let (hdr, guard) = Builder::new(&TracingConfig {
        sampling_rate: 1.0,
        ..TracingConfig::default()
    })
    .build_layer()
    .unwrap();
    let writer = out.clone();
    let stack = Registry::default()
        .with(EnvFilter::new("info,noisy=off"))
        .with(
            fmt::layer()
                .with_ansi(false)
                .without_time()
                .with_writer(move || writer.clone()),
        )
        .with(hdr);
    tracing::subscriber::with_default(stack, || {
        for id in 0..50u64 {
            let root = tracing::info_span!("embed_pipeline", request_id = id);
            let _r = root.enter();
            for model in ["Semantic", "Causal"] {
                tracing::info_span!("model", model_id = model).in_scope(|| {
                    if id == 7 && model == "Causal" {
                        tracing::warn!("slow backend");
                    }
                });
            }
            tracing::info_span!(target: "noisy", "poll").in_scope(|| {});
            tracing::debug_span!("below_the_filter").in_scope(|| {});
        }
    });
    let snap = guard.flushed_snapshot();
    for model in ["Semantic", "Causal"] {
        assert_eq!(snap.model(model).unwrap().count(), 50, "{model}");
    }
    assert_eq!(snap.counters().requests, 50);
    assert!(
        snap.stage("poll").is_none(),
        "EnvFilter's off reaches us too"
    );
    assert!(snap.stage("below_the_filter").is_none());
    let trace = snap
        .captured()
        .iter()
        .find(|t| t.request_id() == 7)
        .expect("request 7 captured");
    assert_eq!(trace.models().count(), 2);
    let printed = out.lines();
    let warns: Vec<&String> = printed
        .iter()
        .filter(|l| l.contains("slow backend"))
        .collect();
    assert_eq!(warns.len(), 1, "{printed:#?}");
    assert!(
        warns[0].contains("WARN") && warns[0].contains("model{model_id=\"Causal\"}"),
        "{}",
        warns[0]
    );
}

/// Links reach the core through the layer too: Registry span IDs are mapped
/// to ours, so a request carries the batch its model span links to.
#[test]
fn hdr_layer_records_links() {
    let (hdr, guard) = Builder::new(&TracingConfig {
        sampling_rate: 1.0,
        ..TracingConfig::default()
    })
    .build_layer()
    .unwrap();
    tracing::subscriber::with_default(Registry::default().with(hdr), || {
        let (_roots, models) = batch_support::requests([3]);
        let _batch = batch_support::batch_for(&models, 1);
    });
    let snap = guard.flushed_snapshot();
    let trace = &snap.captured()[0];
    let model = trace.models().next().unwrap();
    let batch = trace
        .spans()
        .iter()
        .find(|s| s.class == hdrtrace::SpanClass::Batch)
        .expect("the batch");
    assert!(batch.shared);
    assert_eq!(model.links, [batch.id]);
    assert_eq!(batch.links, [model.id]);
}
