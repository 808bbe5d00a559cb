//! # hdrtrace
//!
//! A hand-written `tracing_core::Subscriber` for multi-model inference
//! pipelines: it times every model span and pipeline stage into per-model HDR
//! histograms, records through lock-free per-thread rings without allocating on
//! the hot path, samples per request with atomics, and keeps every slow or
//! failed request in full, naming the model that caused it.
//!
//! ```
//! use hdrtrace::{TracingConfig, TracingLevel};
//!
//! let (subscriber, guard) = hdrtrace::build(&TracingConfig::default()).unwrap();
//! tracing::subscriber::with_default(subscriber, || {
//!     let request = tracing::info_span!("embed_pipeline", request_id = 7u64);
//!     let _r = request.enter();
//!     let model = tracing::debug_span!("model", model_id = "Causal", input_tokens = 12u64);
//!     model.in_scope(|| { /* run the model */ });
//! });
//! guard.flush();
//! let snapshot = guard.snapshot();
//! let causal = snapshot.model("Causal").unwrap();
//! assert_eq!(causal.count(), 1);
//! println!("p95 = {:?}", causal.quantile(0.95));
//! ```
//!
//! The data flow, one step at a time: recording ([`HdrSubscriber`]: slots,
//! per-thread stack, callsite classes) → hand-off (one lock-free ring per
//! thread) → collection (the aggregator thread: histograms, request assembly)
//! → the read model ([`LatencySnapshot`], [`RequestTrace`]) → [`export`]. See
//! `docs/design.md`.

#![warn(missing_docs)]

// Configuration, shared by every step.
mod config;
mod conventions;
mod error;
mod filter;
pub mod limits;
// The steps a span takes: recording -> handoff -> collection -> read ->
// export (docs/design.md, "layout").
mod collection;
pub mod export;
mod handoff;
mod read;
mod recording;
// Beside them: the log lines' own path, how control characters are
// escaped wherever text is written, the clock, the loom shim.
mod clock;
mod escape;
mod logs;
mod sync;
// The composition root: wires the steps, installs, controls.
#[cfg(feature = "bench-internals")]
mod bench;
mod guard;
#[cfg(test)]
mod test_meta;

pub use collection::RequestSink;
pub use config::{TracingConfig, TracingLevel};
pub use conventions::Conventions;
pub use error::{ConfigError, Error, ExportError, FlushError, InstallError, SnapshotError};
pub use guard::{build, init_tracing, init_with, Builder, TracingGuard};
pub use handoff::record::{FieldValue, SpanClass, Status};
pub use read::requests::{
    Attribution, BatchCause, BatchShare, BlameReason, CaptureReason, EventTrace, Outcome,
    RequestTrace, SeriesKey, SpanTrace, TraceParts, TreeIndex,
};
pub use read::snapshot::{
    Counters, Latencies, Latency, LatencySnapshot, ModelLatency, StageLatency,
};
pub use read::source::{LatestSnapshot, SnapshotSource};
pub use recording::callsites::{MODEL_FIELD, REQUEST_FIELD, REQUEST_SPAN_NAMES, TIMEOUT_FIELD};
#[cfg(feature = "layer")]
pub use recording::layer::HdrLayer;
pub use recording::trace_context::RemoteParent;
pub use recording::HdrSubscriber;

/// Hooks for this crate's own benches and tests: not API, not documented,
/// behind the non-default `bench-internals` feature.
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod __bench {
    pub use crate::bench::*;
    pub use crate::clock::Clock;
    pub use crate::export::trace_id::instance_id;
}
