//! Each model's latency percentile distribution, cumulative and recent side
//! by side, as HdrHistogram plots it: percentiles on a log "nines" axis.

use super::svg::{coord, escape, latency_axis, px, short_label};
use crate::read::format::{fmt_ms, fmt_round};
use crate::read::snapshot::{Latency, LatencySnapshot};
use std::fmt::Write as _;
use std::time::Duration;

/// The x axis runs from 0 to this many nines (99.999 %).
const NINES: f64 = 5.0;
/// Points per line, less one: one every `NINES / STEPS` nines.
const STEPS: u32 = 100;
/// The plot area of one panel, in pixels (200 / 100: a point every 2 px).
const WIDTH: f64 = 200.0;
const HEIGHT: f64 = 110.0;
/// Left edge of the first panel's plot, and the distance between panels.
const LEFT: f64 = 48.0;
const PANEL: f64 = WIDTH + 64.0;
/// Top edge of the plot area.
const TOP: f64 = 36.0;

/// The x axis's labelled ticks: (nines, label).
const X_TICKS: [(f64, &str); 6] = [
    (0.0, "0"),
    (1.0, "90"),
    (2.0, "99"),
    (3.0, "99.9"),
    (4.0, "99.99"),
    (5.0, "99.999"),
];

/// The quantile at `x` nines: `1 - 10^-x`.
fn quantile_at(nines: f64) -> f64 {
    1.0 - 10f64.powf(-nines)
}

/// The `#distributions` section: one `svg.dist-plot` per cumulative model.
pub(super) fn section(out: &mut String, snapshot: &LatencySnapshot, target: Option<Duration>) {
    out.push_str("<h2>Latency by percentile</h2>\n<section id=\"distributions\">\n");
    let _ = writeln!(
        out,
        "<p class=\"legend\"><span><i class=\"swatch\" style=\"background:#1f5fa8\"></i>cumulative</span>\
         <span><i class=\"swatch\" style=\"background:#d9730d\"></i>recent (last {})</span>\
         <span><i class=\"swatch\" style=\"background:#c00\"></i>target</span></p>",
        fmt_round(snapshot.window())
    );
    let mut any = false;
    for (name, model) in snapshot.cumulative().models() {
        any = true;
        let recent = snapshot.recent().model(name).map(|m| m.wall());
        plot(out, name, model.wall(), recent, target);
    }
    if !any {
        out.push_str("<p>No model span recorded yet.</p>\n");
    }
    out.push_str("</section>\n");
}

/// The line's points: `(nines, quantile value)`, `STEPS + 1` of them.
fn points(latency: &Latency) -> impl Iterator<Item = (f64, Duration)> + '_ {
    (0..=STEPS).map(move |i| {
        let nines = NINES * f64::from(i) / f64::from(STEPS);
        (nines, latency.quantile(quantile_at(nines)))
    })
}

fn plot(
    out: &mut String,
    name: &str,
    cumulative: &Latency,
    recent: Option<&Latency>,
    target: Option<Duration>,
) {
    let highest = [Some(cumulative), recent]
        .into_iter()
        .flatten()
        .map(|l| l.quantile(quantile_at(NINES)))
        .max()
        .unwrap_or_default();
    let (top, step) = latency_axis(highest);
    let width = LEFT + PANEL + WIDTH + 28.0;
    let height = TOP + HEIGHT + 40.0;
    let _ = writeln!(
        out,
        "<svg class=\"dist-plot\" data-model=\"{m}\" data-y0=\"{TOP}\" data-width=\"{WIDTH}\" \
         data-height=\"{HEIGHT}\" data-y-max-ns=\"{top}\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" role=\"img\"><title>{m}</title>",
        m = escape(name),
        top = top.as_nanos(),
        w = coord(width),
        h = coord(height),
    );
    let _ = writeln!(
        out,
        "<text class=\"model-name\" x=\"{LEFT}\" y=\"14\" style=\"font-weight:bold;font-size:13px\">{}</text>",
        short_label(name, 36)
    );
    if let Some(t) = target.filter(|&t| t > top) {
        let _ = writeln!(
            out,
            "<text class=\"target-above\" x=\"{}\" y=\"14\" text-anchor=\"end\" style=\"fill:#c00\">\
             target {}: above the plots</text>",
            coord(width - 28.0),
            fmt_round(t),
        );
    }
    let panels = [
        ("cumulative", "cumulative", Some(cumulative)),
        ("recent", "recent", recent),
    ];
    for (i, (class, title, latency)) in panels.into_iter().enumerate() {
        let x0 = LEFT + PANEL * i as f64;
        axes(out, x0, top, step);
        let count = latency.map_or(0, Latency::count);
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" style=\"font-size:9px\">{title}: ",
            coord(x0),
            TOP - 6.0
        );
        match latency.filter(|l| l.count() > 0) {
            Some(l) => {
                let _ = write!(
                    out,
                    "n={count}, p99 {}, max {}",
                    fmt_ms(l.quantile(0.99)),
                    fmt_ms(l.max())
                );
            }
            None => out.push_str("no samples"),
        }
        out.push_str("</text>\n");
        if let Some(l) = latency.filter(|l| l.count() > 0) {
            line(out, class, x0, l, top);
        }
        if let Some(t) = target.filter(|&t| t <= top) {
            target_line(out, x0, t, top);
        }
    }
    out.push_str("</svg>\n");
}

/// Frame, grid and tick labels of one panel whose plot starts at `x0`.
fn axes(out: &mut String, x0: f64, top: Duration, step: Duration) {
    let bottom = TOP + HEIGHT;
    let mut v = Duration::ZERO;
    while v <= top {
        let y = y_of(v, top);
        let _ = writeln!(
            out,
            "<line class=\"grid\" x1=\"{}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            coord(x0),
            coord(x0 + WIDTH),
            coord(x0 - 4.0),
            coord(y_of(v, top) + 4.0),
            fmt_round(v),
            y = coord(y),
        );
        if step.is_zero() {
            break;
        }
        v += step;
    }
    for (nines, label) in X_TICKS {
        let x = coord(x_of(x0, nines));
        let _ = writeln!(
            out,
            "<line class=\"grid\" x1=\"{x}\" x2=\"{x}\" y1=\"{}\" y2=\"{}\"/>\
             <text x=\"{x}\" y=\"{}\" text-anchor=\"middle\" style=\"font-size:9px\">{label}</text>",
            coord(TOP),
            coord(bottom),
            coord(bottom + 14.0),
        );
    }
    let _ = writeln!(
        out,
        "<path class=\"axis\" fill=\"none\" d=\"M{x0} {TOP}V{b}H{x1}\"/>\
         <text x=\"{mid}\" y=\"{label}\" text-anchor=\"middle\">percentile (%)</text>",
        x0 = coord(x0),
        b = coord(bottom),
        x1 = coord(x0 + WIDTH),
        mid = coord(x0 + WIDTH / 2.0),
        label = coord(bottom + 30.0),
    );
}

fn x_of(x0: f64, nines: f64) -> f64 {
    x0 + WIDTH * nines / NINES
}

fn y_of(v: Duration, top: Duration) -> f64 {
    let top = top.as_nanos().max(1) as f64;
    TOP + HEIGHT * (1.0 - v.as_nanos() as f64 / top)
}

/// One series' polyline, its points those of [`points`].
fn line(out: &mut String, class: &str, x0: f64, latency: &Latency, top: Duration) {
    let _ = write!(
        out,
        "<polyline class=\"q-line {class}\" data-x0=\"{}\" points=\"",
        coord(x0)
    );
    for (i, (nines, value)) in points(latency).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        px(out, x_of(x0, nines));
        out.push(',');
        px(out, y_of(value, top));
    }
    out.push_str("\"/>\n");
}

/// The target across the panel (at or below the axis's top).
fn target_line(out: &mut String, x0: f64, target: Duration, top: Duration) {
    let y = coord(y_of(target, top));
    let _ = writeln!(
        out,
        "<line class=\"target\" x1=\"{}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\"><title>target {t}</title></line>\
         <text x=\"{}\" y=\"{}\" style=\"fill:#c00\">target {t}</text>",
        coord(x0),
        coord(x0 + WIDTH),
        coord(x0 + 6.0),
        coord(y_of(target, top) - 3.0),
        t = fmt_round(target),
    );
}
