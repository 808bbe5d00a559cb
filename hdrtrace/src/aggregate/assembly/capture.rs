//! Building the trace of a kept request from its chain of retained records.

use super::{Assembler, Judge, NIL};
use crate::aggregate::requests::{Attribution, CaptureReason, EventTrace, RequestTrace, SpanTrace};
use crate::record::{FieldValue, Record, RecordKind, SpanClass, Status};
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
        // One pass over the chain: its spans and events apart, the worst
        // status, and the gating model span (judged over every span).
        let mut status = root.status;
        let mut gate: Option<(u32, (bool, u64))> = None;
        let mut at = p.head;
        while at != NIL {
            let r = &nodes[at as usize].rec;
            status = status.max(r.status);
            match r.kind {
                RecordKind::Span => {
                    spans_at.push(at);
                    if r.class == SpanClass::Model {
                        let rank = (r.status == Status::Timeout, r.end);
                        if gate.is_none_or(|(_, best)| rank >= best) {
                            gate = Some((at, rank));
                        }
                    }
                }
                RecordKind::Event => events_at.push(at),
            }
            at = nodes[at as usize].next;
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
        spans.push(span_trace(&root_node.rec, &root, j));
        spans.extend(
            spans_at
                .iter()
                .map(|&i| span_trace(&nodes[i as usize].rec, &root, j)),
        );
        let events = events_at
            .iter()
            .map(|&i| {
                let r = &nodes[i as usize].rec;
                EventTrace {
                    span: r.span,
                    at: Duration::from_nanos(clock.nanos_between(root.start, r.start)),
                    level: *r.metadata.level(),
                    message: r.text.as_str().to_string(),
                    status: r.status,
                    fields: field_list(r),
                }
            })
            .collect();
        let attribution = gate.map(|i| {
            let n = &nodes[i as usize];
            let s = span_trace(&n.rec, &root, j);
            let share = if total.is_zero() {
                0.0
            } else {
                (s.wall.as_secs_f64() / total.as_secs_f64()).min(1.0)
            };
            Attribution {
                model: s.label().to_string(),
                span: s.id,
                wall: s.wall,
                busy: s.busy,
                share,
                starved: s.waiting() > s.busy,
                status: s.status,
            }
        });
        let gate_key = gate.map(|i| nodes[i as usize].key);
        self.scratch = spans_at;
        self.scratch_events = events_at;
        let trace = RequestTrace {
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
            remote_parent: crate::trace_context::decode(&root.text),
            // The root closed `now - end` ticks ago (it may have waited in a
            // ring and for stragglers before being judged).
            closed_at: std::time::SystemTime::now()
                .checked_sub(Duration::from_nanos(
                    clock.nanos_between(root.end, clock.now()),
                ))
                .unwrap_or_else(std::time::SystemTime::now),
        };
        (trace, gate_key)
    }
}

fn field_list(r: &Record) -> Vec<(&'static str, FieldValue)> {
    let names = r.metadata.fields();
    r.fields
        .iter()
        .filter_map(|(i, v)| names.iter().nth(i).map(|f| (f.name(), v)))
        .collect()
}

fn span_trace(r: &Record, root: &Record, j: &Judge<'_>) -> SpanTrace {
    let clock = j.clock;
    SpanTrace {
        id: r.span,
        parent: if r.span == root.span { 0 } else { r.parent },
        name: r.metadata.name(),
        class: r.class,
        // The name as recorded (a key past the cardinality cap shares the
        // overflow series, not its name).
        model: (r.class == SpanClass::Model).then(|| r.text.key_name().into_owned()),
        start: Duration::from_nanos(clock.nanos_between(root.start, r.start)),
        wall: Duration::from_nanos(clock.nanos_between(r.start, r.end)),
        busy: Duration::from_nanos(clock.ticks_to_nanos(r.busy)),
        status: r.status,
        fields: field_list(r),
    }
}
