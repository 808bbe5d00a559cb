//! A self-contained HTML report of a snapshot: each model's percentile
//! distribution, how often each model was blamed, and the slowest captured
//! requests as waterfalls. Inline SVG and CSS only: no script, no network, so
//! it opens from a file.

mod blame;
mod distribution;
mod svg;
mod waterfall;

use crate::read::format::fmt_round;
use crate::read::snapshot::LatencySnapshot;
use std::fmt::Write as _;
use std::time::Duration;

use svg::escape;

/// How [`render_html`] draws a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HtmlOptions {
    /// The latency target drawn across every distribution plot and waterfall.
    /// `None`: the target the snapshot's captured requests were judged
    /// against ([`RequestTrace::target`](crate::RequestTrace::target), read
    /// from the slowest, then the most recent); no target line when nothing
    /// was captured.
    pub target: Option<Duration>,
    /// When set, the page reloads itself this often (a `<meta http-equiv=
    /// "refresh">`, whole seconds, at least one), as the metrics server's `/`
    /// does. `None` for a report saved to a file.
    pub refresh: Option<Duration>,
    /// How many of the slowest captured requests get a waterfall.
    pub waterfalls: usize,
}

impl Default for HtmlOptions {
    /// The captured requests' target, no refresh, three waterfalls.
    fn default() -> Self {
        Self {
            target: None,
            refresh: None,
            waterfalls: 3,
        }
    }
}

/// Renders `snapshot` as one self-contained HTML page.
///
/// The page holds, each with a stable `id` or `class` to find it by:
/// - `#distributions`: per model (cumulative models, by name) one
///   `svg.dist-plot` (`data-model` its id) with two panels side by side, the
///   cumulative distribution (`polyline.q-line.cumulative`) and the recent
///   window's (`polyline.q-line.recent`), drawn as HdrHistogram draws them:
///   x is the percentile on a "nines" scale, `x = log10(1 / (1 - q))` from 0
///   (0 %) to 5 (99.999 %), y the wall-time latency, linear from 0. Each
///   line has 101 points, at `x = 0, 0.05, .., 5` nines, whose y is
///   [`Latency::quantile`](crate::Latency::quantile) of that `q`. The panel
///   geometry is on the `svg` (`data-y0`: the plot's top pixel;
///   `data-width`, `data-height`; `data-y-max-ns`: the latency at the top)
///   and on each line (`data-x0`: its panel's left pixel), and every coordinate is written with one decimal, rounded: a
///   point's latency reads back to within `0.05 / data-height` of
///   `data-y-max-ns`. Both panels share the y scale. The target is a dashed
///   `line.target` across each panel, or, when it is above the axis, one
///   `text.target-above` note; a panel with no samples says so.
/// - `#blame`: per model one `g.blame-row` (`data-blamed`:
///   [`ModelLatency::blamed`](crate::ModelLatency::blamed)) whose bar has one
///   `rect.blame-bar` segment per [`BlameReason`](crate::BlameReason)
///   (`data-reason` its name, `data-count`
///   [`ModelLatency::blamed_for`](crate::ModelLatency::blamed_for)), lengths
///   in proportion to the counts.
/// - `#waterfalls`: the first [`HtmlOptions::waterfalls`] of
///   [`LatencySnapshot::slowest`], each an `svg.waterfall`: one `g.span` row
///   per span in tree order ([`RequestTrace::index`](crate::RequestTrace::index)),
///   its bar from its start to its end, shared batches marked `shared`, the
///   attribution's span marked `bottleneck`, busy and device time
///   ([`SpanTrace::device`](crate::SpanTrace::device)) as thin strips (their
///   length, not their position), and every field in the row's `<title>`
///   (shown on hover). The trace's verdict is its caption.
///
/// Every label (model ids, span and field names, messages) is escaped
/// (`&`, `<`, `>`, `"` and `'` written as character references), so any
/// id shows as text. The function never panics.
pub fn render_html(snapshot: &LatencySnapshot, options: &HtmlOptions) -> String {
    let target = options.target.or_else(|| {
        snapshot
            .slowest()
            .iter()
            .chain(snapshot.captured())
            .next()
            .map(|t| t.target())
    });
    let mut out = String::with_capacity(64 * 1024);
    head(&mut out, options.refresh);
    summary(&mut out, snapshot, target);
    distribution::section(&mut out, snapshot, target);
    blame::section(&mut out, snapshot);
    waterfall::section(&mut out, snapshot, target, options.waterfalls);
    out.push_str("</body>\n</html>\n");
    out
}

/// The page's styles: one palette for every picture.
const STYLE: &str = "\
body{font:13px/1.4 system-ui,sans-serif;margin:16px 24px;color:#222;background:#fff}\
svg.dist-plot{display:inline-block;margin:0 8px 12px 0}h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px;border-bottom:1px solid #ddd}\
.meta{color:#555}.warn{color:#a00;font-weight:bold}\
svg text{font:11px system-ui,sans-serif;fill:#333}\
.axis{stroke:#888;stroke-width:1}.grid{stroke:#eee;stroke-width:1}\
.q-line{fill:none;stroke-width:1.6}.cumulative{stroke:#1f5fa8}.recent{stroke:#d9730d}\
.target{stroke:#c00;stroke-width:1;stroke-dasharray:5 3}\
.bar-bg{fill:#f3f3f3}\
.span rect.wall{fill:#9cc3e6}.span.model rect.wall{fill:#7fbf7f}.span.request rect.wall{fill:#bbb}\
.span.shared rect.wall{fill:#c3a6e0}.span.timeout rect.wall{fill:#f0b060}.span.error rect.wall{fill:#e57373}\
.span rect.busy{fill:#2d6a2d}.span rect.device{fill:#6a1b9a}\
.span.bottleneck rect.wall{stroke:#c00;stroke-width:2}.span.bottleneck text.mark{fill:#c00;font-weight:bold}\
.verdict{font-weight:bold}.legend span{margin-right:14px}\
.swatch{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}";

fn head(out: &mut String, refresh: Option<Duration>) {
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    if let Some(every) = refresh {
        let _ = writeln!(
            out,
            "<meta http-equiv=\"refresh\" content=\"{}\">",
            every.as_secs().max(1)
        );
    }
    let _ = writeln!(
        out,
        "<title>hdrtrace report</title>\n<style>{STYLE}</style>\n</head>\n<body>"
    );
}

fn summary(out: &mut String, snapshot: &LatencySnapshot, target: Option<Duration>) {
    let c = snapshot.counters();
    out.push_str("<h1>hdrtrace report</h1>\n<p class=\"meta\" id=\"summary\">");
    let _ = write!(
        out,
        "snapshot {}; {} requests, {} captured; recent window {}",
        snapshot.version(),
        c.requests,
        c.captured_requests,
        fmt_round(snapshot.window()),
    );
    if let Some(t) = target {
        let _ = write!(out, "; target {}", fmt_round(t));
    }
    if c.dropped_spans + c.dropped_records > 0 {
        let _ = write!(
            out,
            "; lost: {} spans, {} records",
            c.dropped_spans, c.dropped_records
        );
    }
    out.push_str("</p>\n");
    if let Some(why) = snapshot.aggregator_failure() {
        let _ = writeln!(
            out,
            "<p class=\"warn\">The aggregator stopped: {}. Nothing recorded since is shown.</p>",
            escape(why)
        );
    }
}
