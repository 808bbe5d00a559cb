//! [`TraceEvent`]s: a captured request's story (models started, completed,
//! timed out or failed; fusion), derived from its span tree on the aggregator
//! thread and kept by a [`TraceEventCollector`].

use crate::model::ModelId;
use hdrtrace::FieldValue;
use hdrtrace::RequestSink;
use hdrtrace::RequestTrace;
use hdrtrace::{SpanClass, Status};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// One step of a captured request's story, for debugging: a model started,
/// answered, timed out or failed; fusion started or ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TraceEvent {
    /// A model call began.
    ModelStarted {
        /// The model.
        model_id: ModelId,
        /// When its span was created: estimated from the request's close time
        /// and its span offsets (early or late by the aggregator's delay in
        /// finalizing the request, usually a few milliseconds).
        timestamp: Instant,
    },
    /// A model answered.
    ModelCompleted {
        /// The model.
        model_id: ModelId,
        /// Its span's wall time.
        duration_ms: f64,
    },
    /// A model was still running at the deadline.
    ModelTimeout {
        /// The model.
        model_id: ModelId,
        /// When the deadline fired, from the start of `model_execution`.
        after_ms: f64,
    },
    /// A model failed or panicked.
    ModelError {
        /// The model.
        model_id: ModelId,
        /// The error message (as recorded inline by the subscriber: at most 40
        /// bytes).
        error: String,
    },
    /// Fusion began.
    FusionStarted {
        /// How many model vectors were fused.
        embedding_count: usize,
    },
    /// Fusion ended.
    FusionCompleted {
        /// The fused vector's width.
        output_dim: usize,
        /// The fusion span's wall time.
        duration_ms: f64,
    },
}

impl TraceEvent {
    /// The events of one captured request, in time order.
    pub fn from_trace(trace: &RequestTrace) -> Vec<TraceEvent> {
        let started = request_start(trace);
        let mut timed: Vec<(Duration, TraceEvent)> = Vec::new();
        for s in trace.spans() {
            if s.class == SpanClass::Model {
                let Some(model_id) = s.model.as_deref().filter(|m| !m.is_empty()) else {
                    continue;
                };
                let model_id = ModelId::new(model_id);
                timed.push((
                    s.start,
                    TraceEvent::ModelStarted {
                        model_id: model_id.clone(),
                        timestamp: started + s.start,
                    },
                ));
                let end = s.start + s.wall;
                let in_span = |status: Status| {
                    trace
                        .events()
                        .iter()
                        .find(move |e| e.span == s.id && e.status == status)
                };
                let event = match s.status {
                    Status::Ok => TraceEvent::ModelCompleted {
                        model_id,
                        duration_ms: ms(s.wall),
                    },
                    Status::Timeout => {
                        let e = in_span(Status::Timeout);
                        let after_ms = e
                            .and_then(|e| {
                                e.fields.iter().find_map(|(n, v)| match (*n, v) {
                                    ("after_ms", FieldValue::F64(x)) => Some(*x),
                                    _ => None,
                                })
                            })
                            .unwrap_or_else(|| ms(s.wall));
                        let at = e.map_or(end, |e| e.at);
                        timed.push((at, TraceEvent::ModelTimeout { model_id, after_ms }));
                        continue;
                    }
                    Status::Error => TraceEvent::ModelError {
                        model_id,
                        error: in_span(Status::Error)
                            .map_or_else(|| "failed".to_string(), |e| e.message.clone()),
                    },
                };
                timed.push((end, event));
            } else if s.name == "fusion" {
                let field = |name: &str| match s.field(name) {
                    Some(FieldValue::U64(n)) => n as usize,
                    Some(FieldValue::I64(n)) => n.max(0) as usize,
                    _ => 0,
                };
                timed.push((
                    s.start,
                    TraceEvent::FusionStarted {
                        embedding_count: field("embedding_count"),
                    },
                ));
                timed.push((
                    s.start + s.wall,
                    TraceEvent::FusionCompleted {
                        output_dim: field("output_dim"),
                        duration_ms: ms(s.wall),
                    },
                ));
            }
        }
        // Stable: a start sorts before the end it shares a time with.
        timed.sort_by_key(|(at, _)| *at);
        timed.into_iter().map(|(_, e)| e).collect()
    }

    /// The model the event is about, if any.
    pub fn model_id(&self) -> Option<&ModelId> {
        match self {
            TraceEvent::ModelStarted { model_id, .. }
            | TraceEvent::ModelCompleted { model_id, .. }
            | TraceEvent::ModelTimeout { model_id, .. }
            | TraceEvent::ModelError { model_id, .. } => Some(model_id),
            _ => None,
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The request's start, on this process's `Instant` clock.
fn request_start(trace: &RequestTrace) -> Instant {
    let now = Instant::now();
    // At least the request's length: the wall clock may have stepped back
    // since the request closed.
    let since_start = SystemTime::now()
        .duration_since(trace.started_at())
        .unwrap_or_default()
        .max(trace.total());
    now.checked_sub(since_start).unwrap_or(now)
}

/// A [`RequestSink`] that keeps the [`TraceEvent`]s of captured requests in
/// memory: of head-sampled requests ([`new`](Self::new)) or of every captured
/// one ([`all_captured`](Self::all_captured)). Clones share the events; pass
/// one to [`Builder::sink`](hdrtrace::Builder::sink) and read another.
///
/// It holds at most [`capacity`](Self::with_capacity) events: past that, a
/// request's events are dropped and counted ([`dropped`](Self::dropped)),
/// so a reader that falls behind never grows memory. The aggregator thread
/// that delivers requests waits only while a reader copies or takes the
/// events out.
///
/// ```
/// use hdrtrace_pipeline::{EmbeddingPipeline, TraceEventCollector};
///
/// let events = TraceEventCollector::new();
/// let config = hdrtrace::TracingConfig { sampling_rate: 1.0, ..Default::default() };
/// let (subscriber, guard) = hdrtrace::Builder::new(&config).sink(events.clone()).build().unwrap();
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// let pipeline = EmbeddingPipeline::reference(42);
/// let fused = tracing::subscriber::with_default(subscriber, || {
///     rt.block_on(pipeline.embed("Which model made this request slow?"))
/// })
/// .unwrap();
/// guard.flushed_snapshot();
/// let story = events.for_request(fused.request_id);
/// assert_eq!(story.iter().filter(|e| e.model_id().is_some()).count(), 24);
/// ```
#[derive(Clone)]
pub struct TraceEventCollector {
    shared: Arc<Shared>,
}

struct Shared {
    /// `(request id, event)`, in arrival order.
    events: Mutex<Vec<(u64, TraceEvent)>>,
    capacity: usize,
    /// Whether every captured request is kept, not just head-sampled ones.
    all_captured: bool,
    dropped: AtomicU64,
}

impl Default for TraceEventCollector {
    fn default() -> Self {
        Self::new()
    }
}

impl TraceEventCollector {
    /// How many events a collector holds unless told otherwise.
    pub const DEFAULT_CAPACITY: usize = 1 << 16;

    /// Collects the events of head-sampled requests.
    pub fn new() -> Self {
        Self::build(false, Self::DEFAULT_CAPACITY)
    }

    /// Collects the events of every captured request (sampled, over budget,
    /// failed or timed out).
    pub fn all_captured() -> Self {
        Self::build(true, Self::DEFAULT_CAPACITY)
    }

    /// The same selection, holding at most `capacity` events (at least one).
    pub fn with_capacity(self, capacity: usize) -> Self {
        Self::build(self.shared.all_captured, capacity.max(1))
    }

    fn build(all_captured: bool, capacity: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                events: Mutex::new(Vec::new()),
                capacity,
                all_captured,
                dropped: AtomicU64::new(0),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(u64, TraceEvent)>> {
        self.shared
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// One request's events, in time order.
    pub fn for_request(&self, request_id: u64) -> Vec<TraceEvent> {
        self.lock()
            .iter()
            .filter(|(id, _)| *id == request_id)
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Takes every event held, as `(request id, event)` in arrival order.
    pub fn take(&self) -> Vec<(u64, TraceEvent)> {
        std::mem::take(&mut *self.lock())
    }

    /// How many events are held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Events dropped because the collector was full.
    pub fn dropped(&self) -> u64 {
        // Relaxed: a statistic, read on its own.
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl RequestSink for TraceEventCollector {
    fn captured(&mut self, trace: &Arc<RequestTrace>) {
        if !(self.shared.all_captured || trace.reason().sampled) {
            return;
        }
        let events = TraceEvent::from_trace(trace);
        let mut held = self.lock();
        let room = self.shared.capacity.saturating_sub(held.len());
        let lost = events.len().saturating_sub(room);
        held.extend(
            events
                .into_iter()
                .take(room)
                .map(|event| (trace.request_id(), event)),
        );
        drop(held);
        if lost > 0 {
            // Relaxed: a statistic, read on its own.
            self.shared
                .dropped
                .fetch_add(lost as u64, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrtrace::{CaptureReason, EventTrace, SeriesKey, SpanTrace, TraceParts};
    use tracing_core::Level;

    fn span(
        id: u64,
        parent: u64,
        name: &'static str,
        model: Option<&str>,
        at: u64,
        wall: u64,
    ) -> SpanTrace {
        SpanTrace {
            id,
            parent,
            name,
            class: if model.is_some() {
                SpanClass::Model
            } else if parent == 0 {
                SpanClass::Request
            } else {
                SpanClass::Stage
            },
            model: model.map(str::to_string),
            series: match model {
                Some(m) => SeriesKey::Model(m.to_string()),
                None => SeriesKey::Stage(name.to_string()),
            },
            device: None,
            start: Duration::from_millis(at),
            wall: Duration::from_millis(wall),
            busy: Duration::from_millis(wall),
            status: Status::Ok,
            fields: Vec::new(),
            links: Vec::new(),
            shared: false,
        }
    }

    fn trace(sampled: bool) -> RequestTrace {
        let mut timed_out = span(4, 2, "model", Some("Semantic"), 1, 200);
        timed_out.status = Status::Timeout;
        let mut failed = span(5, 2, "model", Some("Code"), 1, 3);
        failed.status = Status::Error;
        let mut fusion = span(6, 1, "fusion", None, 152, 1);
        fusion.fields = vec![
            ("embedding_count", FieldValue::U64(1)),
            ("output_dim", FieldValue::U64(256)),
        ];
        RequestTrace::new(TraceParts {
            request_id: 9,
            name: "embed_pipeline",
            total: Duration::from_millis(153),
            target: Duration::from_millis(200),
            reason: CaptureReason {
                sampled,
                over_budget: false,
                failed: true,
            },
            status: Status::Timeout,
            complete: true,
            omitted: Vec::new(),
            spans: vec![
                span(1, 0, "embed_pipeline", None, 0, 153),
                span(2, 1, "model_execution", None, 1, 151),
                span(3, 2, "model", Some("Causal"), 1, 40),
                timed_out,
                failed,
                fusion,
            ],
            events: vec![
                EventTrace {
                    span: 5,
                    at: Duration::from_millis(4),
                    level: Level::ERROR,
                    message: "model Code failed: injected error".into(),
                    status: Status::Error,
                    fields: Vec::new(),
                },
                EventTrace {
                    span: 4,
                    at: Duration::from_millis(151),
                    level: Level::WARN,
                    message: "model timed out".into(),
                    status: Status::Timeout,
                    fields: vec![
                        ("timeout", FieldValue::Bool(true)),
                        ("after_ms", FieldValue::F64(150.5)),
                    ],
                },
            ],
            attribution: None,
            closed_at: SystemTime::now(),
            remote_parent: None,
        })
    }

    #[test]
    fn a_trace_becomes_its_events_in_time_order() {
        let ev = TraceEvent::from_trace(&trace(true));
        let kinds: Vec<_> = ev
            .iter()
            .map(|e| match e {
                TraceEvent::ModelStarted { model_id, .. } => format!("start {model_id}"),
                TraceEvent::ModelCompleted {
                    model_id,
                    duration_ms,
                } => {
                    format!("done {model_id} {duration_ms}")
                }
                TraceEvent::ModelTimeout { model_id, after_ms } => {
                    format!("timeout {model_id} {after_ms}")
                }
                TraceEvent::ModelError { model_id, error } => format!("error {model_id} {error}"),
                TraceEvent::FusionStarted { embedding_count } => format!("fuse {embedding_count}"),
                TraceEvent::FusionCompleted { output_dim, .. } => format!("fused {output_dim}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "start Causal",
                "start Semantic",
                "start Code",
                "error Code model Code failed: injected error",
                "done Causal 40",
                "timeout Semantic 150.5",
                "fuse 1",
                "fused 256",
            ]
        );
        let starts: Vec<Instant> = ev
            .iter()
            .filter_map(|e| match e {
                TraceEvent::ModelStarted { timestamp, .. } => Some(*timestamp),
                _ => None,
            })
            .collect();
        assert!(starts.windows(2).all(|w| w[0] <= w[1]));
        assert!(starts[0] <= Instant::now());
    }

    #[test]
    fn the_collector_keeps_sampled_or_all_captured() {
        let mut sampled = TraceEventCollector::new();
        let mut all = TraceEventCollector::all_captured();
        for sink in [&mut sampled, &mut all] {
            sink.captured(&Arc::new(trace(false)));
        }
        assert!(sampled.is_empty());
        sampled.captured(&Arc::new(trace(true)));
        assert_eq!(sampled.len(), 8);
        assert_eq!(all.len(), 8);
        assert_eq!(all.for_request(9).len(), 8);
        assert!(all.for_request(10).is_empty());
        let taken = all.take();
        assert_eq!(taken.len(), 8);
        assert!(taken.iter().all(|(id, _)| *id == 9));
        assert!(all.is_empty());
    }

    #[test]
    fn a_full_collector_drops_and_counts() {
        let mut small = TraceEventCollector::all_captured().with_capacity(3);
        small.captured(&Arc::new(trace(false)));
        assert_eq!(small.len(), 3);
        assert_eq!(small.dropped(), 8 - 3);
        let reader = small.clone();
        assert_eq!(reader.take().len(), 3);
        small.captured(&Arc::new(trace(false)));
        assert_eq!(reader.len(), 3);
        assert_eq!(reader.dropped(), 2 * (8 - 3));
    }
}
