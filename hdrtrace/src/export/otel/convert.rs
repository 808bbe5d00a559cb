//! A captured request's span tree as OpenTelemetry `SpanData`.
//!
//! Runs on the export thread, never on the aggregator: the sink only queues the
//! `Arc<RequestTrace>`.

use crate::export::trace_id::wire_span_id;
use crate::handoff::record::{FieldValue, Status};
use crate::read::requests::{RequestTrace, SpanTrace};
use crate::recording::callsites::{MODEL_FIELD, REQUEST_FIELD};
use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status as OtelStatus, TraceFlags, TraceId,
    TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use std::borrow::Cow;
use std::time::{Duration, SystemTime};

/// The trace ID of a request: [`RequestTrace::trace_id`], the id every other
/// view shows too.
pub(crate) fn trace_id(trace: &RequestTrace) -> TraceId {
    TraceId::from(trace.trace_id().to_u128())
}

/// Appends one `SpanData` per span of `trace` to `out` (root first).
pub(crate) fn push_spans(
    trace: &RequestTrace,
    scope: &InstrumentationScope,
    out: &mut Vec<SpanData>,
) {
    let trace_id = trace_id(trace);
    let base = trace.started_at();
    let first = out.len();
    let tree = trace.index();
    let spans = trace.spans();
    for (i, span) in spans.iter().enumerate() {
        let parent = tree.parent(i).map(|p| spans[p].id);
        out.push(span_data(trace, i, span, parent, trace_id, base, scope));
    }
    for event in trace.events() {
        // An event whose span's record never arrived goes on the root.
        let at = first + tree.position(event.span).unwrap_or(0);
        let mut attributes = Vec::with_capacity(event.fields.len() + 1);
        attributes.push(KeyValue::new("level", event.level.as_str()));
        attributes.extend(event.fields.iter().map(|(k, v)| field(k, *v)));
        let name = if event.message.is_empty() {
            Cow::Borrowed("event")
        } else {
            Cow::Owned(event.message.clone())
        };
        out[at]
            .events
            .events
            .push(Event::new(name, at_offset(base, event.at), attributes, 0));
    }
}

/// Span `i` of `trace`, a child of span `parent` (its recorded parent, or for
/// a shared batch the model span it served; `None` for the root and for a
/// span whose parent is missing).
fn span_data(
    trace: &RequestTrace,
    i: usize,
    span: &SpanTrace,
    parent: Option<u64>,
    trace_id: TraceId,
    base: SystemTime,
    scope: &InstrumentationScope,
) -> SpanData {
    let mut attributes = Vec::with_capacity(span.fields.len() + 8);
    attributes.push(KeyValue::new(REQUEST_FIELD, u64_value(trace.request_id())));
    attributes.push(KeyValue::new("hdrtrace.class", span.class.name()));
    if let Some(model) = &span.model {
        attributes.push(KeyValue::new(MODEL_FIELD, model.clone()));
    }
    attributes.push(KeyValue::new("busy_ns", duration_value(span.busy)));
    attributes.push(KeyValue::new("waiting_ns", duration_value(span.waiting())));
    if let Some(device) = span.device {
        attributes.push(KeyValue::new("device_ns", duration_value(device)));
    }
    attributes.extend(
        span.fields
            .iter()
            .filter(|(k, _)| *k != REQUEST_FIELD && *k != MODEL_FIELD)
            .map(|(k, v)| field(k, *v)),
    );
    if i == 0 {
        root_attributes(trace, &mut attributes);
    }
    if span.shared {
        attributes.push(KeyValue::new("hdrtrace.shared", true));
    }
    let context = |id: u64| {
        SpanContext::new(
            trace_id,
            SpanId::from(wire_span_id(id)),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        )
    };
    let mut links = SpanLinks::default();
    links
        .links
        .extend(span.links.iter().map(|&l| Link::with_context(context(l))));
    let start = at_offset(base, span.start);
    SpanData {
        span_context: context(span.id),
        // A root that joined a caller's trace is that caller's span's child.
        parent_span_id: match (i, parent, trace.remote_parent()) {
            (0, _, Some(caller)) => SpanId::from(caller.span_id),
            (_, Some(parent), _) => SpanId::from(wire_span_id(parent)),
            // A span whose parent's record never arrived keeps its recorded
            // parent, as before.
            (i, None, _) if i > 0 && span.parent != 0 => SpanId::from(wire_span_id(span.parent)),
            _ => SpanId::INVALID,
        },
        parent_span_is_remote: i == 0 && trace.remote_parent().is_some(),
        span_kind: SpanKind::Internal,
        name: Cow::Borrowed(span.name),
        start_time: start,
        end_time: start + span.wall,
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links,
        status: status(span.status),
        instrumentation_scope: scope.clone(),
    }
}

/// Why the request was kept and which model gated it, on the root span.
fn root_attributes(trace: &RequestTrace, attributes: &mut Vec<KeyValue>) {
    let reason = trace.reason();
    attributes.push(KeyValue::new("hdrtrace.sampled", reason.sampled));
    attributes.push(KeyValue::new("hdrtrace.over_budget", reason.over_budget));
    attributes.push(KeyValue::new("hdrtrace.failed", reason.failed));
    attributes.push(KeyValue::new("hdrtrace.complete", trace.complete()));
    attributes.push(KeyValue::new(
        "hdrtrace.target_ns",
        duration_value(trace.target()),
    ));
    attributes.push(KeyValue::new(
        "hdrtrace.verdict",
        trace.verdict().to_string(),
    ));
    attributes.push(KeyValue::new("hdrtrace.outcome", trace.outcome().name()));
    if let Some(reason) = trace.blame() {
        attributes.push(KeyValue::new("hdrtrace.blame_reason", reason.name()));
    }
    if let Some(a) = trace.attribution() {
        attributes.push(KeyValue::new("hdrtrace.bottleneck", a.model.clone()));
        attributes.push(KeyValue::new("hdrtrace.bottleneck_share", a.share));
        attributes.push(KeyValue::new("hdrtrace.bottleneck_starved", a.starved));
    }
}

/// Error or timeout become `Status::Error` with that description; a span that
/// reported neither is left unset, as the OpenTelemetry spec asks of
/// instrumentation.
pub(crate) fn status(status: Status) -> OtelStatus {
    match status {
        Status::Ok => OtelStatus::Unset,
        Status::Error => OtelStatus::error("error"),
        Status::Timeout => OtelStatus::error("timeout"),
    }
}

fn at_offset(base: SystemTime, offset: Duration) -> SystemTime {
    base.checked_add(offset).unwrap_or(base)
}

fn field(name: &'static str, value: FieldValue) -> KeyValue {
    let value = match value {
        FieldValue::U64(v) => u64_value(v),
        FieldValue::I64(v) => Value::I64(v),
        FieldValue::F64(v) => Value::F64(v),
        FieldValue::Bool(v) => Value::Bool(v),
    };
    KeyValue::new(name, value)
}

/// OTLP integers are signed: a `u64` above `i64::MAX` travels as its decimal
/// string rather than wrapping negative.
fn u64_value(v: u64) -> Value {
    i64::try_from(v).map_or_else(|_| Value::from(v.to_string()), Value::I64)
}

fn duration_value(d: Duration) -> Value {
    i64::try_from(d.as_nanos()).map_or(Value::I64(i64::MAX), Value::I64)
}
