//! The slowest captured requests as waterfalls: one row per span in tree
//! order, its bar from its start to its end.

use super::svg::{coord, escape, short_label};
use crate::handoff::record::Status;
use crate::read::format::{fmt_ms, fmt_round};
use crate::read::requests::{RequestTrace, SpanTrace};
use crate::read::snapshot::LatencySnapshot;
use std::fmt::Write as _;
use std::time::Duration;

/// Row height, label column and time axis, in pixels.
const ROW: f64 = 18.0;
const LABEL: f64 = 260.0;
const AXIS: f64 = 640.0;
/// Rows drawn per request; the rest are counted in a note.
const MAX_ROWS: usize = 200;
/// Indentation per tree level, up to `MAX_INDENT` levels.
const INDENT: f64 = 12.0;
const MAX_INDENT: usize = 12;

/// The `#waterfalls` section: the first `count` of the slowest requests.
pub(super) fn section(
    out: &mut String,
    snapshot: &LatencySnapshot,
    target: Option<Duration>,
    count: usize,
) {
    out.push_str("<h2>Slowest captured requests</h2>\n<section id=\"waterfalls\">\n");
    out.push_str(
        "<p class=\"legend\">\
         <span><i class=\"swatch\" style=\"background:#bbb\"></i>request</span>\
         <span><i class=\"swatch\" style=\"background:#9cc3e6\"></i>stage</span>\
         <span><i class=\"swatch\" style=\"background:#7fbf7f\"></i>model</span>\
         <span><i class=\"swatch\" style=\"background:#c3a6e0\"></i>shared batch</span>\
         <span><i class=\"swatch\" style=\"background:#f0b060\"></i>timed out</span>\
         <span><i class=\"swatch\" style=\"background:#e57373\"></i>failed</span>\
         <span><i class=\"swatch\" style=\"background:#2d6a2d\"></i>busy</span>\
         <span><i class=\"swatch\" style=\"background:#6a1b9a\"></i>device</span>\
         (busy and device: their length, not where in the span they fell; hover a row for its fields)</p>\n",
    );
    let slowest = snapshot.slowest();
    if slowest.is_empty() || count == 0 {
        out.push_str("<p>No request was captured.</p>\n");
    }
    for (i, trace) in slowest.iter().take(count).enumerate() {
        waterfall(out, i, trace, target);
    }
    out.push_str("</section>\n");
}

/// Span positions in tree order (depth first, children by start time) with
/// their depth; spans the walk from the root does not reach (a parent cycle
/// in a malformed trace) follow at depth 1.
fn rows(trace: &RequestTrace) -> Vec<(usize, usize)> {
    let spans = trace.spans();
    let index = trace.index();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    for i in 1..spans.len() {
        // A span with no parent in the trace hangs from the root.
        let parent = index.parent(i).unwrap_or(0);
        children[parent].push(i);
    }
    let mut seen = vec![false; spans.len()];
    let mut order = Vec::with_capacity(spans.len());
    let mut stack = vec![(0usize, 0usize)];
    while let Some((i, depth)) = stack.pop() {
        if spans.is_empty() || seen[i] {
            continue;
        }
        seen[i] = true;
        order.push((i, depth));
        // Spans are in start order: pushed in reverse, popped in order.
        for &c in children[i].iter().rev() {
            stack.push((c, depth + 1));
        }
    }
    for (i, _) in spans.iter().enumerate() {
        if !seen[i] {
            order.push((i, 1));
        }
    }
    order
}

fn waterfall(out: &mut String, n: usize, trace: &RequestTrace, target: Option<Duration>) {
    let spans = trace.spans();
    let end = spans
        .iter()
        .map(|s| s.start.saturating_add(s.wall))
        .chain([trace.total()])
        .max()
        .unwrap_or_default();
    let scale = AXIS / end.as_nanos().max(1) as f64;
    let x = |d: Duration| LABEL + d.as_nanos() as f64 * scale;
    let rows = rows(trace);
    let drawn = rows.len().min(MAX_ROWS);
    let height = 24.0 + ROW * drawn as f64 + 20.0;
    let width = LABEL + AXIS + 140.0;
    let bottleneck = trace.attribution().map(|a| a.span);
    let _ = writeln!(
        out,
        "<div class=\"request\"><p><b>request {id}</b>: {total} against a {target} target, \
         {outcome}. <span class=\"verdict\">Bottleneck: {verdict}</span></p>\n\
         <svg class=\"waterfall\" id=\"waterfall-{n}\" data-request=\"{id}\" width=\"{w}\" \
         height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\">",
        id = trace.request_id(),
        total = fmt_ms(trace.total()),
        target = fmt_round(trace.target()),
        outcome = trace.outcome().name(),
        verdict = escape(trace.verdict()),
        w = coord(width),
        h = coord(height),
    );
    // The time axis: 0, the end, and the target when it falls inside.
    let bottom = 24.0 + ROW * drawn as f64;
    let _ = writeln!(
        out,
        "<path class=\"axis\" fill=\"none\" d=\"M{l} 20V{b}H{r}\"/>\
         <text x=\"{l}\" y=\"14\">0</text><text x=\"{r}\" y=\"14\" text-anchor=\"end\">{end}</text>",
        l = coord(LABEL),
        b = coord(bottom),
        r = coord(LABEL + AXIS),
        end = fmt_ms(end),
    );
    if let Some(t) = target.filter(|&t| t <= end) {
        let tx = coord(x(t));
        let _ = writeln!(
            out,
            "<line class=\"target\" x1=\"{tx}\" x2=\"{tx}\" y1=\"20\" y2=\"{b}\"/>\
             <text x=\"{tx}\" y=\"{ty}\" text-anchor=\"middle\" style=\"fill:#c00\">target {t}</text>",
            b = coord(bottom),
            ty = coord(bottom + 14.0),
            t = fmt_round(t),
        );
    }
    for (row, &(i, depth)) in rows.iter().take(MAX_ROWS).enumerate() {
        let span = &spans[i];
        let y = 24.0 + ROW * row as f64;
        let marked = bottleneck == Some(span.id);
        // CSS classes: the span's class, then `shared`, its status when not
        // ok, and `bottleneck`.
        let _ = write!(out, "<g class=\"span {}", span.class.name());
        if span.shared {
            out.push_str(" shared");
        }
        if span.status != Status::Ok {
            out.push(' ');
            out.push_str(span.status.name());
        }
        if marked {
            out.push_str(" bottleneck");
        }
        let _ = write!(out, "\" data-span=\"{}\"><title>", span.id);
        hover(out, span, marked);
        let wall = span.wall.as_nanos() as f64 * scale;
        let _ = write!(
            out,
            "</title><text x=\"{lx}\" y=\"{ty}\">{label}</text>\
             <rect class=\"wall\" x=\"{bx}\" y=\"{y}\" width=\"{bw}\" height=\"{bh}\"/>\
             <rect class=\"busy\" x=\"{bx}\" y=\"{sy}\" width=\"{busy}\" height=\"3\"/>",
            lx = coord(4.0 + INDENT * depth.min(MAX_INDENT) as f64),
            ty = coord(y + 12.0),
            label = short_label(&row_label(span), 30),
            bx = coord(x(span.start)),
            y = coord(y + 2.0),
            bw = coord(wall.max(1.0)),
            bh = coord(ROW - 4.0),
            sy = coord(y + ROW - 5.0),
            busy = coord(span.busy.as_nanos() as f64 * scale),
        );
        if let Some(device) = span.device {
            let _ = write!(
                out,
                "<rect class=\"device\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"3\"/>",
                coord(x(span.start)),
                coord(y + 3.0),
                coord(device.as_nanos() as f64 * scale),
            );
        }
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\"{}>{}{}</text></g>",
            coord(x(span.start.saturating_add(span.wall)) + 4.0),
            coord(y + 12.0),
            if marked { " class=\"mark\"" } else { "" },
            fmt_ms(span.wall),
            if marked { " ◀ bottleneck" } else { "" },
        );
    }
    if rows.len() > drawn {
        let _ = writeln!(
            out,
            "<text x=\"4\" y=\"{}\">{} more spans not drawn</text>",
            coord(bottom + 14.0),
            rows.len() - drawn
        );
    }
    out.push_str("</svg></div>\n");
}

/// The row's label: the span name, and the model for model and batch spans.
fn row_label(span: &SpanTrace) -> String {
    match &span.model {
        Some(m) if span.name != m.as_str() => format!("{} {m}", span.name),
        _ => span.name.to_string(),
    }
}

/// Every field of the span, one a line, escaped: the row's `<title>`.
fn hover(out: &mut String, span: &SpanTrace, bottleneck: bool) {
    let mut text = format!(
        "{} ({})\nstart {}\nwall {}\nbusy {}\nwaiting {}",
        span.label(),
        span.class.name(),
        fmt_ms(span.start),
        fmt_ms(span.wall),
        fmt_ms(span.busy),
        fmt_ms(span.waiting()),
    );
    if let Some(d) = span.device {
        let _ = write!(text, "\ndevice {}", fmt_ms(d));
    }
    let _ = write!(text, "\nstatus {}", span.status.name());
    if span.shared {
        text.push_str("\nshared: a batch serving other requests too");
    }
    for (name, value) in &span.fields {
        let _ = write!(text, "\n{name} = {value}");
    }
    if bottleneck {
        text.push_str("\nthe request's bottleneck");
    }
    out.push_str(&escape(&text));
}
