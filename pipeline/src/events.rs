//! [`TraceEvent`]s: a captured request's story (models started, completed,
//! timed out or failed; fusion), derived from its span tree on the aggregator
//! thread and delivered through a bounded channel, never blocking the
//! aggregator.

use super::model::ModelId;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use hdrtrace::record::FieldValue;
use hdrtrace::RequestSink;
use hdrtrace::RequestTrace;
use hdrtrace::{SpanClass, Status};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// Trace event types for debugging (the spec's enum).
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
        for s in trace.spans.iter() {
            if s.class == SpanClass::Model {
                let Some(model_id) = s.model.as_deref().and_then(|m| m.parse::<ModelId>().ok())
                else {
                    continue;
                };
                timed.push((
                    s.start,
                    TraceEvent::ModelStarted {
                        model_id,
                        timestamp: started + s.start,
                    },
                ));
                let end = s.start + s.wall;
                let in_span = |status: Status| {
                    trace
                        .events
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
    pub fn model_id(&self) -> Option<ModelId> {
        match self {
            TraceEvent::ModelStarted { model_id, .. }
            | TraceEvent::ModelCompleted { model_id, .. }
            | TraceEvent::ModelTimeout { model_id, .. }
            | TraceEvent::ModelError { model_id, .. } => Some(*model_id),
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
    let since_close = SystemTime::now()
        .duration_since(trace.closed_at)
        .unwrap_or_default();
    now.checked_sub(since_close + trace.total).unwrap_or(now)
}

/// One event and the request it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestEvent {
    /// The request's id.
    pub request_id: u64,
    /// The event.
    pub event: TraceEvent,
}

/// Which captured requests become events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Select {
    Sampled,
    Captured,
}

impl Select {
    fn wants(self, trace: &RequestTrace) -> bool {
        self == Select::Captured || trace.reason.sampled
    }
}

/// A [`RequestSink`] that turns every head-sampled captured request into
/// [`TraceEvent`]s and offers them to a bounded channel with `try_send`: when
/// the consumer falls behind, events are dropped and counted, never waited
/// for. Make one with [`trace_events`].
pub struct TraceEventSink {
    tx: Sender<RequestEvent>,
    dropped: Arc<AtomicU64>,
}

/// The consumer's end of [`trace_events`].
#[derive(Clone)]
pub struct TraceEventReceiver {
    rx: Receiver<RequestEvent>,
    dropped: Arc<AtomicU64>,
}

/// A channel of up to `capacity` (at least 1) events of head-sampled requests:
/// pass the sink to [`Builder::sink`](hdrtrace::Builder::sink) and read the
/// receiver.
pub fn trace_events(capacity: usize) -> (TraceEventSink, TraceEventReceiver) {
    let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
    let dropped = Arc::new(AtomicU64::new(0));
    (
        TraceEventSink {
            tx,
            dropped: dropped.clone(),
        },
        TraceEventReceiver { rx, dropped },
    )
}

impl RequestSink for TraceEventSink {
    fn captured(&mut self, trace: &Arc<RequestTrace>) {
        if !trace.reason.sampled {
            return;
        }
        for event in TraceEvent::from_trace(trace) {
            let e = RequestEvent {
                request_id: trace.request_id,
                event,
            };
            match self.tx.try_send(e) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    // Relaxed: a statistic, read on its own.
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

impl TraceEventReceiver {
    /// The next event, waiting for one; `None` once the subscriber is gone and
    /// the channel is empty.
    pub fn recv(&self) -> Option<RequestEvent> {
        self.rx.recv().ok()
    }

    /// The next event, if one is waiting.
    pub fn try_recv(&self) -> Option<RequestEvent> {
        self.rx.try_recv().ok()
    }

    /// The next event, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<RequestEvent> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// Every event waiting now.
    pub fn drain(&self) -> Vec<RequestEvent> {
        self.rx.try_iter().collect()
    }

    /// Events dropped because the channel was full.
    pub fn dropped(&self) -> u64 {
        // Relaxed: a statistic.
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Debug trace collector for tests: a [`RequestSink`] that keeps every event
/// of head-sampled requests (or of every captured request, with
/// [`TraceCollector::all_captured`]) in memory. Clones share the events.
#[derive(Clone)]
pub struct TraceCollector {
    events: Arc<Mutex<Vec<RequestEvent>>>,
    select: Select,
}

impl Default for TraceCollector {
    fn default() -> Self {
        Self::new()
    }
}

impl TraceCollector {
    /// Collects the events of head-sampled requests.
    pub fn new() -> Self {
        Self {
            events: Arc::default(),
            select: Select::Sampled,
        }
    }

    /// Collects the events of every captured request (sampled, over budget,
    /// failed or timed out).
    pub fn all_captured() -> Self {
        Self {
            select: Select::Captured,
            ..Self::new()
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<RequestEvent>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every event so far, in arrival order.
    pub fn events(&self) -> Vec<RequestEvent> {
        self.lock().clone()
    }

    /// One request's events, in time order.
    pub fn for_request(&self, request_id: u64) -> Vec<TraceEvent> {
        self.lock()
            .iter()
            .filter(|e| e.request_id == request_id)
            .map(|e| e.event.clone())
            .collect()
    }

    /// How many events were collected.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none were.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Takes every event collected so far.
    pub fn take(&self) -> Vec<RequestEvent> {
        std::mem::take(&mut *self.lock())
    }
}

impl RequestSink for TraceCollector {
    fn captured(&mut self, trace: &Arc<RequestTrace>) {
        if !self.select.wants(trace) {
            return;
        }
        let events = TraceEvent::from_trace(trace);
        self.lock()
            .extend(events.into_iter().map(|event| RequestEvent {
                request_id: trace.request_id,
                event,
            }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrtrace::{CaptureReason, EventTrace, SpanTrace};
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
        RequestTrace {
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
            started_at: SystemTime::now(),
            verdict: "no model ran".into(),
            // Left empty: `RequestTrace::tree` builds one for a hand-made trace.
            index: Default::default(),
        }
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
    fn the_channel_takes_sampled_requests_and_counts_what_it_drops() {
        let (mut sink, rx) = trace_events(3);
        sink.captured(&Arc::new(trace(false)));
        assert!(rx.try_recv().is_none(), "an unsampled request is not sent");
        sink.captured(&Arc::new(trace(true)));
        let got = rx.drain();
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|e| e.request_id == 9));
        assert_eq!(rx.dropped(), 8 - 3);
    }

    #[test]
    fn the_collector_keeps_sampled_or_all_captured() {
        let mut sampled = TraceCollector::new();
        let mut all = TraceCollector::all_captured();
        for sink in [&mut sampled, &mut all] {
            sink.captured(&Arc::new(trace(false)));
        }
        assert!(sampled.is_empty());
        assert_eq!(all.len(), 8);
        assert_eq!(all.for_request(9).len(), 8);
        assert_eq!(all.take().len(), 8);
        assert!(all.is_empty());
    }
}
