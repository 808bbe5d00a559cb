//! Chrome trace / Perfetto JSON export of captured requests.
//!
//! One file holds many requests, laid out on a common wall-clock time base, for
//! `ui.perfetto.dev` or `chrome://tracing`. See [`chrome_trace_json`] for the layout.

use crate::error::ExportError;
use crate::handoff::record::{FieldValue, SpanClass};
use crate::read::requests::{Outcome, RequestTrace, SpanTrace, TreeIndex};
use serde_json::{json, Map, Value};
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// Lane changes are decided with this much room: importers convert `ts` and
/// `dur` to integer nanoseconds separately, so an end that coincides with its
/// parent's end (or a sibling's start) may move by a nanosecond or two.
const SLACK_NS: u64 = 2;

/// The largest integer a JavaScript viewer reads exactly (2^53 - 1).
const JS_SAFE_INT: u64 = (1 << 53) - 1;

/// Builds the Chrome trace event JSON (`{"traceEvents": [...]}`) of `traces`.
///
/// Each request is its own *process* (`pid` 1, 2, … in start order), named
/// `request 42 (degraded, over target)`, so the UI shows one collapsible group
/// per request and sorts the groups by start time. Inside a request, spans
/// become complete events (`"ph":"X"`) on *lanes* (`tid`s): the root and its
/// stages share lane 1 (named after the root), and model spans go on model
/// lanes, each named after the models it holds: the 12 models run in
/// parallel, so they overlap and usually get one lane each, which reads as one
/// row per model under the pipeline row. A span goes on its parent's lane when
/// it nests there properly (a model's inner spans nest under it), otherwise on
/// another lane of its kind where nothing is open, or a new one. Complete events
/// on one lane therefore always nest, which both viewers require to draw them
/// correctly. Events become thread-scoped instant events (`"ph":"i"`) on the
/// lane of the span they fired in; metadata events (`"ph":"M"`) name the
/// processes and lanes.
///
/// A model span that ran in a batch is joined to the batch's span (shared
/// with the other requests it served, and shown on the model's lane) by a
/// flow arrow: a `"ph":"s"` event at the model span's start and a `"ph":"f"`
/// event with the same `id` at the batch's start.
///
/// Times are microseconds (`ts`, `dur`) as floats with nanosecond precision.
/// Each request starts at its `started_at`, measured from the earliest
/// request in the file; within a request, offsets are the recorded ones.
///
/// Per span the `args` hold `request_id`, `trace_id`
/// ([`RequestTrace::trace_id`], as the OTLP export and the Prometheus
/// exemplars carry it), `status`, `wall_ms`, `busy_ms`, `waiting_ms`, the
/// numeric `fields`, `device_ms` when it reported device time
/// ([`SpanTrace::device`]), and for model and batch spans `model_id` (plus
/// `bottleneck: true` on the attributed one), `shared: true` on a batch's
/// spans, and on the root the trace's `verdict`. A `request_id` beyond 2^53
/// is written as a string, since JavaScript viewers would round the number.
pub fn chrome_trace_json(traces: &[Arc<RequestTrace>]) -> Value {
    let starts: Vec<Duration> = traces.iter().map(|t| request_start(t)).collect();
    let base = starts.iter().min().copied().unwrap_or_default();
    let mut order: Vec<usize> = (0..traces.len()).collect();
    order.sort_by_key(|&i| starts[i]);

    let mut events = Vec::new();
    let mut flow = 0;
    for (k, &i) in order.iter().enumerate() {
        let offset = starts[i].saturating_sub(base);
        request_events(
            &traces[i],
            k as u64 + 1,
            nanos(offset),
            &mut flow,
            &mut events,
        );
    }
    json!({
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "generator": "hdrtrace",
            "requests": traces.len(),
            "time_base_unix_us": base.as_micros().to_string(),
        },
    })
}

/// Writes [`chrome_trace_json`] of `traces` to `path` (created or truncated).
///
/// # Errors
///
/// [`ExportError::Io`] naming `path` when the file cannot be created or written.
pub fn write_chrome_trace(path: &Path, traces: &[Arc<RequestTrace>]) -> Result<(), ExportError> {
    let io = |source: std::io::Error| ExportError::Io {
        context: format!("cannot write Chrome trace to {}", path.display()),
        source,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut w = std::io::BufWriter::new(file);
    serde_json::to_writer(&mut w, &chrome_trace_json(traces)).map_err(|e| io(e.into()))?;
    w.flush().map_err(io)
}

/// Wall-clock start of a request, since the Unix epoch.
fn request_start(t: &RequestTrace) -> Duration {
    t.started_at()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

/// Milliseconds from whole nanoseconds, so that `1151105 ns` prints `1.151105`.
fn ms(d: Duration) -> f64 {
    nanos(d) as f64 / 1e6
}

fn request_id_value(id: u64) -> Value {
    if id <= JS_SAFE_INT {
        json!(id)
    } else {
        json!(id.to_string())
    }
}

fn fields_value(fields: &[(&'static str, FieldValue)]) -> Value {
    let map: Map<String, Value> = fields
        .iter()
        .map(|(k, v)| {
            let v = match *v {
                FieldValue::U64(v) => json!(v),
                FieldValue::I64(v) => json!(v),
                FieldValue::F64(v) => json!(v),
                FieldValue::Bool(v) => json!(v),
            };
            (k.to_string(), v)
        })
        .collect();
    Value::Object(map)
}

/// `request 42 (degraded, over target)`: its outcome (as the verdict
/// leads with it), over target also when it was degraded or failed, else
/// `sampled` when that is why it was kept.
fn process_name(t: &RequestTrace) -> String {
    let mut tags = Vec::new();
    let outcome = t.outcome();
    if outcome != Outcome::Met {
        tags.push(outcome.name());
    }
    if t.reason().over_budget && outcome != Outcome::OverTarget {
        tags.push(Outcome::OverTarget.name());
    }
    if tags.is_empty() && t.reason().sampled {
        tags.push("sampled");
    }
    if !t.complete() {
        tags.push("incomplete");
    }
    if tags.is_empty() {
        format!("request {}", t.request_id())
    } else {
        format!("request {} ({})", t.request_id(), tags.join(", "))
    }
}

/// One lane (`tid`) of a request: the spans open on it, innermost last.
struct Lane {
    /// Holds model spans and their descendants (else the pipeline's spans).
    models: bool,
    /// `(span index, end ns)`.
    open: Vec<(usize, u64)>,
    /// Labels of the spans placed on it with nothing open, for its name.
    names: Vec<String>,
}

/// Assigns every span a lane so that the complete events on a lane nest.
///
/// Spans are placed in start order (longer first on ties, so parents precede
/// their children). A span may go on a lane of its kind (model, or pipeline)
/// when nothing is open there, or when the innermost open span is one of its
/// ancestors and encloses it; the parent's lane is tried first, then the
/// others, then a new lane.
fn assign_lanes(spans: &[SpanTrace], tree: &TreeIndex, offset: u64) -> (Vec<usize>, Vec<Lane>) {
    let parent_of = |i: usize| -> Option<usize> { tree.parent(i) };
    // Bounded walks: a parent cycle cannot loop forever.
    let is_ancestor = |a: usize, mut i: usize| -> bool {
        for _ in 0..spans.len() {
            match parent_of(i) {
                Some(p) if p == a => return true,
                Some(p) => i = p,
                None => return false,
            }
        }
        false
    };
    let in_model = |mut i: usize| -> bool {
        for _ in 0..=spans.len() {
            if spans[i].class == SpanClass::Model {
                return true;
            }
            match parent_of(i) {
                Some(p) => i = p,
                None => return false,
            }
        }
        false
    };
    let bounds = |i: usize| -> (u64, u64) {
        let s = offset.saturating_add(nanos(spans[i].start));
        (s, s.saturating_add(nanos(spans[i].wall)))
    };

    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by_key(|&i| {
        let (s, e) = bounds(i);
        (s, std::cmp::Reverse(e), i)
    });
    let mut lane_of = vec![0usize; spans.len()];
    let mut lanes: Vec<Lane> = Vec::new();
    for i in order {
        let (s, e) = bounds(i);
        let models = in_model(i);
        let fits = |lane: &mut Lane| -> bool {
            if lane.models != models {
                return false;
            }
            while lane
                .open
                .last()
                .is_some_and(|&(_, end)| end.saturating_add(SLACK_NS) <= s)
            {
                lane.open.pop();
            }
            match lane.open.last() {
                None => true,
                Some(&(top, end)) => {
                    is_ancestor(top, i) && bounds(top).0 <= s && e.saturating_add(SLACK_NS) <= end
                }
            }
        };
        let preferred = parent_of(i).map_or(0, |p| lane_of[p]);
        let chosen = if lanes.get_mut(preferred).is_some_and(&fits) {
            preferred
        } else if let Some(k) = (0..lanes.len()).find(|&k| k != preferred && fits(&mut lanes[k])) {
            k
        } else {
            lanes.push(Lane {
                models,
                open: Vec::new(),
                names: Vec::new(),
            });
            lanes.len() - 1
        };
        let lane = &mut lanes[chosen];
        if lane.open.is_empty() {
            let label = spans[i].label();
            if !lane.names.iter().any(|n| n == label) {
                lane.names.push(label.to_string());
            }
        }
        lane.open.push((i, e));
        lane_of[i] = chosen;
    }
    (lane_of, lanes)
}

fn lane_name(names: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut name = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        name.push_str(", …");
    }
    name
}

/// The metadata, complete and instant events of one request.
fn request_events(t: &RequestTrace, pid: u64, offset: u64, flow: &mut u64, out: &mut Vec<Value>) {
    let tree = t.index();
    let spans = t.spans();
    let (lane_of, lanes) = assign_lanes(spans, tree, offset);
    let tid = |lane: usize| lane as u64 + 1;
    let request_id = request_id_value(t.request_id());
    let trace_id = t.trace_id().to_string();
    let bottleneck = t.attribution().map(|a| a.span);

    out.push(
        json!({"ph": "M", "name": "process_name", "pid": pid, "tid": 0,
        "args": {"name": process_name(t)}}),
    );
    out.push(
        json!({"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0,
        "args": {"sort_index": pid}}),
    );
    for (k, lane) in lanes.iter().enumerate() {
        out.push(
            json!({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid(k),
            "args": {"name": lane_name(&lane.names)}}),
        );
        out.push(
            json!({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid(k),
            "args": {"sort_index": k}}),
        );
    }

    for (i, s) in spans.iter().enumerate() {
        let start = offset.saturating_add(nanos(s.start));
        let mut args = json!({
            "request_id": request_id,
            "trace_id": trace_id,
            "status": s.status.name(),
            "wall_ms": ms(s.wall),
            "busy_ms": ms(s.busy),
            "waiting_ms": ms(s.waiting()),
            "fields": fields_value(&s.fields),
        });
        if let Some(device) = s.device {
            args["device_ms"] = json!(ms(device));
        }
        if let (SpanClass::Model | SpanClass::Batch, Some(m)) = (s.class, &s.model) {
            args["model_id"] = json!(m);
            if bottleneck == Some(s.id) {
                args["bottleneck"] = json!(true);
            }
        }
        if i == 0 {
            args["verdict"] = json!(t.verdict());
        }
        if s.shared {
            args["shared"] = json!(true);
        }
        out.push(json!({
            "ph": "X",
            "name": s.label(),
            "cat": s.class.name(),
            "pid": pid,
            "tid": tid(lane_of[i]),
            "ts": us(start),
            "dur": us(nanos(s.wall)),
            "args": args,
        }));
    }

    // A flow arrow from each model span to the batch that served it.
    for (i, s) in spans.iter().enumerate() {
        if s.class != SpanClass::Model {
            continue;
        }
        for &l in &s.links {
            let Some(b) = tree.position(l).filter(|&b| spans[b].shared) else {
                continue;
            };
            *flow += 1;
            for (ph, at) in [("s", i), ("f", b)] {
                let mut e = json!({
                    "ph": ph,
                    "id": *flow,
                    "name": "batch",
                    "cat": "batch",
                    "pid": pid,
                    "tid": tid(lane_of[at]),
                    "ts": us(offset.saturating_add(nanos(spans[at].start))),
                });
                if ph == "f" {
                    // Bound to the batch's slice, which starts there.
                    e["bp"] = json!("e");
                }
                out.push(e);
            }
        }
    }

    for ev in t.events() {
        let lane = tree.position(ev.span).map_or(0, |i| lane_of[i]);
        let name = if ev.message.is_empty() {
            ev.level.as_str().to_string()
        } else {
            ev.message.clone()
        };
        out.push(json!({
            "ph": "i",
            "s": "t",
            "name": name,
            "cat": "event",
            "pid": pid,
            "tid": tid(lane),
            "ts": us(offset.saturating_add(nanos(ev.at))),
            "args": {
                "request_id": request_id,
                "trace_id": trace_id,
                "level": ev.level.as_str(),
                "message": ev.message,
                "status": ev.status.name(),
                "fields": fields_value(&ev.fields),
            },
        }));
    }
}
