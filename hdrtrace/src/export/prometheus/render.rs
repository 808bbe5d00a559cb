//! A [`LatencySnapshot`] as exposition text: OpenMetrics 1.0 (with
//! exemplars), or the Prometheus text format 0.0.4 for clients that ask for
//! it. See the [module docs](super) for the families.

use super::buckets::{sum_nanos, Buckets};
use super::exemplars::{Exemplar, Exemplars, Measure, Table};
use super::negotiate::Weights;
use crate::read::requests::BlameReason;
use crate::read::snapshot::{Counters, Latencies, Latency, LatencySnapshot, ModelLatency};
use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

/// The quantiles every summary reports.
pub const QUANTILES: [f64; 4] = [0.5, 0.9, 0.95, 0.99];

/// An exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text: `# UNIT` lines, exemplars on histogram buckets,
    /// `# EOF` at the end. What Prometheus asks for when it scrapes.
    OpenMetrics,
    /// The Prometheus text format 0.0.4: no exemplars, no `# EOF`, counters
    /// typed under their `_total` name. What `promtool check metrics` and
    /// older tools read.
    Text,
}

impl Format {
    /// The `Content-Type` a response in this format carries.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => super::CONTENT_TYPE,
            Format::Text => super::TEXT_CONTENT_TYPE,
        }
    }

    /// The text format to answer a request with this `Accept` header in:
    /// [`Format::Text`] only when the header accepts `text/plain` and does
    /// not accept `application/openmetrics-text`; otherwise, a missing
    /// header and `*/*` included, [`Format::OpenMetrics`]. A media range is
    /// accepted at a weight `q` above 0 (1 when it has none; the name read
    /// ignoring case, the value trimmed). A `q` that is not a number from 0
    /// to 1 is malformed and counts as `q=0`, refusing its range (RFC 9110,
    /// section 12.4.2, makes `q` a weight from 0 to 1). Which scrapes get
    /// protobuf instead: [`Exposition::negotiate`](super::Exposition::negotiate).
    pub fn negotiate(accept: Option<&str>) -> Format {
        Weights::of(accept).text_format()
    }
}

/// The snapshot in `format` with histogram buckets `buckets`.
pub fn render_with(snapshot: &LatencySnapshot, format: Format, buckets: &Buckets) -> String {
    let exemplars = (format == Format::OpenMetrics).then(|| Exemplars::collect(snapshot, buckets));
    let mut w = Writer {
        out: String::with_capacity(16384),
        format,
    };
    let les: Vec<String> = buckets
        .bounds()
        .map(|b| float(b.as_secs_f64()))
        .chain(std::iter::once("+Inf".to_string()))
        .collect();
    let window = snapshot.window();
    for (table, kind) in [(Table::Model, "model"), (Table::Stage, "stage")] {
        let all = pick_table(snapshot.cumulative(), table);
        let recent = snapshot.recent();
        for (measure, what, about) in MEASURES {
            let about = about.replace("{kind}", kind);
            let items: Vec<(&str, &Latency)> = all
                .iter()
                .filter_map(|(name, m)| measure_of(m, measure).map(|l| (*name, l)))
                .collect();
            let histogram = Histogram {
                name: format!("hdrtrace_{kind}_{what}_seconds"),
                label: kind,
                les: &les,
                buckets,
                exemplars: exemplars.as_ref(),
                table,
                measure,
                unit: Unit::Seconds,
            };
            histogram.write(
                &mut w,
                &format!("{about}, since start, in classic buckets filled from the HDR histogram (a value within 0.1% below a bound may count in the next bucket up)."),
                &items,
            );
            let items: Vec<(&str, Option<&Latency>, &Latency)> = items
                .iter()
                .map(|&(name, l)| {
                    let r = pick_one(recent, table, name).and_then(|m| measure_of(m, measure));
                    (name, r, l)
                })
                .collect();
            summary(
                &mut w,
                &format!("hdrtrace_{kind}_recent_{what}_seconds"),
                &recent_help(&about, window),
                kind,
                &items,
            );
        }
        let count = |pick: fn(&ModelLatency) -> u64| -> Vec<(&str, u64)> {
            all.iter().map(|(name, m)| (*name, pick(m))).collect()
        };
        w.counter(
            &format!("hdrtrace_{kind}_errors"),
            &errors_help(kind),
            Some(kind),
            &count(ModelLatency::errors),
        );
        w.counter(
            &format!("hdrtrace_{kind}_timeouts"),
            &timeouts_help(kind),
            Some(kind),
            &count(ModelLatency::timeouts),
        );
        if table == Table::Model {
            batch_sizes(&mut w, &all);
            blamed(&mut w, &all);
        }
    }
    for (name, help, value) in totals(&snapshot.counters()) {
        w.counter(&format!("hdrtrace_{name}"), help, None, &[("", value)]);
    }
    if format == Format::OpenMetrics {
        w.out.push_str("# EOF\n");
    }
    w.out
}

/// The process-wide counters: each family's name without `hdrtrace_` and
/// `_total`, its help and its value.
pub(super) fn totals(c: &Counters) -> Vec<(&'static str, &'static str, u64)> {
    vec![
        ("spans", "Span records aggregated.", c.spans),
        ("events", "Event records aggregated.", c.events),
        ("requests", "Requests (root spans) aggregated.", c.requests),
        (
            "sampled_requests",
            "Requests whose trace was head-sampled.",
            c.sampled_requests,
        ),
        (
            "degraded_requests",
            "Requests that returned without a model that timed out or failed.",
            c.degraded_requests,
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
        (
            "budget_dropped_records",
            "Records not kept for tail capture because pending requests filled memory_budget.",
            c.budget_dropped_records,
        ),
        (
            "budget_dropped_requests",
            "Requests that lost records to memory_budget (each incomplete).",
            c.budget_dropped_requests,
        ),
        (
            "overflow_spans",
            "Spans recorded in the <other> series past max_models or max_stages.",
            c.overflow_spans,
        ),
        (
            "truncated_keys",
            "Distinct model keys longer than the inline text (kept apart by hash).",
            c.truncated_keys,
        ),
        (
            "unmatched_enters",
            "Enters and exits no thread's stack could match (busy time not counted).",
            c.unmatched_enters,
        ),
        (
            "failed_sinks",
            "Request sinks dropped because they panicked.",
            c.failed_sinks,
        ),
        (
            "dropped_log_lines",
            "Log lines lost to a full log ring or a failing writer.",
            c.dropped_log_lines,
        ),
        (
            "malformed_traceparents",
            "Request traceparent fields ignored as malformed.",
            c.malformed_traceparents,
        ),
        (
            "dropped_links",
            "follows_from links not kept past a span's MAX_LINKS.",
            c.dropped_links,
        ),
        (
            "dropped_batch_records",
            "Batch records not kept for captured requests because their memory_budget share was full.",
            c.dropped_batch_records,
        ),
        (
            "format_panics",
            "Display or Debug impls that panicked while formatted (what they were part of is dropped).",
            c.format_panics,
        ),
        (
            "failed_log_writers",
            "Log writers dropped because they panicked (every later line is counted as dropped).",
            c.failed_log_writers,
        ),
        (
            "missing_model_ids",
            "Model spans without a model id, recorded as a stage under their span name.",
            c.missing_model_ids,
        ),
        (
            "aggregator_thread_records",
            "Records a RequestSink made on the aggregator thread: drained, never aggregated.",
            c.aggregator_thread_records,
        ),
        (
            "budget_clamped_samples",
            "Samples recorded at the top of their histogram's range, or left out of the recent window, for memory_budget.",
            c.budget_clamped_samples,
        ),
    ]
}

/// The `le` bounds of `hdrtrace_model_batch_size`: powers of two up to 1024
/// (the same for every instance, so the fleet's buckets add up).
pub const BATCH_SIZE_BOUNDS: [u64; 11] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/// [`BATCH_SIZE_BOUNDS`] as [`Buckets`] of counts (a size `n` as `n` ns).
pub(super) fn batch_size_buckets() -> Option<Buckets> {
    let bounds: Vec<Duration> = BATCH_SIZE_BOUNDS
        .iter()
        .map(|&n| Duration::from_nanos(n))
        .collect();
    // Constant, strictly increasing, above zero: always valid.
    Buckets::new(&bounds).ok()
}

/// `hdrtrace_model_batch_size`: the sizes of each batched model's batches.
fn batch_sizes(w: &mut Writer, all: &[(&str, &ModelLatency)]) {
    let items: Vec<(&str, Latency)> = all
        .iter()
        .filter_map(|(name, m)| m.batch_size().map(|h| (*name, Latency::new(h.clone()))))
        .collect();
    if items.is_empty() {
        return;
    }
    let Some(buckets) = batch_size_buckets() else {
        return;
    };
    let les: Vec<String> = BATCH_SIZE_BOUNDS
        .iter()
        .map(u64::to_string)
        .chain(std::iter::once("+Inf".to_string()))
        .collect();
    let histogram = Histogram {
        name: "hdrtrace_model_batch_size".to_string(),
        label: "model",
        les: &les,
        buckets: &buckets,
        exemplars: None,
        table: Table::Model,
        measure: Measure::Wall,
        unit: Unit::Count,
    };
    let items: Vec<(&str, &Latency)> = items.iter().map(|(n, l)| (*n, l)).collect();
    histogram.write(
        w,
        "Sizes of the batches each model ran (one per batch span), since start.",
        &items,
    );
}

/// `hdrtrace_model_blamed`: one series per model and blame reason
/// (`reason` is a [`BlameReason::name`]), every reason written, zeros too.
fn blamed(w: &mut Writer, all: &[(&str, &ModelLatency)]) {
    if all.is_empty() {
        return;
    }
    let name = BLAMED;
    w.counter_header(name, BLAMED_HELP);
    for (model, m) in all {
        for reason in BlameReason::ALL {
            let _ = writeln!(
                w.out,
                "{name}_total{{model=\"{}\",reason=\"{}\"}} {}",
                escape(model),
                reason.name(),
                m.blamed_for(reason)
            );
        }
    }
}

/// The blame counter's family name, and its help.
pub(super) const BLAMED: &str = "hdrtrace_model_blamed";
pub(super) const BLAMED_HELP: &str = "Requests blamed on this model, by reason: it timed out or failed and the request went on without it (timed_out, failed), or it returned last in a request over the latency target (over_target).";

/// The help of a measure's recent-window summary (`about`: the measure's).
pub(super) fn recent_help(about: &str, window: Duration) -> String {
    format!("{about}: quantiles over the recent window (the last {window:?}), NaN when it saw none; _count and _sum since start.")
}

/// The help of the `errors` and `timeouts` counters of `kind` spans.
pub(super) fn errors_help(kind: &str) -> String {
    format!("{kind} spans that closed with an error.")
}
pub(super) fn timeouts_help(kind: &str) -> String {
    format!("{kind} spans that closed timed out.")
}

/// Each latency measure: its exemplar slot, its family-name part and what
/// it is (`{kind}` is replaced by `model` or `stage`).
pub(super) const MEASURES: [(Measure, &str, &str); 4] = [
    (
        Measure::Wall,
        "latency",
        "Wall time of {kind} spans, creation to close",
    ),
    (
        Measure::Busy,
        "busy",
        "Busy time of {kind} spans, entered or polled",
    ),
    (
        Measure::Gpu,
        "gpu",
        "Device time {kind} spans reported in the device-time field",
    ),
    (
        Measure::BatchWait,
        "batch_wait",
        "Wait of each request served by a batch, its {kind} span's start to the batch's start",
    ),
];

pub(super) fn pick_table(l: &Latencies, table: Table) -> Vec<(&str, &ModelLatency)> {
    match table {
        Table::Model => l.models().collect(),
        Table::Stage => l.stages().collect(),
    }
}

pub(super) fn pick_one<'a>(l: &'a Latencies, table: Table, name: &str) -> Option<&'a ModelLatency> {
    match table {
        Table::Model => l.model(name),
        Table::Stage => l.stage(name),
    }
}

pub(super) fn measure_of(m: &ModelLatency, measure: Measure) -> Option<&Latency> {
    match measure {
        Measure::Wall => Some(m.wall()),
        Measure::Busy => Some(m.busy()),
        Measure::Gpu => m.gpu(),
        Measure::BatchWait => m.batch_wait(),
    }
}

struct Writer {
    out: String,
    format: Format,
}

impl Writer {
    /// A family's metadata lines; `unit` adds OpenMetrics' `# UNIT seconds`.
    fn header(&mut self, name: &str, kind: &str, help: &str, unit: bool) {
        let out = &mut self.out;
        match self.format {
            Format::OpenMetrics => {
                let _ = writeln!(out, "# TYPE {name} {kind}");
                if unit {
                    let _ = writeln!(out, "# UNIT {name} seconds");
                }
                let _ = writeln!(out, "# HELP {name} {help}");
            }
            Format::Text => {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            }
        }
    }

    /// A counter family's metadata lines. OpenMetrics names the family
    /// without `_total`, the text format with it; the samples are
    /// `{name}_total` in both.
    fn counter_header(&mut self, name: &str, help: &str) {
        let family = match self.format {
            Format::OpenMetrics => Cow::Borrowed(name),
            Format::Text => Cow::Owned(format!("{name}_total")),
        };
        self.header(&family, "counter", help, false);
    }

    /// A counter family ([`Writer::counter_header`]), one sample per item.
    fn counter(&mut self, name: &str, help: &str, label: Option<&str>, items: &[(&str, u64)]) {
        if items.is_empty() {
            return;
        }
        self.counter_header(name, help);
        for (key, value) in items {
            match label {
                Some(label) => {
                    let _ = writeln!(
                        self.out,
                        "{name}_total{{{label}=\"{}\"}} {value}",
                        escape(key)
                    );
                }
                None => {
                    let _ = writeln!(self.out, "{name}_total {value}");
                }
            }
        }
    }
}

/// One histogram family: the `_bucket`, `_count` and `_sum` series of every
/// item, exemplars on the buckets in OpenMetrics.
struct Histogram<'a> {
    name: String,
    label: &'a str,
    les: &'a [String],
    buckets: &'a Buckets,
    exemplars: Option<&'a Exemplars<'a>>,
    table: Table,
    measure: Measure,
    unit: Unit,
}

/// What a histogram's HDR values are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Unit {
    /// Nanoseconds, exported in seconds.
    Seconds,
    /// Counts, exported as they are.
    Count,
}

impl Unit {
    /// HDR values per exported unit.
    pub(super) fn per_unit(self) -> f64 {
        match self {
            Unit::Seconds => 1e9,
            Unit::Count => 1.0,
        }
    }
}

impl Histogram<'_> {
    fn write(&self, w: &mut Writer, help: &str, items: &[(&str, &Latency)]) {
        if items.is_empty() {
            return;
        }
        let (name, label) = (&self.name, self.label);
        w.header(name, "histogram", help, self.unit == Unit::Seconds);
        for (key, l) in items {
            let h = l.histogram();
            let counts = self.buckets.cumulative_counts(h);
            let slots = self
                .exemplars
                .and_then(|e| e.of(self.table, self.measure, key));
            let key = escape(key);
            for (i, (le, count)) in self.les.iter().zip(&counts).enumerate() {
                let _ = write!(
                    w.out,
                    "{name}_bucket{{{label}=\"{key}\",le=\"{le}\"}} {count}"
                );
                if let Some(e) = slots.and_then(|s| s.get(i).copied().flatten()) {
                    exemplar(&mut w.out, &e);
                }
                w.out.push('\n');
            }
            let _ = writeln!(w.out, "{name}_count{{{label}=\"{key}\"}} {}", h.len());
            let sum = sum_nanos(h) as f64 / self.unit.per_unit();
            let _ = writeln!(w.out, "{name}_sum{{{label}=\"{key}\"}} {}", float(sum));
        }
    }
}

/// ` # {trace_id="…"} <seconds> <unix seconds>`.
fn exemplar(out: &mut String, e: &Exemplar) {
    let _ = write!(
        out,
        " # {{trace_id=\"{}\"}} {}",
        e.trace_id,
        float(e.value.as_secs_f64())
    );
    if let Ok(at) = e.at.duration_since(UNIX_EPOCH) {
        let _ = write!(out, " {}.{:03}", at.as_secs(), at.subsec_millis());
    }
}

/// A summary family: quantiles from the recent window (NaN where it is
/// empty), `_count` and `_sum` from the cumulative histogram.
fn summary(
    w: &mut Writer,
    name: &str,
    help: &str,
    label: &str,
    items: &[(&str, Option<&Latency>, &Latency)],
) {
    if items.is_empty() {
        return;
    }
    w.header(name, "summary", help, true);
    for (key, recent, all) in items {
        let key = escape(key);
        for q in QUANTILES {
            let v = recent_quantile(*recent, q);
            let _ = writeln!(
                w.out,
                "{name}{{{label}=\"{key}\",quantile=\"{q}\"}} {}",
                float(v)
            );
        }
        let h = all.histogram();
        let sum = sum_nanos(h) as f64 / 1e9;
        let _ = writeln!(w.out, "{name}_sum{{{label}=\"{key}\"}} {}", float(sum));
        let _ = writeln!(w.out, "{name}_count{{{label}=\"{key}\"}} {}", h.len());
    }
}

/// Quantile `q` of a recent-window latency, in seconds: NaN when the window
/// saw none.
pub(super) fn recent_quantile(recent: Option<&Latency>, q: f64) -> f64 {
    recent.filter(|l| l.count() > 0).map_or(f64::NAN, |l| {
        Duration::from_nanos(l.histogram().value_at_quantile(q)).as_secs_f64()
    })
}

/// A sample value: `NaN`, `+Inf`, or the shortest decimal that reads back
/// as `v` (never an exponent).
fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

/// A label value with `\`, `"` and newlines escaped.
pub(super) fn escape(s: &str) -> Cow<'_, str> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_prefers_openmetrics() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                          version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        for (accept, want) in [
            (None, Format::OpenMetrics),
            (Some("*/*"), Format::OpenMetrics),
            (Some(prometheus), Format::OpenMetrics),
            (Some("text/plain"), Format::Text),
            (Some("Text/Plain; version=0.0.4"), Format::Text),
            (
                Some("application/openmetrics-text;q=0, text/plain"),
                Format::Text,
            ),
            (Some("text/plain;q=0"), Format::OpenMetrics),
            (Some(",,;;q=,"), Format::OpenMetrics),
        ] {
            assert_eq!(Format::negotiate(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn floats_never_use_exponents() {
        assert_eq!(float(0.0001), "0.0001");
        assert_eq!(float(1e-9), "0.000000001");
        assert_eq!(float(60.0), "60");
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(f64::INFINITY), "+Inf");
    }
}
