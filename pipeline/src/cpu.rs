//! The reference CPU models: real, deterministic compute (see [`Weights`]) run
//! off the async workers on tokio's blocking pool, at most one computation per
//! core at a time.
//!
//! The compute runs inside the model's span (`span.in_scope` on the blocking
//! thread), so the span's busy time is compute time, and its wall time minus
//! busy time is queueing: waiting for a core, or for the task to be polled.

use super::model::{EmbeddingModel, ModelEmbedding, ModelFuture, ModelId, PreparedInput};
use super::weights::Weights;
use crate::error::Error;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Limits how many reference-model computations run at once (one per core by
/// default), so that an overloaded pipeline queues (visible as wall minus busy
/// time) instead of time-slicing every computation.
#[derive(Debug, Clone)]
pub struct ComputePool {
    permits: Arc<Semaphore>,
    size: usize,
}

impl ComputePool {
    /// A pool running at most `size` computations at once; `None` when `size`
    /// is zero.
    pub fn new(size: usize) -> Option<Self> {
        (size > 0 && size <= Semaphore::MAX_PERMITS).then(|| Self {
            permits: Arc::new(Semaphore::new(size)),
            size,
        })
    }

    /// How many computations may run at once.
    pub fn size(&self) -> usize {
        self.size
    }
}

impl Default for ComputePool {
    /// One computation per available core.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            permits: Arc::new(Semaphore::new(cores)),
            size: cores,
        }
    }
}

/// A reference model: one of the twelve [`ModelId`]s with generated weights.
#[derive(Debug, Clone)]
pub struct ReferenceModel {
    weights: Arc<Weights>,
    pool: ComputePool,
}

impl ReferenceModel {
    /// A model with weights generated from `seed`, computing on `pool`.
    pub fn new(model: ModelId, seed: u64, pool: ComputePool) -> Self {
        Self {
            weights: Arc::new(Weights::generate(model, seed)),
            pool,
        }
    }

    /// Its weights (to reproduce its output elsewhere).
    pub fn weights(&self) -> &Weights {
        &self.weights
    }
}

/// All twelve reference models, sharing one compute pool.
pub fn reference_models(seed: u64, pool: &ComputePool) -> Vec<Arc<dyn EmbeddingModel>> {
    ModelId::ALL
        .iter()
        .map(|&m| Arc::new(ReferenceModel::new(m, seed, pool.clone())) as Arc<dyn EmbeddingModel>)
        .collect()
}

impl EmbeddingModel for ReferenceModel {
    fn model_id(&self) -> ModelId {
        self.weights.model
    }

    fn embed<'a>(&'a self, input: &'a PreparedInput) -> ModelFuture<'a> {
        Box::pin(async move {
            let model = self.weights.model;
            let permit = self
                .pool
                .permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| Error::Model {
                    model: model.as_str(),
                    reason: "the compute pool was closed".into(),
                })?;
            // The model span, when this runs instrumented (as the pipeline does).
            let span = tracing::Span::current();
            let weights = self.weights.clone();
            let tokens = input.shared_tokens();
            // The permit moves into the computation: if the model is aborted
            // (deadline), the core stays accounted for until the compute ends.
            let compute = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                span.in_scope(|| weights.forward(&tokens))
            });
            match compute.await {
                Ok(vector) => Ok(ModelEmbedding {
                    model_id: model,
                    vector,
                }),
                Err(e) => Err(Error::Model {
                    model: model.as_str(),
                    reason: if e.is_panic() {
                        "its computation panicked".into()
                    } else {
                        "its computation was cancelled".into()
                    },
                }),
            }
        })
    }
}
