//! OpenTelemetry export of captured requests over OTLP/gRPC (cargo feature
//! `otel`).
//!
//! [`OtlpSink`] is a [`RequestSink`]: the aggregator hands it every captured
//! request (head-sampled, over the latency target, failed or timed out) with its
//! whole span tree, so export works with the hand-written subscriber and needs
//! no `tracing_subscriber::Registry`. Each request becomes one trace:
//!
//! - trace ID = [`RequestTrace::trace_id`] (the id the text tree, the
//!   Perfetto JSON and the Prometheus exemplars show), span IDs = the spans'
//!   own IDs, parent links as recorded (each model span a child of its
//!   `model_execution` span; the root has none);
//! - attributes: `request_id`, `model_id` on model spans, `busy_ns`,
//!   `waiting_ns`, `device_ns` where the span reported device time
//!   ([`SpanTrace::device`](crate::SpanTrace::device)), the span's numeric
//!   fields, and on the root why it was kept
//!   and which model gated it (`hdrtrace.bottleneck`);
//! - events as span events (`level` plus their numeric fields);
//! - status `Error` with description `"error"` or `"timeout"`, unset otherwise.
//!
//! # Why the SDK's `SpanData` and the OTLP `SpanExporter`
//!
//! The requests are already finished trees with exact times, so no tracer,
//! span processor or context propagation is needed: each one is converted to
//! the SDK's plain `SpanData` values and handed to `opentelemetry-otlp`'s
//! `SpanExporter`, which owns what should not be written twice: the OTLP
//! protobuf mapping (resource and scope grouping, status and event encoding),
//! endpoint parsing, per-request timeouts, retry with backoff on retryable gRPC
//! codes, and the standard `OTEL_EXPORTER_OTLP_*` variables. Building the
//! `opentelemetry-proto` messages by hand with a tonic client would save one
//! conversion but re-implement all of that.
//!
//! # Threads and failure
//!
//! [`RequestSink::captured`] only `try_send`s the `Arc<RequestTrace>` into a
//! bounded queue (a full queue drops the request and counts its spans), so the
//! aggregator never waits on the network. A dedicated `hdrtrace-otlp` thread
//! owns the exporter and its own current-thread tokio runtime, so export works
//! and shuts down the same way whatever runtime the application runs, or none.
//! It batches (up to `max_batch` spans, or every `batch_interval`), and installs
//! a no-op `tracing` dispatcher for itself and its runtime's blocking threads,
//! so the exporter's own spans (tonic, h2, hyper, tower) reach neither the
//! export nor the histograms.
//!
//! Failed exports are counted in [`OtlpStats`] and reported on stderr once per
//! burst of failures (not through `tracing`, which would feed them back in).
//! [`RequestSink::flush`] and `Drop` wait for the queued spans to be sent for
//! at most `flush_timeout` / `shutdown_timeout`, so an unreachable collector
//! cannot hang the caller.
//!
//! ```no_run
//! # fn main() -> Result<(), hdrtrace::Error> {
//! use hdrtrace::export::otel::OtlpSink;
//!
//! let (sink, stats) = OtlpSink::new("http://127.0.0.1:4317", "embedder")?;
//! let (subscriber, guard) = hdrtrace::Builder::new(&hdrtrace::TracingConfig::default())
//!     .sink(sink)
//!     .build()?;
//! // ... run requests under `subscriber` ...
//! guard.flush();
//! println!("{} spans exported, {} dropped", stats.spans_exported(), stats.spans_dropped());
//! # drop(subscriber);
//! # Ok(())
//! # }
//! ```

mod convert;
mod worker;

use crate::collection::RequestSink;
use crate::error::ExportError;
use crate::read::requests::RequestTrace;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use worker::Msg;

/// The `service.name` used when neither the caller nor `OTEL_SERVICE_NAME`
/// names one.
pub const DEFAULT_SERVICE_NAME: &str = "hdrtrace";

/// Extra time `Drop` and `flush` allow past their deadline for the export
/// thread to stop its runtime and answer, after it gave up exporting.
const ANSWER_GRACE: Duration = Duration::from_millis(250);

/// Settings of an [`OtlpSink`]; start from [`OtlpSink::builder`].
#[derive(Clone, Debug)]
pub struct OtlpBuilder {
    endpoint: String,
    service_name: Option<String>,
    queue_capacity: usize,
    max_batch: usize,
    batch_interval: Duration,
    export_timeout: Duration,
    flush_timeout: Duration,
    shutdown_timeout: Duration,
}

impl OtlpBuilder {
    /// The resource's `service.name` (default: `$OTEL_SERVICE_NAME`, else
    /// [`DEFAULT_SERVICE_NAME`]).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// How many captured requests may wait for the export thread (default
    /// 1024); when full, new requests are dropped and counted.
    pub fn queue_capacity(mut self, requests: usize) -> Self {
        self.queue_capacity = requests;
        self
    }

    /// Spans per export call (default 512).
    pub fn max_batch(mut self, spans: usize) -> Self {
        self.max_batch = spans;
        self
    }

    /// Longest time a span waits before its batch is sent (default 1 s).
    pub fn batch_interval(mut self, interval: Duration) -> Self {
        self.batch_interval = interval;
        self
    }

    /// Longest time one export call may take, retries included (default 5 s).
    pub fn export_timeout(mut self, timeout: Duration) -> Self {
        self.export_timeout = timeout;
        self
    }

    /// Longest time [`RequestSink::flush`] waits for the queue to be sent
    /// (default 5 s).
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// Longest time dropping the sink waits for the queue to be sent and the
    /// exporter shut down (default 5 s); past it the export thread is left to
    /// finish on its own.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Validates the settings, starts the export thread and builds the
    /// exporter on it. Connecting is lazy: an unreachable collector is not an
    /// error here, it shows in [`OtlpStats`] once exports fail.
    pub fn build(self) -> Result<(OtlpSink, OtlpStats), ExportError> {
        self.validate()?;
        let service_name = match self.service_name {
            Some(name) => name,
            None => std::env::var("OTEL_SERVICE_NAME")
                .ok()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string()),
        };
        let endpoint: Arc<str> = self.endpoint.into();
        let stats = OtlpStats::default();
        let (tx, rx) = crossbeam_channel::bounded(self.queue_capacity);
        let (thread, done) = worker::spawn(
            worker::Settings {
                endpoint: endpoint.clone(),
                service_name,
                max_batch: self.max_batch,
                batch_interval: self.batch_interval,
                export_timeout: self.export_timeout,
            },
            rx.clone(),
            stats.clone(),
        )?;
        let sink = OtlpSink {
            tx,
            queue: rx,
            thread: Some(thread),
            done,
            endpoint,
            stats: stats.clone(),
            flush_timeout: self.flush_timeout,
            shutdown_timeout: self.shutdown_timeout,
        };
        Ok((sink, stats))
    }

    fn validate(&self) -> Result<(), ExportError> {
        let bad = |reason: String| ExportError::Exporter {
            what: "OTLP sink",
            reason,
        };
        crate::config::validate_endpoint(&self.endpoint)
            .map_err(|r| bad(format!("endpoint {r}")))?;
        if self.endpoint.starts_with("https://") {
            return Err(bad(format!(
                "endpoint {:?}: https is not supported (the `otel` feature has no TLS); \
                 use http:// to a local collector, e.g. http://127.0.0.1:4317",
                self.endpoint
            )));
        }
        if matches!(&self.service_name, Some(n) if n.trim().is_empty()) {
            return Err(bad("service name must not be empty".into()));
        }
        for (name, n) in [
            ("queue_capacity", self.queue_capacity),
            ("max_batch", self.max_batch),
        ] {
            if n == 0 {
                return Err(bad(format!("{name} must be at least 1")));
            }
        }
        for (name, d) in [
            ("batch_interval", self.batch_interval),
            ("export_timeout", self.export_timeout),
            ("flush_timeout", self.flush_timeout),
            ("shutdown_timeout", self.shutdown_timeout),
        ] {
            if d.is_zero() {
                return Err(bad(format!("{name} must be more than zero")));
            }
        }
        Ok(())
    }
}

/// A [`RequestSink`] that exports captured requests to an OpenTelemetry
/// collector over OTLP/gRPC. See the [module docs](self).
pub struct OtlpSink {
    tx: Sender<Msg>,
    /// The queue's other end, to count what a timed-out shutdown leaves.
    queue: Receiver<Msg>,
    thread: Option<JoinHandle<()>>,
    /// Disconnects when the export thread ends.
    done: Receiver<()>,
    endpoint: Arc<str>,
    stats: OtlpStats,
    flush_timeout: Duration,
    shutdown_timeout: Duration,
}

impl std::fmt::Debug for OtlpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpSink")
            .field("endpoint", &self.endpoint)
            .field("queued", &self.tx.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl OtlpSink {
    /// A sink exporting to `endpoint` (`http://host:port`, e.g.
    /// `http://127.0.0.1:4317`) with resource `service.name` = `service_name`,
    /// and default batching and timeouts. Returns the sink and a handle to its
    /// counters.
    pub fn new(endpoint: &str, service_name: &str) -> Result<(OtlpSink, OtlpStats), ExportError> {
        Self::builder(endpoint).service_name(service_name).build()
    }

    /// Settings for a sink exporting to `endpoint`, to adjust before
    /// [`OtlpBuilder::build`].
    pub fn builder(endpoint: &str) -> OtlpBuilder {
        OtlpBuilder {
            endpoint: endpoint.trim().to_string(),
            service_name: None,
            queue_capacity: 1024,
            max_batch: 512,
            batch_interval: Duration::from_secs(1),
            export_timeout: Duration::from_secs(5),
            flush_timeout: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(5),
        }
    }

    /// The collector's endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Another handle to the counters.
    pub fn stats(&self) -> OtlpStats {
        self.stats.clone()
    }

    /// Sends `msg` (built around a reply channel) and waits for the reply until
    /// `deadline` plus a grace. False when the export thread did not answer.
    fn ask(&self, msg: impl FnOnce(Sender<()>) -> Msg, deadline: Instant) -> bool {
        if matches!(
            self.done.try_recv(),
            Err(crossbeam_channel::TryRecvError::Disconnected)
        ) {
            return false; // the export thread has ended: nobody would answer
        }
        let (reply, answer) = crossbeam_channel::bounded(1);
        if self.tx.send_deadline(msg(reply), deadline).is_err() {
            return false;
        }
        answer.recv_deadline(deadline + ANSWER_GRACE).is_ok()
    }
}

impl RequestSink for OtlpSink {
    fn captured(&mut self, trace: &Arc<RequestTrace>) {
        match self.tx.try_send(Msg::Trace(Arc::clone(trace))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.dropped(trace.spans().len() as u64);
                // Relaxed: a count the export thread reads to decide whether to
                // log; it publishes no other data.
                self.stats.0.queue_full.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn flush(&mut self) {
        let deadline = Instant::now() + self.flush_timeout;
        if !self.ask(|reply| Msg::Flush { deadline, reply }, deadline) {
            eprintln!(
                "hdrtrace: OTLP export to {}: flush did not finish within {:?}; spans still queued are sent later",
                self.endpoint, self.flush_timeout
            );
        }
    }
}

impl Drop for OtlpSink {
    fn drop(&mut self) {
        let deadline = Instant::now() + self.shutdown_timeout;
        let _ = self.tx.send_deadline(Msg::Shutdown { deadline }, deadline);
        // The export thread drops its end of `done` when it exits.
        match self.done.recv_deadline(deadline + ANSWER_GRACE) {
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                // Whatever is still queued will not be sent in time: take it
                // back and count it, then leave the thread to end on its own
                // (it gives up at the same deadline).
                for msg in self.queue.try_iter() {
                    if let Msg::Trace(trace) = msg {
                        self.stats.dropped(trace.spans().len() as u64);
                    }
                }
                eprintln!(
                    "hdrtrace: OTLP export to {}: shutdown did not finish within {:?}; abandoning the export thread",
                    self.endpoint, self.shutdown_timeout
                );
            }
            _ => {
                if let Some(thread) = self.thread.take() {
                    let _ = thread.join();
                }
            }
        }
        let s = &self.stats;
        if s.spans_dropped() > 0 || s.export_errors() > 0 {
            eprintln!(
                "hdrtrace: OTLP export to {}: {} spans exported, {} dropped, {} failed exports{}",
                self.endpoint,
                s.spans_exported(),
                s.spans_dropped(),
                s.export_errors(),
                s.last_error()
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default()
            );
        }
    }
}

/// Counters of an [`OtlpSink`], readable from any thread (a cheap clone of a
/// shared handle). They stay valid after the sink is dropped.
#[derive(Clone, Default)]
pub struct OtlpStats(Arc<StatsInner>);

#[derive(Default)]
struct StatsInner {
    exported: AtomicU64,
    dropped: AtomicU64,
    errors: AtomicU64,
    queue_full: AtomicU64,
    last_error: Mutex<Option<String>>,
}

// Relaxed throughout: each counter is an independent monotonic count; no other
// memory is published through them, and readers only need an eventually
// current value.
impl OtlpStats {
    /// Spans the collector accepted.
    pub fn spans_exported(&self) -> u64 {
        self.0.exported.load(Ordering::Relaxed)
    }

    /// Spans that never reached the collector: refused by a full queue, in a
    /// failed export, or still queued when the sink was dropped past its
    /// shutdown timeout.
    pub fn spans_dropped(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }

    /// Export calls that failed (after the exporter's own retries) or timed
    /// out.
    pub fn export_errors(&self) -> u64 {
        self.0.errors.load(Ordering::Relaxed)
    }

    /// The most recent export error.
    pub fn last_error(&self) -> Option<String> {
        self.0
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn exported(&self, spans: u64) {
        self.0.exported.fetch_add(spans, Ordering::Relaxed);
    }

    fn dropped(&self, spans: u64) {
        self.0.dropped.fetch_add(spans, Ordering::Relaxed);
    }

    fn failed(&self, spans: u64, error: String) {
        self.dropped(spans);
        self.0.errors.fetch_add(1, Ordering::Relaxed);
        *self.0.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
    }

    fn queue_full(&self) -> u64 {
        self.0.queue_full.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for OtlpStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpStats")
            .field("spans_exported", &self.spans_exported())
            .field("spans_dropped", &self.spans_dropped())
            .field("export_errors", &self.export_errors())
            .field("last_error", &self.last_error())
            .finish()
    }
}
