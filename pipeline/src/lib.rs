//! The instrumented multi-model embedding pipeline (the spec's
//! `EmbeddingPipeline`): a service that runs every model on each request under
//! a deadline, and the place hdrtrace's records turn into an answer to "which
//! model made this request slow?".
//!
//! [`EmbeddingPipeline::embed`] tokenizes the text ([`Tokenizer`]), runs every
//! [`EmbeddingModel`] in parallel as its own tokio `JoinSet` task under a
//! per-request deadline ([`PipelineConfig::deadline`]), and fuses what arrived
//! into a fixed-width [`FusedEmbedding`]. Each call is one request:
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
//! timed out), and the others still fuse. A model is any name ([`ModelId`]);
//! the [`reference`](mod@reference) models are twelve CPU models doing real, deterministic
//! compute, described as data. A [`TraceEventCollector`] turns captured
//! requests into [`TraceEvent`]s.
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

mod batch;
mod error;
mod events;
mod fuse;
#[cfg(feature = "cuda")]
pub mod gpu;
mod model;
mod model_id;
mod orchestrator;
mod pipeline;
pub mod reference;
mod span_ctx;
mod tokenize;

pub use batch::{BatchConfig, BatchConfigError, BatchPlan, BatchedModel};
pub use error::{EmbeddingResult, Error};
pub use events::{TraceEvent, TraceEventCollector};
pub use fuse::FusedEmbedding;
pub use model::{
    BatchEmbeddings, BatchFuture, EmbeddingModel, ModelEmbedding, ModelFuture, ModelId,
    PreparedInput,
};
pub use pipeline::{EmbeddingPipeline, PipelineConfig};
pub use tokenize::Tokenizer;
