//! A captured request's span tree as OpenTelemetry `SpanData`.
//!
//! Runs on the export thread, never on the aggregator: the sink only queues the
//! `Arc<RequestTrace>`.

use crate::aggregate::requests::{RequestTrace, SpanTrace};
use crate::export::trace_id::wire_span_id;
use crate::record::{FieldValue, Status};
use crate::subscriber::callsites::{MODEL_FIELD, REQUEST_FIELD};
use opentelemetry::trace::{
    Event, SpanContext, SpanId, SpanKind, Status as OtelStatus, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use std::borrow::Cow;
use std::collections::HashMap;
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
    // The root opened `total` before it closed; every offset is from there.
    let base = trace
        .closed_at
        .checked_sub(trace.total)
        .unwrap_or(trace.closed_at);
    let first = out.len();
    let mut index = HashMap::with_capacity(trace.spans.len());
    for span in &trace.spans {
        index.insert(span.id, out.len());
        out.push(span_data(trace, span, trace_id, base, scope));
    }
    for event in &trace.events {
        // An event whose span's record never arrived goes on the root.
        let at = index.get(&event.span).copied().unwrap_or(first);
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

fn span_data(
    trace: &RequestTrace,
    span: &SpanTrace,
    trace_id: TraceId,
    base: SystemTime,
    scope: &InstrumentationScope,
) -> SpanData {
    let mut attributes = Vec::with_capacity(span.fields.len() + 8);
    attributes.push(KeyValue::new(REQUEST_FIELD, u64_value(trace.request_id)));
    attributes.push(KeyValue::new("hdrtrace.class", span.class.name()));
    if let Some(model) = &span.model {
        attributes.push(KeyValue::new(MODEL_FIELD, model.clone()));
    }
    attributes.push(KeyValue::new("busy_ns", duration_value(span.busy)));
    attributes.push(KeyValue::new("waiting_ns", duration_value(span.waiting())));
    attributes.extend(
        span.fields
            .iter()
            .filter(|(k, _)| *k != REQUEST_FIELD && *k != MODEL_FIELD)
            .map(|(k, v)| field(k, *v)),
    );
    if span.parent == 0 {
        root_attributes(trace, &mut attributes);
    }
    let start = at_offset(base, span.start);
    SpanData {
        span_context: SpanContext::new(
            trace_id,
            SpanId::from(wire_span_id(span.id)),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        // A root that joined a caller's trace is that caller's span's child.
        parent_span_id: match (span.parent, &trace.remote_parent) {
            (0, Some(caller)) => SpanId::from(caller.span_id),
            (0, None) => SpanId::INVALID,
            (parent, _) => SpanId::from(wire_span_id(parent)),
        },
        parent_span_is_remote: span.parent == 0 && trace.remote_parent.is_some(),
        span_kind: SpanKind::Internal,
        name: Cow::Borrowed(span.name),
        start_time: start,
        end_time: start + span.wall,
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: status(span.status),
        instrumentation_scope: scope.clone(),
    }
}

/// Why the request was kept and which model gated it, on the root span.
fn root_attributes(trace: &RequestTrace, attributes: &mut Vec<KeyValue>) {
    attributes.push(KeyValue::new("hdrtrace.sampled", trace.reason.sampled));
    attributes.push(KeyValue::new(
        "hdrtrace.over_budget",
        trace.reason.over_budget,
    ));
    attributes.push(KeyValue::new("hdrtrace.failed", trace.reason.failed));
    attributes.push(KeyValue::new("hdrtrace.complete", trace.complete));
    attributes.push(KeyValue::new(
        "hdrtrace.target_ns",
        duration_value(trace.target),
    ));
    if let Some(a) = &trace.attribution {
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
