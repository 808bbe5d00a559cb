//! The reference models: twelve CPU models doing real, deterministic compute,
//! described as data ([`REFERENCE_MODELS`], a name and a [`Profile`] each),
//! so that adding a model is adding a row, not editing a type.
//!
//! A model's cost follows its profile: a token lookup, token mixing
//! ([`Attention`]), dense layers and pooling ([`Pooling`]) over weights
//! generated from its name and a seed ([`Weights`]). [`ReferenceModel`] runs
//! one on a [`ComputePool`]; [`reference_models`] makes all twelve (and,
//! with the `cuda` feature, `gpu::gpu_reference_models` their GPU versions).
//!
//! ```
//! use hdrtrace_pipeline::reference::{
//!     Attention, ComputePool, ModelSpec, Pooling, Profile, ReferenceModel, REFERENCE_MODELS,
//! };
//! use hdrtrace_pipeline::{EmbeddingModel, EmbeddingPipeline, ModelId};
//! use std::sync::Arc;
//!
//! // The twelve, and one more of your own.
//! let pool = ComputePool::default();
//! let mut models = hdrtrace_pipeline::reference::reference_models(42, &pool);
//! let legal = Profile {
//!     buckets: 2048,
//!     dim: 32,
//!     hidden: &[64],
//!     out: 32,
//!     attention: Attention::Window(8),
//!     pooling: Pooling::Mean,
//!     max_tokens: 512,
//!     top_k: None,
//! };
//! models.push(Arc::new(ReferenceModel::new(ModelId::new("Legal"), legal, 42, pool)));
//! let pipeline = EmbeddingPipeline::new(models).unwrap();
//! assert_eq!(pipeline.model_ids().count(), REFERENCE_MODELS.len() + 1);
//! ```

mod cpu;
pub(crate) mod math;
mod weights;

pub use cpu::{ComputePool, ReferenceModel};
pub use weights::{Attention, Dense, Pooling, Profile, Weights};

use crate::batch::{BatchConfig, BatchPlan};
use crate::model::{EmbeddingModel, ModelId};
use std::sync::Arc;

/// One reference model: its name, its shape, and whether batching its
/// inputs across requests pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSpec {
    /// The model's name (its [`ModelId`]).
    pub name: &'static str,
    /// Its shape, which decides its cost.
    pub profile: Profile,
    /// Whether [`batch_plan`] batches it. False for a model whose cost grows
    /// with input length far past the others': a batch's run is then decided
    /// by its longest input, so short requests would wait for long ones, and
    /// the fixed part per call a batch saves is small beside the compute.
    pub batched: bool,
}

impl ModelSpec {
    /// The model's name as a [`ModelId`].
    pub fn id(&self) -> ModelId {
        ModelId::new(self.name)
    }

    /// Its weights, generated from `seed`.
    pub fn weights(&self, seed: u64) -> Weights {
        Weights::generate(self.id(), self.profile, seed)
    }
}

/// A row of [`REFERENCE_MODELS`]: batched.
const fn row(name: &'static str, profile: Profile) -> ModelSpec {
    ModelSpec {
        name,
        profile,
        batched: true,
    }
}

/// A reference model's shape with 2048 table rows; the arguments in the
/// order of [`Profile`]'s fields.
const fn shape(
    dim: usize,
    hidden: &'static [usize],
    out: usize,
    attention: Attention,
    pooling: Pooling,
    max_tokens: usize,
    top_k: Option<usize>,
) -> Profile {
    Profile {
        buckets: 2048,
        dim,
        hidden,
        out,
        attention,
        pooling,
        max_tokens,
        top_k,
    }
}

/// The twelve reference models, E1 to E12. Most read at most 512 tokens;
/// `LongContext` reads up to 4096 with Longformer-style sliding-window
/// attention (128 tokens each side), so its cost keeps growing with length
/// and it dominates long documents (and is not batched).
#[rustfmt::skip]
pub const REFERENCE_MODELS: [ModelSpec; 12] = {
    use Attention::{None as Unmixed, Window};
    use Pooling::{Max, Mean};
    [
        // E1: general-purpose dense semantic similarity.
        row("Semantic",         shape(64, &[128],    64,  Window(8),   Mean, 512,  None)),
        // E2: time expressions and ordering.
        row("Temporal",         shape(32, &[64],     32,  Unmixed,     Mean, 512,  None)),
        // E3: cause and effect relations.
        row("Causal",           shape(64, &[96, 96], 64,  Window(4),   Mean, 512,  None)),
        // E4: sparse lexical expansion (SPLADE-style, top-k activations).
        row("Sparse",           shape(48, &[192],    128, Unmixed,     Mean, 512,  Some(16))),
        // E5: long-context encoder (Longformer-style), not batched.
        ModelSpec {
            batched: false,
            ..row("LongContext", shape(32, &[64],   64,  Window(128), Mean, 4096, None))
        },
        // E6: source code.
        row("Code",             shape(48, &[96],     48,  Window(16),  Mean, 512,  None)),
        // E7: graph and relation structure.
        row("Graph",            shape(32, &[64, 64], 32,  Unmixed,     Mean, 512,  None)),
        // E8: named entities.
        row("Entity",           shape(48, &[96],     48,  Unmixed,     Mean, 512,  None)),
        // E9: multilingual alignment.
        row("Multilingual",     shape(64, &[160],    96,  Unmixed,     Mean, 512,  None)),
        // E10: document layout and structure.
        row("Structural",       shape(16, &[32],     16,  Unmixed,     Mean, 512,  None)),
        // E11: sentiment and tone.
        row("Sentiment",        shape(16, &[32],     8,   Unmixed,     Mean, 512,  None)),
        // E12: late interaction (ColBERT-style): per-token vectors, max-pooled.
        row("LateInteraction",  shape(48, &[96],     128, Unmixed,     Max,  512,  None)),
    ]
};

/// The reference model named `name` (exactly, case included), if it is one
/// of [`REFERENCE_MODELS`].
///
/// ```
/// let causal = hdrtrace_pipeline::reference::spec("Causal").unwrap();
/// assert_eq!(causal.profile.max_tokens, 512);
/// assert!(hdrtrace_pipeline::reference::spec("causal").is_none());
/// ```
pub fn spec(name: &str) -> Option<&'static ModelSpec> {
    REFERENCE_MODELS.iter().find(|s| s.name == name)
}

/// All twelve reference models, in `REFERENCE_MODELS` order, with weights
/// from `seed`, sharing one compute pool.
pub fn reference_models(seed: u64, pool: &ComputePool) -> Vec<Arc<dyn EmbeddingModel>> {
    REFERENCE_MODELS
        .iter()
        .map(|s| {
            Arc::new(ReferenceModel::new(s.id(), s.profile, seed, pool.clone()))
                as Arc<dyn EmbeddingModel>
        })
        .collect()
}

/// The reference models where batching pays ([`ModelSpec::batched`]: all but
/// `LongContext`), batched with `config`.
pub fn batch_plan(config: BatchConfig) -> BatchPlan {
    REFERENCE_MODELS
        .iter()
        .filter(|s| s.batched)
        .fold(BatchPlan::new(), |plan, s| plan.with(s.id(), config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_table_names_twelve_distinct_models() {
        let mut names: Vec<_> = REFERENCE_MODELS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 12);
        assert_eq!(spec("LongContext").unwrap().profile.max_tokens, 4096);
        assert_eq!(spec("Causal"), Some(&REFERENCE_MODELS[2]));
        assert_eq!(spec("longcontext"), None);
    }

    #[test]
    fn the_batch_plan_batches_all_but_long_context() {
        let config = BatchConfig::new(16, Duration::from_millis(2)).unwrap();
        let plan = batch_plan(config);
        assert_eq!(plan.iter().count(), 11);
        assert_eq!(plan.get("LongContext"), None);
        assert_eq!(plan.get("Causal"), Some(config));
    }
}
