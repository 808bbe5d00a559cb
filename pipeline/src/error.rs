//! What the pipeline can fail at: a model, or the pipeline itself.

use crate::model_id::ModelId;
use std::borrow::Cow;

/// Everything the embedding pipeline can refuse or fail at.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A model failed, panicked, or returned an unusable embedding.
    #[error("model {model} failed: {reason}")]
    Model {
        /// The model's name.
        model: ModelId,
        /// What went wrong.
        reason: Cow<'static, str>,
    },
    /// The pipeline refused its input or had nothing to return.
    #[error("pipeline: {0}")]
    Pipeline(Cow<'static, str>),
}

/// `Result` with [`Error`].
pub type EmbeddingResult<T> = Result<T, Error>;
