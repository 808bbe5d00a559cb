//! [`EmbeddingPipeline`]: tokenize, run every model under a deadline, fuse;
//! instrumented as the spec shows.

use crate::batch::BatchPlan;
use crate::error::{EmbeddingResult, Error};
use crate::fuse::{fuse, FusedEmbedding, FUSED_DIM};
use crate::model::{EmbeddingModel, ModelId};
use crate::orchestrator::{AsyncOrchestrator, DEFAULT_DEADLINE};
use crate::reference::{reference_models, ComputePool};
use crate::tokenize::Tokenizer;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// How the pipeline runs.
///
/// ```
/// use hdrtrace_pipeline::{BatchConfig, BatchPlan, PipelineConfig};
/// use std::time::Duration;
///
/// let config = PipelineConfig {
///     deadline: Duration::from_millis(300),
///     batching: BatchPlan::new().with("Causal", BatchConfig::new(32, Duration::from_millis(5)).unwrap()),
///     ..PipelineConfig::default()
/// };
/// assert_eq!(config.max_tokens, 8192);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineConfig {
    /// How long the models get per request before the laggards are aborted
    /// (150 ms by default).
    pub deadline: Duration,
    /// Longer inputs are truncated to this many tokens (at least 2; 8192 by
    /// default).
    pub max_tokens: usize,
    /// Which models batch their inputs across requests (none by default: each
    /// request runs every model on its own).
    pub batching: BatchPlan,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            deadline: DEFAULT_DEADLINE,
            max_tokens: Tokenizer::DEFAULT_MAX_TOKENS,
            batching: BatchPlan::new(),
        }
    }
}

/// Request ids: process-wide, so two pipelines never share one.
static NEXT_REQUEST_ID: AtomicU64 = AtomicU64::new(1);

/// The 12-model embedding pipeline.
///
/// Every [`embed`](Self::embed) call is one request: an `embed_pipeline` span
/// (fields `content_len`, `request_id`) with the stages `tokenize`,
/// `model_execution` (one `model` span per model) and `fusion` inside it.
#[derive(Debug, Clone)]
pub struct EmbeddingPipeline {
    tokenizer: Tokenizer,
    orchestrator: AsyncOrchestrator,
}

impl EmbeddingPipeline {
    /// A pipeline over `models` with the default config. Refuses an empty list,
    /// a model with an empty name and two models with the same name.
    pub fn new(models: Vec<Arc<dyn EmbeddingModel>>) -> EmbeddingResult<Self> {
        Self::with_config(models, PipelineConfig::default())
    }

    /// A pipeline over `models` with `config`; the models `config.batching`
    /// batches are wrapped in a [`BatchedModel`](crate::BatchedModel). Refuses
    /// what [`new`](Self::new) refuses, a zero deadline and `max_tokens`
    /// below 2.
    pub fn with_config(
        models: Vec<Arc<dyn EmbeddingModel>>,
        config: PipelineConfig,
    ) -> EmbeddingResult<Self> {
        let tokenizer = Tokenizer::new(config.max_tokens).ok_or_else(|| {
            Error::Pipeline(
                format!("max_tokens must be at least 2, got {}", config.max_tokens).into(),
            )
        })?;
        let models = config.batching.apply(models);
        Ok(Self {
            tokenizer,
            orchestrator: AsyncOrchestrator::with_deadline(models, config.deadline)?,
        })
    }

    /// The twelve reference CPU models (weights from `seed`, one computation per
    /// core at a time) with the default config.
    pub fn reference(seed: u64) -> Self {
        let models = reference_models(seed, &ComputePool::default());
        Self::new(models).expect("the twelve reference models are named, distinct and non-empty")
    }

    /// The per-request deadline.
    pub fn deadline(&self) -> Duration {
        self.orchestrator.deadline()
    }

    /// The models' names, in the order given.
    pub fn model_ids(&self) -> impl Iterator<Item = &ModelId> + '_ {
        self.orchestrator.model_ids()
    }

    /// Embeds `content`: tokenizes it, runs every model in parallel under the
    /// deadline and fuses what arrived into a [`FusedEmbedding::DIM`]-wide
    /// vector.
    ///
    /// Models that fail, panic or miss the deadline are left out (and listed in
    /// the result); the call fails only when the content has no tokens or no
    /// model answered in time. Must be called within a tokio runtime.
    pub async fn embed(&self, content: &str) -> EmbeddingResult<FusedEmbedding> {
        // Relaxed: only uniqueness matters, and the RMW gives that.
        let request_id = NEXT_REQUEST_ID.fetch_add(1, Ordering::Relaxed);
        let root = tracing::info_span!(
            "embed_pipeline",
            content_len = content.len() as u64,
            request_id
        );
        let result = self.run(content, request_id).instrument(root.clone()).await;
        if let Err(e) = &result {
            tracing::error!(parent: &root, "{e}");
        }
        result
    }

    async fn run(&self, content: &str, request_id: u64) -> EmbeddingResult<FusedEmbedding> {
        let input =
            tracing::debug_span!("tokenize").in_scope(|| self.tokenizer.prepare(content))?;
        let outputs = self.orchestrator.execute_all_models(&input).await?;
        let fusion = tracing::debug_span!(
            "fusion",
            embedding_count = outputs.embeddings.len() as u64,
            output_dim = FUSED_DIM as u64
        );
        fusion.in_scope(|| fuse(request_id, outputs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ModelEmbedding, ModelFuture, PreparedInput};
    use std::collections::BTreeSet;

    /// Answers with `vector`, labelled `label`.
    struct Fixed {
        id: ModelId,
        label: ModelId,
        vector: Vec<f32>,
    }

    impl EmbeddingModel for Fixed {
        fn model_id(&self) -> &ModelId {
            &self.id
        }
        fn embed<'a>(&'a self, _input: &'a PreparedInput) -> ModelFuture<'a> {
            Box::pin(async move {
                Ok(ModelEmbedding {
                    model_id: self.label.clone(),
                    vector: self.vector.clone(),
                })
            })
        }
    }

    fn fixed(id: &str, label: &str, vector: Vec<f32>) -> Arc<dyn EmbeddingModel> {
        Arc::new(Fixed {
            id: ModelId::new(id),
            label: ModelId::new(label),
            vector,
        })
    }

    fn good(id: &str) -> Arc<dyn EmbeddingModel> {
        fixed(id, id, vec![1.0, 2.0])
    }

    fn names(names: &[&str]) -> BTreeSet<ModelId> {
        names.iter().copied().map(ModelId::new).collect()
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn bad_setups_are_refused_with_a_reason() {
        let err = |r: EmbeddingResult<EmbeddingPipeline>| r.unwrap_err().to_string();
        assert!(err(EmbeddingPipeline::new(Vec::new())).contains("no models"));
        let twice = vec![good("Code"), good("Code")];
        assert!(err(EmbeddingPipeline::new(twice)).contains("Code is given twice"));
        assert!(err(EmbeddingPipeline::new(vec![good("")])).contains("empty name"));
        let zero = PipelineConfig {
            deadline: Duration::ZERO,
            ..PipelineConfig::default()
        };
        assert!(err(EmbeddingPipeline::with_config(vec![good("Code")], zero)).contains("deadline"));
        let tiny = PipelineConfig {
            max_tokens: 1,
            ..PipelineConfig::default()
        };
        assert!(
            err(EmbeddingPipeline::with_config(vec![good("Code")], tiny)).contains("max_tokens")
        );
    }

    #[test]
    fn empty_content_is_an_error_and_bad_outputs_are_failures() {
        let models = vec![
            good("Semantic"),
            fixed("Causal", "Code", vec![1.0]),
            fixed("Sparse", "Sparse", vec![f32::NAN]),
            fixed("Graph", "Graph", Vec::new()),
        ];
        let p = EmbeddingPipeline::new(models).unwrap();
        let rt = rt();
        let err = rt.block_on(p.embed(" \n")).unwrap_err().to_string();
        assert!(err.contains("no tokens"), "{err}");
        let fused = rt.block_on(p.embed("some text")).unwrap();
        assert_eq!(fused.models, names(&["Semantic"]));
        assert_eq!(fused.failed, names(&["Causal", "Sparse", "Graph"]));
        assert!(fused.vector.iter().all(|v| v.is_finite()));
        assert!(!fused.is_complete());
    }

    #[test]
    fn request_ids_are_unique_and_reference_models_are_deterministic() {
        let p = EmbeddingPipeline::reference(3);
        let rt = rt();
        let a = rt.block_on(p.embed("same words")).unwrap();
        let b = rt.block_on(p.embed("same words")).unwrap();
        assert_ne!(a.request_id, b.request_id);
        assert_eq!(a.vector, b.vector);
        assert_eq!(a.models.len(), 12);
        assert!(a.is_complete());
    }
}
