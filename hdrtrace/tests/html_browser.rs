//! A real browser (Debian's `chromium`, headless) loads the metrics server's
//! live page (`/`) and a saved report: the DOM it built has one
//! distribution plot per model, the blame bars and the waterfall of the
//! slowest request, hostile model ids as text, and its screenshot is a
//! non-blank PNG of the window's size. Without `chromium` on PATH the test
//! fails, saying so (`.ci/run` installs it).

mod html_support;

use hdrtrace::export::{prometheus, render_html, HtmlOptions};
use hdrtrace::{BlameReason, LatencySnapshot};
use html_support::{attr, record, tags_with_class, unescape, HOSTILE, MODELS};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The window the screenshots are taken at.
const WIDTH: u32 = 1200;
const HEIGHT: u32 = 900;
/// The longest one browser run may take.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(120);

/// `chromium` on PATH, or a failure that says what is missing.
fn chromium() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .flat_map(|dir| ["chromium", "chromium-browser"].map(|n| dir.join(n)))
            .find(|p| p.is_file())
    });
    match found {
        Some(path) => path,
        None => {
            let ci = if std::env::var_os("CI").is_some() {
                "CI is set, and .ci/run should have installed it. "
            } else {
                ""
            };
            panic!(
                "\n\nNO BROWSER: no `chromium` on PATH, so the HTML report cannot be checked \
                 in a real browser. {ci}Install Debian's chromium \
                 (apt-get install --no-install-recommends chromium) and run again.\n"
            )
        }
    }
}

/// Runs headless chromium on `url` with `args` in a fresh profile; returns
/// its stdout. Fails the test if it does not finish in [`BROWSER_TIMEOUT`] or
/// exits non-zero.
fn run_chromium(browser: &Path, url: &str, args: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", browser.display()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > BROWSER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium on {url} did not finish in {BROWSER_TIMEOUT:?}: {}",
                std::fs::read_to_string(err.path()).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "chromium on {url} exited {status}: {}",
        std::fs::read_to_string(err.path()).unwrap_or_default()
    );
    std::fs::read_to_string(out.path()).unwrap()
}

/// The DOM chromium built from `url`, serialized.
fn dom(browser: &Path, url: &str) -> String {
    run_chromium(browser, url, &["--dump-dom".to_string()])
}

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
    let at = dom
        .find("id=\"waterfall-0\"")
        .expect("the slowest request's waterfall");
    let waterfall = &dom[at..];
    let waterfall = &waterfall[..waterfall.find("</svg>").unwrap()];
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

/// Screenshots `url` at [`WIDTH`] x [`HEIGHT`] and checks the PNG: that size,
/// and not one colour throughout.
fn check_screenshot(browser: &Path, url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("page.png");
    run_chromium(
        browser,
        url,
        &[
            format!("--screenshot={}", file.display()),
            format!("--window-size={WIDTH},{HEIGHT}"),
        ],
    );
    let png = std::fs::File::open(&file).unwrap_or_else(|e| panic!("no screenshot of {url}: {e}"));
    let mut reader = png::Decoder::new(std::io::BufReader::new(png))
        .read_info()
        .expect("a PNG");
    let info = reader.info();
    assert_eq!((info.width, info.height), (WIDTH, HEIGHT), "{url}");
    let mut pixels = vec![0; reader.output_buffer_size().expect("a sane size")];
    let frame = reader.next_frame(&mut pixels).expect("PNG pixel data");
    let bytes = &pixels[..frame.buffer_size()];
    let pixel = frame.color_type.samples() * usize::from(frame.bit_depth as u8).div_ceil(8);
    let first = &bytes[..pixel];
    let differing = bytes.chunks(pixel).filter(|p| *p != first).count();
    // Text, axes and lines: far more than a stray pixel.
    assert!(
        differing > bytes.len() / pixel / 100,
        "{url}: the screenshot is blank ({differing} pixels differ from the first)"
    );
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
