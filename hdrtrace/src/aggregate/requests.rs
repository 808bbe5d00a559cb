//! Captured requests: their traces (spans, events, the bottleneck) and the
//! bounded store that keeps the most recent and the slowest. Assembly is in
//! `assembly.rs`.

use crate::record::{FieldValue, SpanClass, Status};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
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
    /// The request's numeric id (its trace id is [`RequestTrace::trace_id`]).
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
    /// Spans and events past `TracingConfig::max_capture_spans`, not kept:
    /// how many, per span or event name.
    pub omitted: Vec<(&'static str, u64)>,
    /// The bottleneck, when any model ran.
    pub attribution: Option<Attribution>,
    /// Wall-clock time the root closed.
    pub closed_at: std::time::SystemTime,
    /// The caller's span, when the root carried a valid `traceparent`
    /// (`Conventions::traceparent_field`): the request is exported under the
    /// caller's trace id, its root a child of that span.
    pub remote_parent: Option<crate::RemoteParent>,
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
