//! A real headless browser for the tests that check pages: Debian's
//! `chromium`, run in a fresh profile with a time limit; a page's DOM after
//! it ran, and a screenshot checked for size and content. Without `chromium`
//! on PATH the test fails, saying so (`.ci/run` installs it). Shared by
//! `tests/html_browser.rs` and the pipeline crate's report test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The window the screenshots are taken at.
pub const WIDTH: u32 = 1200;
pub const HEIGHT: u32 = 900;
/// The longest one browser run may take.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(120);

/// `chromium` on PATH, or a failure that says what is missing.
pub fn chromium() -> PathBuf {
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
pub fn run_chromium(browser: &Path, url: &str, args: &[String]) -> String {
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
pub fn dom(browser: &Path, url: &str) -> String {
    run_chromium(browser, url, &["--dump-dom".to_string()])
}

/// Screenshots `url` at [`WIDTH`] x [`HEIGHT`] and checks the PNG: that size,
/// and not one colour throughout.
pub fn check_screenshot(browser: &Path, url: &str) {
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
