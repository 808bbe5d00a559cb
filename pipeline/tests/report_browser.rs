//! The demo's report in a real browser: the twelve reference models under the
//! demo's `--slow Causal=180ms` (Causal past the 150 ms deadline), the live
//! page served at `/` as the demo's `--metrics` serves it, and the saved
//! report as its `--report` writes it. Headless chromium's DOM of each has
//! one distribution plot per model, the blame bars, and the slowest
//! request's waterfall with its bottleneck; each screenshot is a non-blank
//! PNG of the window's size. Without `chromium` on PATH the test fails,
//! saying so (`.ci/run` installs it).

#[path = "../../hdrtrace/tests/browser_support/mod.rs"]
mod browser_support;
#[path = "../../hdrtrace/tests/html_support/mod.rs"]
mod html_support;
mod pipeline_support;

use browser_support::{check_screenshot, chromium, dom};
use hdrtrace::export::{prometheus, render_html, HtmlOptions};
use hdrtrace::{BlameReason, LatencySnapshot, TracingConfig};
use html_support::{attr, first_waterfall, tags_with_class, unescape};
use pipeline_support::faults::Fault;
use pipeline_support::{embed_from_workers, faults, reference_pipeline, start, Keep};
use std::time::Duration;

const REQUESTS: u64 = 24;
const TARGET: Duration = Duration::from_millis(200);

/// The demo's run, recorded: every request degraded, blamed on Causal.
fn demo_run() -> (hdrtrace::TracingGuard, LatencySnapshot) {
    let keep = Keep::default();
    let config = TracingConfig {
        sampling_rate: 0.0,
        latency_target: TARGET,
        ..TracingConfig::default()
    };
    let (guard, _dispatch, rt) = start(hdrtrace::Builder::new(&config).sink(keep.clone()), 2);
    let p = reference_pipeline(
        faults(&[("Causal", Fault::Delay(Duration::from_millis(180)))]),
        Duration::from_millis(150),
    );
    let texts = |w, i| format!("worker {w} request {i}");
    for fused in embed_from_workers(&rt, &p, 4, REQUESTS as usize / 4, texts) {
        fused.expect("the request returns without Causal");
    }
    assert!(keep.wait_for(&guard, REQUESTS as usize, Duration::from_secs(20)));
    let snapshot = guard.snapshot();
    assert_eq!(
        snapshot
            .model("Causal")
            .map(|m| m.blamed_for(BlameReason::TimedOut)),
        Some(REQUESTS)
    );
    (guard, snapshot)
}

/// The page chromium built shows every model's distribution, the blame bars
/// (Causal's timed-out bar holding every request) and the slowest request's
/// waterfall with one bottleneck.
fn check_dom(dom: &str, snapshot: &LatencySnapshot, url: &str) {
    let models: Vec<&str> = snapshot.cumulative().models().map(|(n, _)| n).collect();
    assert_eq!(models.len(), 12, "{url}");
    let plotted: Vec<String> = tags_with_class(dom, "svg", "dist-plot")
        .iter()
        .map(|p| unescape(attr(p, "data-model").expect("a plot names its model")))
        .collect();
    assert_eq!(plotted, models, "one distribution plot per model on {url}");
    assert_eq!(
        tags_with_class(dom, "g", "blame-row").len(),
        models.len(),
        "{url}"
    );
    let causal = tags_with_class(dom, "g", "blame-row")
        .into_iter()
        .find(|row| attr(row, "data-model").map(unescape).as_deref() == Some("Causal"))
        .unwrap_or_else(|| panic!("no blame bar for Causal on {url}"));
    assert_eq!(
        attr(causal, "data-blamed"),
        Some(REQUESTS.to_string().as_str()),
        "Causal blamed for every request on {url}"
    );
    assert!(
        tags_with_class(dom, "rect", "blame-bar")
            .iter()
            .any(
                |bar| attr(bar, "data-reason") == Some(BlameReason::TimedOut.name())
                    && attr(bar, "data-count") == Some(REQUESTS.to_string().as_str())
            ),
        "a timed-out bar of {REQUESTS} on {url}"
    );
    let waterfall = first_waterfall(dom)
        .unwrap_or_else(|| panic!("no waterfall of the slowest request on {url}"));
    assert_eq!(
        tags_with_class(waterfall, "g", "span").len(),
        snapshot.slowest()[0].spans().len(),
        "a row per span of the slowest request on {url}"
    );
    assert_eq!(
        tags_with_class(waterfall, "g", "bottleneck").len(),
        1,
        "{url}"
    );
}

#[test]
fn chromium_renders_the_demos_live_page_and_saved_report() {
    let browser = chromium();
    let (guard, snapshot) = demo_run();

    // `--report FILE.html`, opened from the file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.html");
    let options = HtmlOptions {
        target: Some(TARGET),
        ..HtmlOptions::default()
    };
    std::fs::write(&file, render_html(&snapshot, &options)).unwrap();
    let url = format!("file://{}", file.display());
    check_dom(&dom(&browser, &url), &snapshot, &url);
    check_screenshot(&browser, &url);

    // `--metrics ADDR`: the live page at `/`.
    let server = prometheus::serve("127.0.0.1:0", guard.snapshot_source()).unwrap();
    let url = format!("http://{}/", server.local_addr());
    check_dom(&dom(&browser, &url), &guard.snapshot(), &url);
    check_screenshot(&browser, &url);
}
