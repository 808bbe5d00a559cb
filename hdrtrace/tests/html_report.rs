//! The HTML report draws what the snapshot holds: each distribution line's
//! points map back to the snapshot's quantiles (coordinates are written
//! with one decimal, so to within 0.05 px), the blame bars and waterfall rows
//! are the snapshot's, and every label is escaped.

mod html_support;

use hdrtrace::export::{render_html, HtmlOptions};
use hdrtrace::{BlameReason, Latency, LatencySnapshot};
use html_support::{
    attr, first_waterfall, record, tags_with_class, unescape, HOSTILE, MODELS, QUOTES, TARGET,
};
use std::sync::OnceLock;
use std::time::Duration;

/// Recorded once per test process: scoped subscribers built and dropped on
/// several test threads at once race in tracing-core's interest cache.
fn snapshot() -> &'static LatencySnapshot {
    static SNAPSHOT: OnceLock<LatencySnapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| record().1)
}

fn page() -> &'static str {
    static PAGE: OnceLock<String> = OnceLock::new();
    PAGE.get_or_init(|| render_html(snapshot(), &HtmlOptions::default()))
}

/// The segment of `html` from each `svg.dist-plot` to its `</svg>`.
fn dist_plots(html: &str) -> Vec<&str> {
    let mut plots = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find("<svg class=\"dist-plot\"") {
        let tail = &rest[at..];
        let end = tail.find("</svg>").expect("a closed svg") + "</svg>".len();
        plots.push(&tail[..end]);
        rest = &tail[end..];
    }
    plots
}

fn number(tag: &str, name: &str) -> f64 {
    attr(tag, name)
        .unwrap_or_else(|| panic!("no {name} in {tag}"))
        .parse()
        .unwrap_or_else(|e| panic!("{name} in {tag}: {e}"))
}

/// Checks one polyline against `latency`: 101 points at 0, 0.05, .., 5
/// nines, each y the quantile's latency to within the rounding.
fn check_line(
    line: &str,
    latency: &Latency,
    plot: &str,
    y0: f64,
    width: f64,
    height: f64,
    top: f64,
) {
    let x0 = number(line, "data-x0");
    let points: Vec<(f64, f64)> = attr(line, "points")
        .expect("points")
        .split(' ')
        .map(|p| {
            let (x, y) = p.split_once(',').expect("x,y");
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect();
    assert_eq!(points.len(), 101, "{plot}");
    // One decimal, rounded: half a tenth of a pixel, and the latency that is.
    let tolerance_ns = top * 0.05 / height + 1.0;
    for (i, &(x, y)) in points.iter().enumerate() {
        let step = width / 100.0;
        assert!(
            (x - (x0 + step * i as f64)).abs() <= 0.05,
            "point {i} at x {x}"
        );
        let nines = 5.0 * i as f64 / 100.0;
        let q = 1.0 - 10f64.powf(-nines);
        let want = latency.quantile(q).as_nanos() as f64;
        let read = (y0 + height - y) / height * top;
        assert!(
            (read - want).abs() <= tolerance_ns,
            "point {i} (q {q}): y {y} reads {read} ns, the snapshot says {want} ns (± {tolerance_ns})"
        );
    }
}

#[test]
fn plotted_points_are_the_snapshots_quantiles() {
    let snapshot = snapshot();
    let plots = dist_plots(page());
    let models: Vec<&str> = snapshot.cumulative().models().map(|(n, _)| n).collect();
    assert_eq!(models.len(), MODELS.len(), "{:?}", models);
    assert_eq!(plots.len(), models.len(), "one plot per model");
    for (plot, name) in plots.iter().zip(&models) {
        let svg = &plot[..plot.find('>').unwrap() + 1];
        assert_eq!(unescape(attr(svg, "data-model").unwrap()), *name);
        let (y0, width, height) = (
            number(svg, "data-y0"),
            number(svg, "data-width"),
            number(svg, "data-height"),
        );
        let top = number(svg, "data-y-max-ns");
        let cumulative = tags_with_class(plot, "polyline", "cumulative");
        let recent = tags_with_class(plot, "polyline", "recent");
        assert_eq!((cumulative.len(), recent.len()), (1, 1), "{plot}");
        let all = snapshot.cumulative().model(name).unwrap().wall();
        let window = snapshot.recent().model(name).expect("in the window").wall();
        assert!(all.count() > 0 && window.count() > 0);
        check_line(cumulative[0], all, plot, y0, width, height, top);
        check_line(recent[0], window, plot, y0, width, height, top);
        // The axis holds the highest point: the top is at least the p99.999.
        assert!(top >= all.quantile(0.99999).as_nanos() as f64);
        // The target is a line at its latency, or a note when above the axis.
        let lines = tags_with_class(plot, "line", "target");
        if (TARGET.as_nanos() as f64) <= top {
            assert_eq!(lines.len(), 2, "one per panel: {plot}");
            for l in lines {
                let y = number(l, "y1");
                let read = (y0 + height - y) / height * top;
                assert!((read - TARGET.as_nanos() as f64).abs() <= top * 0.05 / height + 1.0);
            }
        } else {
            assert_eq!(lines.len(), 0, "{plot}");
            assert_eq!(plot.matches("class=\"target-above\"").count(), 1, "{plot}");
        }
    }
    // Causal's tail (every 8th batch 4 ms against 300 µs) shows on its line.
    let causal = snapshot.model("Causal").unwrap();
    assert!(
        causal.quantile(0.99) >= Duration::from_millis(4),
        "{:?}",
        causal.quantile(0.99)
    );
}

#[test]
fn an_explicit_target_is_drawn_where_it_says() {
    let snapshot = snapshot();
    let target = Duration::from_micros(250);
    let html = render_html(
        snapshot,
        &HtmlOptions {
            target: Some(target),
            ..HtmlOptions::default()
        },
    );
    let plot = dist_plots(&html)
        .into_iter()
        .find(|p| p.contains("data-model=\"Causal\""))
        .expect("Causal's plot");
    let svg = &plot[..plot.find('>').unwrap() + 1];
    let (y0, height, top) = (
        number(svg, "data-y0"),
        number(svg, "data-height"),
        number(svg, "data-y-max-ns"),
    );
    let lines = tags_with_class(plot, "line", "target");
    assert_eq!(lines.len(), 2, "{plot}");
    let read = (y0 + height - number(lines[0], "y1")) / height * top;
    assert!(
        (read - 250_000.0).abs() <= top * 0.05 / height + 1.0,
        "{read}"
    );
    assert!(
        !html.contains("http-equiv=\"refresh\""),
        "a saved report does not reload"
    );
    let live = render_html(
        snapshot,
        &HtmlOptions {
            refresh: Some(Duration::from_secs(5)),
            ..HtmlOptions::default()
        },
    );
    assert!(live.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
}

#[test]
fn blame_bars_and_waterfalls_are_the_snapshots() {
    let snapshot = snapshot();
    let html = page();
    let rows = tags_with_class(html, "g", "blame-row");
    assert_eq!(rows.len(), MODELS.len());
    for row in rows {
        let model = unescape(attr(row, "data-model").unwrap());
        let blamed: u64 = attr(row, "data-blamed").unwrap().parse().unwrap();
        let latency = snapshot.model(&model).unwrap();
        assert_eq!(blamed, latency.blamed(), "{model}");
    }
    // One segment per reason, each its count.
    let bars = tags_with_class(html, "rect", "blame-bar");
    assert_eq!(bars.len(), MODELS.len() * BlameReason::ALL.len());
    for (row, (name, latency)) in snapshot.cumulative().models().enumerate() {
        for (k, reason) in BlameReason::ALL.into_iter().enumerate() {
            let bar = bars[row * BlameReason::ALL.len() + k];
            assert_eq!(attr(bar, "data-reason"), Some(reason.name()), "{name}");
            let count: u64 = attr(bar, "data-count").unwrap().parse().unwrap();
            assert_eq!(count, latency.blamed_for(reason), "{name} {reason:?}");
        }
    }
    assert!(
        snapshot
            .model("Causal")
            .unwrap()
            .blamed_for(BlameReason::OverTarget)
            > 0
    );

    let slowest = &snapshot.slowest()[0];
    let waterfalls = tags_with_class(html, "svg", "waterfall");
    assert_eq!(waterfalls.len(), snapshot.slowest().len().min(3));
    assert_eq!(
        attr(waterfalls[0], "data-request"),
        Some(slowest.request_id().to_string().as_str())
    );
    let first = first_waterfall(html).unwrap();
    let spans = tags_with_class(first, "g", "span");
    assert_eq!(spans.len(), slowest.spans().len(), "one row per span");
    let bottleneck = tags_with_class(first, "g", "bottleneck");
    assert_eq!(bottleneck.len(), 1);
    let blamed = slowest.attribution().expect("a bottleneck");
    assert_eq!(
        attr(bottleneck[0], "data-span"),
        Some(blamed.span.to_string().as_str())
    );
    assert_eq!(blamed.model, "Causal");
    assert!(
        !tags_with_class(first, "g", "shared").is_empty(),
        "the batch it shared"
    );
    assert!(first.contains("class=\"device\""), "Semantic's device time");
    assert!(
        first.contains("gpu_ns") || first.contains("device 0.150ms"),
        "{first}"
    );
    assert!(html.contains(&slowest.verdict().replace('&', "&amp;")));
}

#[test]
fn hostile_labels_are_escaped() {
    let html = page();
    assert!(!html.contains(HOSTILE), "raw markup in the page");
    assert!(
        !html.to_ascii_lowercase().contains("<script"),
        "the page runs no script"
    );
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!html.contains(QUOTES));
    assert!(html.contains("a&quot;b&#39;c&amp;d"));
    // Every `&` starts a character reference the report writes.
    for (at, _) in html.match_indices('&') {
        let tail = &html[at..];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                .iter()
                .any(|r| tail.starts_with(r)),
            "a bare & at {}",
            &tail[..tail.len().min(20)]
        );
    }
}

#[test]
fn an_empty_snapshot_renders_a_page_that_says_so() {
    let html = render_html(&LatencySnapshot::default(), &HtmlOptions::default());
    assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
    assert!(html.contains("No model span recorded yet."));
    assert!(html.contains("No request was captured."));
}
