//! The export thread: owns the OTLP exporter and a current-thread tokio
//! runtime, batches converted spans and sends them.

use super::{convert, OtlpStats};
use crate::error::ExportError;
use crate::read::requests::RequestTrace;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use opentelemetry::InstrumentationScope;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use opentelemetry_sdk::Resource;
use std::cell::RefCell;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tracing_core::dispatcher::{DefaultGuard, Dispatch};
use tracing_core::subscriber::NoSubscriber;

/// What the sink sends the export thread.
pub(super) enum Msg {
    /// A captured request to convert and send.
    Trace(Arc<RequestTrace>),
    /// Send everything received so far, give up at `deadline`, then reply.
    Flush {
        deadline: Instant,
        reply: Sender<()>,
    },
    /// Send everything received so far, give up at `deadline`, shut the
    /// exporter down and end the thread.
    Shutdown { deadline: Instant },
}

pub(super) struct Settings {
    pub(super) endpoint: Arc<str>,
    pub(super) service_name: String,
    pub(super) max_batch: usize,
    pub(super) batch_interval: Duration,
    pub(super) export_timeout: Duration,
}

/// How long the runtime may wait for its blocking threads (DNS lookups) when
/// the thread ends.
const RUNTIME_SHUTDOWN: Duration = Duration::from_millis(100);

/// Starts the export thread and waits until it has built its runtime and
/// exporter (no network I/O: the channel connects lazily). Returns the thread
/// and a receiver that disconnects when the thread ends.
pub(super) fn spawn(
    settings: Settings,
    queue: Receiver<Msg>,
    stats: OtlpStats,
) -> Result<(JoinHandle<()>, Receiver<()>), ExportError> {
    let (ready_tx, ready_rx) = crossbeam_channel::bounded::<Result<(), ExportError>>(1);
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
    let thread = std::thread::Builder::new()
        .name("hdrtrace-otlp".into())
        .spawn(move || {
            // Held for the whole thread: nothing this thread does (tonic, h2,
            // hyper, tower) is recorded by whatever subscriber the process has.
            let _quiet = quiet();
            let worker = match Worker::new(settings, stats) {
                Ok(w) => w,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            worker.run(&queue);
            drop(done_tx);
        })
        .map_err(|e| ExportError::Io {
            context: "starting the OTLP export thread".into(),
            source: e,
        })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok((thread, done_rx)),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(ExportError::Exporter {
                what: "OTLP sink",
                reason: "the export thread ended while building the exporter".into(),
            })
        }
    }
}

/// Makes `tracing` calls on this thread go nowhere until the guard drops.
fn quiet() -> DefaultGuard {
    tracing_core::dispatcher::set_default(&Dispatch::new(NoSubscriber::default()))
}

thread_local! {
    static QUIET: RefCell<Option<DefaultGuard>> = const { RefCell::new(None) };
}

struct Worker {
    runtime: tokio::runtime::Runtime,
    exporter: opentelemetry_otlp::SpanExporter,
    scope: InstrumentationScope,
    stats: OtlpStats,
    endpoint: Arc<str>,
    max_batch: usize,
    batch_interval: Duration,
    export_timeout: Duration,
    pending: Vec<SpanData>,
    /// Consecutive failed exports; the first of a run is logged.
    failing: u64,
    /// Queue refusals seen at the last tick, and whether they are being logged.
    queue_full_seen: u64,
    queue_full_burst: bool,
}

impl Worker {
    fn new(settings: Settings, stats: OtlpStats) -> Result<Self, ExportError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("hdrtrace-otlp-blocking")
            // The runtime's blocking threads (DNS lookups) are quiet too.
            .on_thread_start(|| QUIET.with(|q| *q.borrow_mut() = Some(quiet())))
            .on_thread_stop(|| QUIET.with(|q| drop(q.borrow_mut().take())))
            .build()
            .map_err(|e| ExportError::Io {
                context: "building the OTLP export runtime".into(),
                source: e,
            })?;
        let mut exporter = {
            // tonic spawns the channel's worker task when it is built.
            let _rt = runtime.enter();
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(settings.endpoint.to_string())
                .with_timeout(settings.export_timeout)
                .build()
                .map_err(|e| ExportError::Exporter {
                    what: "OTLP exporter",
                    reason: format!("{}: {e}", settings.endpoint),
                })?
        };
        exporter.set_resource(
            &Resource::builder()
                .with_service_name(settings.service_name)
                .build(),
        );
        Ok(Worker {
            runtime,
            exporter,
            scope: InstrumentationScope::builder("hdrtrace")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
            stats,
            endpoint: settings.endpoint,
            max_batch: settings.max_batch,
            batch_interval: settings.batch_interval,
            export_timeout: settings.export_timeout,
            pending: Vec::with_capacity(settings.max_batch),
            failing: 0,
            queue_full_seen: 0,
            queue_full_burst: false,
        })
    }

    fn run(mut self, queue: &Receiver<Msg>) {
        let mut tick = Instant::now() + self.batch_interval;
        let shutdown = loop {
            match queue.recv_deadline(tick) {
                Ok(Msg::Trace(trace)) => {
                    convert::push_spans(&trace, &self.scope, &mut self.pending);
                    while self.pending.len() >= self.max_batch {
                        let rest = self.pending.split_off(self.max_batch);
                        let batch = std::mem::replace(&mut self.pending, rest);
                        self.export(batch, Instant::now() + self.export_timeout);
                    }
                }
                Ok(Msg::Flush { deadline, reply }) => {
                    self.export_pending(deadline);
                    let _ = reply.send(());
                }
                Ok(Msg::Shutdown { deadline }) => break Some(deadline),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break None,
            }
            // Checked after every message too, so a steady stream of requests
            // cannot hold a partial batch back past the interval.
            let now = Instant::now();
            if now >= tick {
                self.export_pending(now + self.export_timeout);
                self.report_queue_full();
                tick = now + self.batch_interval;
            }
        };
        let deadline = shutdown.unwrap_or_else(|| Instant::now() + self.export_timeout);
        self.export_pending(deadline);
        self.report_queue_full();
        let _ = self.exporter.shutdown_with_timeout(self.export_timeout);
        // The channel first, then the runtime its tasks run on.
        drop(self.exporter);
        self.runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    }

    /// Sends all pending spans in batches, giving up at `deadline` (what is
    /// left then is counted as dropped).
    fn export_pending(&mut self, deadline: Instant) {
        while !self.pending.is_empty() {
            if Instant::now() >= deadline {
                self.stats.dropped(self.pending.len() as u64);
                self.pending.clear();
                return;
            }
            let rest = self
                .pending
                .split_off(self.max_batch.min(self.pending.len()));
            let batch = std::mem::replace(&mut self.pending, rest);
            self.export(batch, deadline);
        }
    }

    /// One export call, bounded by `deadline` and the export timeout.
    fn export(&mut self, batch: Vec<SpanData>, deadline: Instant) {
        let spans = batch.len() as u64;
        let budget = deadline
            .saturating_duration_since(Instant::now())
            .min(self.export_timeout);
        let exporter = &self.exporter;
        let result = self
            .runtime
            .block_on(async { tokio::time::timeout(budget, exporter.export(batch)).await });
        let error = match result {
            Ok(Ok(())) => {
                self.stats.exported(spans);
                if self.failing > 0 {
                    eprintln!(
                        "hdrtrace: OTLP export to {} recovered after {} failed exports",
                        self.endpoint, self.failing
                    );
                    self.failing = 0;
                }
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("export timed out after {budget:?}"),
        };
        if self.failing == 0 {
            eprintln!(
                "hdrtrace: OTLP export to {} failed: {error} ({spans} spans dropped; \
                 further failures are counted in OtlpStats until an export succeeds)",
                self.endpoint
            );
        }
        self.failing += 1;
        self.stats.failed(spans, error);
    }

    /// Logs the first interval of a run of full-queue refusals.
    fn report_queue_full(&mut self) {
        let seen = self.stats.queue_full();
        if seen > self.queue_full_seen {
            if !self.queue_full_burst {
                eprintln!(
                    "hdrtrace: OTLP export to {}: queue full, dropping captured requests \
                     (the collector is slow or unreachable; see OtlpStats)",
                    self.endpoint
                );
            }
            self.queue_full_burst = true;
        } else {
            self.queue_full_burst = false;
        }
        self.queue_full_seen = seen;
    }
}
