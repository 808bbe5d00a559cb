//! The aggregator: one background thread that drains every thread's ring into
//! per-model and per-stage HDR histograms, assembles requests, and publishes
//! immutable snapshots. It is the only part of the crate that allocates while
//! tracing runs (a new model name, a snapshot, a captured request).

pub mod decode;
pub(crate) mod portable;
pub(crate) mod publish;
pub(crate) mod requests;
pub(crate) mod series;
pub(crate) mod sinks;
pub(crate) mod snapshot;
pub(crate) mod source;

use crate::record::{FieldValue, InlineText, Record, RecordKind, SpanClass, Status};
use crate::ring::Consumer;
use crate::subscriber::core::Core;
use crossbeam_channel::{Receiver, Sender};
use publish::{Publisher, Versioned};
use requests::{judge, Assembler, Captures, Finished, RequestTrace};
use rustc_hash::FxHashMap;
use series::Series;
use sinks::Sinks;
use snapshot::{Counters, Latencies, Latency, ModelLatency, SnapshotData};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The default span field a GPU model reports its device time in
/// (nanoseconds; [`Conventions::device_time_field`](crate::Conventions::device_time_field)).
pub const GPU_FIELD: &str = "gpu_ns";

/// Receives every captured request (sampled, over budget, failed) once it is
/// final, on the aggregator thread. Exporters and event channels implement it.
pub trait RequestSink: Send + 'static {
    /// A request was captured. Must not block for long: it runs on the
    /// aggregator thread.
    fn captured(&mut self, trace: &Arc<RequestTrace>);
    /// Called on `flush()` and at shutdown, after the last `captured`.
    fn flush(&mut self) {}
}

impl Versioned for SnapshotData {
    fn version(&self) -> u64 {
        self.version
    }
}

pub(crate) enum Control {
    /// Drain, finalize and publish; the reply is the published version.
    Flush(Sender<u64>),
    /// The aggregator panics, as a bug in it would (tests only).
    #[cfg(test)]
    Panic,
    Stop,
}

struct Aggregator {
    core: Arc<Core>,
    publisher: Arc<Publisher<SnapshotData>>,
    consumers: Vec<Consumer<Record>>,
    // Fx hashing: these maps are hit once per record, with short trusted keys.
    models: FxHashMap<InlineText, Series>,
    stages: FxHashMap<&'static str, Series>,
    /// Per callsite (metadata address): the index of its `gpu_ns` field.
    gpu_fields: FxHashMap<usize, Option<usize>>,
    assembler: Assembler,
    captures: Captures,
    sinks: Sinks,
    counters: Counters,
    retired_drops: u64,
    start: Instant,
    slice: Duration,
    window: Duration,
    target: Duration,
    publish_every: Duration,
    last_publish: Instant,
    version: u64,
}

pub(crate) struct Settings {
    pub(crate) window: Duration,
    pub(crate) target: Duration,
    pub(crate) publish_every: Duration,
    pub(crate) capture_capacity: usize,
}

/// Starts the aggregator thread.
pub(crate) fn spawn(
    core: Arc<Core>,
    publisher: Arc<Publisher<SnapshotData>>,
    control: Receiver<Control>,
    wake: Receiver<()>,
    settings: Settings,
    sinks: Vec<Box<dyn RequestSink>>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let now = Instant::now();
    let mut agg = Aggregator {
        core,
        publisher,
        consumers: Vec::new(),
        models: FxHashMap::default(),
        stages: FxHashMap::default(),
        gpu_fields: FxHashMap::default(),
        assembler: Assembler::new(),
        captures: Captures::new(settings.capture_capacity),
        sinks: Sinks::new(sinks),
        counters: Counters::default(),
        retired_drops: 0,
        start: now,
        slice: settings.window / series::SLICES as u32,
        window: settings.window,
        target: settings.target,
        publish_every: settings.publish_every,
        last_publish: now,
        version: 0,
    };
    let tick = settings.publish_every.min(Duration::from_millis(5));
    std::thread::Builder::new()
        .name("hdrtrace-aggregator".into())
        .spawn(move || {
            let publisher = agg.publisher.clone();
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                agg.run(&control, &wake, tick)
            }));
            if let Err(panic) = run {
                publish_failure(&publisher, &*panic);
            }
            // Only now: a `flush` waiting on the channel sees it close after
            // the failure is published.
            drop(control);
        })
}

/// The aggregator thread panicked: its last snapshot is published again,
/// saying so, so that `snapshot()` and every reader see it stopped (and
/// `flush()`, whose channel is now closed, returns at once).
fn publish_failure(publisher: &Publisher<SnapshotData>, panic: &(dyn std::any::Any + Send)) {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    let reason = format!("the aggregator thread panicked ({what}); nothing is aggregated since");
    eprintln!("hdrtrace: {reason}");
    let last = publisher.load();
    publisher.publish(SnapshotData {
        version: last.version + 1,
        aggregator_failure: Some(reason.into()),
        ..SnapshotData::clone(&last)
    });
}

impl Aggregator {
    fn run(&mut self, control: &Receiver<Control>, wake: &Receiver<()>, tick: Duration) {
        loop {
            let msg = crossbeam_channel::select! {
                recv(control) -> m => Some(m.unwrap_or(Control::Stop)),
                recv(wake) -> _ => None,
                default(tick) => None,
            };
            let now = Instant::now();
            self.drain(now);
            match msg {
                Some(Control::Flush(done)) => {
                    self.sweep(now, false);
                    self.flush_sinks();
                    self.publish(now);
                    let _ = done.send(self.version);
                }
                #[cfg(test)]
                Some(Control::Panic) => panic!("injected by a test"),
                Some(Control::Stop) => {
                    self.sweep(now, true);
                    self.flush_sinks();
                    self.publish(now);
                    return;
                }
                None => {
                    if now.duration_since(self.last_publish) >= self.publish_every {
                        self.sweep(now, false);
                        self.publish(now);
                    }
                }
            }
        }
    }

    fn slice_of(&self, now: Instant) -> u64 {
        (now.duration_since(self.start).as_nanos() / self.slice.as_nanos().max(1)) as u64
    }

    /// Drains every ring until all are empty.
    fn drain(&mut self, now: Instant) {
        {
            let mut new = self
                .core
                .new_rings
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            self.consumers.append(&mut new);
        }
        let slice = self.slice_of(now);
        let mut finished = Vec::new();
        // Taken out for the loop, so each record is read where it lies in its
        // ring while `self` is updated (a `Vec` moved out and back: no
        // allocation).
        let mut consumers = std::mem::take(&mut self.consumers);
        let mut retired = 0;
        consumers.retain_mut(|consumer| {
            // Asked before the drain: a ring whose thread had already ended
            // then is empty after it, so it can go (its drop count is kept).
            // Asked after, the thread could have pushed its last records and
            // ended in between, and they would be lost uncounted.
            let orphaned = consumer.is_orphaned();
            while let Some(done) = consumer.pop_with(|r| {
                self.aggregate(r, slice);
                self.assembler.add(r, now)
            }) {
                finished.extend(done);
            }
            if orphaned {
                retired += consumer.dropped();
            }
            !orphaned
        });
        self.consumers = consumers;
        self.retired_drops += retired;
        self.finish(finished);
    }

    fn aggregate(&mut self, r: &Record, slice: u64) {
        if r.kind == RecordKind::Event {
            self.counters.events += 1;
            return;
        }
        self.counters.spans += 1;
        if r.class == SpanClass::Request {
            self.counters.requests += 1;
            self.counters.sampled_requests += r.sampled as u64;
        }
        let clock = &self.core.clock;
        let wall = clock.nanos_between(r.start, r.end);
        let busy = clock.ticks_to_nanos(r.busy);
        let series = match r.class {
            SpanClass::Model if !r.text.is_empty() => {
                self.models.entry(r.text).or_insert_with(Series::new)
            }
            _ => self
                .stages
                .entry(r.metadata.name())
                .or_insert_with(Series::new),
        };
        series.wall.record(wall, slice);
        series.busy.record(busy, slice);
        series.dirty = true;
        match r.status {
            Status::Ok => {}
            Status::Error => series.errors += 1,
            Status::Timeout => series.timeouts += 1,
        }
        if r.fields.len == 0 {
            return;
        }
        let meta = r.metadata;
        let gpu_field = *self
            .gpu_fields
            .entry(meta as *const _ as usize)
            .or_insert_with(|| {
                let name = &self.core.callsites.conventions().device_time_field;
                meta.fields().field(name).map(|f| f.index())
            });
        let Some(gpu_field) = gpu_field else {
            return;
        };
        for (i, v) in r.fields.iter() {
            if i == gpu_field {
                let ns = match v {
                    FieldValue::U64(n) => n,
                    FieldValue::I64(n) => n.max(0) as u64,
                    FieldValue::F64(n) => n.max(0.0) as u64,
                    FieldValue::Bool(_) => continue,
                };
                series
                    .gpu
                    .get_or_insert_with(series::Windowed::new)
                    .record(ns, slice);
            }
        }
    }

    fn finish(&mut self, finished: Vec<Finished>) {
        for f in finished {
            let Some(trace) = judge(f, &self.core.clock, self.target) else {
                continue;
            };
            if trace.reason.over_budget {
                if let Some(a) = &trace.attribution {
                    let key = InlineText::from_str_truncated(&a.model);
                    if let Some(s) = self.models.get_mut(&key) {
                        s.blamed += 1;
                        s.dirty = true;
                    }
                }
            }
            self.counters.captured_requests += 1;
            let trace = Arc::new(trace);
            self.sinks.captured(&trace);
            self.captures.keep(trace);
        }
    }

    fn sweep(&mut self, now: Instant, force: bool) {
        let finished = self.assembler.sweep(now, force);
        self.finish(finished);
    }

    fn flush_sinks(&mut self) {
        self.sinks.flush();
    }

    fn publish(&mut self, now: Instant) {
        let slice = self.slice_of(now);
        let mut all = Latencies::default();
        let mut recent = Latencies::default();
        for (key, s) in &mut self.models {
            let (a, r) = view(s, slice);
            all.models.insert(key.as_str().to_string(), a);
            recent.models.insert(key.as_str().to_string(), r);
        }
        for (key, s) in &mut self.stages {
            let (a, r) = view(s, slice);
            all.stages.insert(key.to_string(), a);
            recent.stages.insert(key.to_string(), r);
        }
        self.version += 1;
        let mut counters = self.counters;
        // Relaxed: statistics; a flush's channel handshake orders what matters.
        counters.dropped_spans = self
            .core
            .dropped_spans
            .load(std::sync::atomic::Ordering::Relaxed);
        counters.dropped_records = self.retired_drops
            + self.consumers.iter().map(|c| c.dropped()).sum::<u64>()
            + self
                .core
                .orphan_drops
                .load(std::sync::atomic::Ordering::Relaxed);
        counters.late_records = self.assembler.late_records;
        counters.unmatched_enters = self
            .core
            .unmatched_enters
            .load(std::sync::atomic::Ordering::Relaxed);
        counters.failed_sinks = self.sinks.failed;
        // Relaxed: a statistic.
        counters.dropped_log_lines = self
            .core
            .logs
            .as_ref()
            .map_or(0, |l| l.dropped.load(std::sync::atomic::Ordering::Relaxed));
        self.publisher.publish(SnapshotData {
            version: self.version,
            taken_at: Some(SystemTime::now()),
            window: self.window,
            all,
            recent,
            counters,
            captured: self.captures.recent.iter().cloned().collect(),
            slowest: self.captures.slowest.clone(),
            aggregator_failure: None,
        });
        self.last_publish = now;
    }
}

/// The series' published views, rebuilt only when it changed or the window
/// moved on.
fn view(s: &mut Series, slice: u64) -> (Arc<ModelLatency>, Arc<ModelLatency>) {
    if let Some((a, r, at)) = &s.cache {
        if !s.dirty && *at == slice {
            return (a.clone(), r.clone());
        }
    }
    let make = |wall, busy, gpu: Option<hdrhistogram::Histogram<u64>>| {
        Arc::new(ModelLatency {
            wall: Latency::new(wall),
            busy: Latency::new(busy),
            gpu: gpu.map(Latency::new),
            errors: s.errors,
            timeouts: s.timeouts,
            blamed: s.blamed,
        })
    };
    let views = (
        make(
            s.wall.total(),
            s.busy.total(),
            s.gpu.as_ref().map(|g| g.total()),
        ),
        make(
            s.wall.window(slice),
            s.busy.window(slice),
            s.gpu.as_mut().map(|g| g.window(slice)),
        ),
    );
    s.cache = Some((views.0.clone(), views.1.clone(), slice));
    s.dirty = false;
    views
}
