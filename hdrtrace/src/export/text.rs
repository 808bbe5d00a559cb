//! Text rendering of a captured request (the spec's "debugging slow requests" tree).
//!
//! ```text
//! embed_pipeline{request_id=42 content_len=1500}: 205.0ms
//!   tokenize: 2.00ms
//!   model_execution{model_count=12}: 180.3ms
//!     model{model_id=Semantic input_tokens=300}: 45.0ms (busy 44.1ms, device 30.2ms)
//!     model{model_id=Causal input_tokens=300}: 180.0ms (busy 179.2ms) ← BOTTLENECK
//!   fusion: 3.00ms
//! Total: 205.0ms (exceeded 200ms target due to Causal model)
//! Bottleneck: Causal took 180.0ms, 87.8% of the total: slow while running (busy 179.2ms, waiting 0.80ms)
//! Trace: 5c1f0a7e93d2b4417d0e2a9c6b83f150
//! ```

use crate::handoff::record::{FieldValue, SpanClass, Status};
use crate::read::format::{fmt_ms, fmt_round};
use crate::read::requests::{EventTrace, RequestTrace, SpanTrace};
use std::fmt::Write as _;
use std::time::Duration;

/// Renders a captured request as an indented tree, one span a line.
///
/// Spans are nested by the trace's [`TreeIndex`](crate::TreeIndex) (their
/// parents; a batch that served a model span under that span, marked
/// `[shared]`: other requests' traces show it too), children ordered by start
/// time, and
/// each line reads `name{fields}: <wall time>`, indented two spaces a level
/// (beyond 32 levels, indented 64 spaces and starting with `(depth N)`: the
/// text stays linear in the spans however deep they nest). Model spans show their
/// `model_id` and their busy (polled) time, plus the waiting time when they
/// waited longer than they ran; `TIMEOUT` / `ERROR` mark failed spans; the
/// model named by the trace's attribution is marked `← BOTTLENECK`. A span
/// that reported device time ([`SpanTrace::device`]) shows it as `device
/// <time>` (in a model span's parentheses); the raw device-time field is never
/// among the fields shown. Events are
/// listed under the span they fired in, in time order among its children.
/// The last lines give the total against the latency target (over it,
/// naming the trace's [`slow_stage`](RequestTrace::slow_stage), else its
/// bottleneck model) and the trace's [`verdict`](RequestTrace::verdict); the
/// last line gives the request's trace id ([`RequestTrace::trace_id`]), as the
/// OTLP export and the Prometheus exemplars carry it.
///
/// Any `RequestTrace` renders, also a malformed one: spans whose parent is not
/// in the trace (an incomplete trace) are shown under the root marked
/// `(parent missing)`, never dropped, and the function never panics.
pub fn render_text(trace: &RequestTrace) -> String {
    let mut out = String::new();
    Tree::new(trace).render(&mut out);
    total_lines(trace, &mut out);
    out
}

/// The mark a failed span gets in the text tree.
fn status_mark(s: Status) -> &'static str {
    match s {
        Status::Ok => "",
        Status::Error => " ERROR",
        Status::Timeout => " TIMEOUT",
    }
}

/// `text` with its control characters escaped (`\x1b`, `\n`: `crate::escape`), so that a
/// model id or message cannot move the cursor, recolour or add lines to the
/// terminal the tree is printed on.
fn plain(text: &str) -> std::borrow::Cow<'_, str> {
    if crate::escape::first_control(text).is_none() {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match crate::escape::control(c) {
            Some(escape) => out.push_str(escape.as_str()),
            None => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `{a=1 b=2}`, or nothing when there is nothing to show.
fn write_fields<'a>(
    out: &mut String,
    lead: Option<(&str, &str)>,
    fields: impl Iterator<Item = &'a (&'static str, FieldValue)>,
) {
    let mut first = true;
    let mut sep = |out: &mut String| {
        out.push_str(if first { "{" } else { " " });
        first = false;
    };
    if let Some((k, v)) = lead {
        sep(out);
        let _ = write!(out, "{k}={}", plain(v));
    }
    for (k, v) in fields {
        sep(out);
        let _ = write!(out, "{k}={v}");
    }
    if !first {
        out.push('}');
    }
}

/// A line of the tree: a span or an event, by index.
#[derive(Clone, Copy)]
enum Node {
    Span(usize),
    Event(usize),
}

/// The parent/child structure of a trace, built from indices so that duplicate
/// or cyclic IDs cannot lose or repeat a span.
struct Tree<'a> {
    trace: &'a RequestTrace,
    /// Per span: its child spans and events, in time order.
    below: Vec<Vec<Node>>,
    /// Spans hung under the root because their parent is not in the trace.
    orphan: Vec<bool>,
    bottleneck: Option<u64>,
}

impl<'a> Tree<'a> {
    fn new(trace: &'a RequestTrace) -> Self {
        let spans = trace.spans();
        let tree = trace.index();
        let mut below: Vec<Vec<(Duration, Node)>> = vec![Vec::new(); spans.len()];
        let mut orphan = vec![false; spans.len()];
        for (i, s) in spans.iter().enumerate().skip(1) {
            let parent = tree.parent(i).unwrap_or_else(|| {
                orphan[i] = true;
                0
            });
            below[parent].push((s.start, Node::Span(i)));
        }
        if !spans.is_empty() {
            for (e, ev) in trace.events().iter().enumerate() {
                let at = tree.position(ev.span).unwrap_or(0);
                below[at].push((ev.at, Node::Event(e)));
            }
        }
        let below = below
            .into_iter()
            .map(|mut v| {
                // Stable: equal times keep the trace's own order.
                v.sort_by_key(|(t, _)| *t);
                v.into_iter().map(|(_, n)| n).collect()
            })
            .collect();
        Self {
            trace,
            below,
            orphan,
            bottleneck: trace.attribution().map(|a| a.span),
        }
    }

    fn render(&self, out: &mut String) {
        let spans = self.trace.spans();
        if spans.is_empty() {
            let _ = writeln!(
                out,
                "{}{{request_id={}}}: {} (no spans recorded)",
                self.trace.name(),
                self.trace.request_id(),
                fmt_ms(self.trace.total())
            );
            return;
        }
        let mut seen = vec![false; spans.len()];
        self.walk(0, 0, &mut seen, out);
        // Spans on a parent cycle are reachable from nowhere: show them too.
        for i in 1..spans.len() {
            if !seen[i] {
                self.walk(i, 1, &mut seen, out);
            }
        }
    }

    /// Depth-first from `start`, with an explicit stack (no recursion limit).
    fn walk(&self, start: usize, depth: usize, seen: &mut [bool], out: &mut String) {
        let mut stack = vec![(Node::Span(start), depth)];
        while let Some((node, depth)) = stack.pop() {
            match node {
                Node::Event(e) => {
                    if let Some(ev) = self.trace.events().get(e) {
                        event_line(out, depth, ev);
                    }
                }
                Node::Span(i) => {
                    if std::mem::replace(&mut seen[i], true) {
                        continue;
                    }
                    self.span_line(out, depth, i);
                    for n in self.below[i].iter().rev() {
                        stack.push((*n, depth + 1));
                    }
                }
            }
        }
    }

    fn span_line(&self, out: &mut String, depth: usize, i: usize) {
        let s: &SpanTrace = &self.trace.spans()[i];
        indent(out, depth);
        out.push_str(s.name);
        let request_id = self.trace.request_id().to_string();
        let lead = match (i, s.class, s.model.as_deref()) {
            (_, SpanClass::Model | SpanClass::Batch, Some(m)) => Some(("model_id", m)),
            (0, _, _) => Some(("request_id", request_id.as_str())),
            _ => None,
        };
        write_fields(out, lead, s.fields.iter());
        let _ = write!(out, ": {}", fmt_ms(s.wall));
        if s.class == SpanClass::Model {
            let _ = write!(out, " (busy {}", fmt_ms(s.busy));
            if s.waiting() > s.busy {
                let _ = write!(out, ", waiting {}", fmt_ms(s.waiting()));
            }
            if let Some(device) = s.device {
                let _ = write!(out, ", device {}", fmt_ms(device));
            }
            out.push(')');
        } else if let Some(device) = s.device {
            let _ = write!(out, " (device {})", fmt_ms(device));
        }
        out.push_str(status_mark(s.status));
        if s.class == SpanClass::Model && self.bottleneck == Some(s.id) {
            out.push_str(" ← BOTTLENECK");
        }
        if s.shared {
            out.push_str(" [shared]");
        }
        if self.orphan[i] {
            out.push_str(" (parent missing)");
        }
        out.push('\n');
    }
}

/// Nesting levels shown by indentation alone. Deeper lines are indented as
/// far as this and start with `(depth N)`, so that no line grows with the
/// nesting and the text stays linear in the spans.
const INDENT_LEVELS: usize = 32;

/// Two spaces a level, up to [`INDENT_LEVELS`]; then the depth as a number.
fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth.min(INDENT_LEVELS) {
        out.push_str("  ");
    }
    if depth > INDENT_LEVELS {
        let _ = write!(out, "(depth {depth}) ");
    }
}

fn event_line(out: &mut String, depth: usize, ev: &EventTrace) {
    indent(out, depth);
    let _ = write!(out, "[{} @{}]", ev.level, fmt_ms(ev.at));
    if !ev.message.is_empty() {
        let _ = write!(out, " {}", plain(&ev.message));
    }
    if !ev.fields.is_empty() {
        out.push(' ');
        write_fields(out, None, ev.fields.iter());
    }
    // An ERROR event marks its span Error; the level already says so.
    if !(ev.status == Status::Error && ev.level == tracing_core::Level::ERROR) {
        out.push_str(status_mark(ev.status));
    }
    out.push('\n');
}

/// The verdict: total against the target, the bottleneck, failures, gaps.
fn total_lines(trace: &RequestTrace, out: &mut String) {
    let target = fmt_round(trace.target());
    let _ = write!(out, "Total: {} (", fmt_ms(trace.total()));
    if trace.total() > trace.target() {
        let _ = write!(out, "exceeded {target} target");
        match (trace.slow_stage(), trace.attribution()) {
            (Some(s), _) => {
                let _ = write!(out, " due to {} stage", plain(s.label()));
            }
            (None, Some(a)) => {
                let _ = write!(out, " due to {} model", plain(&a.model));
            }
            (None, None) => {}
        }
    } else {
        let _ = write!(out, "within {target} target");
    }
    out.push_str(")\n");

    if trace.attribution().is_some() {
        let _ = writeln!(out, "Bottleneck: {}", plain(trace.verdict()));
    }

    let failed: Vec<String> = trace
        .spans()
        .iter()
        .filter(|s| s.status != Status::Ok)
        .map(|s| format!("{}{}", plain(s.label()), status_mark(s.status)))
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(out, "Failed: {}", failed.join(", "));
    }
    if !trace.complete() {
        out.push_str("Incomplete: some span records never arrived; the tree lacks them\n");
    }
    if !trace.omitted().is_empty() {
        let parts: Vec<String> = trace
            .omitted()
            .iter()
            .map(|(name, n)| format!("{name} x{n}"))
            .collect();
        let _ = writeln!(out, "Omitted past max_capture_spans: {}", parts.join(", "));
    }
    let _ = writeln!(out, "Trace: {}", trace.trace_id());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::requests::{CaptureReason, TraceParts};
    use std::time::SystemTime;

    /// A request with no spans, `total` long, judged against `target`.
    fn judged(total: Duration, target: Duration) -> RequestTrace {
        RequestTrace::new(TraceParts {
            request_id: 1,
            name: "request",
            total,
            target,
            reason: CaptureReason {
                sampled: true,
                over_budget: total > target,
                failed: false,
            },
            status: Status::Ok,
            complete: true,
            spans: Vec::new(),
            events: Vec::new(),
            omitted: Vec::new(),
            attribution: None,
            closed_at: SystemTime::UNIX_EPOCH,
            remote_parent: None,
        })
    }

    /// The target reads as the HTML report writes it: whole milliseconds
    /// below a second as they are, longer targets in seconds.
    #[test]
    fn targets_read_as_in_the_html_report() {
        let ms = Duration::from_millis;
        for (total, target, want) in [
            (ms(100), ms(200), "Total: 100.0ms (within 200ms target)"),
            (ms(2000), ms(1500), "Total: 2000.0ms (exceeded 1.5s target)"),
            (
                Duration::from_micros(2600),
                Duration::from_micros(2500),
                "Total: 2.60ms (exceeded 2.5ms target)",
            ),
            (
                Duration::from_micros(100),
                Duration::from_micros(250),
                "Total: 0.100ms (within 250µs target)",
            ),
        ] {
            let text = render_text(&judged(total, target));
            assert!(text.contains(want), "{text}");
        }
    }
}
