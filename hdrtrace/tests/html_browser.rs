//! A real browser (Debian's `chromium`, headless) loads the metrics server's
//! live page (`/`) and a saved report: the DOM it built has one
//! distribution plot per model, the blame bars and the waterfall of the
//! slowest request, hostile model ids as text, and its screenshot is a
//! non-blank PNG of the window's size. Without `chromium` on PATH the test
//! fails, saying so (`.ci/run` installs it).

mod browser_support;
mod html_support;

use browser_support::{check_screenshot, chromium, dom};
use hdrtrace::export::{prometheus, render_html, HtmlOptions};
use hdrtrace::{BlameReason, LatencySnapshot};
use html_support::{attr, first_waterfall, record, tags_with_class, unescape, HOSTILE, MODELS};

/// Checks the page's DOM against the snapshot it was rendered from.
fn check_dom(dom: &str, snapshot: &LatencySnapshot, url: &str) {
    let models: Vec<&str> = snapshot.cumulative().models().map(|(n, _)| n).collect();
    assert_eq!(models.len(), MODELS.len());
    let plots = tags_with_class(dom, "svg", "dist-plot");
    let plotted: Vec<String> = plots
        .iter()
        .map(|p| unescape(attr(p, "data-model").unwrap()))
        .collect();
    assert_eq!(plotted, models, "one distribution plot per model on {url}");
    for line in ["cumulative", "recent"] {
        assert_eq!(
            tags_with_class(dom, "polyline", line).len(),
            models.len(),
            "a {line} line per model on {url}"
        );
    }
    assert!(dom.contains("id=\"blame\""), "{url}");
    assert_eq!(tags_with_class(dom, "g", "blame-row").len(), models.len());
    assert_eq!(
        tags_with_class(dom, "rect", "blame-bar").len(),
        models.len() * BlameReason::ALL.len()
    );
    let slowest = &snapshot.slowest()[0];
    let waterfall = first_waterfall(dom).expect("the slowest request's waterfall");
    assert_eq!(
        tags_with_class(waterfall, "g", "span").len(),
        slowest.spans().len(),
        "a row per span of the slowest request on {url}"
    );
    assert_eq!(tags_with_class(waterfall, "g", "bottleneck").len(), 1);
    // The hostile id is text: escaped in the serialized DOM, never an element.
    assert!(
        dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{url}"
    );
    assert!(!dom.contains(HOSTILE), "{url}");
    assert!(!dom.contains("<script"), "{url}");
}

#[test]
fn chromium_renders_the_live_page_and_a_saved_report() {
    let browser = chromium();
    let (guard, snapshot) = record();

    // The saved report, opened from a file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.html");
    std::fs::write(&file, render_html(&snapshot, &HtmlOptions::default())).unwrap();
    let url = format!("file://{}", file.display());
    check_dom(&dom(&browser, &url), &snapshot, &url);
    check_screenshot(&browser, &url);

    // The live page: nothing is recorded after the flush, so it draws the
    // same snapshot.
    let server = prometheus::serve("127.0.0.1:0", guard.snapshot_source()).unwrap();
    let url = format!("http://{}/", server.local_addr());
    let live = dom(&browser, &url);
    assert!(
        live.contains("http-equiv=\"refresh\""),
        "the live page reloads itself"
    );
    check_dom(&live, &guard.snapshot(), &url);
    check_screenshot(&browser, &url);
}
