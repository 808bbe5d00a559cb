//! Shared by the `pipeline_*` integration tests: dummy models, the demo's
//! fault injection, a sink that keeps every captured request, and a
//! multi-thread runtime whose threads all record into one scoped subscriber.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

/// The demo's fault injection (a model slowed, failing, panicking or hung),
/// built on the public API as a service's own wrappers would be.
#[path = "../../examples/pipeline/faults.rs"]
pub mod faults;

use faults::{Fault, FaultPlan};
use hdrtrace::{RequestSink, RequestTrace, TracingGuard};
use hdrtrace_pipeline::reference::{reference_models, ComputePool, REFERENCE_MODELS};
use hdrtrace_pipeline::{
    EmbeddingModel, EmbeddingPipeline, Error, FusedEmbedding, ModelEmbedding, ModelFuture, ModelId,
    PipelineConfig, PreparedInput, TraceEvent,
};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::dispatcher::{DefaultGuard, Dispatch};

/// A model that does trivial work: a checksum of the tokens.
pub struct Fast(pub ModelId);

impl Fast {
    /// The fast model named `name`.
    pub fn new(name: &str) -> Self {
        Self(ModelId::new(name))
    }
}

impl EmbeddingModel for Fast {
    fn model_id(&self) -> &ModelId {
        &self.0
    }

    fn embed<'a>(&'a self, input: &'a PreparedInput) -> ModelFuture<'a> {
        Box::pin(async move {
            let seed = self
                .0
                .as_str()
                .bytes()
                .fold(1u32, |a, b| a.wrapping_mul(31) ^ u32::from(b));
            let sum = input
                .tokens()
                .iter()
                .fold(seed, |a, t| a.wrapping_mul(31) ^ t);
            Ok(ModelEmbedding {
                model_id: self.0.clone(),
                vector: vec![(sum % 1000) as f32 + 1.0; 4],
            })
        })
    }
}

/// Twelve [`Fast`] models, named as the reference models, in their order.
pub fn fast_models() -> Vec<Arc<dyn EmbeddingModel>> {
    REFERENCE_MODELS
        .iter()
        .map(|m| Arc::new(Fast::new(m.name)) as Arc<dyn EmbeddingModel>)
        .collect()
}

/// The position of the reference model named `name` (in [`fast_models`]).
pub fn position(name: &str) -> usize {
    REFERENCE_MODELS
        .iter()
        .position(|m| m.name == name)
        .expect("a reference model")
}

/// A set of model names.
pub fn names(names: &[&str]) -> BTreeSet<ModelId> {
    names.iter().copied().map(ModelId::new).collect()
}

/// A fault plan giving each named model its fault.
pub fn faults(faults: &[(&str, Fault)]) -> FaultPlan {
    let mut plan = FaultPlan::new();
    for (model, fault) in faults {
        plan.set(*model, *fault);
    }
    plan
}

/// The twelve reference models (seed 7), each with its fault in `plan`, in
/// a pipeline whose requests wait at most `deadline` for a model.
pub fn reference_pipeline(plan: FaultPlan, deadline: Duration) -> Arc<EmbeddingPipeline> {
    let models = plan.apply(reference_models(7, &ComputePool::default()));
    let config = PipelineConfig {
        deadline,
        ..PipelineConfig::default()
    };
    Arc::new(EmbeddingPipeline::with_config(models, config).unwrap())
}

/// Runs `workers` tasks on `rt` at once, each sending `each` requests
/// through `p` one after another, worker `w`'s request `i` with the text
/// `text(w, i)`; the results, each worker's together and in order (the
/// workers in the order they finished).
pub fn embed_from_workers(
    rt: &tokio::runtime::Runtime,
    p: &Arc<EmbeddingPipeline>,
    workers: usize,
    each: usize,
    text: fn(usize, usize) -> String,
) -> Vec<Result<FusedEmbedding, Error>> {
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for worker in 0..workers {
            let p = p.clone();
            set.spawn(async move {
                let mut out = Vec::with_capacity(each);
                for i in 0..each {
                    out.push(p.embed(&text(worker, i)).await);
                }
                out
            });
        }
        set.join_all().await.concat()
    })
}

/// A sink that keeps every captured request.
#[derive(Clone, Default)]
pub struct Keep(pub Arc<Mutex<Vec<Arc<RequestTrace>>>>);

impl Keep {
    pub fn traces(&self) -> Vec<Arc<RequestTrace>> {
        self.0.lock().unwrap().clone()
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Flushes `guard` until this holds at least `n` requests, for at most
    /// `limit`; whether it came to hold them.
    pub fn wait_for(&self, guard: &TracingGuard, n: usize, limit: Duration) -> bool {
        wait_for(limit, || {
            guard.flush();
            self.len() >= n
        })
    }
}

impl RequestSink for Keep {
    fn captured(&mut self, trace: &Arc<RequestTrace>) {
        self.0.lock().unwrap().push(trace.clone());
    }
}

thread_local! {
    static DEFAULT: RefCell<Option<DefaultGuard>> = const { RefCell::new(None) };
}

/// A multi-thread runtime with `workers` workers; every thread it starts
/// (workers and blocking-pool threads) records into `dispatch`.
pub fn runtime(dispatch: &Dispatch, workers: usize) -> tokio::runtime::Runtime {
    let d = dispatch.clone();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .on_thread_start(move || {
            DEFAULT.with(|g| *g.borrow_mut() = Some(tracing::dispatcher::set_default(&d)));
        })
        .on_thread_stop(|| {
            DEFAULT.with(|g| g.borrow_mut().take());
        })
        .build()
        .expect("a tokio runtime")
}

/// Builds the subscriber, and a multi-thread runtime of `workers` workers
/// recording into it (see [`runtime`]).
pub fn start(
    builder: hdrtrace::Builder,
    workers: usize,
) -> (hdrtrace::TracingGuard, Dispatch, tokio::runtime::Runtime) {
    let (subscriber, guard) = builder.build().expect("a valid config");
    let dispatch = Dispatch::new(subscriber);
    let rt = runtime(&dispatch, workers);
    (guard, dispatch, rt)
}

/// Polls `done` until it is true or `limit` passes; returns whether it became
/// true.
pub fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `ModelTimeout` events among `ev`: `(model, after_ms)`.
pub fn timeouts(ev: &[TraceEvent]) -> Vec<(&str, f64)> {
    ev.iter()
        .filter_map(|e| match e {
            TraceEvent::ModelTimeout { model_id, after_ms } => Some((model_id.as_str(), *after_ms)),
            _ => None,
        })
        .collect()
}

/// The `ModelError` events among `ev`: `(model, error)`.
pub fn errors(ev: &[TraceEvent]) -> Vec<(&str, &str)> {
    ev.iter()
        .filter_map(|e| match e {
            TraceEvent::ModelError { model_id, error } => Some((model_id.as_str(), error.as_str())),
            _ => None,
        })
        .collect()
}
