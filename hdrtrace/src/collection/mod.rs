//! The aggregator: one background thread that drains every thread's ring into
//! per-model and per-stage HDR histograms, assembles requests, and publishes
//! immutable snapshots. It is the only part of the crate that allocates while
//! tracing runs (a new key's series, a snapshot, a captured request); the
//! common record (a span of a fast, successful, unsampled request) costs it no
//! allocation.

pub(crate) mod assembly;
pub(crate) mod batches;
pub(crate) mod keys;
pub(crate) mod series;
pub(crate) mod sinks;

use crate::clock::Clock;
use crate::config::TracingConfig;
use crate::handoff::record::{FieldValue, Record, RecordKind, SpanClass, Status};
use crate::handoff::{Drained, Handoff, Rings, Take};
use crate::read::publish::{Publisher, Versioned};
use crate::read::requests::{Captures, Outcome, RequestTrace};
use crate::read::snapshot::{Counters, Latencies, Latency, ModelLatency, SnapshotData};
use assembly::{Assembler, Judge};
use batches::{Batches, Service};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use keys::Keys;
use rustc_hash::FxHashMap;
use series::{Account, Series, Windowed};
use sinks::Sinks;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Receives every captured request (sampled, over budget, failed) once it is
/// final, on the aggregator thread. Exporters and event channels implement it.
///
/// Its methods run on the aggregator thread, between drains: while one runs,
/// nothing is aggregated or published, and recording threads whose rings
/// fill drop (and count) their records. So a sink must not block for long.
/// A sink that panics is dropped, reported once on stderr and counted in
/// `Counters::failed_sinks`; aggregation goes on without it.
///
/// A sink may call back into the subscriber that feeds it, and none of it
/// waits on the aggregator thread it runs on:
/// - `TracingGuard::flush` and `try_flush` return at once, with
///   [`FlushError::OnAggregatorThread`](crate::FlushError::OnAggregatorThread)
///   from `try_flush` (the aggregator cannot answer while it runs the sink);
///   the snapshot readers (`snapshot`, a `SnapshotSource`) work as anywhere.
/// - Dropping the `TracingGuard` asks the aggregator to stop and does not
///   wait for it: it stops once the sink returns, after a final snapshot.
/// - Spans and events it records in this subscriber are ignored, never
///   aggregated or captured (a request span per captured request would
///   otherwise feed the sink forever), and counted in
///   `Counters::aggregator_thread_records`.
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

/// Records drained from each ring between two series while a snapshot is
/// built: enough to keep a ring from filling, small enough to keep building.
const DRAIN_STEP: usize = 1024;
/// Slots drained from each ring per pass of the aggregator's loop.
const DRAIN_PASS: usize = 4096;
/// Series whose views are built between two such drains.
const SERIES_STEP: usize = 4;
/// The largest a grown ring may be (records).
const MAX_RING_GROWN: usize = 1 << 22;

/// Per callsite (metadata address): the index of its device time field and
/// of its batch size field.
pub(crate) type FieldIndex = FxHashMap<usize, (Option<usize>, Option<usize>)>;

/// Everything the aggregator keeps, apart from the rings it drains.
pub(crate) struct State {
    clock: Clock,
    keys: Keys,
    field_index: FieldIndex,
    /// The device time field's name (`Conventions::device_time_field`).
    device_field: Arc<str>,
    /// The batch size field's name (`Conventions::batch_size_field`).
    batch_size_field: Arc<str>,
    assembler: Assembler,
    /// Recent batches, for the requests they served.
    pub(crate) batches: Batches,
    /// Complete requests waiting for a batch their model span links to: the
    /// request root spans, by batch span.
    deferred: FxHashMap<u64, Vec<u64>>,
    /// Model spans whose links record took over their busy sample (see
    /// `batches`), until their span record comes, by span ID; forgotten
    /// after `GRACE`.
    linked_models: FxHashMap<u64, Instant>,
    kept: Kept,
    counters: Counters,
    start: Instant,
    slice: Duration,
    target: Duration,
    max_capture_spans: usize,
}

/// Where kept requests go.
struct Kept {
    captures: Captures,
    sinks: Sinks,
    count: u64,
    /// Requests judged degraded.
    degraded: u64,
}

pub(crate) struct Aggregator {
    handoff: Arc<Handoff>,
    rings: Rings,
    state: State,
    publisher: Arc<Publisher<SnapshotData>>,
    window: Duration,
    publish_every: Duration,
    last_publish: Instant,
    version: u64,
    /// When the last drain ended, while the aggregator has been busy since.
    busy_since: Option<Instant>,
    longest_gap: Duration,
    /// The first malformed traceparent has been reported.
    warned_traceparent: bool,
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
    pub(crate) fn new(
        handoff: Arc<Handoff>,
        clock: Clock,
        publisher: Arc<Publisher<SnapshotData>>,
        config: &TracingConfig,
        sinks: Vec<Box<dyn RequestSink>>,
    ) -> Self {
        let now = Instant::now();
        Self {
            handoff,
            // Rings grow within `memory_budget`'s worth of records in all.
            rings: Rings::new(
                (config.ring_capacity.max(2).next_power_of_two() * crate::handoff::RING_GROWTH)
                    .min(MAX_RING_GROWN),
                config.memory_budget / crate::handoff::SLOT_BYTES,
            ),
            state: State {
                clock,
                keys: Keys::new(
                    config.max_models,
                    config.max_stages,
                    config.histogram_budget(),
                ),
                field_index: FxHashMap::default(),
                device_field: config.conventions.device_time_field.clone(),
                batch_size_field: config.conventions.batch_size_field.clone(),
                // Batches get an eighth of what pending requests may hold.
                assembler: Assembler::new(
                    (config.pending_budget() - config.pending_budget() / 8) / assembly::UNIT_BYTES,
                ),
                batches: Batches::new(
                    config.pending_budget() / 8 / assembly::UNIT_BYTES,
                    assembly::GRACE,
                ),
                deferred: FxHashMap::default(),
                linked_models: FxHashMap::default(),
                kept: Kept {
                    captures: Captures::new(config.capture_capacity),
                    sinks: Sinks::new(sinks),
                    count: 0,
                    degraded: 0,
                },
                counters: Counters::default(),
                start: now,
                slice: config.window / series::SLICES as u32,
                target: config.latency_target,
                max_capture_spans: config.max_capture_spans,
            },
            publisher,
            window: config.window,
            publish_every: config.flush_interval,
            last_publish: now,
            version: 0,
            busy_since: None,
            longest_gap: Duration::ZERO,
            warned_traceparent: false,
        }
    }

    /// Starts the aggregator thread. A panic in it is caught and published
    /// (see `publish_failure`) before its control channel closes.
    pub(crate) fn spawn(
        mut self,
        control: Receiver<Control>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let tick = self.publish_every.min(Duration::from_millis(5));
        std::thread::Builder::new()
            .name("hdrtrace-aggregator".into())
            .spawn(move || {
                self.handoff.set_aggregator_thread();
                let publisher = self.publisher.clone();
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.run(&control, tick)
                }));
                if let Err(panic) = run {
                    publish_failure(&publisher, &*panic);
                }
                // Only now: a `flush` waiting on the channel sees it close
                // after the failure is published.
                drop(control);
            })
    }

    /// Waits for work, drains one fair pass of every ring, and answers a
    /// control message or publishes when due. While a pass leaves records
    /// behind it does not wait, but still answers and publishes between
    /// passes: a producer that keeps its ring full delays a flush's reply or
    /// a due snapshot by one pass of every ring, not until its ring is empty.
    fn run(&mut self, control: &Receiver<Control>, tick: Duration) {
        let wake = self.handoff.wake_receiver().clone();
        let mut backlog = false;
        loop {
            let msg = if backlog {
                match control.try_recv() {
                    Ok(m) => Some(m),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => Some(Control::Stop),
                }
            } else {
                self.idle();
                crossbeam_channel::select! {
                    recv(control) -> m => Some(m.unwrap_or(Control::Stop)),
                    recv(wake) -> _ => None,
                    default(tick) => None,
                }
            };
            let now = Instant::now();
            // A flush or stop owes its caller every record pushed before it;
            // otherwise one pass.
            let take = match msg {
                Some(Control::Flush(_) | Control::Stop) => Take::Present,
                _ => Take::Up(DRAIN_PASS),
            };
            backlog = self.drain(now, take).backlog;
            match msg {
                Some(Control::Flush(done)) => {
                    self.state.sweep(now, false);
                    self.state.kept.flush_sinks();
                    self.publish(now);
                    let _ = done.send(self.version);
                }
                #[cfg(test)]
                Some(Control::Panic) => panic!("injected by a test"),
                Some(Control::Stop) => {
                    self.state.sweep(now, true);
                    self.state.kept.flush_sinks();
                    self.publish(now);
                    return;
                }
                None => {
                    if now.duration_since(self.last_publish) >= self.publish_every {
                        self.state.sweep(now, false);
                        self.publish(now);
                    }
                }
            }
        }
    }

    /// About to wait for work: the busy stretch since the last drain ends.
    fn idle(&mut self) {
        if let Some(end) = self.busy_since.take() {
            self.longest_gap = self.longest_gap.max(end.elapsed());
        }
    }

    /// Drains every ring (as much of each as `take` says) into the state.
    pub(crate) fn drain(&mut self, now: Instant, take: Take) -> Drained {
        self.idle();
        let slice = self.state.slice_of(now);
        let state = &mut self.state;
        let drained = self
            .rings
            .drain(&self.handoff, take, |r| state.ingest(r, slice, now));
        state.record_unserved(slice);
        self.busy_since = Some(Instant::now());
        drained
    }

    /// Builds and publishes a snapshot, draining the rings between every few
    /// series so that recording threads never wait on it.
    pub(crate) fn publish(&mut self, now: Instant) {
        let mut all = Latencies::default();
        let mut recent = Latencies::default();
        let mut i = 0;
        while i < self.state.keys.table.len() {
            let slice = self.state.slice_of(now);
            for _ in 0..SERIES_STEP {
                let keys = &mut self.state.keys;
                let Some(k) = keys.table.get_mut(i) else {
                    break;
                };
                let (a, r) = view(&mut k.series, slice, &mut keys.account);
                let (into_all, into_recent) = if k.model {
                    (&mut all.models, &mut recent.models)
                } else {
                    (&mut all.stages, &mut recent.stages)
                };
                into_all.insert(k.name.clone(), a);
                into_recent.insert(k.name.clone(), r);
                i += 1;
            }
            self.drain(Instant::now(), Take::Up(DRAIN_STEP));
        }
        self.version += 1;
        let state = &self.state;
        let mut counters = state.counters;
        counters.captured_requests = state.kept.count;
        counters.degraded_requests = state.kept.degraded;
        counters.dropped_spans = self.handoff.untracked.get();
        counters.dropped_records = self.rings.dropped(&self.handoff);
        counters.late_records = state.assembler.late_records;
        counters.budget_dropped_records = state.assembler.budget_dropped;
        counters.budget_dropped_requests = state.assembler.budget_evicted;
        counters.pending_requests = state.assembler.pending() as u64;
        counters.overflow_spans = state.keys.overflow_spans;
        counters.truncated_keys = state.keys.truncated_keys;
        counters.missing_model_ids = state.keys.missing_model_ids;
        counters.histogram_bytes = state.keys.account.used as u64;
        counters.budget_clamped_samples = state.keys.account.clamped;
        counters.longest_drain_gap_ns =
            u64::try_from(self.longest_gap.as_nanos()).unwrap_or(u64::MAX);
        counters.unmatched_enters = self.handoff.unmatched.get();
        counters.failed_sinks = state.kept.sinks.failed;
        counters.dropped_log_lines = self.handoff.log_drops.get();
        counters.failed_log_writers = self.handoff.failed_log_writers.get();
        counters.malformed_traceparents = self.handoff.malformed_traceparents.get();
        counters.dropped_links = self.handoff.dropped_links.get();
        counters.format_panics = self.handoff.format_panics.get();
        counters.dropped_batch_records = state.batches.dropped;
        counters.aggregator_thread_records = self.rings.own_records();
        if counters.malformed_traceparents > 0 && !self.warned_traceparent {
            self.warned_traceparent = true;
            eprintln!(
                "hdrtrace: a request span's traceparent field was not a valid W3C traceparent \
                 (00-<32 hex>-<16 hex>-<2 hex>); such values are ignored and counted in \
                 malformed_traceparents (reported once)"
            );
        }
        let captures = &state.kept.captures;
        self.publisher.publish(SnapshotData {
            version: self.version,
            taken_at: Some(SystemTime::now()),
            window: self.window,
            all,
            recent,
            counters,
            captured: captures.recent.iter().cloned().collect(),
            slowest: captures.slowest.clone(),
            aggregator_failure: None,
        });
        self.last_publish = now;
    }
}

impl State {
    fn slice_of(&self, now: Instant) -> u64 {
        (now.duration_since(self.start).as_nanos() / self.slice.as_nanos().max(1)) as u64
    }

    /// One record: into its series, then into its request (or, outside any
    /// request, among the batches).
    #[inline]
    fn ingest(&mut self, r: &Record, slice: u64, now: Instant) {
        let key = self.aggregate(r, slice);
        if r.request_span == 0 {
            self.ingest_unowned(r, key, slice, now);
            return;
        }
        if r.kind == RecordKind::Links && r.class == SpanClass::Model {
            self.served(r, slice, now);
        }
        if let Some(e) = self.assembler.add(r, key, now) {
            self.complete(e, r.request_span);
        }
    }

    /// A request whose records all arrived: judged now, or once the batches
    /// its model spans link to have closed.
    fn complete(&mut self, e: u32, root_span: u64) {
        if let Some(batch) = self.assembler.unclosed_batch(e, &self.batches) {
            self.deferred.entry(batch).or_default().push(root_span);
            return;
        }
        let judge = Judge {
            clock: &self.clock,
            target: self.target,
            max_spans: self.max_capture_spans,
            batches: &self.batches,
            keys: &self.keys,
            field_index: &self.field_index,
        };
        if let Some((trace, gate)) = self.assembler.judge(e, true, &judge) {
            self.kept.keep(trace, gate, &mut self.keys);
        }
    }

    /// A record of no request (of series `key`): a batch, or something that
    /// may hang from one.
    #[cold]
    fn ingest_unowned(&mut self, r: &Record, key: u32, slice: u64, now: Instant) {
        let is_batch = r.kind == RecordKind::Span && r.class == SpanClass::Batch;
        let (size, model) = if is_batch {
            (self.batch_size(r), self.batch_model(r))
        } else {
            (0, u32::MAX)
        };
        let (keys, clock) = (&mut self.keys, &self.clock);
        self.batches.add(r, key, size, model, now, |s| {
            record_service(keys, clock, s, slice)
        });
        if let Some(roots) = is_batch.then(|| self.deferred.remove(&r.span)).flatten() {
            for root in roots {
                if let Some(e) = self.assembler.entry_of(root) {
                    self.complete(e, root);
                }
            }
        }
    }

    /// A model span's links: each batch it links to served its request. The
    /// first link carries the span's busy sample (its share of the batch's
    /// work, or its own busy time if no batch claims the link), which its
    /// span record then leaves out.
    fn served(&mut self, r: &Record, slice: u64, now: Instant) {
        let owes = (!r.text.is_empty() && !r.links().is_empty())
            .then(|| (self.keys.model(&r.text), r.busy));
        if owes.is_some() {
            self.linked_models.insert(r.span, now);
        }
        let (keys, clock) = (&mut self.keys, &self.clock);
        for (i, &batch) in r.links().iter().enumerate() {
            let owes = owes.filter(|_| i == 0);
            self.batches
                .served(batch, r.start, r.request_id, owes, now, |s| {
                    record_service(keys, clock, s, slice)
                });
        }
    }

    /// The own busy time of linked model spans no batch claimed, into their
    /// series: after each drain (filing records makes room by expiring the
    /// oldest waits) and each sweep.
    fn record_unserved(&mut self, slice: u64) {
        for (key, ticks) in self.batches.take_unserved() {
            let (series, account) = self.keys.series_and_account(key);
            series
                .busy
                .record(self.clock.ticks_to_nanos(ticks), slice, account);
            series.dirty = true;
        }
    }

    /// The model series of a batch span (`u32::MAX` when it names none).
    fn batch_model(&mut self, r: &Record) -> u32 {
        if r.text.is_empty() {
            return u32::MAX;
        }
        self.keys.model(&r.text)
    }

    /// A batch span's size field (0 when it has none).
    fn batch_size(&mut self, r: &Record) -> u64 {
        let (_, at) = self.field_index(r);
        r.fields
            .iter()
            .find(|&(i, _)| Some(i) == at)
            .map_or(0, |(_, v)| non_negative(v))
    }

    /// The indices of the device time and batch size fields of a record's
    /// callsite (looked up once per callsite, when its first record with
    /// fields is aggregated).
    fn field_index(&mut self, r: &Record) -> (Option<usize>, Option<usize>) {
        let meta = r.metadata;
        let (device, batch) = (&self.device_field, &self.batch_size_field);
        *self
            .field_index
            .entry(meta as *const _ as usize)
            .or_insert_with(|| {
                let fields = meta.fields();
                (
                    fields.field(&**device).map(|f| f.index()),
                    fields.field(&**batch).map(|f| f.index()),
                )
            })
    }

    /// Adds a record to its series; returns the series' key (`u32::MAX` for
    /// an event or links record). A batch span's wall and busy time go to its
    /// name's stage series, its size to its model's series.
    #[inline]
    fn aggregate(&mut self, r: &Record, slice: u64) -> u32 {
        match r.kind {
            RecordKind::Span => {}
            RecordKind::Event => {
                self.counters.events += 1;
                return u32::MAX;
            }
            RecordKind::Links => return u32::MAX,
        }
        self.counters.spans += 1;
        if r.class == SpanClass::Request {
            self.counters.requests += 1;
            self.counters.sampled_requests += r.sampled as u64;
        }
        let wall = self.clock.nanos_between(r.start, r.end);
        let busy = self.clock.ticks_to_nanos(r.busy);
        // A batched model span's busy sample is its share of the batch's
        // work, recorded when its batch is known (`served`).
        let owed = r.class == SpanClass::Model
            && !self.linked_models.is_empty()
            && self.linked_models.remove(&r.span).is_some();
        let key = self.keys.of(r);
        let (series, account) = self.keys.series_and_account(key);
        series.wall.record(wall, slice, account);
        if !owed {
            series.busy.record(busy, slice, account);
        }
        series.dirty = true;
        match r.status {
            Status::Ok => {}
            Status::Error => series.errors += 1,
            Status::Timeout => series.timeouts += 1,
        }
        if r.class == SpanClass::Batch {
            self.record_batch_size(r, slice);
            return key;
        }
        if r.fields.is_empty() {
            return key;
        }
        let (device_at, _) = self.field_index(r);
        if let Some(ns) = device_nanos(r, device_at) {
            let (series, account) = self.keys.series_and_account(key);
            Windowed::record_into(&mut series.gpu, ns, slice, account);
        }
        key
    }

    /// A batch span's size, into its model's series.
    #[cold]
    fn record_batch_size(&mut self, r: &Record, slice: u64) {
        // Read first: it indexes the callsite's fields, which its captured
        // span reads too.
        let size = self.batch_size(r);
        let model = self.batch_model(r);
        if model == u32::MAX {
            return;
        }
        let (series, account) = self.keys.series_and_account(model);
        Windowed::record_into(&mut series.batch_size, size, slice, account);
        series.dirty = true;
    }

    /// Finalizes requests whose stragglers are overdue (all of them with
    /// `force`), and drops batches kept past their time.
    fn sweep(&mut self, now: Instant, force: bool) {
        let (kept, keys) = (&mut self.kept, &mut self.keys);
        let (clock, batches, field_index) = (&self.clock, &self.batches, &self.field_index);
        let (target, max_spans) = (self.target, self.max_capture_spans);
        self.assembler.sweep(now, force, |asm, e| {
            let complete = asm.counted_all(e);
            let judge = Judge {
                clock,
                target,
                max_spans,
                batches,
                keys: &*keys,
                field_index,
            };
            if let Some((trace, gate)) = asm.judge(e, complete, &judge) {
                kept.keep(trace, gate, keys);
            }
        });
        let assembler = &self.assembler;
        self.deferred.retain(|_, roots| {
            roots.retain(|&root| assembler.entry_of(root).is_some());
            !roots.is_empty()
        });
        self.batches.expire(now);
        self.record_unserved(self.slice_of(now));
        self.linked_models
            .retain(|_, at| now.duration_since(*at) < assembly::GRACE);
    }
}

/// A record's device time in nanoseconds: the last number it recorded in
/// its device-time field (`field`, that field's index at its callsite),
/// negative read as 0. The device-time histogram and the captured span both
/// read it here.
pub(crate) fn device_nanos(r: &Record, field: Option<usize>) -> Option<u64> {
    let field = field?;
    r.fields
        .iter()
        .filter(|&(i, v)| i == field && !matches!(v, FieldValue::Bool(_)))
        .last()
        .map(|(_, v)| non_negative(v))
}

/// A field value as a count or nanoseconds (negative reads as 0).
fn non_negative(v: FieldValue) -> u64 {
    match v {
        FieldValue::U64(n) => n,
        FieldValue::I64(n) => n.max(0) as u64,
        FieldValue::F64(n) => n.max(0.0) as u64,
        FieldValue::Bool(b) => b as u64,
    }
}

/// What a batch did for one request's model span, into its model series:
/// the wait for the batch (the batch wait histogram) and, when the span owes
/// it, its share of the batch's work (the busy histogram).
fn record_service(keys: &mut Keys, clock: &Clock, s: Service, slice: u64) {
    if s.key == u32::MAX {
        return;
    }
    let (series, account) = keys.series_and_account(s.key);
    let wait = clock.ticks_to_nanos(s.wait);
    Windowed::record_into(&mut series.batch_wait, wait, slice, account);
    if let Some(busy) = s.busy {
        series
            .busy
            .record(clock.ticks_to_nanos(busy), slice, account);
    }
    series.dirty = true;
}

impl Kept {
    fn keep(&mut self, trace: RequestTrace, gate: Option<u32>, keys: &mut Keys) {
        if let (Some(g), Some(reason)) = (gate, trace.blame()) {
            let s = keys.series(g);
            s.blamed[reason.index()] += 1;
            s.dirty = true;
        }
        self.degraded += (trace.outcome() == Outcome::Degraded) as u64;
        self.count += 1;
        let trace = Arc::new(trace);
        self.sinks.captured(&trace);
        self.captures.keep(trace);
    }

    fn flush_sinks(&mut self) {
        self.sinks.flush();
    }
}

/// The series' published views, rebuilt only when it changed or the window
/// moved on.
fn view(
    s: &mut Series,
    slice: u64,
    account: &mut Account,
) -> (Arc<ModelLatency>, Arc<ModelLatency>) {
    if let Some((a, r, at)) = &s.cache {
        if !s.dirty && *at == slice {
            return (a.clone(), r.clone());
        }
    }
    type Hist = hdrhistogram::Histogram<u64>;
    let make = |wall, busy, gpu: Option<Hist>, size: Option<Hist>, wait: Option<Hist>| {
        Arc::new(ModelLatency {
            wall: Latency::new(wall),
            busy: Latency::new(busy),
            gpu: gpu.map(Latency::new),
            batch_size: size,
            batch_wait: wait.map(Latency::new),
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
            s.batch_size.as_ref().map(|g| g.total()),
            s.batch_wait.as_ref().map(|g| g.total()),
        ),
        make(
            s.wall.window(slice, account),
            s.busy.window(slice, account),
            s.gpu.as_mut().map(|g| g.window(slice, account)),
            s.batch_size.as_mut().map(|g| g.window(slice, account)),
            s.batch_wait.as_mut().map(|g| g.window(slice, account)),
        ),
    );
    s.cache = Some((views.0.clone(), views.1.clone(), slice));
    s.dirty = false;
    views
}
