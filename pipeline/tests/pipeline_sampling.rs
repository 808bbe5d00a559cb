//! Sampling controls trace creation, not measurement: at a rate of 1 % over
//! 10 000 requests the head-sampled traces are within a binomial bound of 1 %,
//! every histogram counts every request, and every slow request is captured
//! whatever the rate.

mod pipeline_support;

use hdrtrace::TracingConfig;
use hdrtrace_pipeline::{
    EmbeddingModel, EmbeddingPipeline, ModelEmbedding, ModelFuture, ModelId, PipelineConfig,
    PreparedInput, Tokenizer,
};
use pipeline_support::{fast_models, position, start, wait_for, Fast, Keep};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

const REQUESTS: usize = 10_000;
const RATE: f64 = 0.01;
/// Every this many requests is a slow one.
const SLOW_EVERY: usize = 1_000;
const TARGET: Duration = Duration::from_millis(100);
const SLOW: Duration = Duration::from_millis(150);

/// A fast model that sleeps past the target on inputs holding the word "slow".
struct SlowOnMarker {
    inner: Fast,
    marker: u32,
}

impl EmbeddingModel for SlowOnMarker {
    fn model_id(&self) -> &ModelId {
        self.inner.model_id()
    }

    fn embed<'a>(&'a self, input: &'a PreparedInput) -> ModelFuture<'a> {
        Box::pin(async move {
            if input.tokens().contains(&self.marker) {
                tokio::time::sleep(SLOW).await;
            }
            let out: ModelEmbedding = self.inner.embed(input).await?;
            Ok(out)
        })
    }
}

#[test]
fn sampling_keeps_about_one_percent_and_histograms_count_everything() {
    let keep = Keep::default();
    let config = TracingConfig {
        sampling_rate: RATE as f32,
        latency_target: TARGET,
        ring_capacity: 1 << 16,
        ..TracingConfig::default()
    };
    let (guard, _dispatch, rt) = start(hdrtrace::Builder::new(&config).sink(keep.clone()), 2);

    let marker = Tokenizer::default().tokenize("slow").unwrap()[1];
    let mut models = fast_models();
    models[position("Causal")] = Arc::new(SlowOnMarker {
        inner: Fast::new("Causal"),
        marker,
    });
    let config = PipelineConfig {
        deadline: Duration::from_secs(5),
        ..PipelineConfig::default()
    };
    let p = Arc::new(EmbeddingPipeline::with_config(models, config).unwrap());

    const WORKERS: usize = 32;
    let (fast_ids, slow_ids) = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for w in 0..WORKERS {
            let p = p.clone();
            set.spawn(async move {
                let (mut fast, mut slow) = (Vec::new(), Vec::new());
                for i in (w..REQUESTS).step_by(WORKERS) {
                    let is_slow = i % SLOW_EVERY == 0;
                    let text = if is_slow {
                        format!("a slow request {i}")
                    } else {
                        format!("a quick request {i}")
                    };
                    let fused = p.embed(&text).await.unwrap();
                    assert_eq!(fused.models.len(), 12);
                    if is_slow {
                        slow.push(fused.request_id);
                    } else {
                        fast.push(fused.request_id);
                    }
                }
                (fast, slow)
            });
        }
        let mut fast = Vec::new();
        let mut slow = Vec::new();
        for (f, s) in set.join_all().await {
            fast.extend(f);
            slow.extend(s);
        }
        (fast, slow)
    });
    assert_eq!(fast_ids.len() + slow_ids.len(), REQUESTS);
    assert_eq!(slow_ids.len(), REQUESTS / SLOW_EVERY);

    guard.flush();
    let snap = guard.snapshot();
    let c = snap.counters();
    // Nothing was lost, so the counts below are exact.
    assert_eq!((c.dropped_spans, c.dropped_records), (0, 0), "{c:?}");
    assert_eq!(c.requests, REQUESTS as u64);
    assert_eq!(
        snap.stage("embed_pipeline").unwrap().count(),
        REQUESTS as u64
    );
    for stage in ["tokenize", "model_execution", "fusion"] {
        assert_eq!(
            snap.stage(stage).unwrap().count(),
            REQUESTS as u64,
            "{stage}"
        );
    }
    assert_eq!(snap.models().count(), 12);
    for (name, m) in snap.models() {
        assert_eq!(m.count(), REQUESTS as u64, "{name}");
    }

    // Head sampling: binomial(10 000, 0.01), mean 100, sd ~9.95; 4 sd either side.
    let sampled = c.sampled_requests as f64;
    let mean = REQUESTS as f64 * RATE;
    let sd = (REQUESTS as f64 * RATE * (1.0 - RATE)).sqrt();
    assert!(
        (sampled - mean).abs() <= 4.0 * sd,
        "{sampled} sampled, expected {mean} +- {}",
        4.0 * sd
    );

    // Every request whose trace was kept reached the sink: the sampled ones
    // and the slow ones.
    assert!(wait_for(Duration::from_secs(10), || {
        guard.flush();
        keep.traces().iter().filter(|t| t.reason().sampled).count() as u64 >= c.sampled_requests
    }));
    let traces = keep.traces();
    assert_eq!(
        traces.iter().filter(|t| t.reason().sampled).count() as u64,
        c.sampled_requests
    );
    let over: HashSet<u64> = traces
        .iter()
        .filter(|t| t.reason().over_budget)
        .map(|t| t.request_id())
        .collect();
    for id in &slow_ids {
        assert!(over.contains(id), "slow request {id} was not captured");
    }
    for t in traces.iter().filter(|t| slow_ids.contains(&t.request_id())) {
        assert_eq!(t.attribution().unwrap().model, "Causal");
    }
}
