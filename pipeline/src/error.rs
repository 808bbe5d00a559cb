//! What the pipeline can fail at: a model, the pipeline itself, or tracing.

use std::borrow::Cow;

/// Everything the embedding pipeline can refuse or fail at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A model failed, panicked, or returned an unusable embedding.
    #[error("model {model} failed: {reason}")]
    Model {
        /// The model's stable name.
        model: &'static str,
        /// What went wrong.
        reason: Cow<'static, str>,
    },
    /// The pipeline refused its input or had nothing to return.
    #[error("pipeline: {0}")]
    Pipeline(Cow<'static, str>),
    /// Setting up tracing (or an exporter) failed.
    #[error(transparent)]
    Tracing(#[from] hdrtrace::Error),
}

/// `Result` with [`Error`].
pub type EmbeddingResult<T> = Result<T, Error>;

/// splitmix64's finalizer: the deterministic stream weights and fusion
/// salts are drawn from.
#[inline]
pub(crate) fn mix(x: u64) -> u64 {
    let x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
