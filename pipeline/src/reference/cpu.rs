//! The reference CPU models: real, deterministic compute (see [`Weights`]) run
//! off the async workers on tokio's blocking pool, at most one computation per
//! core at a time.
//!
//! The compute runs inside the model's span (`span.in_scope` on the blocking
//! thread), so the span's busy time is compute time, and its wall time minus
//! busy time is queueing: waiting for a core, or for the task to be polled.
//!
//! A call's cost is a fixed part plus a part per input, as a real model's is:
//! the fixed part is one trip to the compute pool (a permit and a hand-off to
//! a blocking thread) and the pool's launch cost
//! ([`ComputePool::with_launch_cost`], zero by default), which stands for
//! what an accelerator pays once per call whatever its batch (the launch, and
//! reading the weights); the part per input is its lookup, token mixing and
//! dense rows. A batched call ([`EmbeddingModel::embed_batch`]) pays the fixed
//! part once for all its inputs.

use super::weights::{Profile, Weights};
use crate::error::{EmbeddingResult, Error};
use crate::model::{
    BatchEmbeddings, BatchFuture, EmbeddingModel, ModelEmbedding, ModelFuture, ModelId,
    PreparedInput,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Limits how many reference-model computations run at once (one per core by
/// default), so that an overloaded pipeline queues (visible as wall minus busy
/// time) instead of time-slicing every computation.
#[derive(Debug, Clone)]
pub struct ComputePool {
    permits: Arc<Semaphore>,
    size: usize,
    launch: Duration,
}

const MAX_LAUNCH_COST: Duration = ComputePool::MAX_LAUNCH_COST;

impl ComputePool {
    /// The longest launch cost a pool accepts.
    pub const MAX_LAUNCH_COST: Duration = Duration::from_secs(1);

    /// A pool running at most `size` computations at once; `None` when `size`
    /// is zero.
    pub fn new(size: usize) -> Option<Self> {
        (size > 0 && size <= Semaphore::MAX_PERMITS).then(|| Self {
            permits: Arc::new(Semaphore::new(size)),
            size,
            launch: Duration::ZERO,
        })
    }

    /// The same pool, where every model call (batched or not) also pays
    /// `cost` once before computing, holding its permit: a model of an
    /// accelerator's fixed cost per call (launching kernels, reading the
    /// weights), which a batch pays once for all its inputs. The time is
    /// spent blocked, not computing, inside the calling span (busy time).
    /// Refuses more than [`ComputePool::MAX_LAUNCH_COST`].
    pub fn with_launch_cost(self, cost: Duration) -> EmbeddingResult<Self> {
        if cost > MAX_LAUNCH_COST {
            return Err(Error::Pipeline(
                format!("launch cost {cost:?} is above the {MAX_LAUNCH_COST:?} limit").into(),
            ));
        }
        Ok(Self {
            launch: cost,
            ..self
        })
    }

    /// How many computations may run at once.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The fixed cost every call pays (zero unless set).
    pub fn launch_cost(&self) -> Duration {
        self.launch
    }
}

impl Default for ComputePool {
    /// One computation per available core.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            permits: Arc::new(Semaphore::new(cores)),
            size: cores,
            launch: Duration::ZERO,
        }
    }
}

/// A reference model: a name and a [`Profile`] with weights generated from a
/// seed, computing on a [`ComputePool`].
#[derive(Debug, Clone)]
pub struct ReferenceModel {
    weights: Arc<Weights>,
    pool: ComputePool,
}

impl ReferenceModel {
    /// The model named `model` of shape `profile`, with weights generated
    /// from `seed` ([`Weights::generate`]), computing on `pool`.
    pub fn new(model: ModelId, profile: Profile, seed: u64, pool: ComputePool) -> Self {
        Self {
            weights: Arc::new(Weights::generate(model, profile, seed)),
            pool,
        }
    }

    /// Its weights (to reproduce its output elsewhere).
    pub fn weights(&self) -> &Weights {
        &self.weights
    }
}

impl ReferenceModel {
    /// Runs `work` on tokio's blocking pool, holding one compute permit, inside
    /// the current span (so it counts as that span's busy time).
    async fn compute<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Weights) -> R + Send + 'static,
    ) -> EmbeddingResult<R> {
        let model = &self.weights.model;
        let permit = self
            .pool
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Model {
                model: model.clone(),
                reason: "the compute pool was closed".into(),
            })?;
        // The model span (or, batched, the batch's span), when this runs
        // instrumented (as the pipeline does).
        let span = tracing::Span::current();
        let weights = self.weights.clone();
        let launch = self.pool.launch;
        // The permit moves into the computation: if the model is aborted
        // (deadline), the core stays accounted for until the compute ends.
        let compute = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            span.in_scope(|| {
                if !launch.is_zero() {
                    std::thread::sleep(launch);
                }
                work(&weights)
            })
        });
        compute.await.map_err(|e| Error::Model {
            model: model.clone(),
            reason: if e.is_panic() {
                "its computation panicked".into()
            } else {
                "its computation was cancelled".into()
            },
        })
    }
}

impl EmbeddingModel for ReferenceModel {
    fn model_id(&self) -> &ModelId {
        &self.weights.model
    }

    fn embed<'a>(&'a self, input: &'a PreparedInput) -> ModelFuture<'a> {
        Box::pin(async move {
            let tokens = input.shared_tokens();
            let vector = self.compute(move |w| w.forward(&tokens)).await?;
            Ok(ModelEmbedding {
                model_id: self.weights.model.clone(),
                vector,
            })
        })
    }

    /// One computation for the whole batch ([`Weights::forward_batch`]): one
    /// compute permit and one hand-off to a blocking thread per batch (the
    /// fixed part), and each input's lookup, mixing and dense rows (the part
    /// per input).
    fn embed_batch<'a>(&'a self, inputs: &'a [PreparedInput]) -> BatchFuture<'a> {
        Box::pin(async move {
            let tokens: Vec<Arc<[u32]>> = inputs.iter().map(PreparedInput::shared_tokens).collect();
            let vectors = self.compute(move |w| w.forward_batch(&tokens)).await?;
            let model_id = &self.weights.model;
            Ok(BatchEmbeddings {
                embeddings: vectors
                    .into_iter()
                    .map(|vector| ModelEmbedding {
                        model_id: model_id.clone(),
                        vector,
                    })
                    .collect(),
                device_ns: None,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_answers_each_input_as_embed_does() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let spec = crate::reference::spec("Causal").unwrap();
        let model = ReferenceModel::new(spec.id(), spec.profile, 5, ComputePool::default());
        let inputs: Vec<PreparedInput> = [&[1u32, 2, 3][..], &[7; 30], &[]]
            .iter()
            .map(|t| PreparedInput::new(t.to_vec(), t.len()))
            .collect();
        let batch = rt.block_on(model.embed_batch(&inputs)).unwrap();
        assert_eq!(batch.embeddings.len(), 3);
        assert_eq!(batch.device_ns, None);
        assert!(ComputePool::default()
            .with_launch_cost(Duration::from_secs(2))
            .unwrap_err()
            .to_string()
            .contains("launch cost 2s is above"));
        for (got, input) in batch.embeddings.iter().zip(&inputs) {
            assert_eq!(*got, rt.block_on(model.embed(input)).unwrap());
        }
    }
}
