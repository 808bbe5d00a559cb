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
//! The data flow, one folder at a time: [`subscriber`](crate::HdrSubscriber)
//! (slots, per-thread stack, callsite classes) → `ring` (one lock-free ring per
//! thread) → `aggregate` (histograms, request assembly, snapshots). See
//! `docs/design.md`.

#![warn(missing_docs)]

mod aggregate;
mod clock;
mod config;
mod conventions;
mod error;
pub mod export;
mod filter;
mod guard;
mod handoff;
pub mod limits;
mod logs;
mod record;
mod ring;
mod sampling;
mod subscriber;
mod sync;
#[cfg(test)]
mod test_meta;
mod trace_context;
mod wire;

pub use aggregate::requests::{
    Attribution, BatchCause, BatchShare, CaptureReason, EventTrace, RequestTrace, SeriesKey,
    SpanTrace, TraceParts, TreeIndex,
};
pub use aggregate::snapshot::{
    Counters, Latencies, Latency, LatencySnapshot, ModelLatency, StageLatency,
};
pub use aggregate::source::{LatestSnapshot, SnapshotSource};
pub use aggregate::RequestSink;
pub use config::{TracingConfig, TracingLevel};
pub use conventions::Conventions;
pub use error::{ConfigError, Error, ExportError, FlushError, InstallError, SnapshotError};
pub use guard::{build, init_tracing, init_with, Builder, TracingGuard};
pub use record::{FieldValue, SpanClass, Status};
pub use subscriber::callsites::{MODEL_FIELD, REQUEST_FIELD, REQUEST_SPAN_NAMES, TIMEOUT_FIELD};
#[cfg(feature = "layer")]
pub use subscriber::layer::HdrLayer;
pub use subscriber::HdrSubscriber;
pub use trace_context::RemoteParent;

/// Hooks for this crate's own benches and tests: not API, not documented,
/// behind the non-default `bench-internals` feature.
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod __bench {
    pub use crate::aggregate::bench::*;
    pub use crate::clock::Clock;
    pub use crate::export::trace_id::instance_id;
}
