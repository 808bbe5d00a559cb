//! How often each model was blamed: one bar per model, a segment per reason.

use super::svg::{coord, escape, short_label};
use crate::read::requests::BlameReason;
use crate::read::snapshot::{LatencySnapshot, ModelLatency};
use std::fmt::Write as _;

/// Row height and the bar area, in pixels.
const ROW: f64 = 20.0;
const LABEL: f64 = 220.0;
const BAR: f64 = 500.0;

/// Each reason's fill and how the legend names it, in [`BlameReason::ALL`]'s
/// order.
fn look(reason: BlameReason) -> (&'static str, &'static str) {
    match reason {
        BlameReason::OverTarget => ("#b03a2e", "over target"),
        BlameReason::TimedOut => ("#e08a1e", "timed out"),
        BlameReason::Failed => ("#5d4037", "failed"),
    }
}

/// The `#blame` section: one `g.blame-row` per cumulative model, by name,
/// its `rect.blame-bar` segments one per reason (`data-reason` its
/// [`BlameReason::name`], `data-count` its count).
pub(super) fn section(out: &mut String, snapshot: &LatencySnapshot) {
    out.push_str("<h2>Blamed</h2>\n<section>\n<p class=\"legend\">");
    for reason in BlameReason::ALL {
        let (fill, label) = look(reason);
        let _ = write!(
            out,
            "<span><i class=\"swatch\" style=\"background:{fill}\"></i>{label}</span>"
        );
    }
    out.push_str(
        "Requests each model was blamed for: it timed out or failed, or returned \
         last in a request over the latency target.</p>\n",
    );
    let models: Vec<(&str, &ModelLatency)> = snapshot.cumulative().models().collect();
    let most = models.iter().map(|(_, m)| m.blamed()).max().unwrap_or(0);
    let height = ROW * models.len() as f64 + 8.0;
    let width = LABEL + BAR + 260.0;
    let _ = writeln!(
        out,
        "<svg id=\"blame\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\">",
        w = coord(width),
        h = coord(height),
    );
    for (row, (name, model)) in models.iter().enumerate() {
        let y = 4.0 + ROW * row as f64;
        let blamed = model.blamed();
        let mut detail = String::new();
        for reason in BlameReason::ALL {
            let n = model.blamed_for(reason);
            if n > 0 {
                let sep = if detail.is_empty() { "" } else { ", " };
                let _ = write!(detail, "{sep}{} {n}", look(reason).1);
            }
        }
        let _ = write!(
            out,
            "<g class=\"blame-row\" data-model=\"{m}\" data-blamed=\"{blamed}\">\
             <title>{m}: blamed {blamed} ({detail})</title>\
             <text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{label}</text>\
             <rect class=\"bar-bg\" x=\"{x}\" y=\"{y}\" width=\"{bar}\" height=\"{bh}\"/>",
            m = escape(name),
            label = short_label(name, 32),
            lx = coord(LABEL - 6.0),
            ty = coord(y + 13.0),
            x = coord(LABEL),
            y = coord(y),
            bar = coord(BAR),
            bh = coord(ROW - 4.0),
        );
        let mut x = LABEL;
        for reason in BlameReason::ALL {
            let n = model.blamed_for(reason);
            let length = if most == 0 {
                0.0
            } else {
                BAR * n as f64 / most as f64
            };
            let _ = write!(
                out,
                "<rect class=\"blame-bar\" data-reason=\"{}\" data-count=\"{n}\" x=\"{}\" \
                 y=\"{}\" width=\"{}\" height=\"{}\" style=\"fill:{}\"/>",
                reason.name(),
                coord(x),
                coord(y),
                coord(length),
                coord(ROW - 4.0),
                look(reason).0,
            );
            x += length;
        }
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\">{blamed}{}</text></g>",
            coord(LABEL + BAR + 6.0),
            coord(y + 13.0),
            if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            },
        );
    }
    out.push_str("</svg>\n</section>\n");
}
