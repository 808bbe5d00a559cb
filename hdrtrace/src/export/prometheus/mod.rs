//! Prometheus: a [`LatencySnapshot`] in the OpenMetrics text format, and a
//! small HTTP server (hyper on one background thread, under [`ServerLimits`])
//! that serves it.
//!
//! ```no_run
//! # fn main() -> Result<(), hdrtrace::Error> {
//! let guard = hdrtrace::init_tracing(&hdrtrace::TracingConfig::default())?;
//! let server = hdrtrace::export::prometheus::serve("127.0.0.1:9464", guard.snapshot_source())?;
//! println!("scrape {}", server.url());
//! # Ok(()) }
//! ```
//!
//! # What is exported
//!
//! For every model (label `model`) and every stage (label `stage`):
//!
//! | family | type | what |
//! |---|---|---|
//! | `hdrtrace_{model,stage}_latency_seconds` | summary | wall time, creation to close |
//! | `hdrtrace_{model,stage}_busy_seconds` | summary | busy time, entered or polled |
//! | `hdrtrace_{model,stage}_gpu_seconds` | summary | device time (where `gpu_ns` was set) |
//! | `hdrtrace_{model,stage}_errors_total` | counter | spans closed with an error |
//! | `hdrtrace_{model,stage}_timeouts_total` | counter | spans closed timed out |
//! | `hdrtrace_model_blamed_total` | counter | over-budget requests the model held up most |
//!
//! and the process-wide counters `hdrtrace_{spans,events,requests,
//! sampled_requests,captured_requests,dropped_spans,dropped_records,
//! late_records}_total`.
//!
//! Summaries carry the quantiles [`QUANTILES`] read from the cumulative HDR
//! histogram (since start, to within its 3 significant figures), `_count`, and
//! `_sum` (count × the histogram's mean, so also within HDR precision). For
//! fleet-wide percentiles merge the histograms themselves
//! ([`LatencySnapshot::merged`]) rather than aggregate these quantiles: a
//! quantile of quantiles is not a quantile.

mod limits;
mod server;
mod write_deadline;

pub use limits::ServerLimits;
pub use server::{serve, serve_with, MetricsServer};

use crate::aggregate::snapshot::{Latency, LatencySnapshot, ModelLatency};
use std::borrow::Cow;
use std::fmt::Write as _;

/// The `Content-Type` the server answers with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The quantiles every summary reports.
pub const QUANTILES: [f64; 4] = [0.5, 0.9, 0.95, 0.99];

/// The snapshot in the OpenMetrics text format, `# EOF` included.
pub fn render(snapshot: &LatencySnapshot) -> String {
    let mut out = String::with_capacity(8192);
    let all = snapshot.cumulative();
    let tables: [(&str, Vec<(&str, &ModelLatency)>); 2] = [
        ("model", all.models().collect()),
        ("stage", all.stages().collect()),
    ];
    for (kind, items) in &tables {
        let series = |pick: fn(&ModelLatency) -> Option<&Latency>| -> Vec<(&str, &Latency)> {
            items
                .iter()
                .filter_map(|(name, m)| pick(m).map(|l| (*name, l)))
                .collect()
        };
        let count = |pick: fn(&ModelLatency) -> u64| -> Vec<(&str, u64)> {
            items.iter().map(|(name, m)| (*name, pick(m))).collect()
        };
        let family = |what: &str| format!("hdrtrace_{kind}_{what}");
        summary(
            &mut out,
            &family("latency_seconds"),
            &format!("Wall time of {kind} spans, creation to close (cumulative HDR histogram)."),
            kind,
            &series(|m| Some(m.wall())),
        );
        summary(
            &mut out,
            &family("busy_seconds"),
            &format!("Busy time of {kind} spans, entered or polled (cumulative HDR histogram)."),
            kind,
            &series(|m| Some(m.busy())),
        );
        summary(
            &mut out,
            &family("gpu_seconds"),
            &format!("Device time {kind} spans reported in gpu_ns (cumulative HDR histogram)."),
            kind,
            &series(ModelLatency::gpu),
        );
        counter(
            &mut out,
            &family("errors"),
            &format!("{kind} spans that closed with an error."),
            Some(kind),
            &count(ModelLatency::errors),
        );
        counter(
            &mut out,
            &family("timeouts"),
            &format!("{kind} spans that closed timed out."),
            Some(kind),
            &count(ModelLatency::timeouts),
        );
        if *kind == "model" {
            counter(
                &mut out,
                "hdrtrace_model_blamed",
                "Over-budget requests this model was the bottleneck of.",
                Some(kind),
                &count(ModelLatency::blamed),
            );
        }
    }
    let c = snapshot.counters();
    let totals = [
        ("spans", "Span records aggregated.", c.spans),
        ("events", "Event records aggregated.", c.events),
        ("requests", "Requests (root spans) aggregated.", c.requests),
        (
            "sampled_requests",
            "Requests whose trace was head-sampled.",
            c.sampled_requests,
        ),
        (
            "captured_requests",
            "Requests captured (sampled, over budget, failed or timed out).",
            c.captured_requests,
        ),
        (
            "dropped_spans",
            "Spans not tracked because every slot was in use.",
            c.dropped_spans,
        ),
        (
            "dropped_records",
            "Records lost to full rings or to threads torn down.",
            c.dropped_records,
        ),
        (
            "late_records",
            "Records that arrived after their request was finalized.",
            c.late_records,
        ),
    ];
    for (name, help, value) in totals {
        counter(
            &mut out,
            &format!("hdrtrace_{name}"),
            help,
            None,
            &[("", value)],
        );
    }
    out.push_str("# EOF\n");
    out
}

fn summary(out: &mut String, name: &str, help: &str, label: &str, items: &[(&str, &Latency)]) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "# TYPE {name} summary\n# UNIT {name} seconds\n# HELP {name} {help}"
    );
    for (key, l) in items {
        let key = escape(key);
        for q in QUANTILES {
            let v = seconds(l.histogram().value_at_quantile(q));
            let _ = writeln!(out, "{name}{{{label}=\"{key}\",quantile=\"{q}\"}} {v}");
        }
        let h = l.histogram();
        let sum = h.mean() * h.len() as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{label}=\"{key}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{{label}=\"{key}\"}} {}", h.len());
    }
}

fn counter(out: &mut String, name: &str, help: &str, label: Option<&str>, items: &[(&str, u64)]) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(out, "# TYPE {name} counter\n# HELP {name} {help}");
    for (key, value) in items {
        match label {
            Some(label) => {
                let _ = writeln!(out, "{name}_total{{{label}=\"{}\"}} {value}", escape(key));
            }
            None => {
                let _ = writeln!(out, "{name}_total {value}");
            }
        }
    }
}

fn seconds(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(s: &str) -> Cow<'_, str> {
    if !s.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(s);
    }
    let mut e = String::with_capacity(s.len() + 8);
    for ch in s.chars() {
        match ch {
            '\\' => e.push_str("\\\\"),
            '"' => e.push_str("\\\""),
            '\n' => e.push_str("\\n"),
            c => e.push(c),
        }
    }
    Cow::Owned(e)
}
