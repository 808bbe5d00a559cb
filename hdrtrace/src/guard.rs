//! Building, installing and controlling a subscriber.

use crate::collection::{Aggregator, Control, RequestSink};
use crate::config::TracingConfig;
use crate::error::{ConfigError, FlushError, InstallError};
use crate::handoff::Handoff;
use crate::logs::{LogHub, LogThread, LogWriter};
use crate::read::publish::Publisher;
use crate::read::snapshot::{LatencySnapshot, SnapshotData};
use crate::recording::core::Core;
use crate::recording::HdrSubscriber;
use crossbeam_channel::{RecvTimeoutError, Sender};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tracing_core::LevelFilter;

/// Builds a subscriber step by step: extra [`RequestSink`]s, a log writer.
///
/// ```
/// use hdrtrace::{Builder, RequestSink, RequestTrace, TracingConfig};
/// use std::sync::{mpsc, Arc};
///
/// /// Hands every captured request to a channel.
/// struct Slow(mpsc::Sender<u64>);
/// impl RequestSink for Slow {
///     fn captured(&mut self, trace: &Arc<RequestTrace>) {
///         let _ = self.0.send(trace.request_id());
///     }
/// }
///
/// let (tx, rx) = mpsc::channel();
/// let config = TracingConfig { sampling_rate: 1.0, ..TracingConfig::default() };
/// let (subscriber, guard) = Builder::new(&config)
///     .sink(Slow(tx))
///     .log_writer(std::io::sink())
///     .build()?;
/// tracing::subscriber::with_default(subscriber, || {
///     let _r = tracing::info_span!("embed_pipeline", request_id = 42u64).entered();
///     tracing::warn!("a log line, to the writer");
/// });
/// guard.flush();
/// assert_eq!(rx.try_recv(), Ok(42));
/// # Ok::<(), hdrtrace::InstallError>(())
/// ```
pub struct Builder {
    config: TracingConfig,
    sinks: Sinks,
    log_writer: Option<LogWriter>,
}

impl Builder {
    /// Starts from a config (validated in [`Builder::build`]).
    pub fn new(config: &TracingConfig) -> Self {
        Self {
            config: config.clone(),
            sinks: Vec::new(),
            log_writer: None,
        }
    }

    /// Where log lines go (events at or above `log_level`); stderr when not
    /// set. Only the `hdrtrace-logs` thread ever writes to it, so a writer
    /// that blocks or fails never holds up a recording thread: lines that do
    /// not fit their thread's ring meanwhile are dropped and counted. A
    /// writer that panics is dropped, reported once and counted
    /// (`Counters::failed_log_writers`), and every later line is counted as
    /// dropped. Dropping the guard waits at most 2 s for a writer that
    /// blocks, then gives it up and counts the lines it did not confirm.
    /// Lines the writer itself logs are dropped and counted.
    pub fn log_writer(mut self, writer: impl std::io::Write + Send + 'static) -> Self {
        self.log_writer = Some(Box::new(writer));
        self
    }

    /// Adds a sink that receives every captured request on the aggregator thread.
    pub fn sink(mut self, sink: impl RequestSink) -> Self {
        self.sinks.push(Box::new(sink));
        self
    }

    /// Validates the config, preallocates the slot table and starts the
    /// aggregator thread. The subscriber is not installed anywhere.
    pub fn build(self) -> Result<(HdrSubscriber, TracingGuard), InstallError> {
        let (core, guard) = self.start(true)?;
        Ok((HdrSubscriber { core }, guard))
    }

    /// Like [`Builder::build`], but the recording core comes as a
    /// `tracing_subscriber::Layer` for a `Registry` stack (same core, same
    /// histograms; the Registry allocates per span, see docs/performance.md).
    /// It writes no log lines: a Registry stack has its own (`fmt`).
    #[cfg(feature = "layer")]
    pub fn build_layer(self) -> Result<(crate::HdrLayer, TracingGuard), InstallError> {
        let (core, guard) = self.start(false)?;
        let ids = Arc::new(crate::recording::layer_ids::IdMap::new(
            core.slot_capacity(),
        ));
        Ok((crate::HdrLayer { core, ids }, guard))
    }

    fn start(self, with_logs: bool) -> Result<(Arc<Core>, TracingGuard), InstallError> {
        let config = self.config;
        config_check(&config)?;
        let sinks = self.sinks;
        let handoff = Arc::new(Handoff::new(config.ring_capacity));
        let (hub, log_thread) = if with_logs && config.log_level != LevelFilter::OFF {
            let out = self
                .log_writer
                .unwrap_or_else(|| Box::new(std::io::stderr()));
            let (hub, thread) =
                LogThread::start(out, handoff.clone()).map_err(|source| InstallError::Thread {
                    thread: "hdrtrace-logs",
                    source,
                })?;
            (Some(hub), Some(thread))
        } else {
            (None, None)
        };
        #[cfg(feature = "otel")]
        let (sinks, otel) = with_otel(sinks, &config)?;
        let (control_tx, control_rx) = crossbeam_channel::bounded(16);
        let Wired {
            core,
            publisher,
            aggregator,
        } = wire(&config, handoff, hub, sinks)?;
        let thread = aggregator
            .spawn(control_rx)
            .map_err(|source| InstallError::Thread {
                thread: "hdrtrace-aggregator",
                source,
            })?;
        let guard = TracingGuard {
            shared: Arc::new(Shared {
                core: core.clone(),
                publisher,
                control: control_tx,
                thread: Mutex::new(Some(thread)),
                log_thread: Mutex::new(log_thread),
                config,
                global: AtomicBool::new(false),
            }),
            #[cfg(feature = "otel")]
            otel,
        };
        Ok((core, guard))
    }
}

/// One subscriber's steps, wired and not yet running: the recording core,
/// the aggregator that drains its hand-off, and the publisher the aggregator
/// publishes through.
pub(crate) struct Wired {
    pub(crate) core: Arc<Core>,
    pub(crate) publisher: Arc<Publisher<SnapshotData>>,
    pub(crate) aggregator: Aggregator,
}

/// The one place the steps are put together: [`Builder`] then starts the
/// aggregator on its own thread, the ingest bench drives it by hand.
pub(crate) fn wire(
    config: &TracingConfig,
    handoff: Arc<Handoff>,
    logs: Option<Arc<LogHub>>,
    sinks: Sinks,
) -> Result<Wired, ConfigError> {
    let core = Arc::new(Core::new(config, handoff.clone(), logs)?);
    let publisher = Arc::new(Publisher::new(SnapshotData {
        window: config.window,
        ..SnapshotData::default()
    }));
    let aggregator = Aggregator::new(
        handoff,
        core.clock.clone(),
        publisher.clone(),
        config,
        sinks,
    );
    Ok(Wired {
        core,
        publisher,
        aggregator,
    })
}

/// Adds the OTLP exporter when `otel_endpoint` is set. It is fed by the
/// aggregator like any sink, so it works with either front end and never
/// touches the hot path.
/// The sinks a subscriber feeds.
pub(crate) type Sinks = Vec<Box<dyn RequestSink>>;

#[cfg(feature = "otel")]
fn with_otel(
    mut sinks: Sinks,
    config: &TracingConfig,
) -> Result<(Sinks, Option<crate::export::otel::OtlpStats>), InstallError> {
    let Some(endpoint) = &config.otel_endpoint else {
        return Ok((sinks, None));
    };
    let (sink, stats) = crate::export::otel::OtlpSink::builder(endpoint).build()?;
    sinks.push(Box::new(sink));
    Ok((sinks, Some(stats)))
}

/// Builds a subscriber without installing it: use it with
/// `tracing::subscriber::with_default` (tests, benches, several instances in one
/// process). The guard queries it and stops its aggregator when dropped.
pub fn build(config: &TracingConfig) -> Result<(HdrSubscriber, TracingGuard), InstallError> {
    Builder::new(config).build()
}

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Installs the subscriber as the global default. A second call (or any other
/// global subscriber already set) returns [`InstallError::AlreadyInstalled`].
pub fn init_tracing(config: &TracingConfig) -> Result<TracingGuard, InstallError> {
    init_with(Builder::new(config))
}

/// `init_tracing` with a [`Builder`].
pub fn init_with(builder: Builder) -> Result<TracingGuard, InstallError> {
    config_check(&builder.config)?;
    // AcqRel: the first caller wins; everyone else sees `true`.
    if INSTALLED.swap(true, Ordering::AcqRel) {
        return Err(InstallError::AlreadyInstalled);
    }
    let installed = if builder.config.tokio_console {
        install_registry(builder)
    } else {
        builder
            .build()
            .map(|(subscriber, guard)| (tracing_core::Dispatch::new(subscriber), guard))
    };
    let (dispatch, guard) = match installed {
        Ok(pair) => pair,
        Err(e) => {
            INSTALLED.store(false, Ordering::Release);
            return Err(e);
        }
    };
    if tracing_core::dispatcher::set_global_default(dispatch).is_err() {
        return Err(InstallError::AlreadyInstalled);
    }
    // Relaxed: read only by this guard's own drop, on a thread that got the
    // guard through ordinary ownership transfer.
    guard.shared.global.store(true, Ordering::Relaxed);
    // The interest cache may hold answers from before the install.
    tracing_core::callsite::rebuild_interest_cache();
    Ok(guard)
}

fn config_check(config: &TracingConfig) -> Result<(), ConfigError> {
    config.validate()?;
    if config.otel_endpoint.is_some() && !cfg!(feature = "otel") {
        return Err(ConfigError::invalid(
            "otel_endpoint",
            "needs the `otel` cargo feature: build with --features otel",
        ));
    }
    if config.tokio_console && !cfg!(feature = "tokio-console") {
        return Err(ConfigError::invalid(
            "tokio_console",
            "needs the `tokio-console` cargo feature: build with --features tokio-console",
        ));
    }
    Ok(())
}

/// tokio-console's layer needs a Registry: the core runs as a Layer beside it.
#[cfg(feature = "tokio-console")]
fn install_registry(
    builder: Builder,
) -> Result<(tracing_core::Dispatch, TracingGuard), InstallError> {
    use tracing_subscriber::layer::SubscriberExt;
    let addr = builder.config.console_addr;
    // Fail early, with the address, rather than in the console's server thread.
    drop(
        std::net::TcpListener::bind(addr)
            .map_err(|source| InstallError::Console { addr, source })?,
    );
    let (layer, guard) = builder.build_layer()?;
    let console = console_subscriber::ConsoleLayer::builder()
        .server_addr(addr)
        .spawn();
    let stack = tracing_subscriber::registry().with(console).with(layer);
    Ok((tracing_core::Dispatch::new(stack), guard))
}

#[cfg(not(feature = "tokio-console"))]
fn install_registry(
    _builder: Builder,
) -> Result<(tracing_core::Dispatch, TracingGuard), InstallError> {
    Err(ConfigError::invalid(
        "tokio_console",
        "needs the `tokio-console` cargo feature: build with --features tokio-console",
    )
    .into())
}

/// Recomputes every callsite's cached interest from the switch now in force.
///
/// Not `tracing_core::callsite::rebuild_interest_cache`: while one dispatcher
/// is registered, that asks the *calling* thread's default, which is the no-op
/// on a thread where this subscriber is not the default, and would cache
/// every callsite as "never" (and the max level as OFF) while the switch says
/// on (tokio-rs/tracing#2874). Registering a dispatcher instead rebuilds
/// every callsite from all live registered dispatchers, so a short-lived one
/// for this core gets the answer from this subscriber wherever it is called.
/// That rebuild runs under tracing-core's registry write lock, so it is
/// ordered with every other registration's: the caller stored the switch
/// before it, so the last rebuild after the last change reads the last value,
/// however toggles from several threads interleave.
fn refresh_interest(core: &Arc<Core>) {
    drop(tracing_core::Dispatch::new(HdrSubscriber {
        core: core.clone(),
    }));
}

pub(crate) struct Shared {
    pub(crate) core: Arc<Core>,
    publisher: Arc<Publisher<SnapshotData>>,
    control: Sender<Control>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Writes the log lines; stopped (after a last drain) when the guard drops.
    log_thread: Mutex<Option<LogThread>>,
    pub(crate) config: TracingConfig,
    /// Installed with `init_tracing` (not scoped).
    global: AtomicBool,
}

/// Controls a subscriber: query, flush, switch, re-sample. Dropping it flushes
/// every ring, stops the aggregator thread and switches the subscriber off; no
/// record of a span closed before the drop is lost.
pub struct TracingGuard {
    pub(crate) shared: Arc<Shared>,
    /// The OTLP exporter's statistics, when `otel_endpoint` was set.
    #[cfg(feature = "otel")]
    otel: Option<crate::export::otel::OtlpStats>,
}

impl std::fmt::Debug for TracingGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracingGuard")
            .field("enabled", &self.is_enabled())
            .field("sampling_rate", &self.sampling_rate())
            .finish()
    }
}

impl TracingGuard {
    /// Drains every ring into the histograms and publishes a snapshot before it
    /// returns: every span closed before the call is counted in `snapshot()`.
    /// If the aggregator thread has died it returns at once, and the snapshot
    /// says why ([`LatencySnapshot::aggregator_failure`]);
    /// [`try_flush`](Self::try_flush) returns that as an error. Called on the
    /// aggregator thread (from a [`RequestSink`]) it returns at once and does
    /// nothing.
    pub fn flush(&self) {
        let _ = self.try_flush();
    }

    /// [`flush`](Self::flush), or [`FlushError::Stopped`] when the aggregator
    /// thread has died (nothing recorded since then is aggregated), or
    /// [`FlushError::OnAggregatorThread`] when called from a [`RequestSink`].
    pub fn try_flush(&self) -> Result<(), FlushError> {
        if self.on_aggregator_thread() {
            return Err(FlushError::OnAggregatorThread { what: "flush" });
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        if self.shared.control.send(Control::Flush(tx)).is_ok() {
            loop {
                match rx.recv_timeout(std::time::Duration::from_millis(20)) {
                    Ok(version) => {
                        // The aggregator published `version` before replying;
                        // the epoch's acquire load makes `snapshot()` see it.
                        debug_assert!(self.shared.publisher.epoch() >= version);
                        return Ok(());
                    }
                    // A request queued as the thread died is never answered
                    // (nor dropped: the channel lives on with this sender).
                    Err(RecvTimeoutError::Timeout) if !self.aggregator_running() => break,
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        }
        Err(FlushError::Stopped {
            reason: self
                .snapshot()
                .aggregator_failure()
                .unwrap_or("the aggregator thread has stopped")
                .to_string(),
        })
    }

    fn on_aggregator_thread(&self) -> bool {
        self.shared.core.on_aggregator_thread()
    }

    fn aggregator_running(&self) -> bool {
        self.shared
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|t| !t.is_finished())
    }

    /// The latest published snapshot (call [`flush`](Self::flush) first for one
    /// that includes everything closed so far).
    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot(self.shared.publisher.load())
    }

    /// A cheap, cloneable handle that yields the latest published snapshot, for
    /// a metrics server or exporter thread. It stays valid after the guard is
    /// dropped, and then yields the final snapshot.
    pub fn snapshot_source(&self) -> crate::read::source::SnapshotSource {
        crate::read::source::SnapshotSource(self.shared.publisher.clone())
    }

    /// What the OTLP exporter sent, dropped and failed at (`None` without an
    /// `otel_endpoint`).
    #[cfg(feature = "otel")]
    pub fn otel_stats(&self) -> Option<&crate::export::otel::OtlpStats> {
        self.otel.as_ref()
    }

    /// Flushes, then returns the snapshot.
    pub fn flushed_snapshot(&self) -> LatencySnapshot {
        self.flush();
        self.snapshot()
    }

    /// Changes the head-sampling rate at run time (0.0 to 1.0).
    pub fn set_sampling_rate(&self, rate: f32) -> Result<(), ConfigError> {
        if !rate.is_finite() || !(0.0..=1.0).contains(&rate) {
            return Err(ConfigError::invalid(
                "sampling_rate",
                format!("must be a number from 0.0 to 1.0, got {rate}"),
            ));
        }
        self.shared.core.sampler.set_rate(rate);
        Ok(())
    }

    /// The head-sampling rate in force.
    pub fn sampling_rate(&self) -> f32 {
        self.shared.core.sampler.rate()
    }

    /// Switches recording on or off at run time, from any thread. Off, every
    /// instrumented site costs one relaxed atomic load (the callsite interest
    /// cache is rebuilt); on again, every site records again.
    ///
    /// ```
    /// let (subscriber, guard) = hdrtrace::build(&hdrtrace::TracingConfig::default()).unwrap();
    /// let dispatch = tracing::Dispatch::new(subscriber);
    /// let request = |id: u64| {
    ///     tracing::dispatcher::with_default(&dispatch, || {
    ///         let _r = tracing::info_span!("embed_pipeline", request_id = id).entered();
    ///         tracing::info_span!("model", model_id = "Causal").in_scope(|| {});
    ///     })
    /// };
    /// guard.set_enabled(false); // from a thread where it is not the default
    /// request(1);
    /// guard.set_enabled(true);
    /// request(2);
    /// assert_eq!(guard.flushed_snapshot().model("Causal").unwrap().count(), 1);
    /// ```
    pub fn set_enabled(&self, on: bool) {
        if self.shared.core.switch.set(on) != on {
            refresh_interest(&self.shared.core);
        }
    }

    /// Whether recording is on.
    pub fn is_enabled(&self) -> bool {
        self.shared.core.switch.is_on()
    }

    /// The config this subscriber was built with.
    pub fn config(&self) -> &TracingConfig {
        &self.shared.config
    }

    /// The number of span slots (open spans at once).
    pub fn slot_capacity(&self) -> usize {
        self.shared.core.slot_capacity()
    }
}

impl Drop for TracingGuard {
    fn drop(&mut self) {
        let handle = self
            .shared
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        // The log thread first: its last drain's count is then in the
        // aggregator's final snapshot.
        drop(
            self.shared
                .log_thread
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        if self.on_aggregator_thread() {
            // Dropped by a sink: the aggregator cannot join itself. It stops
            // once the sink returns (with the channel full, once this guard's
            // sender is dropped, which reads as a stop); its handle is
            // dropped, so the thread is detached.
            let _ = self.shared.control.try_send(Control::Stop);
            drop(handle);
        } else {
            let _ = self.shared.control.send(Control::Stop);
            if let Some(h) = handle {
                let _ = h.join();
            }
        }
        self.shared.core.retire();
        // A global subscriber stays installed: rebuilding makes every site cost
        // one relaxed load again. A scoped one is simply dropped; rebuilding
        // while other threads register dispatchers races in tracing-core
        // (tokio-rs/tracing#2743) and could disable a callsite for a moment.
        // Relaxed: see where it is stored.
        if self.shared.global.load(Ordering::Relaxed) {
            tracing_core::callsite::rebuild_interest_cache();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dead aggregator is reported by `try_flush`, by the snapshot and by
    /// every snapshot source, and `flush` returns at once.
    #[test]
    fn a_dead_aggregator_is_reported_not_hidden() {
        let (_subscriber, guard) = build(&TracingConfig::default()).unwrap();
        let source = guard.snapshot_source();
        guard.shared.control.send(Control::Panic).unwrap();
        match guard.try_flush() {
            Err(FlushError::Stopped { reason: why }) => {
                assert!(why.contains("panicked (injected by a test)"), "{why}")
            }
            other => panic!("a dead aggregator flushed: {other:?}"),
        }
        guard.flush();
        let failure = guard.snapshot().aggregator_failure().map(str::to_string);
        assert!(failure.is_some_and(|f| f.contains("nothing is aggregated since")));
        assert!(source.snapshot().aggregator_failure().is_some());
    }
}
