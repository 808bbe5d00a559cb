//! Parents across `JoinSet` tasks: on a multi-thread runtime with many requests
//! in flight at once, every model span's parent is its own request's
//! `model_execution` span, including when the model computes on a blocking
//! thread.

mod pipeline_support;

use hdrtrace::SpanClass;
use hdrtrace::TracingConfig;
use hdrtrace_pipeline::reference::REFERENCE_MODELS;
use hdrtrace_pipeline::{
    EmbeddingModel, EmbeddingPipeline, ModelEmbedding, ModelFuture, ModelId, PipelineConfig,
    PreparedInput, TraceEvent, TraceEventCollector,
};
use pipeline_support::{start, Fast, Keep};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// A model that hops threads: it yields to the scheduler, then computes on a
/// blocking thread inside its span, as the reference models do.
struct Hopping(Fast);

impl EmbeddingModel for Hopping {
    fn model_id(&self) -> &ModelId {
        self.0.model_id()
    }

    fn embed<'a>(&'a self, input: &'a PreparedInput) -> ModelFuture<'a> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            let span = tracing::Span::current();
            let tokens = input.shared_tokens();
            let id = self.0.model_id().clone();
            let sum = tokio::task::spawn_blocking(move || {
                span.in_scope(|| tokens.iter().map(|&t| t as f32).sum::<f32>())
            })
            .await
            .unwrap();
            tokio::task::yield_now().await;
            Ok(ModelEmbedding {
                model_id: id,
                vector: vec![sum % 97.0 + 1.0; 4],
            })
        })
    }
}

#[test]
fn model_spans_are_children_of_their_own_requests_model_execution() {
    const REQUESTS: usize = 200;
    let keep = Keep::default();
    let events = TraceEventCollector::new();
    let config = TracingConfig {
        sampling_rate: 1.0,
        ring_capacity: 1 << 16,
        ..TracingConfig::default()
    };
    let (guard, _dispatch, rt) = start(
        hdrtrace::Builder::new(&config)
            .sink(keep.clone())
            .sink(events.clone()),
        4,
    );
    let models: Vec<Arc<dyn EmbeddingModel>> = REFERENCE_MODELS
        .iter()
        .map(|m| Arc::new(Hopping(Fast::new(m.name))) as Arc<dyn EmbeddingModel>)
        .collect();
    // A deadline no loaded machine misses: this test is about parents, and
    // every model must answer for its span to be checked.
    let config = PipelineConfig {
        deadline: Duration::from_secs(30),
        ..PipelineConfig::default()
    };
    let p = Arc::new(EmbeddingPipeline::with_config(models, config).unwrap());

    // Every request is spawned before any is awaited: all in flight at once.
    let ids: Vec<u64> = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..REQUESTS {
            let p = p.clone();
            set.spawn(async move { p.embed(&format!("request number {i}")).await });
        }
        let mut ids = Vec::new();
        while let Some(r) = set.join_next().await {
            let fused = r.unwrap().unwrap();
            assert_eq!(fused.models.len(), 12);
            ids.push(fused.request_id);
        }
        ids
    });

    assert!(keep.wait_for(&guard, REQUESTS, Duration::from_secs(10)));
    let traces = keep.traces();
    assert_eq!(traces.len(), REQUESTS);
    let wanted: HashSet<u64> = ids.into_iter().collect();
    let got: HashSet<u64> = traces.iter().map(|t| t.request_id()).collect();
    assert_eq!(got, wanted);
    let mut all_span_ids = HashSet::new();
    for t in &traces {
        assert!(t.complete(), "request {}", t.request_id());
        let root = t.root().expect("a root");
        assert_eq!(
            (root.name, root.class),
            ("embed_pipeline", SpanClass::Request)
        );
        let exec: Vec<_> = t
            .spans()
            .iter()
            .filter(|s| s.name == "model_execution")
            .collect();
        assert_eq!(exec.len(), 1);
        assert_eq!(exec[0].parent, root.id);
        for stage in ["tokenize", "fusion"] {
            let s = t.spans().iter().find(|s| s.name == stage).unwrap();
            assert_eq!(s.parent, root.id, "{stage}");
        }
        let models: Vec<_> = t.models().collect();
        assert_eq!(models.len(), 12);
        let names: HashSet<&str> = models.iter().map(|s| s.label()).collect();
        assert_eq!(names.len(), 12);
        for m in models {
            assert_eq!(
                m.parent,
                exec[0].id,
                "{} in request {}",
                m.label(),
                t.request_id()
            );
            assert!(m.busy > Duration::ZERO, "{}", m.label());
        }
        // A span ID is never reused (a freed slot changes generation), so no
        // span may show up in two requests' trees.
        for s in t.spans() {
            assert!(all_span_ids.insert(s.id), "span {} in two requests", s.id);
        }

        let ev = events.for_request(t.request_id());
        let started = ev
            .iter()
            .filter(|e| matches!(e, TraceEvent::ModelStarted { .. }))
            .count();
        let completed = ev
            .iter()
            .filter(|e| matches!(e, TraceEvent::ModelCompleted { .. }))
            .count();
        assert_eq!((started, completed), (12, 12));
        assert!(matches!(
            ev.last(),
            Some(TraceEvent::FusionCompleted { .. })
        ));
    }
}
