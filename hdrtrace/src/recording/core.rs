//! The recording core: every hot-path operation, shared by the hand-written
//! `Subscriber` (and by any other front end) so there is one copy of the logic.

use crate::clock::Clock;
use crate::config::{TracingConfig, TracingLevel};
use crate::error::ConfigError;
use crate::handoff::record::{Record, RecordKind, SpanClass, Status};
use crate::handoff::wire::WireRecord;
use crate::handoff::Handoff;
use crate::logs::line::Context as LineContext;
use crate::logs::LogHub;
use crate::recording::callsites::{CallsiteInfo, CallsiteMap, Rules};
use crate::recording::links::MAX_LINKS;
use crate::recording::local::{with_last_local, with_local, with_local_leaf, Leaf, Local};
use crate::recording::sampling::{Sampler, Switch};
use crate::recording::slots::SlotTable;
use crate::recording::span::{FieldVisitor, RequestCtx, SpanSlot};
use crate::sync::{AtomicBool, AtomicU64, Ordering};
use std::num::NonZeroU64;
use std::sync::Arc;
use tracing_core::span::{Attributes, Id, Record as Values};
use tracing_core::{Event, Metadata};

/// What `try_close`'s fast path did.
enum FastClose {
    /// Nothing: the slow path does it all.
    No,
    /// Recorded and freed the span.
    Done,
    /// Recorded and freed the span; the ring may be past half full.
    AskDrain,
}

/// The ID of a span that could not be tracked (slot table full, or the
/// subscriber switched off): every operation on it is a no-op.
pub(crate) const UNTRACKED: u64 = u64::MAX;

/// Our span ID as tracing's `Id`. Ours are never 0 (a slot's ID holds its
/// index plus one in the low word, and `UNTRACKED` is `u64::MAX`); a 0 would
/// become `UNTRACKED`, so this never panics (as `Id::from_u64` would on 0).
#[inline(always)]
pub(crate) fn tracing_id(id: u64) -> Id {
    Id::from_non_zero_u64(NonZeroU64::new(id).unwrap_or(NonZeroU64::MAX))
}

/// Where a new span or event belongs, in our ID space.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Parent {
    /// This span (0 or an unknown ID means none).
    Explicit(u64),
    /// The innermost span this thread is in.
    Current,
    /// No parent.
    Root,
}

impl Parent {
    /// From what `Attributes` / `Event` say: an explicit parent (already mapped
    /// to our ID space by `ours`; `None` from it means it is not one of ours),
    /// else the contextual current span, else none.
    #[inline]
    pub(crate) fn resolve(
        explicit: Option<&Id>,
        contextual: bool,
        ours: impl FnOnce(&Id) -> Option<u64>,
    ) -> Self {
        match explicit {
            Some(p) => ours(p).map_or(Parent::Root, Parent::Explicit),
            None if contextual => Parent::Current,
            None => Parent::Root,
        }
    }
}

/// Counts a user's `Display` or `Debug` that panics while the subscriber
/// formats it: armed before the user code runs and disarmed when it returns,
/// so only an unwind drops it. Disarming is a `forget`: no work on the path
/// that does not panic.
struct FormatPanic<'a>(&'a Handoff);

impl FormatPanic<'_> {
    #[inline(always)]
    fn disarm(self) {
        std::mem::forget(self);
    }
}

impl Drop for FormatPanic<'_> {
    #[cold]
    fn drop(&mut self) {
        self.0.format_panics.add(1);
    }
}

static NEXT_CORE_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) struct Core {
    id: u64,
    pub(crate) switch: Switch,
    pub(crate) sampler: Sampler,
    pub(crate) level: TracingLevel,
    pub(crate) callsites: CallsiteMap,
    slots: Arc<SlotTable<SpanSlot>>,
    pub(crate) clock: Clock,
    /// Ring registration, wake-ups and drop counts: all the aggregator sees.
    handoff: Arc<Handoff>,
    /// Where log lines go, when logging is on.
    pub(crate) logs: Option<Arc<LogHub>>,
    threads: AtomicU64,
    alive: Arc<AtomicBool>,
}

impl Core {
    pub(crate) fn new(
        config: &TracingConfig,
        handoff: Arc<Handoff>,
        logs: Option<Arc<LogHub>>,
    ) -> Result<Self, ConfigError> {
        let shards = std::thread::available_parallelism()
            .map_or(4, |n| n.get())
            .clamp(2, 64)
            * 2;
        Ok(Self {
            id: NEXT_CORE_ID.fetch_add(1, Ordering::Relaxed),
            switch: Switch::new(config.enabled),
            sampler: Sampler::new(config.sampling_rate),
            level: config.level,
            callsites: CallsiteMap::new(Rules::from_config(config)?),
            slots: Arc::new(SlotTable::new(
                config.slot_capacity,
                shards,
                SpanSlot::default,
            )),
            clock: Clock::new(),
            handoff,
            logs,
            threads: AtomicU64::new(0),
            alive: Arc::new(AtomicBool::new(true)),
        })
    }

    /// Marks the core as shut down: threads drop their state for it lazily.
    pub(crate) fn retire(&self) {
        self.switch.set(false);
        // Relaxed: see `with_local`'s use of it.
        self.alive.store(false, Ordering::Relaxed);
    }

    pub(crate) fn slot_capacity(&self) -> usize {
        self.slots.capacity()
    }

    /// Cold: this thread's first span for this core.
    fn make_local(&self) -> Local {
        let producer = self.handoff.register();
        // Relaxed: only uniqueness matters.
        let ordinal = self.threads.fetch_add(1, Ordering::Relaxed);
        Local::new(
            self.alive.clone(),
            producer,
            &self.slots,
            self.handoff.clone(),
            ordinal as usize % self.slots.shard_count(),
            ordinal,
        )
    }

    #[inline]
    fn local<R>(&self, f: impl FnOnce(&mut Local) -> R) -> Option<R> {
        with_local(self.id, || self.make_local(), f)
    }

    /// `local` for a leaf closure (`leaf` is the caller's promise; see
    /// `with_local_leaf`): the hot path's.
    #[inline(always)]
    fn leaf<R>(&self, leaf: Leaf, f: impl FnOnce(&mut Local) -> R) -> Option<R> {
        with_local_leaf(leaf, self.id, || self.make_local(), f)
    }

    #[inline]
    pub(crate) fn register_callsite(&self, meta: &'static Metadata<'static>) -> CallsiteInfo {
        self.callsites.register(meta)
    }

    #[inline]
    pub(crate) fn enabled(&self, meta: &Metadata<'_>) -> bool {
        self.switch.is_on() && self.callsites.get(meta).in_level()
    }

    /// `new_span` for the hand-written subscriber, whose span IDs are ours.
    #[inline]
    pub(crate) fn new_span(&self, attrs: &Attributes<'_>) -> u64 {
        let parent = Parent::resolve(attrs.parent(), attrs.is_contextual(), |p| {
            Some(p.into_u64())
        });
        self.open_span(attrs, self.callsites.get(attrs.metadata()), parent)
    }

    /// Opens a span whose callsite the front end has looked up and whose
    /// parent it has resolved to one of our IDs (the `Layer` front end maps
    /// Registry IDs to ours).
    #[inline(always)]
    pub(crate) fn open_span(
        &self,
        attrs: &Attributes<'_>,
        info: CallsiteInfo,
        parent: Parent,
    ) -> u64 {
        if !self.switch.is_on() {
            return UNTRACKED;
        }
        let meta = attrs.metadata();
        let start = self.clock.now();
        let fields = self.visit(info, |fields| attrs.record(fields));
        self.leaf(
            // SAFETY: a leaf: the slot table, the sampler (pure) and counters.
            unsafe { Leaf::promise() },
            #[inline(always)]
            |local| {
                let (parent, parent_slot) = match parent {
                    Parent::Explicit(p) => (p, self.slots.get(p)),
                    Parent::Current => match local.current(|id| self.slots.get(id)) {
                        Some((p, slot)) => (p, Some(slot)),
                        None => (0, None),
                    },
                    Parent::Root => (0, None),
                };
                let home = local.home;
                let Some((id, slot)) = self.slots.alloc_cached(&mut local.slot_cache, home) else {
                    self.handoff.untracked.add(1);
                    return UNTRACKED;
                };
                let ctx = if info.class() == SpanClass::Request {
                    let request_id = fields.request_id.unwrap_or_else(|| local.next_request_id());
                    RequestCtx {
                        request_span: id,
                        request_id,
                        sampled: self.sampler.decide(request_id),
                    }
                } else {
                    let mut ctx = parent_slot.map(SpanSlot::ctx).unwrap_or_default();
                    if let Some(root) = self.slots.get(ctx.request_span) {
                        root.add_descendant(local.thread());
                    }
                    // A batch outside any request is the unit its descendants belong
                    // to: they carry its ID as their request id, so the aggregator holds
                    // them for it (and only them).
                    if info.class() == SpanClass::Batch && ctx.request_span == 0 {
                        ctx.request_id = id;
                    }
                    ctx
                };
                let parent = if parent_slot.is_some() { parent } else { 0 };
                slot.open(
                    local.thread(),
                    meta,
                    info.class(),
                    parent,
                    ctx,
                    start,
                    &fields.text,
                    &fields.fields,
                );
                id
            },
        )
        .unwrap_or_else(|| {
            self.handoff.untracked.add(1);
            UNTRACKED
        })
    }

    #[inline]
    pub(crate) fn record(&self, id: u64, values: &Values<'_>) {
        if let Some(slot) = self.slots.get(id) {
            if let Some(meta) = slot.metadata() {
                let fields = self.visit(self.callsites.get(meta), |f| values.record(f));
                slot.update(&fields.text, &fields.fields);
                if let Some(request_id) = fields.request_id {
                    self.record_request_id(id, slot, request_id);
                }
            }
        }
    }

    /// A request root's id recorded after creation: it becomes the request's
    /// id for every export, and decides sampling anew while no descendant has
    /// inherited the first decision.
    #[cold]
    fn record_request_id(&self, id: u64, slot: &SpanSlot, request_id: u64) {
        if slot.class() != SpanClass::Request || slot.ctx().request_span != id {
            return;
        }
        // Relaxed: `descendants` only grows; a child opened concurrently with
        // this call on another thread may keep the earlier decision.
        let undecided = slot.descendants() == 0;
        slot.set_request_id(
            request_id,
            undecided.then(|| self.sampler.decide(request_id)),
        );
    }

    /// Links span `id` to span `follows` (kept inline in its slot, at most
    /// `MAX_LINKS`; a link past them is counted as dropped).
    #[inline]
    pub(crate) fn follows_from(&self, id: u64, follows: u64) {
        if follows == UNTRACKED || follows == 0 {
            return;
        }
        if let Some(slot) = self.slots.get(id) {
            if !slot.links.add(follows) {
                self.handoff.dropped_links.add(1);
            }
        }
    }

    /// Runs an operation on span `id`, on its fast path when it can: `fast`
    /// gets this thread's state and the clock's reading when both are at hand
    /// (the state `LAST` lends, a clock that reads the TSC itself) and returns
    /// whether it did the whole operation. It must do nothing when it returns
    /// false: then, or when the state or the reading is not at hand, `slow`
    /// does the whole operation, given the reading or `None` (then it reads
    /// the clock itself). `leaf` is the caller's promise for `fast`.
    #[inline(always)]
    fn call_free(
        &self,
        leaf: Leaf,
        id: u64,
        fast: impl FnOnce(&mut Local, u64) -> bool,
        slow: fn(&Self, u64, Option<u64>),
    ) {
        match self.clock.now_inline() {
            Some(now) => {
                if with_last_local(leaf, self.id, |local| fast(local, now)) != Some(true) {
                    slow(self, id, Some(now));
                }
            }
            None => slow(self, id, None),
        }
    }

    /// Enters span `id`: on `call_free`'s fast path when the stack has room,
    /// else `enter_slow`.
    #[inline]
    pub(crate) fn enter(&self, id: u64) {
        self.call_free(
            // SAFETY: a leaf: this thread's stack.
            unsafe { Leaf::promise() },
            id,
            #[inline(always)]
            |local, now| local.try_push(id, now),
            Self::enter_slow,
        );
    }

    /// `enter` with a full stack, another subscriber's state in `LAST`, or a
    /// clock that is not the TSC (`now` is `None`: read it here).
    #[cold]
    #[inline(never)]
    fn enter_slow(&self, id: u64, now: Option<u64>) {
        let now = now.unwrap_or_else(|| self.clock.now());
        self.leaf(
            // SAFETY: a leaf: this thread's stack and slot lookups.
            unsafe { Leaf::promise() },
            #[inline(always)]
            |local| local.push(id, now, |id| self.slots.get(id).is_some()),
        );
    }

    /// Exits span `id`: on `call_free`'s fast path when it is this thread's
    /// innermost entry, else `exit_slow`.
    #[inline]
    pub(crate) fn exit(&self, id: u64) {
        self.call_free(
            // SAFETY: a leaf: this thread's stack, a slot lookup and its
            // counters.
            unsafe { Leaf::promise() },
            id,
            #[inline(always)]
            |local, now| match local.pop_top(id) {
                Some(entered) => {
                    self.add_busy_since(id, entered, now, local);
                    true
                }
                None => false,
            },
            Self::exit_slow,
        );
    }

    /// `exit` for an entry below the top (or none), another subscriber's
    /// state in `LAST`, or a clock that is not the TSC (`now` is `None`:
    /// read it here).
    #[cold]
    #[inline(never)]
    fn exit_slow(&self, id: u64, now: Option<u64>) {
        let now = now.unwrap_or_else(|| self.clock.now());
        self.leaf(
            // SAFETY: a leaf: this thread's stack, a slot lookup and its counters.
            unsafe { Leaf::promise() },
            #[inline(always)]
            |local| {
                // The innermost entry first (exits mostly come in order),
                // then one below it.
                if let Some(entered) = local.pop_top(id) {
                    self.add_busy_since(id, entered, now, local);
                } else if let Some(entered) = local.pop_below(id) {
                    self.add_busy_since(id, entered, now, local);
                }
            },
        );
    }

    /// Adds span `id`'s time entered, from `entered` to `now`, on `local`'s
    /// thread.
    #[inline(always)]
    fn add_busy_since(&self, id: u64, entered: u64, now: u64, local: &Local) {
        if let Some(slot) = self.slots.get(id) {
            slot.add_busy(now.saturating_sub(entered), local.thread());
        }
    }

    #[inline]
    pub(crate) fn clone_span(&self, id: u64) {
        if let Some(slot) = self.slots.get(id) {
            slot.refs.add();
        }
    }

    /// Drops one reference; on the last, records the span and frees its slot.
    /// The common close is done on the fast path: a clock that reads the TSC
    /// itself, the state `LAST` lends, a span with no links and no extension,
    /// room in the slot cache, and room in the ring by this producer's own
    /// view of it. The fast path either does the whole close or nothing, and
    /// then `close_slow` does it all.
    #[inline(always)]
    pub(crate) fn try_close(&self, id: u64) -> bool {
        let Some(slot) = self.slots.get(id) else {
            return false;
        };
        if !slot.refs.release() {
            return false;
        }
        let Some(end) = self.clock.now_inline() else {
            self.close_slow(slot, id, None);
            return true;
        };
        let fast = with_last_local(
            // SAFETY: a leaf: this thread's ring and slot cache, the slot table.
            unsafe { Leaf::promise() },
            self.id,
            #[inline(always)]
            |local| {
                let Some(meta) = slot.metadata() else {
                    return FastClose::No;
                };
                if slot.links.len() != 0 || slot.needs_ext() || !local.slot_cache.has_room() {
                    return FastClose::No;
                }
                // SAFETY: `close_into` writes every field of the record.
                let pushed = unsafe {
                    local.producer.push_init_if_room(|dst| {
                        slot.close_into(id, meta, end, RecordKind::Span, dst)
                    })
                };
                if !pushed {
                    return FastClose::No;
                }
                // The cache has room (checked above), so this stays in it.
                self.slots.free_cached(id, &mut local.slot_cache);
                if local.producer.may_need_drain() {
                    FastClose::AskDrain
                } else {
                    FastClose::Done
                }
            },
        );
        match fast {
            Some(FastClose::Done) => {}
            Some(FastClose::AskDrain) => self.ask_drain(),
            Some(FastClose::No) | None => self.close_slow(slot, id, Some(end)),
        }
        true
    }

    /// After a fast close: whether the ring is past half full, and if so the
    /// aggregator's wake-up.
    #[cold]
    #[inline(never)]
    fn ask_drain(&self) {
        let wake = self.leaf(
            // SAFETY: a leaf: this thread's ring.
            unsafe { Leaf::promise() },
            |local| local.producer.needs_drain(),
        );
        self.after_push(wake);
    }

    /// The close of the last reference to `slot` (span `id`) that the fast
    /// path in `try_close` did not take, having done nothing (`end`: the
    /// clock's reading, `None` to read it here).
    #[cold]
    #[inline(never)]
    fn close_slow(&self, slot: &SpanSlot, id: u64, end: Option<u64>) {
        let end = end.unwrap_or_else(|| self.clock.now());
        let meta = slot.metadata();
        let wake = self.leaf(
            // SAFETY: a leaf: this thread's ring and slot cache, the slot table.
            unsafe { Leaf::promise() },
            #[inline(always)]
            |local| {
                if let Some(meta) = meta {
                    if slot.links.len() != 0 {
                        Self::push_links(local, slot, id, meta, end);
                    }
                    let pushed = if slot.needs_ext() {
                        Self::push_with_ext(local, slot, id, meta, end)
                    } else {
                        // SAFETY: `close_into` writes every field of the record.
                        unsafe {
                            local.producer.push_init(|dst| {
                                slot.close_into(id, meta, end, RecordKind::Span, dst)
                            })
                        }
                    };
                    if !pushed {
                        local.producer.count_drop();
                    }
                }
                self.slots.free_cached(id, &mut local.slot_cache);
                local.producer.needs_drain()
            },
        );
        self.after_push(wake);
        if wake.is_none() {
            self.slots.free(id);
        }
    }

    /// The close record of a span that needs an extension (see
    /// `SpanSlot::needs_ext`), with it; whether both were pushed.
    #[cold]
    fn push_with_ext(
        local: &mut Local,
        slot: &SpanSlot,
        id: u64,
        meta: &'static Metadata<'static>,
        end: u64,
    ) -> bool {
        // SAFETY: `ext_into` and `close_into` each write every field of theirs.
        unsafe {
            local.producer.push_pair_init(
                |dst| slot.ext_into(id, meta, None, dst),
                |dst| slot.close_into(id, meta, end, RecordKind::Span, dst),
            )
        }
    }

    /// The links record of a span that has links, right before its close
    /// record (in the same ring, so the aggregator sees it first).
    #[cold]
    fn push_links(
        local: &mut Local,
        slot: &SpanSlot,
        id: u64,
        meta: &'static Metadata<'static>,
        end: u64,
    ) {
        let mut links = [0; MAX_LINKS];
        let n = slot.links.read(&mut links);
        // SAFETY: `ext_into` and `close_into` each write every field of theirs.
        let pushed = unsafe {
            local.producer.push_pair_init(
                |dst| slot.ext_into(id, meta, Some(&links[..n]), dst),
                |dst| slot.close_into(id, meta, end, RecordKind::Links, dst),
            )
        };
        if !pushed {
            local.producer.count_drop();
        }
    }

    #[inline]
    pub(crate) fn event(&self, event: &Event<'_>) {
        let parent = Parent::resolve(event.parent(), event.is_contextual(), |p| {
            Some(p.into_u64())
        });
        self.record_event(event, self.callsites.get(event.metadata()), parent);
    }

    /// Records an event (whose callsite the front end looked up) in the span
    /// the front end resolved.
    #[inline]
    pub(crate) fn record_event(&self, event: &Event<'_>, info: CallsiteInfo, parent: Parent) {
        if !self.switch.is_on() {
            return;
        }
        let meta = event.metadata();
        let found = match parent {
            Parent::Explicit(p) => self.slots.get(p).map(|slot| (p, slot)),
            Parent::Current => self
                .leaf(
                    // SAFETY: a leaf: this thread's stack and slot lookups.
                    unsafe { Leaf::promise() },
                    |l| l.current(|id| self.slots.get(id)),
                )
                .flatten(),
            Parent::Root => None,
        };
        if info.logged() {
            if let Some(hub) = self.logs.as_deref() {
                self.log_event(hub, event, found.map(|(_, slot)| slot));
            }
        }
        let Some((parent, slot)) = found else {
            return;
        };
        slot.mark(info.event_status());
        let ctx = slot.ctx();
        // Events are kept for sampled requests, and always when they report a
        // failure (so tail capture shows them); others cost only the lookup.
        if !ctx.sampled && info.event_status() == Status::Ok {
            return;
        }
        let fields = self.visit(info, |fields| event.record(fields));
        let now = self.clock.now();
        self.emit_with(|| Record {
            kind: RecordKind::Event,
            class: slot.class(),
            status: info.event_status(),
            sampled: ctx.sampled,
            metadata: meta,
            span: parent,
            parent,
            request_span: ctx.request_span,
            request_id: ctx.request_id,
            start: now,
            end: now,
            busy: 0,
            descendants: 0,
            text: fields.text,
            fields: fields.fields,
        });
    }

    /// Writes `event` as a log line, with the request and model of the span
    /// it fired in.
    fn log_event(&self, hub: &LogHub, event: &Event<'_>, span: Option<&SpanSlot>) {
        let ctx = span.map(SpanSlot::ctx).unwrap_or_default();
        let model = span
            .filter(|s| s.class() == SpanClass::Model)
            .map(SpanSlot::text);
        self.local(|local| {
            // Cold, once per thread: its log ring and line buffer come with
            // its first log line, so threads that never log hold neither.
            let log = local.log.get_or_insert_with(|| hub.thread_log());
            let ctx = LineContext {
                request_id: (ctx.request_span != 0).then_some(ctx.request_id),
                model: model.as_ref().map(|m| m.as_str()),
            };
            // `with_local` gives the state back if this unwinds; the line
            // is only queued once formatted, so nothing half-written stays.
            self.formatting(|| hub.log(log, event, ctx));
        });
    }

    /// Whether the caller is this subscriber's aggregator thread (a sink),
    /// which must never wait on itself. The thread notes itself before it runs
    /// any sink.
    pub(crate) fn on_aggregator_thread(&self) -> bool {
        self.handoff.on_aggregator_thread()
    }

    /// Reads fields through the user's `Display` and `Debug` impls, which
    /// run under [`Core::formatting`]; a malformed traceparent is counted.
    #[inline(always)]
    fn visit(&self, info: CallsiteInfo, record: impl FnOnce(&mut FieldVisitor)) -> FieldVisitor {
        let mut fields = FieldVisitor::new(info);
        self.formatting(|| record(&mut fields));
        if fields.malformed_traceparent {
            self.handoff.malformed_traceparents.add(1);
        }
        fields
    }

    /// Runs user formatting code: a panic in it is counted on its way out
    /// (what it was formatting is lost), and nothing is paid when it returns.
    #[inline(always)]
    fn formatting<R>(&self, f: impl FnOnce() -> R) -> R {
        let armed = FormatPanic(&self.handoff);
        let out = f();
        armed.disarm();
        out
    }

    /// Pushes the record `make` builds into this thread's ring, built in place.
    /// `make` only assembles values its caller has already computed.
    #[inline]
    fn emit_with(&self, make: impl FnOnce() -> Record) {
        let wake = self.leaf(
            // SAFETY: a leaf: this thread's ring, and `make`, which runs no
            // code but the record's construction.
            unsafe { Leaf::promise() },
            |local| {
                Self::push_record(local, make);
                local.producer.needs_drain()
            },
        );
        self.after_push(wake);
    }

    #[inline(always)]
    fn push_record(local: &mut Local, make: impl FnOnce() -> Record) {
        let pushed = match WireRecord::encode(&make()) {
            (None, main) => local.producer.push(main).is_ok(),
            // SAFETY: each closure writes a whole value.
            (Some(ext), main) => unsafe {
                local.producer.push_pair_init(
                    |dst| {
                        dst.write(ext);
                    },
                    |dst| {
                        dst.write(main);
                    },
                )
            },
        };
        if !pushed {
            local.producer.count_drop();
        }
    }

    /// `wake`: whether the ring is past half full (then the aggregator
    /// is asked to drain now rather than at its next tick), or `None` when this
    /// thread had no ring (it is being torn down) and the record was lost.
    #[inline]
    fn after_push(&self, wake: Option<bool>) {
        match wake {
            Some(true) => self.handoff.wake(),
            Some(false) => {}
            None => self.handoff.ringless.add(1),
        }
    }

    #[inline]
    pub(crate) fn current(&self) -> Option<(Id, &'static Metadata<'static>)> {
        let (id, slot) = self.leaf(
            // SAFETY: a leaf: this thread's stack and slot lookups.
            unsafe { Leaf::promise() },
            |l| l.current(|id| self.slots.get(id)),
        )??;
        Some((tracing_id(id), slot.metadata()?))
    }
}

#[cfg(test)]
mod tests {
    use super::{Core, Leaf};
    use crate::config::TracingConfig;
    use crate::handoff::Handoff;
    use std::sync::Arc;

    fn core() -> Core {
        Core::new(&TracingConfig::default(), Arc::new(Handoff::new(64)), None)
            .expect("the default config is valid")
    }

    /// Runs a closure passed as a leaf that is not one: it reaches this
    /// thread's state through `reenter`. Debug builds must stop it there,
    /// before the state is lent a second time.
    #[cfg(debug_assertions)]
    fn broken_leaf(reenter: impl Fn(&Core)) {
        let core = core();
        core.leaf(
            // SAFETY: not a leaf, on purpose: the debug check panics at the
            // re-entry, before a second `&mut Local` exists (the test runs
            // only in debug builds).
            unsafe { Leaf::promise() },
            |_| reenter(&core),
        );
    }

    /// A leaf that reaches `with_local_leaf` again panics in debug builds.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "a leaf closure re-entered")]
    fn a_leaf_reaching_with_local_leaf_panics() {
        broken_leaf(|core| {
            core.current();
        });
    }

    /// A leaf that reaches `with_last_local` (an enter) panics in debug
    /// builds.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "a leaf closure re-entered")]
    fn a_leaf_reaching_with_last_local_panics() {
        broken_leaf(|core| core.enter(1));
    }

    /// A leaf that reaches `with_local` panics in debug builds.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "a leaf closure re-entered")]
    fn a_leaf_reaching_with_local_panics() {
        broken_leaf(|core| {
            core.local(|_| ());
        });
    }

    /// A leaf that reaches another subscriber's state panics in debug builds
    /// too: the promise covers every state of this thread.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "a leaf closure re-entered")]
    fn a_leaf_reaching_another_subscribers_state_panics() {
        let other = core();
        broken_leaf(move |_| {
            other.current();
        });
    }

    /// The check is cleared when a leaf returns and when one unwinds, and a
    /// non-leaf call (which runs user code) may reach the leaf entries: that
    /// is how user code calls back into the subscriber.
    #[test]
    fn leaves_after_a_leaf_and_inside_a_non_leaf_call_run() {
        let core = core();
        assert!(core.current().is_none());
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: a leaf: it only panics.
            core.leaf(unsafe { Leaf::promise() }, |_| panic!("inside a leaf"))
        }));
        assert!(unwound.is_err());
        assert!(core.current().is_none());
        core.enter(1);
        core.exit(1);
        let inner = core.local(|_| core.current().is_none());
        assert_eq!(inner, Some(true));
    }
}
