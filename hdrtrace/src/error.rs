//! The crate's one error type.

use std::borrow::Cow;

/// Everything `hdrtrace` can refuse or fail at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of range.
    #[error("invalid tracing config: `{field}` {reason}")]
    InvalidConfig {
        /// The `TracingConfig` field at fault.
        field: &'static str,
        /// What is wrong and what would be accepted.
        reason: Cow<'static, str>,
    },
    /// An `HDRTRACE_*` environment variable could not be used.
    #[error("invalid environment variable {var}={value:?}: {reason}")]
    InvalidEnv {
        /// The variable's name.
        var: &'static str,
        /// The value it held.
        value: String,
        /// What is wrong and what would be accepted.
        reason: String,
    },
    /// A global subscriber is already installed.
    #[error("a global tracing subscriber is already installed; init_tracing may be called once per process (use hdrtrace::build with tracing::subscriber::with_default for scoped use)")]
    AlreadyInitialized,
    /// The aggregator thread could not be started or has stopped.
    #[error("hdrtrace aggregator: {0}")]
    Aggregator(String),
    /// Called on the aggregator thread itself (from a `RequestSink`), where
    /// it would wait on its own thread; nothing was done.
    #[error("`{what}` was called on the hdrtrace aggregator thread (from a RequestSink), which cannot wait on itself; it returned at once and did nothing")]
    OnAggregatorThread {
        /// The method called.
        what: &'static str,
    },
    /// An exporter or integration failed.
    #[error("{what}: {reason}")]
    Export {
        /// Which integration.
        what: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// An I/O error (writing an export file, binding a port).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn config(field: &'static str, reason: impl Into<Cow<'static, str>>) -> Self {
        Error::InvalidConfig {
            field,
            reason: reason.into(),
        }
    }
}
