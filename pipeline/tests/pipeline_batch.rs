//! Attribution through a shared batch: with batching on and one model made
//! slow once per batch, every over-budget request names that model and the
//! batch's run; with a long maximum wait and a light load, it names waiting
//! for the batch to fill. Two requests served by one batch each carry that
//! batch span (shared, with its size and, at `Verbose`, its internals), linked
//! both ways with their own model span.

mod pipeline_support;

use hdrtrace::{BatchCause, RequestTrace, SpanTrace, TracingConfig, TracingLevel};
use hdrtrace::{FieldValue, SpanClass};
use hdrtrace_pipeline::reference::{reference_models, ComputePool};
use hdrtrace_pipeline::{
    BatchConfig, BatchEmbeddings, BatchFuture, BatchPlan, EmbeddingModel, EmbeddingPipeline,
    FusedEmbedding, ModelFuture, ModelId, PipelineConfig, PreparedInput, TraceEventCollector,
};
use pipeline_support::faults::{quiet_injected_panics, Fault};
use pipeline_support::{
    errors, fast_models, faults, names, position, start, timeouts, wait_for, Fast, Keep,
};
use std::sync::Arc;
use std::time::Duration;

const TEXT: &str = "A batch serves many requests: which one made this request slow?";
const TARGET: Duration = Duration::from_millis(200);

fn capture_config(sampling_rate: f32, level: TracingLevel) -> TracingConfig {
    TracingConfig {
        sampling_rate,
        level,
        latency_target: TARGET,
        ..TracingConfig::default()
    }
}

/// A subscriber keeping every captured request (at `sampling_rate` and
/// `level`, target 200 ms), and a two-worker runtime recording into it.
fn keeping(
    sampling_rate: f32,
    level: TracingLevel,
) -> (Keep, hdrtrace::TracingGuard, tokio::runtime::Runtime) {
    let keep = Keep::default();
    let builder = hdrtrace::Builder::new(&capture_config(sampling_rate, level)).sink(keep.clone());
    let (guard, _dispatch, rt) = start(builder, 2);
    (keep, guard, rt)
}

/// A pipeline over `models` where only `model` is batched, with `config`.
fn one_batched(
    models: Vec<Arc<dyn EmbeddingModel>>,
    model: &str,
    config: BatchConfig,
    deadline: Duration,
) -> Arc<EmbeddingPipeline> {
    let config = PipelineConfig {
        deadline,
        batching: BatchPlan::new().with(model, config),
        ..PipelineConfig::default()
    };
    Arc::new(EmbeddingPipeline::with_config(models, config).unwrap())
}

/// Runs `rounds` rounds of `per_round` requests, all of a round in flight at
/// once, the next round after the last answers; checks that each fused the
/// twelve models and returns the request ids.
fn rounds(
    rt: &tokio::runtime::Runtime,
    p: &Arc<EmbeddingPipeline>,
    rounds: usize,
    per_round: usize,
) -> Vec<u64> {
    run_rounds(rt, p, rounds, per_round)
        .into_iter()
        .map(|f| {
            assert_eq!(f.models.len(), 12, "{:?}", f.failed);
            f.request_id
        })
        .collect()
}

/// As [`rounds`], returning what each request fused.
fn run_rounds(
    rt: &tokio::runtime::Runtime,
    p: &Arc<EmbeddingPipeline>,
    rounds: usize,
    per_round: usize,
) -> Vec<FusedEmbedding> {
    let mut out = Vec::new();
    for round in 0..rounds {
        let fused = rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..per_round {
                let p = p.clone();
                set.spawn(async move { p.embed(&format!("{TEXT} {round}.{i}")).await });
            }
            set.join_all().await
        });
        out.extend(fused.into_iter().map(Result::unwrap));
    }
    out
}

/// The captured traces of `ids`, once all have arrived.
fn captured(guard: &hdrtrace::TracingGuard, keep: &Keep, ids: &[u64]) -> Vec<Arc<RequestTrace>> {
    let arrived = wait_for(Duration::from_secs(10), || {
        guard.flush();
        let got = keep.traces();
        ids.iter()
            .all(|id| got.iter().any(|t| t.request_id() == *id))
    });
    assert!(arrived, "not every request was captured");
    keep.traces()
}

fn batch_span_of<'a>(t: &'a RequestTrace, model: &SpanTrace) -> &'a SpanTrace {
    let batches: Vec<_> = t
        .spans()
        .iter()
        .filter(|s| s.class == SpanClass::Batch && model.links.contains(&s.id))
        .collect();
    assert_eq!(
        batches.len(),
        1,
        "{} in request {}: {:?}",
        model.label(),
        t.request_id(),
        model.links
    );
    batches[0]
}

#[test]
fn a_slow_batch_is_named_as_the_run_of_its_batch() {
    const ROUNDS: usize = 4;
    const PER_ROUND: usize = 4;
    const SLOW: Duration = Duration::from_millis(260);
    let (keep, guard, rt) = keeping(0.0, TracingLevel::Standard);
    // Every model batched, the batch run as soon as the round's requests
    // are in (or 20 ms after the first); Causal's batched call is slow.
    let batching = BatchPlan::all(BatchConfig::new(PER_ROUND, Duration::from_millis(20)).unwrap());
    let models = faults(&[("Causal", Fault::Delay(SLOW))])
        .apply(reference_models(7, &ComputePool::default()));
    let config = PipelineConfig {
        deadline: Duration::from_secs(5),
        batching,
        ..PipelineConfig::default()
    };
    let p = Arc::new(EmbeddingPipeline::with_config(models, config).unwrap());
    let ids = rounds(&rt, &p, ROUNDS, PER_ROUND);

    // Each request took at least the delay: all over the target, all kept.
    let traces = captured(&guard, &keep, &ids);
    assert_eq!(traces.len(), ids.len());
    for t in &traces {
        assert!(t.reason().over_budget, "{:?}", t.reason());
        let a = t.attribution().expect("an attribution");
        assert_eq!(a.model, "Causal", "request {}", t.request_id());
        let b = a.batch.as_ref().expect("Causal ran batched");
        assert_eq!(
            b.cause,
            BatchCause::Run,
            "request {}: {b:?}",
            t.request_id()
        );
        assert!(b.run >= SLOW, "{b:?}");
        assert!((1..=PER_ROUND as u64).contains(&b.size), "{b:?}");
        assert!(b.requests.contains(&t.request_id()), "{b:?}");
        assert!(t.verdict().contains("Causal: batch of"), "{}", t.verdict());
    }
    let snap = guard.snapshot();
    let causal = snap.model("Causal").unwrap();
    assert_eq!(causal.count(), ids.len() as u64);
    assert_eq!(causal.blamed(), ids.len() as u64);
    let sizes = causal.batch_size().expect("Causal's batch sizes");
    assert!(sizes.len() >= ROUNDS as u64, "{} batches", sizes.len());
    assert!(sizes.max() <= PER_ROUND as u64);
    let waits = causal.batch_wait().expect("Causal's batch waits");
    assert_eq!(waits.count(), ids.len() as u64);
}

#[test]
fn a_long_wait_under_light_load_is_named_as_waiting_for_the_batch() {
    const REQUESTS: usize = 3;
    const WAIT: Duration = Duration::from_millis(250);
    let (keep, guard, rt) = keeping(0.0, TracingLevel::Standard);
    // Only Causal batched, for up to 32 inputs or 250 ms: one request at a
    // time never fills it, so each waits the whole 250 ms.
    let p = one_batched(
        fast_models(),
        "Causal",
        BatchConfig::new(32, WAIT).unwrap(),
        Duration::from_secs(5),
    );
    let ids = rounds(&rt, &p, REQUESTS, 1);

    let traces = captured(&guard, &keep, &ids);
    assert_eq!(traces.len(), REQUESTS);
    for t in &traces {
        assert!(t.reason().over_budget, "{:?}", t.reason());
        let a = t.attribution().expect("an attribution");
        assert_eq!(a.model, "Causal", "request {}", t.request_id());
        let b = a.batch.as_ref().expect("Causal ran batched");
        assert_eq!(
            b.cause,
            BatchCause::Wait,
            "request {}: {b:?}",
            t.request_id()
        );
        assert_eq!(b.size, 1, "{b:?}");
        assert!(b.wait >= WAIT, "{b:?}");
        assert!(
            t.verdict().contains("for a batch of 1 to fill"),
            "{}",
            t.verdict()
        );
    }
    let snap = guard.snapshot();
    let waits = snap.model("Causal").unwrap().batch_wait().unwrap();
    assert!(waits.quantile(0.5) >= WAIT, "{:?}", waits.quantile(0.5));
    assert!(snap.model("Code").unwrap().batch_size().is_none());
}

#[test]
fn faults_in_a_batch_reach_every_request_it_served() {
    const ROUNDS: usize = 2;
    const PER_ROUND: usize = 3;
    let events = TraceEventCollector::new();
    let (guard, _dispatch, rt) = start(
        hdrtrace::Builder::new(&capture_config(1.0, TracingLevel::Standard)).sink(events.clone()),
        2,
    );
    quiet_injected_panics();
    let plan = faults(&[
        ("Code", Fault::Error),
        ("Sparse", Fault::Panic),
        ("Semantic", Fault::Hang),
    ]);
    // Long enough for a panic's report (a backtrace, when enabled) on a
    // loaded machine: only the hung model may time out.
    let deadline = Duration::from_secs(1);
    let config = PipelineConfig {
        deadline,
        batching: BatchPlan::all(BatchConfig::new(PER_ROUND, Duration::from_millis(50)).unwrap()),
        ..PipelineConfig::default()
    };
    let p = Arc::new(EmbeddingPipeline::with_config(plan.apply(fast_models()), config).unwrap());
    let fused = run_rounds(&rt, &p, ROUNDS, PER_ROUND);
    let requests = (ROUNDS * PER_ROUND) as u64;
    for f in &fused {
        assert_eq!(
            f.models.len(),
            9,
            "{:?} {:?} {:?}",
            f.models,
            f.failed,
            f.timed_out
        );
        assert_eq!(f.failed, names(&["Code", "Sparse"]));
        assert_eq!(f.timed_out, names(&["Semantic"]));
    }
    assert!(wait_for(Duration::from_secs(10), || {
        guard.flush();
        fused
            .iter()
            .all(|f| !events.for_request(f.request_id).is_empty())
    }));
    let snap = guard.snapshot();
    for (name, errors, timeouts) in [
        ("Code", requests, 0),
        ("Sparse", requests, 0),
        ("Semantic", 0, requests),
        ("Causal", 0, 0),
    ] {
        let m = snap.model(name).unwrap();
        assert_eq!((m.errors(), m.timeouts()), (errors, timeouts), "{name}");
    }
    // Each request's own model spans carry the events an unbatched model's do.
    for f in &fused {
        let ev = events.for_request(f.request_id);
        let mut errors = errors(&ev);
        errors.sort();
        assert_eq!(errors.len(), 2, "{ev:?}");
        // By name.
        assert_eq!(errors[0].0, "Code");
        assert!(errors[0].1.contains("injected error"), "{errors:?}");
        assert_eq!(errors[1].0, "Sparse");
        // (The message is cut at the record's inline text size.)
        assert!(errors[1].1.contains("panicked"), "{errors:?}");
        let timeouts = timeouts(&ev);
        assert_eq!(timeouts.len(), 1, "{ev:?}");
        assert_eq!(timeouts[0].0, "Semantic");
        assert!(timeouts[0].1 >= deadline.as_secs_f64() * 1e3);
    }
}

/// A fast model whose batched call reports a fixed device time.
struct DeviceTimed(Fast);

const DEVICE_NS: u64 = 70_000;

impl EmbeddingModel for DeviceTimed {
    fn model_id(&self) -> &ModelId {
        self.0.model_id()
    }

    fn embed<'a>(&'a self, input: &'a PreparedInput) -> ModelFuture<'a> {
        self.0.embed(input)
    }

    fn embed_batch<'a>(&'a self, inputs: &'a [PreparedInput]) -> BatchFuture<'a> {
        Box::pin(async move {
            let mut embeddings = Vec::new();
            for input in inputs {
                embeddings.push(self.0.embed(input).await?);
            }
            Ok(BatchEmbeddings {
                embeddings,
                device_ns: Some(DEVICE_NS),
            })
        })
    }
}

#[test]
fn a_batchs_device_time_is_recorded_for_every_request_it_served() {
    const REQUESTS: usize = 6;
    let (guard, _dispatch, rt) = start(
        hdrtrace::Builder::new(&capture_config(0.0, TracingLevel::Standard)),
        2,
    );
    let mut models = fast_models();
    models[position("Code")] = Arc::new(DeviceTimed(Fast::new("Code")));
    let p = one_batched(
        models,
        "Code",
        BatchConfig::new(3, Duration::from_millis(50)).unwrap(),
        Duration::from_secs(5),
    );
    rounds(&rt, &p, 2, REQUESTS / 2);
    let snap = guard.flushed_snapshot();
    let gpu = snap
        .model("Code")
        .unwrap()
        .gpu()
        .expect("Code's device time");
    assert_eq!(gpu.count(), REQUESTS as u64);
    let got = gpu.quantile(0.5).as_nanos() as f64;
    assert!(
        (got - DEVICE_NS as f64).abs() <= DEVICE_NS as f64 * 1e-3,
        "{got}"
    );
    assert!(snap.model("Causal").unwrap().gpu().is_none());
}

#[test]
fn two_requests_of_one_batch_carry_it_linked_both_ways() {
    let (keep, guard, rt) = keeping(1.0, TracingLevel::Verbose);
    // Causal batches two inputs, waiting up to 5 s for the second: the two
    // requests in flight together share exactly one batch.
    let p = one_batched(
        fast_models(),
        "Causal",
        BatchConfig::new(2, Duration::from_secs(5)).unwrap(),
        Duration::from_secs(10),
    );
    let ids = rounds(&rt, &p, 1, 2);

    let traces = captured(&guard, &keep, &ids);
    let mut batch_ids = Vec::new();
    for id in &ids {
        let t = traces.iter().find(|t| t.request_id() == *id).unwrap();
        let causal = t.models().find(|m| m.label() == "Causal").unwrap();
        let batch = batch_span_of(t, causal);
        assert_eq!(batch.name, "batch");
        assert!(batch.shared, "the batch belongs to no single request");
        assert!(!causal.shared);
        assert_eq!(batch.field("batch_size"), Some(FieldValue::U64(2)));
        assert!(batch.links.contains(&causal.id), "linked back: {batch:?}");
        // At Verbose its internals come along, shared too.
        for name in ["batch_wait", "forward", "scatter"] {
            let child = t
                .spans()
                .iter()
                .find(|s| s.name == name && s.parent == batch.id)
                .unwrap_or_else(|| panic!("no {name} under the batch"));
            assert!(child.shared, "{name}");
        }
        // Unbatched models link to nothing.
        let code = t.models().find(|m| m.label() == "Code").unwrap();
        assert!(code.links.is_empty(), "{:?}", code.links);
        let b = t.attribution().and_then(|a| a.batch.as_ref());
        if let Some(b) = b {
            assert_eq!(b.span, batch.id);
        }
        batch_ids.push(batch.id);
    }
    assert_eq!(batch_ids[0], batch_ids[1], "one batch served both");
    assert_eq!(guard.snapshot().counters().dropped_links, 0);
}
