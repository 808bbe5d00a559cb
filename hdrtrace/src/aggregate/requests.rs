//! Request assembly, tail capture and attribution.
//!
//! A request's records reach the aggregator from several threads' rings in any
//! order. They wait here, keyed by the root span's ID, until the root has closed
//! and every descendant it counted has arrived; only then is the request
//! finalized: kept in full if it was head-sampled, over the latency target,
//! failed or timed out, otherwise dropped (its spans are already in the
//! histograms).

use crate::clock::Clock;
use crate::record::{FieldValue, Record, RecordKind, SpanClass, Status};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing_core::Level;

/// One span of a captured request.
#[derive(Clone, Debug)]
pub struct SpanTrace {
    /// The span's ID (unique while the request was open).
    pub id: u64,
    /// The parent's ID (0 for the root).
    pub parent: u64,
    /// The span's name.
    pub name: &'static str,
    /// Request, stage or model.
    pub class: SpanClass,
    /// The model key, for model spans.
    pub model: Option<String>,
    /// When it started, from the request's start.
    pub start: Duration,
    /// New to close.
    pub wall: Duration,
    /// Entered (polled) time.
    pub busy: Duration,
    /// How it ended.
    pub status: Status,
    /// Numeric fields, by name.
    pub fields: Vec<(&'static str, FieldValue)>,
}

impl SpanTrace {
    /// `wall - busy`: time the span was open but not being polled.
    pub fn waiting(&self) -> Duration {
        self.wall.saturating_sub(self.busy)
    }

    /// The model key for model spans, the span name otherwise.
    pub fn label(&self) -> &str {
        self.model.as_deref().unwrap_or(self.name)
    }

    /// A numeric field's value.
    pub fn field(&self, name: &str) -> Option<FieldValue> {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

/// One event of a captured request.
#[derive(Clone, Debug)]
pub struct EventTrace {
    /// The span it fired in.
    pub span: u64,
    /// When, from the request's start.
    pub at: Duration,
    /// Its level.
    pub level: Level,
    /// Its message (truncated to the inline size).
    pub message: String,
    /// The status it marked its span with.
    pub status: Status,
    /// Numeric fields, by name.
    pub fields: Vec<(&'static str, FieldValue)>,
}

/// Which model gated the request, and how.
#[derive(Clone, Debug)]
pub struct Attribution {
    /// The model whose completion (or timeout) came last.
    pub model: String,
    /// Its span's ID in the trace.
    pub span: u64,
    /// Its wall time.
    pub wall: Duration,
    /// Its busy (polled / computing) time.
    pub busy: Duration,
    /// Its wall time as a fraction of the request's.
    pub share: f64,
    /// True when it spent longer open but not running (`wall - busy`: queued
    /// for an executor worker or a compute pool, or not polled) than running;
    /// false when it was slow while running.
    pub starved: bool,
    /// How it ended.
    pub status: Status,
}

/// Why a request was kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaptureReason {
    /// Head sampling chose it.
    pub sampled: bool,
    /// Its wall time exceeded the latency target.
    pub over_budget: bool,
    /// A span in it failed or timed out.
    pub failed: bool,
}

/// A captured request: its whole span tree.
#[derive(Clone, Debug)]
pub struct RequestTrace {
    /// The request's numeric id (also its trace id on export).
    pub request_id: u64,
    /// The root span's name.
    pub name: &'static str,
    /// The root's wall time.
    pub total: Duration,
    /// The latency target it was judged against.
    pub target: Duration,
    /// Why it was kept.
    pub reason: CaptureReason,
    /// The worst status of any span.
    pub status: Status,
    /// False when some descendant's record never arrived (dropped, or still
    /// open when the grace period ended).
    pub complete: bool,
    /// Root first, then by start time.
    pub spans: Vec<SpanTrace>,
    /// By time.
    pub events: Vec<EventTrace>,
    /// The bottleneck, when any model ran.
    pub attribution: Option<Attribution>,
    /// Wall-clock time the root closed.
    pub closed_at: std::time::SystemTime,
}

impl RequestTrace {
    /// The root span.
    pub fn root(&self) -> &SpanTrace {
        &self.spans[0]
    }

    /// Spans whose parent is `id`, by start time.
    pub fn children(&self, id: u64) -> impl Iterator<Item = &SpanTrace> {
        self.spans
            .iter()
            .filter(move |s| s.parent == id && s.id != id)
    }

    /// A span by ID.
    pub fn span(&self, id: u64) -> Option<&SpanTrace> {
        self.spans.iter().find(|s| s.id == id)
    }

    /// Model spans.
    pub fn models(&self) -> impl Iterator<Item = &SpanTrace> {
        self.spans.iter().filter(|s| s.class == SpanClass::Model)
    }
}

struct Pending {
    records: Vec<Record>,
    root: Option<Record>,
    children: u32,
    first_seen: Instant,
    root_seen: Option<Instant>,
}

/// How long a request whose root closed may wait for stragglers.
const GRACE: Duration = Duration::from_secs(2);
/// How long records may wait for a root that never comes.
const ORPHAN: Duration = Duration::from_secs(30);

pub(crate) struct Assembler {
    pending: FxHashMap<u64, Pending>,
    pub(crate) late_records: u64,
}

/// A request ready to judge.
pub(crate) struct Finished {
    pub(crate) root: Record,
    pub(crate) records: Vec<Record>,
    pub(crate) complete: bool,
}

impl Assembler {
    pub(crate) fn new() -> Self {
        Self {
            pending: FxHashMap::default(),
            late_records: 0,
        }
    }

    /// Files one record; returns the request if this record completed it.
    pub(crate) fn add(&mut self, r: &Record, now: Instant) -> Option<Finished> {
        if r.request_span == 0 {
            return None;
        }
        let p = self
            .pending
            .entry(r.request_span)
            .or_insert_with(|| Pending {
                records: Vec::new(),
                root: None,
                children: 0,
                first_seen: now,
                root_seen: None,
            });
        if r.kind == RecordKind::Span && r.span == r.request_span {
            p.root = Some(*r);
            p.root_seen = Some(now);
        } else {
            if r.kind == RecordKind::Span {
                p.children += 1;
            }
            p.records.push(*r);
        }
        let done = p.root.is_some_and(|root| p.children >= root.descendants);
        if done {
            let p = self.pending.remove(&r.request_span)?;
            return Some(Finished {
                root: p.root?,
                records: p.records,
                complete: true,
            });
        }
        None
    }

    /// Requests whose root closed more than the grace period ago (or all of them
    /// with `force`), finalized as they are; orphans dropped and counted.
    pub(crate) fn sweep(&mut self, now: Instant, force: bool) -> Vec<Finished> {
        let mut out = Vec::new();
        let mut late = 0;
        self.pending.retain(|_, p| {
            if let (Some(root), Some(seen)) = (p.root, p.root_seen) {
                if force || now.duration_since(seen) >= GRACE {
                    out.push(Finished {
                        root,
                        records: std::mem::take(&mut p.records),
                        complete: false,
                    });
                    return false;
                }
                return true;
            }
            if force || now.duration_since(p.first_seen) >= ORPHAN {
                late += p.records.len() as u64;
                return false;
            }
            true
        });
        self.late_records += late;
        out
    }
}

fn field_list(r: &Record) -> Vec<(&'static str, FieldValue)> {
    let names = r.metadata.fields();
    r.fields
        .iter()
        .filter_map(|(i, v)| names.iter().nth(i).map(|f| (f.name(), v)))
        .collect()
}

/// Builds the trace of a finished request and judges it. Returns `None` when the
/// request is neither sampled, over budget nor failed.
pub(crate) fn judge(f: Finished, clock: &Clock, target: Duration) -> Option<RequestTrace> {
    let root = f.root;
    let total = Duration::from_nanos(clock.nanos_between(root.start, root.end));
    let mut status = root.status;
    let mut spans = vec![span_trace(&root, &root, clock)];
    let mut events = Vec::new();
    for r in &f.records {
        status = status.max(r.status);
        match r.kind {
            RecordKind::Span => spans.push(span_trace(r, &root, clock)),
            RecordKind::Event => events.push(EventTrace {
                span: r.span,
                at: Duration::from_nanos(clock.nanos_between(root.start, r.start)),
                level: *r.metadata.level(),
                message: r.text.as_str().to_string(),
                status: r.status,
                fields: field_list(r),
            }),
        }
    }
    let reason = CaptureReason {
        sampled: root.sampled,
        over_budget: total > target,
        failed: status != Status::Ok,
    };
    if !(reason.sampled || reason.over_budget || reason.failed) {
        return None;
    }
    spans[1..].sort_by_key(|s| s.start);
    events.sort_by_key(|e| e.at);
    let attribution = attribute(&spans, total);
    Some(RequestTrace {
        request_id: root.request_id,
        name: root.metadata.name(),
        total,
        target,
        reason,
        status,
        complete: f.complete,
        spans,
        events,
        attribution,
        // The root closed `now - end` ticks ago (it may have waited in a ring
        // and for stragglers before being judged).
        closed_at: std::time::SystemTime::now()
            .checked_sub(Duration::from_nanos(
                clock.nanos_between(root.end, clock.now()),
            ))
            .unwrap_or_else(std::time::SystemTime::now),
    })
}

fn span_trace(r: &Record, root: &Record, clock: &Clock) -> SpanTrace {
    SpanTrace {
        id: r.span,
        parent: if r.span == root.span { 0 } else { r.parent },
        name: r.metadata.name(),
        class: r.class,
        model: (r.class == SpanClass::Model).then(|| r.text.as_str().to_string()),
        start: Duration::from_nanos(clock.nanos_between(root.start, r.start)),
        wall: Duration::from_nanos(clock.nanos_between(r.start, r.end)),
        busy: Duration::from_nanos(clock.ticks_to_nanos(r.busy)),
        status: r.status,
        fields: field_list(r),
    }
}

/// The critical path through the parallel models: the model span that ended
/// last gated its parent (a timed-out model gates at the deadline, so among
/// timeouts the first one recorded is named).
pub(crate) fn attribute(spans: &[SpanTrace], total: Duration) -> Option<Attribution> {
    let gate = spans
        .iter()
        .filter(|s| s.class == SpanClass::Model)
        .max_by_key(|s| (s.status == Status::Timeout, s.start + s.wall))?;
    let share = if total.is_zero() {
        0.0
    } else {
        (gate.wall.as_secs_f64() / total.as_secs_f64()).min(1.0)
    };
    Some(Attribution {
        model: gate.label().to_string(),
        span: gate.id,
        wall: gate.wall,
        busy: gate.busy,
        share,
        starved: gate.waiting() > gate.busy,
        status: gate.status,
    })
}

/// The bounded store of captured requests: the N most recent and the N slowest.
pub(crate) struct Captures {
    capacity: usize,
    pub(crate) recent: VecDeque<Arc<RequestTrace>>,
    pub(crate) slowest: Vec<Arc<RequestTrace>>,
}

impl Captures {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            recent: VecDeque::with_capacity(capacity),
            slowest: Vec::with_capacity(capacity + 1),
        }
    }

    pub(crate) fn keep(&mut self, t: Arc<RequestTrace>) {
        if self.recent.len() == self.capacity {
            self.recent.pop_back();
        }
        self.recent.push_front(t.clone());
        let pos = self.slowest.partition_point(|s| s.total >= t.total);
        if pos < self.capacity {
            self.slowest.insert(pos, t);
            self.slowest.truncate(self.capacity);
        }
    }
}
