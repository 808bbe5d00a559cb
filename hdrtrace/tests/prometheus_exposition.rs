//! The exposition read back: histogram buckets hold exactly the HDR
//! histogram's counts, exemplars name captured requests in the right bucket,
//! counts only grow, summaries read the recent window, and `promtool check
//! metrics` accepts the text format (skipped loudly where `promtool` is
//! missing outside CI).
#![cfg(feature = "prometheus")]

mod prometheus_support;

use hdrtrace::export::prometheus::{render, render_with, Buckets, Format};
use hdrtrace::{LatencySnapshot, TracingConfig};
use prometheus_support::binary_or_skip;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

const MODELS: [&str; 3] = ["Alpha", "Beta \"quoted\"", "Gamma"];

/// Held by each test while it builds, records into and drops a subscriber:
/// doing that on several threads at once races in tracing-core's interest
/// cache (see tests/export.rs), which could lose a span and a count.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// One sample line: the series (name and labels as written), its value, and
/// its exemplar's trace id and value if it has one.
#[derive(Debug)]
struct Sample {
    series: String,
    value: f64,
    exemplar: Option<(String, f64)>,
}

fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (sample, exemplar) = match l.split_once(" # ") {
                Some((s, e)) => (s, Some(e)),
                None => (l, None),
            };
            let (series, value) = sample.rsplit_once(' ').expect("name value");
            let exemplar = exemplar.map(|e| {
                let id = e
                    .strip_prefix("{trace_id=\"")
                    .and_then(|e| e.get(..32))
                    .expect("a trace_id label")
                    .to_string();
                let rest: Vec<&str> = e.split("} ").nth(1).unwrap().split(' ').collect();
                assert_eq!(rest.len(), 2, "value and timestamp: {l}");
                (id, rest[0].parse().unwrap())
            });
            Sample {
                series: series.to_string(),
                value: value.parse().unwrap_or_else(|_| panic!("{l}")),
                exemplar,
            }
        })
        .collect()
}

fn by_series(text: &str) -> BTreeMap<String, f64> {
    samples(text)
        .into_iter()
        .map(|s| (s.series, s.value))
        .collect()
}

fn record(dispatch: &tracing::Dispatch, requests: std::ops::Range<u64>) {
    tracing::dispatcher::with_default(dispatch, || {
        for i in requests {
            let request = tracing::info_span!("embed_pipeline", request_id = i);
            let _r = request.enter();
            for (k, model) in MODELS.iter().enumerate() {
                let span = tracing::debug_span!(
                    "model",
                    model_id = *model,
                    gpu_ns = tracing::field::Empty
                );
                span.in_scope(|| {
                    std::thread::sleep(Duration::from_micros(100 * (k as u64 + 1) * (i % 4 + 1)));
                    if k == 0 && i == 3 {
                        tracing::error!("model failed");
                    }
                });
                if k == 2 {
                    span.record("gpu_ns", 40_000 * (i + 1));
                }
            }
        }
    });
}

fn label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The bucket counts of one model's wall-time histogram, `le` to count.
fn model_buckets(text: &str, model: &str) -> Vec<(String, f64)> {
    let prefix = format!(
        "hdrtrace_model_latency_seconds_bucket{{model=\"{}\",le=\"",
        label(model)
    );
    samples(text)
        .into_iter()
        .filter_map(|s| {
            let le = s.series.strip_prefix(&prefix)?.strip_suffix("\"}")?;
            Some((le.to_string(), s.value))
        })
        .collect()
}

#[test]
fn histograms_exemplars_and_summaries_read_back() {
    let _serial = one_at_a_time();
    let config = TracingConfig {
        sampling_rate: 1.0,
        capture_capacity: 64,
        window: Duration::from_millis(100),
        ..TracingConfig::default()
    };
    let (subscriber, guard) = hdrtrace::build(&config).unwrap();
    let dispatch = tracing::Dispatch::new(subscriber);
    record(&dispatch, 0..12);
    let first: LatencySnapshot = guard.flushed_snapshot();
    let text = render(&first);
    assert!(text.ends_with("# EOF\n"));

    // Buckets: exactly the HDR histogram's counts, cumulative, +Inf = count.
    let buckets = Buckets::default();
    for model in MODELS {
        let m = first.model(model).unwrap();
        let got = model_buckets(&text, model);
        let want = buckets.cumulative_counts(m.histogram());
        assert_eq!(got.len(), buckets.len() + 1, "{model}");
        assert_eq!(got.last().unwrap().0, "+Inf");
        let got_counts: Vec<u64> = got.iter().map(|(_, c)| *c as u64).collect();
        assert_eq!(got_counts, want, "{model}");
        assert_eq!(*want.last().unwrap(), m.count());
        assert!(want.windows(2).all(|w| w[0] <= w[1]));
    }
    let gpu = format!(
        "hdrtrace_model_gpu_seconds_count{{model=\"{}\"}}",
        label(MODELS[2])
    );
    assert_eq!(by_series(&text).get(&gpu), Some(&12.0), "{text}");

    // Exemplars: captured requests' trace ids, in the bucket of their value,
    // and every bucket holding a captured model span has one.
    let captured: BTreeSet<String> = first
        .captured()
        .iter()
        .map(|t| t.trace_id().to_string())
        .collect();
    assert_eq!(captured.len(), 12);
    let mut exemplars = 0;
    for model in MODELS {
        let got = model_buckets(&text, model);
        let prefix = format!(
            "hdrtrace_model_latency_seconds_bucket{{model=\"{}\",",
            label(model)
        );
        let lines: Vec<Sample> = samples(&text)
            .into_iter()
            .filter(|s| s.series.starts_with(&prefix))
            .collect();
        let mut lower = 0.0;
        for ((le, _), line) in got.iter().zip(&lines) {
            let upper = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse::<f64>().unwrap()
            };
            let holds = first.captured().iter().any(|t| {
                t.models().any(|s| {
                    let v = s.wall.as_secs_f64();
                    s.label() == model && lower < v && v <= upper
                })
            });
            assert_eq!(line.exemplar.is_some(), holds, "{model} le={le}");
            if let Some((id, v)) = &line.exemplar {
                assert!(captured.contains(id), "{id}");
                assert!(lower < *v && *v <= upper, "{v} in le={le}");
                exemplars += 1;
            }
            lower = upper;
        }
    }
    assert!(exemplars >= MODELS.len(), "{text}");

    // More requests: every bucket, count and sum stays or grows.
    record(&dispatch, 12..30);
    let second = guard.flushed_snapshot();
    let after = by_series(&render(&second));
    for (series, before) in by_series(&text) {
        let histogram_part = series.contains("_bucket{")
            || series.contains("_count{")
            || series.contains("_sum{")
            || series.contains("_total");
        if histogram_part {
            let now = after.get(&series).copied().unwrap_or(f64::NAN);
            assert!(now >= before, "{series}: {before} then {now}");
        }
    }

    // Summaries read the recent window: once it has passed with nothing
    // recorded, their quantiles are NaN, while counts keep everything.
    let recent = |s: &LatencySnapshot| s.recent().model(MODELS[0]).map_or(0, |m| m.count());
    assert!(recent(&second) > 0);
    let mut idle = guard.flushed_snapshot();
    for _ in 0..50 {
        if recent(&idle) == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        idle = guard.flushed_snapshot();
    }
    assert_eq!(recent(&idle), 0, "the 100 ms window never emptied");
    let idle = by_series(&render(&idle));
    let q = format!(
        "hdrtrace_model_recent_latency_seconds{{model=\"{}\",quantile=\"0.95\"}}",
        MODELS[0]
    );
    assert!(idle[&q].is_nan(), "{q} = {}", idle[&q]);
    let count = format!(
        "hdrtrace_model_recent_latency_seconds_count{{model=\"{}\"}}",
        MODELS[0]
    );
    assert_eq!(idle[&count], 30.0);
}

#[test]
fn custom_buckets_are_the_le_bounds() {
    let _serial = one_at_a_time();
    let (subscriber, guard) = hdrtrace::build(&TracingConfig::default()).unwrap();
    record(&tracing::Dispatch::new(subscriber), 0..3);
    let buckets = Buckets::new(&[Duration::from_micros(150), Duration::from_secs(2)]).unwrap();
    let text = render_with(&guard.flushed_snapshot(), Format::OpenMetrics, &buckets);
    let les: Vec<String> = model_buckets(&text, "Alpha")
        .into_iter()
        .map(|(le, _)| le)
        .collect();
    assert_eq!(les, ["0.00015", "2", "+Inf"]);
}

#[test]
fn promtool_accepts_the_text_format() {
    let Some(promtool) = binary_or_skip("promtool", "promtool_accepts_the_text_format") else {
        return;
    };
    let _serial = one_at_a_time();
    let config = TracingConfig {
        sampling_rate: 1.0,
        ..TracingConfig::default()
    };
    let (subscriber, guard) = hdrtrace::build(&config).unwrap();
    record(&tracing::Dispatch::new(subscriber), 0..8);
    let snapshot = guard.flushed_snapshot();
    let text = render_with(&snapshot, Format::Text, &Buckets::default());
    assert!(text.contains("hdrtrace_model_latency_seconds_bucket{"));
    assert!(text.contains("hdrtrace_model_gpu_seconds_bucket{"));
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics ({}): {said}\n{text}",
        out.status
    );
}
