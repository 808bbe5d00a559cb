//! Building the trace of a kept request from its chain of retained records.

use super::{Assembler, Judge, NIL};
use crate::clock::Clock;
use crate::collection::batches::Batch;
use crate::collection::device_nanos;
use crate::handoff::record::{FieldValue, Record, RecordKind, SpanClass, Status};
use crate::read::requests::{
    Attribution, BatchShare, CaptureReason, EventTrace, RequestTrace, SeriesKey, SpanTrace,
    TraceParts,
};
use std::time::Duration;

impl Assembler {
    /// The trace of a kept request, at most `max_spans` spans and events
    /// (the rest counted per name), its bottleneck judged over every span.
    pub(super) fn build(
        &mut self,
        e: u32,
        root: Record,
        total: Duration,
        reason: CaptureReason,
        complete: bool,
        j: &Judge<'_>,
    ) -> (RequestTrace, Option<u32>) {
        let clock = j.clock;
        let p = &self.entries[e as usize];
        let mut spans_at = std::mem::take(&mut self.scratch);
        let mut events_at = std::mem::take(&mut self.scratch_events);
        spans_at.clear();
        events_at.clear();
        let nodes = &self.nodes;
        // Links records, as (span, linked span) pairs.
        let mut links: Vec<(u64, u64)> = Vec::new();
        // One pass over the chain: its spans and events apart, the worst
        // status, and the links.
        let mut status = root.status;
        let mut at = p.head;
        while at != NIL {
            let r = &nodes[at as usize].rec;
            status = status.max(r.status);
            match r.kind {
                RecordKind::Span => spans_at.push(at),
                RecordKind::Event => events_at.push(at),
                RecordKind::Links => links.extend(r.links().iter().map(|&l| (r.span, l))),
            }
            at = nodes[at as usize].next;
        }
        // The gating model span, judged over every span: a model that did
        // not return (it is what degraded the request) before one that did,
        // then the one whose work ended last (a batched model's work ends
        // with its batch, which may run on past the span it served).
        let mut gate: Option<(u32, (bool, u64))> = None;
        for &at in spans_at.iter() {
            let r = &nodes[at as usize].rec;
            if r.class != SpanClass::Model {
                continue;
            }
            let batch_end = links
                .iter()
                .filter(|&&(from, _)| from == r.span)
                .filter_map(|&(_, to)| j.batches.get(to))
                .map(|b| b.root.end)
                .max();
            let rank = (r.status != Status::Ok, r.end.max(batch_end.unwrap_or(0)));
            if gate.is_none_or(|(_, best)| rank >= best) {
                gate = Some((at, rank));
            }
        }
        let gate = gate.map(|(i, _)| i);
        // The earliest spans and events up to the limits (a selection, then a
        // sort of what is kept: a huge request costs O(n), not O(n log n)).
        let mut omitted: Vec<(&'static str, u64)> = Vec::new();
        let by_start = |&i: &u32| nodes[i as usize].rec.start;
        for (list, limit) in [
            (&mut spans_at, j.max_spans.saturating_sub(1)),
            (&mut events_at, j.max_spans),
        ] {
            if list.len() > limit {
                list.select_nth_unstable_by_key(limit, by_start);
                for &i in &list[limit..] {
                    if Some(i) == gate {
                        continue;
                    }
                    let name = nodes[i as usize].rec.metadata.name();
                    match omitted.iter_mut().find(|(n, _)| *n == name) {
                        Some((_, c)) => *c += 1,
                        None => omitted.push((name, 1)),
                    }
                }
                let gate_omitted = gate.is_some_and(|g| list[limit..].contains(&g));
                list.truncate(limit);
                if gate_omitted {
                    list.extend(gate);
                }
            }
            list.sort_unstable_by_key(by_start);
        }
        let root_node = &nodes[p.root as usize];
        let mut spans = Vec::with_capacity(spans_at.len() + 1);
        spans.push(span_trace(&root_node.rec, root_node.key, &root, j));
        spans.extend(spans_at.iter().map(|&i| {
            let n = &nodes[i as usize];
            span_trace(&n.rec, n.key, &root, j)
        }));
        let mut events: Vec<EventTrace> = events_at
            .iter()
            .map(|&i| event_trace(&nodes[i as usize].rec, &root, clock))
            .collect();
        // The batches its spans link to, shared: each with what hangs from it.
        let mut served: Vec<&Batch> = Vec::new();
        for &(_, to) in &links {
            if let Some(b) = j.batches.get(to) {
                if !served.iter().any(|s| s.root.span == to) {
                    served.push(b);
                }
            }
        }
        for b in &served {
            spans.push(shared(span_trace(&b.root, b.series, &root, j)));
            for (r, series) in &b.below {
                match r.kind {
                    RecordKind::Span => spans.push(shared(span_trace(r, *series, &root, j))),
                    RecordKind::Event => events.push(event_trace(r, &root, clock)),
                    RecordKind::Links => {}
                }
                links.extend(r.links().iter().map(|&l| (r.span, l)));
            }
            links.extend(b.links().iter().map(|&l| (b.root.span, l)));
        }
        if !served.is_empty() {
            spans[1..].sort_by_key(|s| s.start);
            events.sort_by_key(|e| e.at);
        }
        link_both_ways(&mut spans, &links);
        let attribution = gate.map(|i| {
            let n = &nodes[i as usize];
            let s = span_trace(&n.rec, n.key, &root, j);
            let share = if total.is_zero() {
                0.0
            } else {
                (s.wall.as_secs_f64() / total.as_secs_f64()).min(1.0)
            };
            let batch = served
                .iter()
                .find(|b| links.contains(&(s.id, b.root.span)))
                .map(|b| {
                    let run = span_trace(&b.root, b.series, &root, j);
                    BatchShare::new(
                        b.root.span,
                        b.size,
                        b.requests.clone(),
                        (s.start, s.start + s.wall),
                        (run.start, run.start + run.wall),
                    )
                });
            Attribution {
                model: s.label().to_string(),
                span: s.id,
                wall: s.wall,
                busy: s.busy,
                share,
                starved: s.waiting() > s.busy,
                status: s.status,
                batch,
            }
        });
        let gate_key = gate.map(|i| nodes[i as usize].key);
        self.scratch = spans_at;
        self.scratch_events = events_at;
        // The root closed `now - end` ticks ago (it may have waited in a ring
        // and for stragglers before being judged).
        let closed_at = std::time::SystemTime::now()
            .checked_sub(Duration::from_nanos(
                clock.nanos_between(root.end, clock.now()),
            ))
            .unwrap_or_else(std::time::SystemTime::now);
        let trace = RequestTrace::new(TraceParts {
            request_id: root.request_id,
            name: root.metadata.name(),
            total,
            target: j.target,
            reason,
            status,
            complete,
            spans,
            events,
            omitted,
            attribution,
            closed_at,
            remote_parent: crate::recording::trace_context::decode(&root.text),
        });
        (trace, gate_key)
    }
}

fn event_trace(r: &Record, root: &Record, clock: &Clock) -> EventTrace {
    EventTrace {
        span: r.span,
        at: Duration::from_nanos(clock.nanos_between(root.start, r.start)),
        level: *r.metadata.level(),
        message: r.text.as_str().to_string(),
        status: r.status,
        fields: field_list(r, None),
    }
}

/// A span of a batch that served the request.
fn shared(mut s: SpanTrace) -> SpanTrace {
    s.shared = true;
    s
}

/// Each span's links: the spans of the trace it links to or that link to it.
fn link_both_ways(spans: &mut [SpanTrace], links: &[(u64, u64)]) {
    let ids: std::collections::HashSet<u64> = spans.iter().map(|s| s.id).collect();
    for s in spans.iter_mut() {
        for &(from, to) in links {
            let other = if from == s.id {
                to
            } else if to == s.id {
                from
            } else {
                continue;
            };
            if other != s.id && ids.contains(&other) && !s.links.contains(&other) {
                s.links.push(other);
            }
        }
    }
}

/// A record's fields by name, but for the one at index `except`.
fn field_list(r: &Record, except: Option<usize>) -> Vec<(&'static str, FieldValue)> {
    let names = r.metadata.fields();
    r.fields
        .iter()
        .filter(|&(i, _)| Some(i) != except)
        .filter_map(|(i, v)| names.iter().nth(i).map(|f| (f.name(), v)))
        .collect()
}

/// The series the aggregator recorded a span in (`key`, its interned key).
fn series(key: u32, r: &Record, j: &Judge<'_>) -> SeriesKey {
    match j.keys.table.get(key as usize) {
        Some(k) if k.model => SeriesKey::Model(k.name.clone()),
        Some(k) => SeriesKey::Stage(k.name.clone()),
        // Every span record is keyed before it is filed; a name is the
        // stage key it would have had.
        None => SeriesKey::Stage(r.metadata.name().to_string()),
    }
}

/// A span record (of series `key`) of the request whose root is `root`: its
/// device time read once, as the device-time histogram read it, and taken
/// out of its fields.
fn span_trace(r: &Record, key: u32, root: &Record, j: &Judge<'_>) -> SpanTrace {
    let clock = j.clock;
    // A span with fields was aggregated (indexing its callsite) before it
    // was filed; one without has no device time either way.
    let device_at = j
        .field_index
        .get(&(r.metadata as *const _ as usize))
        .and_then(|&(device, _)| device);
    SpanTrace {
        id: r.span,
        parent: if r.span == root.span { 0 } else { r.parent },
        name: r.metadata.name(),
        class: r.class,
        // The name as recorded (a key past the cardinality cap shares the
        // overflow series, not its name).
        model: matches!(r.class, SpanClass::Model | SpanClass::Batch)
            .then(|| r.text.key_name().into_owned())
            .filter(|m| !m.is_empty() || r.class == SpanClass::Model),
        series: series(key, r, j),
        start: Duration::from_nanos(clock.nanos_between(root.start, r.start)),
        wall: Duration::from_nanos(clock.nanos_between(r.start, r.end)),
        busy: Duration::from_nanos(clock.ticks_to_nanos(r.busy)),
        device: device_nanos(r, device_at).map(Duration::from_nanos),
        status: r.status,
        fields: field_list(r, device_at),
        links: Vec::new(),
        shared: false,
    }
}
