//! Shared by the HTML report tests: a pipeline-shaped workload recorded
//! through real spans (stages, models, one batched model with a slow tail,
//! device time, hostile model ids), and readers of the page's SVG.
#![allow(dead_code)] // each test file uses part of it

use hdrtrace::{LatencySnapshot, TracingConfig, TracingGuard};
use std::thread::sleep;
use std::time::Duration;

/// A model id that is markup.
pub const HOSTILE: &str = "<script>alert(1)</script>";
/// A model id with every other character that needs escaping.
pub const QUOTES: &str = "a\"b'c&d";
/// The models, run one after another, each with its sleep in microseconds;
/// `Causal` runs batched, last, so it gates each request.
pub const MODELS: [(&str, u64); 4] = [
    ("Semantic", 200),
    (HOSTILE, 100),
    (QUOTES, 50),
    ("Causal", 300),
];
/// The latency target: every 8th request's Causal batch (4 ms) breaks it.
pub const TARGET: Duration = Duration::from_millis(3);
/// Requests recorded.
pub const REQUESTS: u64 = 40;
/// The device time Semantic reports, in nanoseconds.
pub const DEVICE_NS: u64 = 150_000;

/// One request: tokenize, then the models one after another under
/// `model_execution`, Causal's work in a batch span linked with its model
/// span (as a batcher makes it), Semantic reporting device time.
fn request(id: u64) {
    let root = tracing::info_span!("embed_pipeline", request_id = id);
    let _root = root.enter();
    tracing::info_span!("tokenize").in_scope(|| sleep(Duration::from_micros(100)));
    let exec = tracing::info_span!("model_execution", model_count = MODELS.len() as u64);
    let _exec = exec.enter();
    for (name, micros) in MODELS {
        let model = tracing::info_span!(
            "model",
            model_id = name,
            input_tokens = 12u64,
            gpu_ns = tracing::field::Empty
        );
        let _model = model.enter();
        if name == "Causal" {
            let batch =
                tracing::info_span!(parent: None, "batch", model_id = "Causal", batch_size = 1u64);
            model.follows_from(batch.id());
            batch.follows_from(model.id());
            let slow = id % 8 == 7;
            batch.in_scope(|| sleep(Duration::from_micros(if slow { 4000 } else { micros })));
        } else {
            sleep(Duration::from_micros(micros));
            if name == "Semantic" {
                model.record("gpu_ns", DEVICE_NS);
            }
        }
    }
}

/// Records the workload into a fresh instance and returns its guard (for a
/// live source) and its flushed snapshot. The recent window is long enough
/// to hold every sample.
pub fn record() -> (TracingGuard, LatencySnapshot) {
    let config = TracingConfig {
        latency_target: TARGET,
        window: Duration::from_secs(600),
        ..TracingConfig::default()
    };
    let (subscriber, guard) = hdrtrace::build(&config).expect("valid config");
    tracing::subscriber::with_default(subscriber, || {
        for id in 0..REQUESTS {
            request(id);
        }
    });
    let snapshot = guard.flushed_snapshot();
    (guard, snapshot)
}

/// Every opening tag `<name ...>` (or self-closing) in `html` whose class
/// attribute holds `class` among its words, as the whole tag text.
pub fn tags_with_class<'a>(html: &'a str, name: &str, class: &str) -> Vec<&'a str> {
    let open = format!("<{name} ");
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find(&open) {
        let tail = &rest[at..];
        let end = tail.find('>').map_or(tail.len(), |e| e + 1);
        let tag = &tail[..end];
        if attr(tag, "class").is_some_and(|c| c.split(' ').any(|w| w == class)) {
            found.push(tag);
        }
        rest = &tail[end..];
    }
    found
}

/// A quoted attribute's value in one tag, as written (still escaped).
pub fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

/// The inverse of the report's escaping, for attribute values read back.
pub fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The slowest request's waterfall in a page: from its `id="waterfall-0"`
/// up to (not including) the `</svg>` that closes it; `None` if there is
/// none.
pub fn first_waterfall(html: &str) -> Option<&str> {
    let tail = &html[html.find("id=\"waterfall-0\"")?..];
    Some(&tail[..tail.find("</svg>")?])
}
