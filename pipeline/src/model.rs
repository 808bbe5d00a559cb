//! A model's name ([`ModelId`]), the [`EmbeddingModel`] trait users implement,
//! and what flows into and out of a model.

use crate::error::EmbeddingResult;
use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A model's name: any non-empty string, fixed for the model's life.
///
/// It is what the subscriber keys its per-model histograms by (the model
/// span's `model_id` field), what the pipeline tells models apart by (two
/// models of one pipeline never share a name), and what fusion orders the
/// models' vectors by. Cloning it is a reference-count increment.
///
/// ```
/// use hdrtrace_pipeline::ModelId;
///
/// let id = ModelId::new("Causal");
/// assert_eq!(id, "Causal");
/// assert_eq!(id.to_string(), "Causal");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelId(Arc<str>);

impl ModelId {
    /// A model named `name`. The pipeline refuses an empty name when it is
    /// built ([`EmbeddingPipeline::new`](crate::EmbeddingPipeline::new)).
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self(name.into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for ModelId {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

impl From<String> for ModelId {
    fn from(name: String) -> Self {
        Self::new(name)
    }
}

impl Borrow<str> for ModelId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for ModelId {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for ModelId {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn a_name_compares_and_prints_as_its_string() {
        let a = ModelId::new("Code");
        assert_eq!(a, "Code");
        assert_eq!(a, ModelId::from(String::from("Code")));
        assert_eq!(format!("{a} {a:?}"), "Code \"Code\"");
        let set: BTreeSet<ModelId> = ["Semantic", "Code"].map(ModelId::from).into();
        assert!(set.contains("Code"));
        assert_eq!(set.first().unwrap(), "Code");
    }
}
