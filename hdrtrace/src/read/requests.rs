//! Captured requests: their traces (spans, events, the bottleneck) and the
//! bounded store that keeps the most recent and the slowest. Assembly is in
//! `assembly.rs`.

use crate::handoff::record::{FieldValue, SpanClass, Status};
use crate::read::format::fmt_ms;
use crate::recording::trace_context::RemoteParent;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tracing_core::Level;

/// One span of a captured request, as the aggregator recorded it: every view
/// (the text tree, Perfetto, OTLP, exemplars) reads it as it is.
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
    /// The histogram series the aggregator recorded it in.
    pub series: SeriesKey,
    /// When it started, from the request's start.
    pub start: Duration,
    /// New to close.
    pub wall: Duration,
    /// Entered (polled) time.
    pub busy: Duration,
    /// The device time it reported in the service's device-time field
    /// ([`Conventions::device_time_field`](crate::Conventions::device_time_field)),
    /// read as the device-time histogram reads it; `None` when it reported
    /// none.
    pub device: Option<Duration>,
    /// How it ended.
    pub status: Status,
    /// Numeric fields, by name; the device-time field is not among them (it
    /// is [`device`](Self::device)).
    pub fields: Vec<(&'static str, FieldValue)>,
    /// The IDs of the spans in this trace it is linked with (`follows_from`,
    /// made from either side): a model span and the batch that served it.
    pub links: Vec<u64>,
    /// True for a batch span (and its descendants) that served this request
    /// but belongs to no single request: other requests' traces carry it too.
    pub shared: bool,
}

/// The histogram series a span is recorded in, as a snapshot names it: a
/// model key ([`LatencySnapshot::model`](crate::LatencySnapshot::model)) or a
/// stage name ([`LatencySnapshot::stage`](crate::LatencySnapshot::stage)). A
/// key past its cardinality cap is the overflow series, `<other>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SeriesKey {
    /// A model series, by model key.
    Model(String),
    /// A stage series, by span name.
    Stage(String),
}

impl SeriesKey {
    /// The key within its table.
    pub fn name(&self) -> &str {
        match self {
            SeriesKey::Model(n) | SeriesKey::Stage(n) => n,
        }
    }

    /// Whether it is a model series.
    pub fn is_model(&self) -> bool {
        matches!(self, SeriesKey::Model(_))
    }
}

impl SpanTrace {
    /// `wall - busy`: time the span was open but not being polled.
    pub fn waiting(&self) -> Duration {
        self.wall.saturating_sub(self.busy)
    }

    /// The model key for model spans, the span name otherwise.
    pub fn label(&self) -> &str {
        match (self.class, &self.model) {
            (SpanClass::Model, Some(m)) => m,
            _ => self.name,
        }
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
    /// The model the request waited on: of the models that timed out or
    /// failed, the one whose work ended last; when every model returned,
    /// the one whose work ended last. A model's work ends with its span, or
    /// with the batch that served it when that ran on past the span (a
    /// timed-out span closes at the deadline; its batch runs on).
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
    /// When the model ran in a batch: how its time splits around the batch.
    pub batch: Option<BatchShare>,
}

/// How a batched model span's time splits around the batch that served it.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchShare {
    /// The batch span's ID in this trace.
    pub span: u64,
    /// Its batch size field.
    pub size: u64,
    /// The ids of the requests it served, as far as they were known when
    /// this request was judged (those whose model span's links record had
    /// reached the aggregator; this request's always), at most
    /// `limits::MAX_BATCH_REQUESTS`.
    pub requests: Vec<u64>,
    /// Model span start to batch span start: waiting for the batch to form
    /// (and to start).
    pub wait: Duration,
    /// The batch span's wall time.
    pub run: Duration,
    /// Batch span end to model span end: handing the results back.
    pub after: Duration,
    /// The largest of the three.
    pub cause: BatchCause,
}

/// Which part of a batched model span's time dominated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BatchCause {
    /// Waiting for the batch to fill (or for it to start).
    Wait,
    /// The batch's own run.
    Run,
    /// After the batch: its results handed back late.
    After,
}

impl BatchShare {
    /// Splits a model span (`start`, `end`, from the request's start) around
    /// its batch (`batch_start`, `batch_end`).
    pub(crate) fn new(
        span: u64,
        size: u64,
        requests: Vec<u64>,
        model: (Duration, Duration),
        batch: (Duration, Duration),
    ) -> Self {
        let wait = batch.0.saturating_sub(model.0);
        let run = batch.1.saturating_sub(batch.0);
        let after = model.1.saturating_sub(batch.1);
        let cause = if wait >= run && wait >= after {
            BatchCause::Wait
        } else if run >= after {
            BatchCause::Run
        } else {
            BatchCause::After
        };
        Self {
            span,
            size,
            requests,
            wait,
            run,
            after,
            cause,
        }
    }
}

/// Why a model was blamed for a request: the model that gated it (see
/// [`Attribution`]) either did not return (it timed out or failed, and the
/// request went on without it: degraded, or failed) or returned last in a
/// request over its latency target. Each blamed request has exactly one
/// reason, read from its gating model's status first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlameReason {
    /// The request took longer than its latency target, and this model
    /// returned last.
    OverTarget,
    /// The model timed out.
    TimedOut,
    /// The model failed (an `ERROR` event in its span: an error or a panic).
    Failed,
}

impl BlameReason {
    /// Every reason: over target, timed out, failed (the order of every
    /// by-reason list, the byte format's included).
    pub const ALL: [BlameReason; 3] = [
        BlameReason::OverTarget,
        BlameReason::TimedOut,
        BlameReason::Failed,
    ];

    /// Its name in exports (the Prometheus `reason` label):
    /// `"over_target"`, `"timed_out"` or `"failed"`.
    pub fn name(self) -> &'static str {
        match self {
            BlameReason::OverTarget => "over_target",
            BlameReason::TimedOut => "timed_out",
            BlameReason::Failed => "failed",
        }
    }

    /// Its position in [`ALL`](Self::ALL).
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The reason a request is blamed on a model that ended with `status`
    /// (`over_target`: the request took longer than its target); `None`
    /// when the model returned and the request met its target.
    fn of(status: Status, over_target: bool) -> Option<Self> {
        match status {
            Status::Timeout => Some(BlameReason::TimedOut),
            Status::Error => Some(BlameReason::Failed),
            Status::Ok if over_target => Some(BlameReason::OverTarget),
            Status::Ok => None,
        }
    }
}

/// What became of a request, one per request: the first that applies of
/// failed, degraded, over target and met.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Its root span reported an error or a timeout: the request itself
    /// failed.
    Failed,
    /// It returned, but a model it waited on timed out or failed: the answer
    /// lacks that model's part.
    Degraded,
    /// It returned whole, after its latency target.
    OverTarget,
    /// It returned whole within its target.
    Met,
}

impl Outcome {
    /// Its name: `"failed"`, `"degraded"`, `"over target"` or `"met"`.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Failed => "failed",
            Outcome::Degraded => "degraded",
            Outcome::OverTarget => "over target",
            Outcome::Met => "met",
        }
    }

    /// The outcome of a request whose root ended with `root`, whose gating
    /// model (if any ran) ended with `gate`, and whose wall time passed its
    /// target when `over_target`.
    fn of(root: Status, gate: Option<Status>, over_target: bool) -> Self {
        if root != Status::Ok {
            Outcome::Failed
        } else if gate.is_some_and(|s| s != Status::Ok) {
            Outcome::Degraded
        } else if over_target {
            Outcome::OverTarget
        } else {
            Outcome::Met
        }
    }
}

/// The sentence naming a request's bottleneck ([`RequestTrace::verdict`]),
/// led by its outcome unless it met its target; over its target, led by
/// the slow stage when there is one.
fn verdict(
    outcome: Outcome,
    attribution: Option<&Attribution>,
    slow_stage: Option<&SpanTrace>,
) -> String {
    let lead = match outcome {
        Outcome::Met => String::new(),
        o => format!("{}: ", o.name()),
    };
    match slow_stage {
        Some(s) if outcome == Outcome::OverTarget => format!(
            "{lead}{} stage took {}, longer than the models; {}",
            s.label(),
            fmt_ms(s.wall),
            bottleneck(attribution)
        ),
        _ => format!("{lead}{}", bottleneck(attribution)),
    }
}

/// The position of the root's longest direct child when it is not a model
/// and does not contain the bottleneck model span (`gate`): a 190 ms
/// tokenize, say, under which no model ran.
fn slow_stage(spans: &[SpanTrace], index: &TreeIndex, gate: Option<u64>) -> Option<usize> {
    let root = spans.first()?;
    let (i, longest) = spans
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, s)| s.parent == root.id)
        .max_by_key(|(_, s)| s.wall)?;
    if longest.class == SpanClass::Model {
        return None;
    }
    let Some(mut at) = gate.and_then(|g| index.position(g)) else {
        return Some(i);
    };
    // Up from the bottleneck, at most once per span.
    for _ in 0..spans.len() {
        if at == i {
            return None;
        }
        match index.parent(at) {
            Some(p) => at = p,
            None => break,
        }
    }
    Some(i)
}

/// The bottleneck part of the verdict.
fn bottleneck(attribution: Option<&Attribution>) -> String {
    let Some(a) = attribution else {
        return "no model ran".to_string();
    };
    if let Some(b) = &a.batch {
        let part = match b.cause {
            BatchCause::Wait => format!(
                "waited {} for a batch of {} to fill",
                fmt_ms(b.wait),
                b.size
            ),
            BatchCause::Run => format!("batch of {} ran {}", b.size, fmt_ms(b.run)),
            BatchCause::After => format!(
                "results came {} after its batch of {} ran",
                fmt_ms(b.after),
                b.size
            ),
        };
        let outcome = match a.status {
            Status::Ok => "",
            Status::Error => ", and it failed",
            Status::Timeout => ", and it timed out",
        };
        return format!("{}: {part}{outcome}", a.model);
    }
    // A timed-out model's span may stay open past the deadline (its task is
    // aborted, its blocking compute is not), so its wall is "open".
    let verb = match a.status {
        Status::Ok => format!("took {}", fmt_ms(a.wall)),
        Status::Error => format!("failed after {}", fmt_ms(a.wall)),
        Status::Timeout => format!("timed out (span open {})", fmt_ms(a.wall)),
    };
    let how = if a.starved {
        "starved: waiting, not running (queued for a worker or the compute pool)"
    } else {
        "slow while running"
    };
    format!(
        "{} {verb}, {:.1}% of the total: {how} (busy {}, waiting {})",
        a.model,
        a.share * 100.0,
        fmt_ms(a.busy),
        fmt_ms(a.wall.saturating_sub(a.busy)),
    )
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

/// What a captured request is made of: everything [`RequestTrace::new`]
/// takes, and [`RequestTrace::to_parts`] gives back.
#[derive(Clone, Debug)]
pub struct TraceParts {
    /// The request's numeric id.
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
    /// False when some descendant's record never arrived.
    pub complete: bool,
    /// Root first, then by start time.
    pub spans: Vec<SpanTrace>,
    /// By time.
    pub events: Vec<EventTrace>,
    /// Spans and events past the capture limit, not kept: how many, per name.
    pub omitted: Vec<(&'static str, u64)>,
    /// The bottleneck, when any model ran.
    pub attribution: Option<Attribution>,
    /// Wall-clock time the root closed.
    pub closed_at: SystemTime,
    /// The caller's span, when the root carried a valid `traceparent`.
    pub remote_parent: Option<RemoteParent>,
}

/// A captured request: its whole span tree, and what every view of it reads
/// (its [`index`](Self::index), [`verdict`](Self::verdict) and
/// [`started_at`](Self::started_at)), derived once by its constructor. It
/// does not change after: to show an edited request, build a new one from
/// its [`parts`](Self::to_parts).
#[derive(Clone, Debug)]
pub struct RequestTrace {
    parts: TraceParts,
    started_at: SystemTime,
    outcome: Outcome,
    blame: Option<BlameReason>,
    slow_stage: Option<usize>,
    verdict: String,
    index: TreeIndex,
}

/// The tree of a trace's spans, by position in [`RequestTrace::spans`]: each
/// span's position by ID and its parent's position. A shared batch span (whose
/// recorded parent is not in the trace) hangs from the first span linked with
/// it, the model span it served. Built once, by [`RequestTrace::new`], and
/// read by every renderer.
#[derive(Clone, Debug)]
pub struct TreeIndex {
    position: std::collections::HashMap<u64, usize>,
    parent: Vec<Option<usize>>,
}

impl TreeIndex {
    /// The index of `spans` (the root first). Duplicate IDs keep the first
    /// position; a span whose parent is itself or missing has none (it is
    /// shown under the root, as an orphan).
    fn new(spans: &[SpanTrace]) -> Self {
        let mut position = std::collections::HashMap::with_capacity(spans.len());
        for (i, s) in spans.iter().enumerate() {
            position.entry(s.id).or_insert(i);
        }
        let linked = |i: usize| {
            spans
                .iter()
                .position(|o| o.links.contains(&spans[i].id))
                .filter(|&p| p != i)
        };
        let parent = spans
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if i == 0 {
                    return None;
                }
                match position.get(&s.parent) {
                    Some(&p) if p != i => Some(p),
                    _ if s.shared => linked(i),
                    _ => None,
                }
            })
            .collect();
        Self { position, parent }
    }

    /// The position of the span with this ID.
    pub fn position(&self, id: u64) -> Option<usize> {
        self.position.get(&id).copied()
    }

    /// The position of the parent of the span at `i` (`None` for the root
    /// and for a span whose parent is not in the trace).
    pub fn parent(&self, i: usize) -> Option<usize> {
        self.parent.get(i).copied().flatten()
    }
}

impl RequestTrace {
    /// The request made of `parts`, with what its views read derived from
    /// them: where each span sits in the tree, the verdict on its
    /// attribution, and its start (`closed_at - total`).
    pub fn new(parts: TraceParts) -> Self {
        let over_target = parts.total > parts.target;
        let root = parts.spans.first().map_or(Status::Ok, |s| s.status);
        let gate = parts.attribution.as_ref().map(|a| a.status);
        let outcome = Outcome::of(root, gate, over_target);
        let index = TreeIndex::new(&parts.spans);
        let a = parts.attribution.as_ref();
        let slow = slow_stage(&parts.spans, &index, a.map(|a| a.span));
        Self {
            started_at: parts
                .closed_at
                .checked_sub(parts.total)
                .unwrap_or(parts.closed_at),
            outcome,
            blame: gate.and_then(|s| BlameReason::of(s, over_target)),
            slow_stage: slow,
            verdict: verdict(outcome, a, slow.map(|i| &parts.spans[i])),
            index,
            parts,
        }
    }

    /// What it is made of, to build an edited request from.
    pub fn to_parts(&self) -> TraceParts {
        self.parts.clone()
    }

    /// The request's numeric id (its trace id is [`RequestTrace::trace_id`]).
    pub fn request_id(&self) -> u64 {
        self.parts.request_id
    }

    /// The root span's name.
    pub fn name(&self) -> &'static str {
        self.parts.name
    }

    /// The root's wall time.
    pub fn total(&self) -> Duration {
        self.parts.total
    }

    /// The latency target it was judged against.
    pub fn target(&self) -> Duration {
        self.parts.target
    }

    /// Why it was kept.
    pub fn reason(&self) -> CaptureReason {
        self.parts.reason
    }

    /// The worst status of any span.
    pub fn status(&self) -> Status {
        self.parts.status
    }

    /// False when some descendant's record never arrived (dropped, or still
    /// open when the grace period ended).
    pub fn complete(&self) -> bool {
        self.parts.complete
    }

    /// Its spans: the root first, then by start time.
    pub fn spans(&self) -> &[SpanTrace] {
        &self.parts.spans
    }

    /// Its events, by time.
    pub fn events(&self) -> &[EventTrace] {
        &self.parts.events
    }

    /// Spans and events past `TracingConfig::max_capture_spans`, not kept:
    /// how many, per span or event name.
    pub fn omitted(&self) -> &[(&'static str, u64)] {
        &self.parts.omitted
    }

    /// The bottleneck, when any model ran.
    pub fn attribution(&self) -> Option<&Attribution> {
        self.parts.attribution.as_ref()
    }

    /// Wall-clock time the root closed.
    pub fn closed_at(&self) -> SystemTime {
        self.parts.closed_at
    }

    /// The caller's span, when the root carried a valid `traceparent`
    /// (`Conventions::traceparent_field`): the request is exported under the
    /// caller's trace id, its root a child of that span.
    pub fn remote_parent(&self) -> Option<RemoteParent> {
        self.parts.remote_parent
    }

    /// Wall-clock time the root opened (`closed_at - total`): every span's
    /// `start` is from here.
    pub fn started_at(&self) -> SystemTime {
        self.started_at
    }

    /// The one sentence naming the outcome, the bottleneck and why, which
    /// every renderer shows: `over target: Causal took 180.0ms, 87.8% of the
    /// total: slow while running (busy 179.2ms, waiting 0.800ms)`, or for a
    /// batched model `degraded: Causal: batch of 16 ran 262.4ms, and it timed
    /// out`; led by the [`outcome`](Self::outcome)'s name unless the request
    /// met its target; `no model ran` when none did.
    pub fn verdict(&self) -> &str {
        &self.verdict
    }

    /// The root's longest direct child when it is a stage that does not
    /// contain the bottleneck model (a 190 ms tokenize, say): over its
    /// target, the request owes more to it than to any model, and the
    /// verdict names it first.
    pub fn slow_stage(&self) -> Option<&SpanTrace> {
        self.slow_stage.map(|i| &self.parts.spans[i])
    }

    /// What became of it: failed, degraded, over target or met.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// Why its gating model ([`attribution`](Self::attribution)) is blamed
    /// for it: the model timed out or failed, or it returned last in a
    /// request over its target; `None` when no model ran, or the model
    /// returned and the request met its target. The aggregator counts each
    /// blamed request once, under its model and this reason
    /// ([`ModelLatency::blamed_for`](crate::ModelLatency::blamed_for)).
    pub fn blame(&self) -> Option<BlameReason> {
        self.blame
    }

    /// Where each span sits in the tree; see [`TreeIndex`].
    pub fn index(&self) -> &TreeIndex {
        &self.index
    }

    /// The root span (`None` only for a request built without spans).
    pub fn root(&self) -> Option<&SpanTrace> {
        self.parts.spans.first()
    }

    /// Spans whose parent is `id`, by start time.
    pub fn children(&self, id: u64) -> impl Iterator<Item = &SpanTrace> {
        self.parts
            .spans
            .iter()
            .filter(move |s| s.parent == id && s.id != id)
    }

    /// A span by ID (the first, if several share it).
    pub fn span(&self, id: u64) -> Option<&SpanTrace> {
        self.index.position(id).map(|i| &self.parts.spans[i])
    }

    /// Model spans.
    pub fn models(&self) -> impl Iterator<Item = &SpanTrace> {
        self.parts
            .spans
            .iter()
            .filter(|s| s.class == SpanClass::Model)
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
        let pos = self.slowest.partition_point(|s| s.total() >= t.total());
        if pos < self.capacity {
            self.slowest.insert(pos, t);
            self.slowest.truncate(self.capacity);
        }
    }
}
