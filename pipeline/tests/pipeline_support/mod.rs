//! Shared by the `pipeline_*` integration tests: dummy models, a sink that keeps
//! every captured request, and a multi-thread runtime whose threads all record
//! into one scoped subscriber.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use hdrtrace::{RequestSink, RequestTrace};
use hdrtrace_pipeline::{
    EmbeddingModel, ModelEmbedding, ModelFuture, ModelId, PreparedInput, TraceEvent,
};
use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::dispatcher::{DefaultGuard, Dispatch};

/// A model that does trivial work: a checksum of the tokens.
pub struct Fast(pub ModelId);

impl EmbeddingModel for Fast {
    fn model_id(&self) -> ModelId {
        self.0
    }

    fn embed<'a>(&'a self, input: &'a PreparedInput) -> ModelFuture<'a> {
        Box::pin(async move {
            let sum = input
                .tokens()
                .iter()
                .fold(self.0.index() as u32 + 1, |a, t| a.wrapping_mul(31) ^ t);
            Ok(ModelEmbedding {
                model_id: self.0,
                vector: vec![(sum % 1000) as f32 + 1.0; 4],
            })
        })
    }
}

/// Twelve [`Fast`] models.
pub fn fast_models() -> Vec<Arc<dyn EmbeddingModel>> {
    ModelId::ALL
        .iter()
        .map(|&m| Arc::new(Fast(m)) as Arc<dyn EmbeddingModel>)
        .collect()
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
pub fn timeouts(ev: &[TraceEvent]) -> Vec<(ModelId, f64)> {
    ev.iter()
        .filter_map(|e| match e {
            TraceEvent::ModelTimeout { model_id, after_ms } => Some((*model_id, *after_ms)),
            _ => None,
        })
        .collect()
}

/// The `ModelError` events among `ev`: `(model, error)`.
pub fn errors(ev: &[TraceEvent]) -> Vec<(ModelId, &str)> {
    ev.iter()
        .filter_map(|e| match e {
            TraceEvent::ModelError { model_id, error } => Some((*model_id, error.as_str())),
            _ => None,
        })
        .collect()
}
