//! [`EmbeddingPipeline`]: tokenize, run every model under a deadline, fuse;
//! instrumented as the spec shows.

use super::cpu::{reference_models, ComputePool};
use super::fuse::{fuse, FusedEmbedding, FUSED_DIM};
use super::model::{EmbeddingModel, ModelId};
use super::orchestrator::{AsyncOrchestrator, DEFAULT_DEADLINE};
use super::tokenize::{Tokenizer, DEFAULT_MAX_TOKENS};
use crate::error::{EmbeddingResult, Error};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// How the pipeline runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineConfig {
    /// How long the models get per request before the laggards are aborted
    /// (150 ms by default).
    pub deadline: Duration,
    /// Longer inputs are truncated to this many tokens.
    pub max_tokens: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            deadline: DEFAULT_DEADLINE,
            max_tokens: DEFAULT_MAX_TOKENS,
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
    /// A pipeline over `models` with the default config. Refuses an empty list
    /// and two models with the same [`ModelId`].
    pub fn new(models: Vec<Arc<dyn EmbeddingModel>>) -> EmbeddingResult<Self> {
        Self::with_config(models, PipelineConfig::default())
    }

    /// A pipeline over `models` with `config`.
    pub fn with_config(
        models: Vec<Arc<dyn EmbeddingModel>>,
        config: PipelineConfig,
    ) -> EmbeddingResult<Self> {
        let tokenizer = Tokenizer::new(config.max_tokens).ok_or_else(|| {
            Error::Pipeline(
                format!("max_tokens must be at least 2, got {}", config.max_tokens).into(),
            )
        })?;
        Ok(Self {
            tokenizer,
            orchestrator: AsyncOrchestrator::with_deadline(models, config.deadline)?,
        })
    }

    /// The twelve reference CPU models (weights from `seed`, one computation per
    /// core at a time) with the default config.
    pub fn reference(seed: u64) -> Self {
        let models = reference_models(seed, &ComputePool::default());
        Self::new(models).expect("the twelve reference models are distinct and non-empty")
    }

    /// The orchestrator (models and deadline).
    pub fn orchestrator(&self) -> &AsyncOrchestrator {
        &self.orchestrator
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The models, in the order given.
    pub fn model_ids(&self) -> impl Iterator<Item = ModelId> + '_ {
        self.orchestrator.model_ids()
    }

    /// Embeds `content`: tokenizes it, runs every model in parallel under the
    /// deadline and fuses what arrived into a [`FUSED_DIM`]-wide vector.
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
        fusion.in_scope(|| fuse(request_id, &outputs))
    }
}
