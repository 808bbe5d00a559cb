//! What readers get: immutable, cheaply cloned latency snapshots.

use crate::handoff::record::{InlineText, INLINE_TEXT};
use crate::read::requests::{BlameReason, RequestTrace};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Histograms record nanoseconds from 1 ns up to this, at 3 significant figures;
/// larger values saturate at the top.
pub const HIGHEST_NS: u64 = 120 * 1_000_000_000;
/// Significant figures kept.
pub const SIGFIGS: u8 = 3;

/// An empty histogram of that shape, growing as values come (the
/// collection's series and every decoded one alike).
pub(crate) fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that HDR accepts (1 <= low, high >= 2 * low,
    // sigfigs <= 5), so this cannot fail.
    let mut h =
        Histogram::new_with_bounds(1, 2, SIGFIGS).expect("constant histogram bounds are valid");
    // Grows to the largest value recorded (at most `HIGHEST_NS`, see
    // `collection::series`): a series of microsecond spans costs 16 KiB, not the
    // 229 KiB a histogram sized for 120 s takes.
    h.auto(true);
    h
}

/// One latency distribution (nanoseconds inside, `Duration` outside).
#[derive(Clone, Debug)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Latency {
    pub(crate) fn new(hist: Histogram<u64>) -> Self {
        Self { hist }
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The value at quantile `q` (clamped to 0.0..=1.0; NaN reads as 0.0), to
    /// within HDR's 3 significant figures. Zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        Duration::from_nanos(self.hist.value_at_quantile(q))
    }

    /// The smallest sample (zero when empty).
    pub fn min(&self) -> Duration {
        Duration::from_nanos(if self.hist.is_empty() {
            0
        } else {
            self.hist.min()
        })
    }

    /// The largest sample (zero when empty).
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.hist.max())
    }

    /// The mean (zero when empty).
    pub fn mean(&self) -> Duration {
        Duration::from_nanos(self.hist.mean() as u64)
    }

    /// The underlying histogram, in nanoseconds.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.hist
    }
}

/// Latency of one model (or one stage): wall time (new to close), busy time
/// (entered / being polled), device time when it ran on a GPU, batch size and
/// batch wait when it ran batched, and outcomes.
///
/// The shortcut methods (`count`, `quantile`, ...) read the wall-time series.
#[derive(Clone, Debug)]
pub struct ModelLatency {
    pub(crate) wall: Latency,
    pub(crate) busy: Latency,
    pub(crate) gpu: Option<Latency>,
    pub(crate) batch_size: Option<Histogram<u64>>,
    pub(crate) batch_wait: Option<Latency>,
    pub(crate) errors: u64,
    pub(crate) timeouts: u64,
    /// Requests blamed on it, by [`BlameReason::index`].
    pub(crate) blamed: [u64; 3],
}

/// Stages are measured exactly as models are.
pub type StageLatency = ModelLatency;

/// How one histogram of a model or stage is named and found.
pub(crate) type Series = (&'static str, fn(&ModelLatency) -> Option<&Histogram<u64>>);

/// Every histogram of a model or stage, in the byte format's order: wall and
/// busy first (every entry has them), then the optional ones.
pub(crate) const SERIES: [Series; 5] = [
    ("wall histogram", |m| Some(m.wall.histogram())),
    ("busy histogram", |m| Some(m.busy.histogram())),
    ("gpu histogram", |m| m.gpu.as_ref().map(Latency::histogram)),
    ("batch size histogram", |m| m.batch_size.as_ref()),
    ("batch wait histogram", |m| {
        m.batch_wait.as_ref().map(Latency::histogram)
    }),
];

impl ModelLatency {
    /// Wall time: from the span's creation to its close.
    pub fn wall(&self) -> &Latency {
        &self.wall
    }
    /// Busy time: the sum of the span's enter-to-exit intervals; for a model
    /// span served by a batch (linked to a batch span), its share of the
    /// batch's work instead: the batch span's busy time over the batch's
    /// size.
    pub fn busy(&self) -> &Latency {
        &self.busy
    }
    /// Device (GPU) time, when the model reported any.
    pub fn gpu(&self) -> Option<&Latency> {
        self.gpu.as_ref()
    }
    /// Batch sizes, one per batch span of this model, when it ran batched.
    pub fn batch_size(&self) -> Option<&Histogram<u64>> {
        self.batch_size.as_ref()
    }
    /// Each served request's wait for its batch to start (its model span's
    /// start to the batch span's start), when it ran batched.
    pub fn batch_wait(&self) -> Option<&Latency> {
        self.batch_wait.as_ref()
    }
    /// Spans recorded (wall).
    pub fn count(&self) -> u64 {
        self.wall.count()
    }
    /// Wall-time quantile.
    pub fn quantile(&self, q: f64) -> Duration {
        self.wall.quantile(q)
    }
    /// Shortest wall time.
    pub fn min(&self) -> Duration {
        self.wall.min()
    }
    /// Longest wall time.
    pub fn max(&self) -> Duration {
        self.wall.max()
    }
    /// Mean wall time.
    pub fn mean(&self) -> Duration {
        self.wall.mean()
    }
    /// The wall-time histogram.
    pub fn histogram(&self) -> &Histogram<u64> {
        self.wall.histogram()
    }
    /// Spans that closed with an error.
    pub fn errors(&self) -> u64 {
        self.errors
    }
    /// Spans that closed timed out.
    pub fn timeouts(&self) -> u64 {
        self.timeouts
    }
    /// Requests blamed on this model, over every reason: those it degraded
    /// or failed (it timed out or failed) and those over the latency target
    /// it returned last in ([`RequestTrace::blame`]). Zero for stages.
    pub fn blamed(&self) -> u64 {
        self.blamed.iter().sum()
    }
    /// Requests blamed on this model for `reason`.
    pub fn blamed_for(&self, reason: BlameReason) -> u64 {
        self.blamed[reason.index()]
    }
}

/// Latencies by model and by stage, over one period.
#[derive(Clone, Debug, Default)]
pub struct Latencies {
    pub(crate) models: BTreeMap<String, Arc<ModelLatency>>,
    pub(crate) stages: BTreeMap<String, Arc<ModelLatency>>,
}

impl Latencies {
    /// A model by its `model_id` (the whole id also when it was longer than
    /// what a record keeps inline).
    pub fn model(&self, name: &str) -> Option<&ModelLatency> {
        match self.models.get(name) {
            Some(m) => Some(&**m),
            None if name.len() > INLINE_TEXT => {
                let key = InlineText::from_str_truncated(name);
                self.models.get(&*key.key_name()).map(|m| &**m)
            }
            None => None,
        }
    }
    /// A stage (or request root) by span name.
    pub fn stage(&self, name: &str) -> Option<&StageLatency> {
        self.stages.get(name).map(|m| &**m)
    }
    /// Every model, by name.
    pub fn models(&self) -> impl Iterator<Item = (&str, &ModelLatency)> {
        self.models.iter().map(|(k, v)| (k.as_str(), &**v))
    }
    /// Every stage, by name.
    pub fn stages(&self) -> impl Iterator<Item = (&str, &StageLatency)> {
        self.stages.iter().map(|(k, v)| (k.as_str(), &**v))
    }
}

/// Counters of what was recorded and what was lost. The byte format
/// ([`LatencySnapshot::to_bytes`]) and merged snapshots carry the first eight;
/// the aggregator's bounds (from `budget_dropped_records` on) are per process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Span records aggregated.
    pub spans: u64,
    /// Event records aggregated.
    pub events: u64,
    /// Requests (root spans) aggregated.
    pub requests: u64,
    /// Requests whose trace was head-sampled.
    pub sampled_requests: u64,
    /// Requests captured (sampled, over budget, failed or timed out).
    pub captured_requests: u64,
    /// Spans not tracked because every slot was in use.
    pub dropped_spans: u64,
    /// Records lost to full rings (or to a thread being torn down).
    pub dropped_records: u64,
    /// Records that arrived after their request had been finalized, or whose
    /// request's root never came (counted at shutdown).
    pub late_records: u64,
    /// Requests that returned with a model missing: a model they waited on
    /// timed out or failed, and the request itself did not fail
    /// ([`Outcome::Degraded`](crate::Outcome::Degraded)). Per process: the
    /// byte format does not carry it.
    pub degraded_requests: u64,
    /// Enters and exits no thread could match: a span exited on another
    /// thread than it was entered on, an `Entered` guard forgotten, or the
    /// outermost entries of a stack deeper than 64 spans. Their busy time is
    /// not counted; parents stay exact.
    pub unmatched_enters: u64,
    /// Request sinks dropped because they panicked.
    pub failed_sinks: u64,
    /// Log lines not written: their thread's log ring was full (the writer
    /// fell behind, or blocks), the writer returned an error or had panicked,
    /// or shutdown gave up on a writer that did not return in time.
    pub dropped_log_lines: u64,
    /// Log writers dropped because they panicked (reported once on stderr);
    /// every line after is counted in `dropped_log_lines`.
    pub failed_log_writers: u64,
    /// Request roots whose traceparent field was not a valid W3C
    /// traceparent: ignored (the request keeps its own trace id), counted,
    /// and the first reported once on stderr.
    pub malformed_traceparents: u64,
    /// Records not kept for tail capture because the pending requests filled
    /// `memory_budget` (the oldest request's went first); they are still in
    /// the histograms, and their requests are incomplete.
    pub budget_dropped_records: u64,
    /// Requests that lost records to `memory_budget` (each is incomplete).
    pub budget_dropped_requests: u64,
    /// Requests waiting for their records when the snapshot was taken.
    pub pending_requests: u64,
    /// Spans recorded in an `"<other>"` series because their model key or
    /// stage name came past `max_models` / `max_stages`.
    pub overflow_spans: u64,
    /// Distinct model keys longer than the inline text: each keeps a series of
    /// its own, published as its first bytes, `…#` and a hash of the whole
    /// (`LatencySnapshot::model` finds it by the whole name).
    pub truncated_keys: u64,
    /// The longest stretch, in nanoseconds, the aggregator spent between two
    /// drains of the rings while it was busy (aggregating, judging, building a
    /// snapshot; not while it waited for work).
    pub longest_drain_gap_ns: u64,
    /// `follows_from` links not kept because their span already had
    /// `limits::MAX_LINKS`.
    pub dropped_links: u64,
    /// Records of batches (and their children) not kept for captured requests
    /// because their share of `memory_budget` was full, or that waited for
    /// their batch longer than the grace period; still in the histograms.
    pub dropped_batch_records: u64,
    /// Model spans closed without a model id (the model field empty, or
    /// declared `Empty` and never recorded): recorded in the stage series
    /// of their span name, counted, and the first reported once on stderr.
    pub missing_model_ids: u64,
    /// Times a `Display` or `Debug` impl panicked while the subscriber
    /// formatted it (a model or request id, an event's message, a recorded
    /// value, a log line). What it was part of is dropped: the span is not
    /// opened, the value not recorded, the event or line not kept. The
    /// panic goes on to the caller; the thread records as before.
    pub format_panics: u64,
    /// Span and event records made on the aggregator thread itself, by a
    /// `RequestSink` recording into the subscriber that feeds it: ignored
    /// (never aggregated or captured), so a sink cannot feed itself.
    pub aggregator_thread_records: u64,
    /// Bytes the histograms are charged: every series' histograms and sparse
    /// slices, and the two snapshots' views of them. New keys, histogram
    /// growth and recent-window slices are refused past their share of
    /// `memory_budget` (`TracingConfig::memory_budget`), so this stays within
    /// it.
    pub histogram_bytes: u64,
    /// Samples kept less exactly because the histograms' share of
    /// `memory_budget` was spent: recorded at the top of their histogram's
    /// range instead of growing it, left out of the recent window (they stay
    /// in the cumulative histograms), or, for a series' first device time,
    /// batch size or batch wait, not recorded.
    pub budget_clamped_samples: u64,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct SnapshotData {
    pub(crate) version: u64,
    pub(crate) taken_at: Option<SystemTime>,
    pub(crate) window: Duration,
    pub(crate) all: Latencies,
    pub(crate) recent: Latencies,
    pub(crate) counters: Counters,
    pub(crate) captured: Vec<Arc<RequestTrace>>,
    pub(crate) slowest: Vec<Arc<RequestTrace>>,
    /// Set when the aggregator thread has died: nothing after this snapshot
    /// was aggregated.
    pub(crate) aggregator_failure: Option<Arc<str>>,
}

/// An immutable view of every histogram at one moment. Cloning is cheap (it is a
/// reference-counted handle); readers never block the recording threads.
#[derive(Clone, Debug, Default)]
pub struct LatencySnapshot(pub(crate) Arc<SnapshotData>);

impl LatencySnapshot {
    /// A model's cumulative latency, by `model_id`.
    pub fn model(&self, name: &str) -> Option<&ModelLatency> {
        self.0.all.model(name)
    }
    /// A stage's (or request root's) cumulative latency, by span name.
    pub fn stage(&self, name: &str) -> Option<&StageLatency> {
        self.0.all.stage(name)
    }
    /// Every model, cumulative.
    pub fn models(&self) -> impl Iterator<Item = (&str, &ModelLatency)> {
        self.0.all.models()
    }
    /// Every stage, cumulative.
    pub fn stages(&self) -> impl Iterator<Item = (&str, &StageLatency)> {
        self.0.all.stages()
    }
    /// Cumulative latencies since start.
    pub fn cumulative(&self) -> &Latencies {
        &self.0.all
    }
    /// Latencies over the recent window (the last `TracingConfig::window`, to
    /// within one tenth of it).
    pub fn recent(&self) -> &Latencies {
        &self.0.recent
    }
    /// The recent window's length.
    pub fn window(&self) -> Duration {
        self.0.window
    }
    /// Recorded and dropped counts.
    pub fn counters(&self) -> Counters {
        self.0.counters
    }
    /// Spans not tracked because every slot was in use.
    pub fn dropped_spans(&self) -> u64 {
        self.0.counters.dropped_spans
    }
    /// Records lost to full rings.
    pub fn dropped_records(&self) -> u64 {
        self.0.counters.dropped_records
    }
    /// Why the aggregator thread stopped, if it died: this snapshot is then
    /// the last it published, and nothing recorded since is in it. `None`
    /// while it runs (and after a normal shutdown).
    pub fn aggregator_failure(&self) -> Option<&str> {
        self.0.aggregator_failure.as_deref()
    }
    /// When the aggregator built this snapshot (`None` before the first one).
    pub fn taken_at(&self) -> Option<SystemTime> {
        self.0.taken_at
    }
    /// Increases with every snapshot the aggregator publishes.
    pub fn version(&self) -> u64 {
        self.0.version
    }
    /// Captured requests, most recent first (bounded by `capture_capacity`).
    pub fn captured(&self) -> &[Arc<RequestTrace>] {
        &self.0.captured
    }
    /// Captured requests, slowest first (bounded by `capture_capacity`).
    pub fn slowest(&self) -> &[Arc<RequestTrace>] {
        &self.0.slowest
    }
}
