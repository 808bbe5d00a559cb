//! Errors, one type per operation: configuring, installing, flushing,
//! exporting, and encoding, decoding or merging snapshot bytes. [`Error`] is
//! any of them, for a caller that propagates them all with one type.

use std::borrow::Cow;

/// A configuration value, environment variable, filter directive or naming
/// convention that cannot be used. Nothing was built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value is out of range or malformed.
    #[error("invalid tracing config: `{field}` {reason}")]
    Invalid {
        /// The setting at fault (a `TracingConfig` field, `conventions.*`,
        /// `filter`, a Prometheus limit or bucket bound).
        field: &'static str,
        /// What is wrong and what would be accepted.
        reason: Cow<'static, str>,
    },
    /// An `HDRTRACE_*` environment variable could not be used.
    #[error("invalid environment variable {var}={value:?}: {reason}")]
    Env {
        /// The variable's name.
        var: &'static str,
        /// The value it held.
        value: String,
        /// What is wrong and what would be accepted.
        reason: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<Cow<'static, str>>) -> Self {
        ConfigError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// Building or installing a subscriber failed; nothing is left running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// The configuration cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A global subscriber is already installed.
    #[error("a global tracing subscriber is already installed; init_tracing may be called once per process (use hdrtrace::build with tracing::subscriber::with_default for scoped use)")]
    AlreadyInstalled,
    /// One of the subscriber's threads could not be started.
    #[error("cannot start the {thread} thread: {source}")]
    Thread {
        /// Which thread.
        thread: &'static str,
        /// Why the operating system refused it.
        #[source]
        source: std::io::Error,
    },
    /// tokio-console's server cannot listen where it was told to.
    #[error("tokio-console cannot listen on {addr}: {source}")]
    Console {
        /// The configured address.
        addr: std::net::SocketAddr,
        /// Why it cannot be bound.
        #[source]
        source: std::io::Error,
    },
    /// The configured exporter could not be built.
    #[error(transparent)]
    Export(#[from] ExportError),
}

/// A flush that could not be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlushError {
    /// The aggregator thread has stopped: nothing recorded since is
    /// aggregated (the snapshot's `aggregator_failure` says why).
    #[error("the hdrtrace aggregator has stopped: {reason}")]
    Stopped {
        /// Why it stopped.
        reason: String,
    },
    /// Called on the aggregator thread itself (from a `RequestSink`), where
    /// it would wait on its own thread; nothing was done.
    #[error("`{what}` was called on the hdrtrace aggregator thread (from a RequestSink), which cannot wait on itself; it returned at once and did nothing")]
    OnAggregatorThread {
        /// The method called.
        what: &'static str,
    },
}

/// An exporter, an export file or the metrics server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// An exporter could not be built or started, or its settings cannot be
    /// used.
    #[error("{what}: {reason}")]
    Exporter {
        /// Which exporter.
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

/// Snapshot bytes that could not be written, read or merged. Nothing was
/// allocated beyond the stated budget.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The snapshot does not fit the byte format (a series too large).
    #[error("LatencySnapshot::to_bytes: {reason}")]
    Encode {
        /// What does not fit.
        reason: String,
    },
    /// The bytes are corrupt, foreign, out of range or over the decode
    /// budget.
    #[error("LatencySnapshot::from_bytes: {reason}")]
    Decode {
        /// What is wrong, and where.
        reason: String,
    },
    /// The snapshots cannot be merged within the budget, or hold values
    /// beyond their histograms' range.
    #[error("LatencySnapshot::merged: {reason}")]
    Merge {
        /// Which model or stage and histogram, and why.
        reason: String,
    },
}

/// Any `hdrtrace` error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// See [`ConfigError`].
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// See [`InstallError`].
    #[error(transparent)]
    Install(#[from] InstallError),
    /// See [`FlushError`].
    #[error(transparent)]
    Flush(#[from] FlushError),
    /// See [`ExportError`].
    #[error(transparent)]
    Export(#[from] ExportError),
    /// See [`SnapshotError`].
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}
