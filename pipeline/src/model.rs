//! The [`EmbeddingModel`] trait users implement, and what flows into and out
//! of a model.

use crate::error::EmbeddingResult;
pub use crate::model_id::ModelId;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A tokenized request, shared by every model (cloning it is a reference-count
/// increment, not a copy of the tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedInput {
    tokens: Arc<[u32]>,
    content_len: usize,
}

impl PreparedInput {
    /// An input from token ids and the byte length of the text they came from.
    pub fn new(tokens: impl Into<Arc<[u32]>>, content_len: usize) -> Self {
        Self {
            tokens: tokens.into(),
            content_len,
        }
    }

    /// The token ids.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// The token ids as a shared handle (to move into a blocking task).
    pub fn shared_tokens(&self) -> Arc<[u32]> {
        self.tokens.clone()
    }

    /// How many tokens there are.
    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }

    /// The byte length of the original text.
    pub fn content_len(&self) -> usize {
        self.content_len
    }
}

/// One model's output vector.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelEmbedding {
    /// The model that produced it.
    pub model_id: ModelId,
    /// The vector (model-specific width).
    pub vector: Vec<f32>,
}

impl ModelEmbedding {
    /// The vector's width.
    pub fn dim(&self) -> usize {
        self.vector.len()
    }
}

/// The future a model returns: boxed so that `dyn EmbeddingModel` works, `Send`
/// so that it can run as a `JoinSet` task.
pub type ModelFuture<'a> =
    Pin<Box<dyn Future<Output = EmbeddingResult<ModelEmbedding>> + Send + 'a>>;

/// A batch's outputs: one embedding per input, in input order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchEmbeddings {
    /// One embedding per input, in the order of the inputs.
    pub embeddings: Vec<ModelEmbedding>,
    /// Device time of the batch's forward pass, in nanoseconds, when it ran on
    /// a GPU; recorded as `gpu_ns` on the model span of every request it served.
    pub device_ns: Option<u64>,
}

/// The future [`EmbeddingModel::embed_batch`] returns.
pub type BatchFuture<'a> =
    Pin<Box<dyn Future<Output = EmbeddingResult<BatchEmbeddings>> + Send + 'a>>;

/// A model the pipeline can run. Implement it for your own models; the pipeline
/// instruments every call (a `model` span with `model_id` and `input_tokens`),
/// enforces the deadline and turns errors and panics into records.
///
/// ```
/// use hdrtrace_pipeline::{EmbeddingModel, ModelEmbedding, ModelFuture, ModelId, PreparedInput};
///
/// /// Answers every input with the same vector.
/// struct Constant(ModelId);
///
/// impl EmbeddingModel for Constant {
///     fn model_id(&self) -> &ModelId {
///         &self.0
///     }
///     fn embed<'a>(&'a self, _input: &'a PreparedInput) -> ModelFuture<'a> {
///         Box::pin(async move {
///             Ok(ModelEmbedding { model_id: self.0.clone(), vector: vec![1.0; 8] })
///         })
///     }
/// }
/// ```
pub trait EmbeddingModel: Send + Sync + 'static {
    /// The model's name. Must not change between calls, and must be unique
    /// among the models of one pipeline.
    fn model_id(&self) -> &ModelId;

    /// Embeds one input. Long synchronous work belongs off the async workers
    /// (`tokio::task::spawn_blocking`, entered in `tracing::Span::current()` so
    /// that it counts as the model's busy time, as the reference models do).
    /// The returned embedding must carry this model's id and a non-empty vector
    /// of finite values; anything else is recorded as the model's error.
    fn embed<'a>(&'a self, input: &'a PreparedInput) -> ModelFuture<'a>;

    /// Embeds several inputs in one call, as a batcher
    /// ([`BatchPlan`](crate::BatchPlan)) calls it: one embedding per input, in
    /// input order; an error fails every input of the batch.
    ///
    /// The default runs [`embed`](Self::embed) on each input in turn (no
    /// saving). The reference models override it with one computation for the
    /// whole batch, whose cost is a fixed part paid once per call plus a part
    /// per input.
    fn embed_batch<'a>(&'a self, inputs: &'a [PreparedInput]) -> BatchFuture<'a> {
        Box::pin(async move {
            let mut embeddings = Vec::with_capacity(inputs.len());
            for input in inputs {
                embeddings.push(self.embed(input).await?);
            }
            Ok(BatchEmbeddings {
                embeddings,
                device_ns: None,
            })
        })
    }
}
