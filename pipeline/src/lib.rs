//! The instrumented 12-model embedding pipeline (the spec's `EmbeddingPipeline`):
//! a real, reusable workload for the subscriber, and the place its records turn
//! into an answer to "which model made this request slow?".
//!
//! [`EmbeddingPipeline::embed`] tokenizes the text ([`Tokenizer`]), runs every
//! [`EmbeddingModel`] in parallel as its own tokio `JoinSet` task under a
//! per-request deadline ([`AsyncOrchestrator`]), and fuses what arrived into a
//! fixed-width [`FusedEmbedding`] ([`fuse`]). Each call is one request:
//!
//! ```text
//! embed_pipeline{content_len, request_id}      INFO, the request
//!   tokenize                                   DEBUG
//!   model_execution{model_count}               INFO
//!     model{model_id, input_tokens}            DEBUG, one per model, on its own task
//!   fusion{embedding_count, output_dim}        DEBUG
//! ```
//!
//! With batching ([`PipelineConfig::batching`], a [`BatchPlan`] of one
//! [`BatchConfig`] per model) a model's inputs from concurrent requests queue
//! up and run together in one [`EmbeddingModel::embed_batch`] call, when the
//! batch is full or its oldest input has waited long enough
//! ([`BatchedModel`]). Each batch is a span of its own that belongs to no
//! request, linked both ways (`follows_from`) with the model span of every
//! request it served:
//!
//! ```text
//! batch{model_id, batch_size}                  INFO, parent: None
//!   batch_wait{oldest_wait_us}                 TRACE (Verbose)
//!   forward                                    TRACE, the batched call
//!   scatter                                    TRACE, the results handed back
//! ```
//!
//! Faults become records, not crashes: a model that errs or panics leaves an
//! `ERROR` event in its span, a model past the deadline a `WARN` event with
//! `timeout = true` and `after_ms` (so the subscriber marks the span failed or
//! timed out), and the others still fuse. [`reference_models`] are twelve CPU
//! models doing real, deterministic compute; [`FaultPlan`] injects delays,
//! errors, panics and hangs; [`trace_events`] and [`TraceCollector`] turn
//! captured requests into [`TraceEvent`]s.
//!
//! ```
//! use hdrtrace_pipeline::EmbeddingPipeline;
//!
//! let (subscriber, guard) = hdrtrace::build(&hdrtrace::TracingConfig::default()).unwrap();
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! let pipeline = EmbeddingPipeline::reference(42);
//! let fused = tracing::subscriber::with_default(subscriber, || {
//!     rt.block_on(pipeline.embed("The quick brown fox jumps over the lazy dog."))
//! })
//! .unwrap();
//! assert_eq!(fused.models.len(), 12);
//! let snapshot = guard.flushed_snapshot();
//! assert_eq!(snapshot.model("LongContext").unwrap().count(), 1);
//! ```

#![warn(missing_docs)]

mod backend;
mod batch_config;
mod batcher;
mod cpu;
mod embed;
mod error;
mod events;
mod faults;
mod fuse;
#[cfg(feature = "cuda")]
pub mod gpu;
pub mod math;
mod model;
mod orchestrator;
mod per_model;
mod span_ctx;
mod tokenize;
mod weights;

pub use backend::{Backend, BackendError, BackendModels, UnknownBackend};
pub use batch_config::{
    BatchConfig, BatchConfigError, BatchPlan, BatchSpec, BatchSpecError, DEFAULT_QUEUE_CAPACITY,
    MAX_BATCH_SIZE, MAX_BATCH_WAIT, MAX_QUEUE_CAPACITY,
};
pub use batcher::BatchedModel;
pub use cpu::{reference_models, ComputePool, ReferenceModel, MAX_LAUNCH_COST};
pub use embed::{EmbeddingPipeline, PipelineConfig};
pub use error::{EmbeddingResult, Error};
pub use events::{
    trace_events, RequestEvent, TraceCollector, TraceEvent, TraceEventReceiver, TraceEventSink,
};
pub use faults::{
    parse_duration, quiet_injected_panics, Fault, FaultParseError, FaultPlan, FaultSpec,
    FaultyModel, MAX_DELAY,
};
pub use fuse::{fuse, fuse_vectors, FusedEmbedding, FUSED_DIM};
pub use model::{
    BatchEmbeddings, BatchFuture, EmbeddingModel, ModelEmbedding, ModelFuture, ModelId, ModelSet,
    PreparedInput, UnknownModel,
};
pub use orchestrator::{AsyncOrchestrator, ModelOutputs, DEFAULT_DEADLINE};
pub use per_model::PerModel;
pub use span_ctx::{model_span, ModelSpanContext};
pub use tokenize::{Tokenizer, CLS, DEFAULT_MAX_TOKENS, VOCAB};
pub use weights::{Attention, Dense, Pooling, Profile, Weights};
