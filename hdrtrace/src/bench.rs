//! A handle for benchmarks (hidden from the docs): the recording side of a
//! subscriber with its aggregator's state but no aggregator thread, so a bench
//! can fill the rings through the real hot path, then time draining them.

use crate::collection::Aggregator;
use crate::config::TracingConfig;
use crate::error::InstallError;
use crate::guard::{wire, Wired};
use crate::handoff::Handoff;
use crate::read::publish::Publisher;
use crate::read::snapshot::{Counters, SnapshotData};
use crate::recording::HdrSubscriber;
use std::sync::Arc;
use std::time::Instant;

/// The twelve models of a [`pipeline_request`].
pub const MODEL_NAMES: [&str; 12] = [
    "Semantic",
    "Causal",
    "Code",
    "Sparse",
    "Multilingual",
    "Instruct",
    "Legal",
    "Medical",
    "Finance",
    "Vision",
    "Audio",
    "Reranker",
];

/// Spans one [`pipeline_request`] makes: its root, one stage, twelve models.
pub const SPANS_PER_REQUEST: u64 = 2 + MODEL_NAMES.len() as u64;

/// Records one pipeline-shaped request through the current dispatcher: an
/// `embed_pipeline{request_id}` root, a `model_execution` stage, and one
/// `model{model_id}` span per [`MODEL_NAMES`] entry; the model `fail` (if any)
/// logs an error in its span.
pub fn pipeline_request(id: u64, fail: Option<&str>) {
    let root = tracing::info_span!("embed_pipeline", request_id = id);
    let _r = root.enter();
    let stage = tracing::info_span!("model_execution");
    let _s = stage.enter();
    for model in MODEL_NAMES {
        let span = tracing::debug_span!("model", model_id = model);
        let _e = span.enter();
        if fail == Some(model) {
            tracing::error!("model failed");
        }
    }
}

/// An aggregator that runs only when [`IngestBench::drain`] is called.
pub struct IngestBench {
    aggregator: Aggregator,
    publisher: Arc<Publisher<SnapshotData>>,
}

impl IngestBench {
    /// A subscriber whose records stay in its rings until `drain`.
    pub fn new(config: &TracingConfig) -> Result<(HdrSubscriber, Self), InstallError> {
        config.validate()?;
        let handoff = Arc::new(Handoff::new(config.ring_capacity));
        let Wired {
            core,
            publisher,
            aggregator,
        } = wire(config, handoff, None, Vec::new())?;
        Ok((
            HdrSubscriber { core },
            Self {
                aggregator,
                publisher,
            },
        ))
    }

    /// Drains every ring into the histograms and the request assembler, as
    /// the aggregator thread does; returns the records drained.
    pub fn drain(&mut self) -> usize {
        self.aggregator
            .drain(Instant::now(), crate::handoff::Take::Present)
            .records
    }

    /// The counters as a snapshot would report them now.
    pub fn counters(&mut self) -> Counters {
        self.aggregator.publish(Instant::now());
        self.publisher.load().counters
    }
}
