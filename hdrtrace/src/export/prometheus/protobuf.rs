//! A [`LatencySnapshot`] in Prometheus's protobuf exposition: length-delimited
//! [`MetricFamily`] messages ([`proto`](super::proto)), every histogram
//! classic and native at once, for scrapers that ask for it (Prometheus
//! with native histograms on). The families, series and values are those of
//! the text answers ([`render_with`](super::render_with)); only the encoding
//! and the native buckets are added.

use super::buckets::{sum_nanos, Buckets};
use super::exemplars::{Exemplar, Exemplars, Table};
use super::native;
use super::proto::{
    Bucket, Counter, Exemplar as ProtoExemplar, Histogram as ProtoHistogram, LabelPair, Metric,
    MetricFamily, MetricType, Quantile, Summary, Timestamp,
};
use super::render::{
    batch_size_buckets, errors_help, measure_of, pick_one, pick_table, recent_help,
    recent_quantile, timeouts_help, totals, Unit, BLAMED, BLAMED_HELP, MEASURES, QUANTILES,
};
use crate::read::requests::BlameReason;
use crate::read::snapshot::{LatencySnapshot, ModelLatency};
use hdrhistogram::Histogram;
use prost::Message as _;
use std::time::UNIX_EPOCH;

/// The `Content-Type` of a protobuf answer, and the media range a scraper
/// names in `Accept` to get one.
pub const PROTOBUF_CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// The snapshot as length-delimited [`MetricFamily`] messages, histogram
/// bounds `buckets`: what the server sends a scraper that asks for
/// [`PROTOBUF_CONTENT_TYPE`].
pub fn render_protobuf(snapshot: &LatencySnapshot, buckets: &Buckets) -> Vec<u8> {
    let mut out = Vec::with_capacity(65536);
    for family in metric_families(snapshot, buckets) {
        out.extend_from_slice(&family.encode_length_delimited_to_vec());
    }
    out
}

/// Every family of the snapshot, in the order the text answers list them.
fn metric_families(snapshot: &LatencySnapshot, buckets: &Buckets) -> Vec<MetricFamily> {
    let exemplars = Exemplars::collect(snapshot, buckets);
    let mut out = Vec::new();
    let window = snapshot.window();
    for (table, kind) in [(Table::Model, "model"), (Table::Stage, "stage")] {
        let all = pick_table(snapshot.cumulative(), table);
        for (measure, what, about) in MEASURES {
            let about = about.replace("{kind}", kind);
            let items: Vec<_> = all
                .iter()
                .filter_map(|(name, m)| measure_of(m, measure).map(|l| (*name, l)))
                .collect();
            if items.is_empty() {
                continue;
            }
            let metric = items
                .iter()
                .map(|(key, l)| {
                    let slots = exemplars.of(table, measure, key);
                    let histogram = histogram(l.histogram(), buckets, Unit::Seconds, slots);
                    Metric {
                        label: vec![label(kind, key)],
                        histogram: Some(histogram),
                        ..Metric::default()
                    }
                })
                .collect();
            out.push(family(
                format!("hdrtrace_{kind}_{what}_seconds"),
                format!("{about}, since start: classic buckets and native buckets (schema {}) filled from the HDR histogram.", native::SCHEMA),
                MetricType::Histogram,
                "seconds",
                metric,
            ));
            let recent = snapshot.recent();
            let metric = items
                .iter()
                .map(|(key, all)| {
                    let recent = pick_one(recent, table, key).and_then(|m| measure_of(m, measure));
                    let quantile = QUANTILES
                        .iter()
                        .map(|&q| Quantile {
                            quantile: q,
                            value: recent_quantile(recent, q),
                        })
                        .collect();
                    let h = all.histogram();
                    Metric {
                        label: vec![label(kind, key)],
                        summary: Some(Summary {
                            sample_count: h.len(),
                            sample_sum: sum_nanos(h) as f64 / 1e9,
                            quantile,
                            created_timestamp: None,
                        }),
                        ..Metric::default()
                    }
                })
                .collect();
            out.push(family(
                format!("hdrtrace_{kind}_recent_{what}_seconds"),
                recent_help(&about, window),
                MetricType::Summary,
                "seconds",
                metric,
            ));
        }
        let count = |pick: fn(&ModelLatency) -> u64| -> Vec<(Vec<LabelPair>, u64)> {
            all.iter()
                .map(|(name, m)| (vec![label(kind, name)], pick(m)))
                .collect()
        };
        out.extend(counter(
            &format!("hdrtrace_{kind}_errors"),
            &errors_help(kind),
            count(ModelLatency::errors),
        ));
        out.extend(counter(
            &format!("hdrtrace_{kind}_timeouts"),
            &timeouts_help(kind),
            count(ModelLatency::timeouts),
        ));
        if table == Table::Model {
            out.extend(batch_sizes(&all));
            out.extend(counter(
                BLAMED,
                BLAMED_HELP,
                all.iter()
                    .flat_map(|(name, m)| {
                        BlameReason::ALL.into_iter().map(|reason| {
                            let labels = vec![label("model", name), label("reason", reason.name())];
                            (labels, m.blamed_for(reason))
                        })
                    })
                    .collect(),
            ));
        }
    }
    for (name, help, value) in totals(&snapshot.counters()) {
        out.extend(counter(
            &format!("hdrtrace_{name}"),
            help,
            vec![(Vec::new(), value)],
        ));
    }
    out
}

/// One series' histogram: classic buckets from `buckets` (with `+Inf`, and
/// the exemplars of `slots`), native buckets as [`native::fill`] computes
/// them (with the same exemplars), and the shared count and sum.
fn histogram(
    h: &Histogram<u64>,
    buckets: &Buckets,
    unit: Unit,
    slots: Option<&[Option<Exemplar>]>,
) -> ProtoHistogram {
    let per_unit = unit.per_unit();
    let counts = buckets.cumulative_counts(h);
    let bounds = buckets
        .bounds()
        .map(|b| b.as_nanos() as f64 / per_unit)
        .chain(std::iter::once(f64::INFINITY));
    let slot = |i: usize| slots.and_then(|s| s.get(i).copied().flatten());
    let bucket = bounds
        .zip(&counts)
        .enumerate()
        .map(|(i, (upper_bound, &cumulative_count))| Bucket {
            cumulative_count,
            upper_bound,
            exemplar: slot(i).map(|e| exemplar(&e)),
            ..Bucket::default()
        })
        .collect();
    let mut out = ProtoHistogram {
        sample_count: h.len(),
        sample_sum: sum_nanos(h) as f64 / per_unit,
        bucket,
        exemplars: (0..counts.len())
            .filter_map(slot)
            .map(|e| exemplar(&e))
            .collect(),
        ..ProtoHistogram::default()
    };
    native::fill(&mut out, h, per_unit);
    out
}

/// `hdrtrace_model_batch_size`, classic bounds
/// [`BATCH_SIZE_BOUNDS`](super::BATCH_SIZE_BOUNDS), if any model ran batched.
fn batch_sizes(all: &[(&str, &ModelLatency)]) -> Option<MetricFamily> {
    let buckets = batch_size_buckets()?;
    let metric: Vec<Metric> = all
        .iter()
        .filter_map(|(name, m)| {
            let h = m.batch_size()?;
            Some(Metric {
                label: vec![label("model", name)],
                histogram: Some(histogram(h, &buckets, Unit::Count, None)),
                ..Metric::default()
            })
        })
        .collect();
    (!metric.is_empty()).then(|| {
        family(
            "hdrtrace_model_batch_size".into(),
            "Sizes of the batches each model ran (one per batch span), since start.".into(),
            MetricType::Histogram,
            "",
            metric,
        )
    })
}

/// A counter family named `{name}_total`, one series per item (its labels
/// and value); none when there are no items.
fn counter(name: &str, help: &str, items: Vec<(Vec<LabelPair>, u64)>) -> Option<MetricFamily> {
    if items.is_empty() {
        return None;
    }
    let metric = items
        .into_iter()
        .map(|(labels, value)| Metric {
            label: labels,
            counter: Some(Counter {
                value: value as f64,
                ..Counter::default()
            }),
            ..Metric::default()
        })
        .collect();
    Some(family(
        format!("{name}_total"),
        help.into(),
        MetricType::Counter,
        "",
        metric,
    ))
}

fn family(
    name: String,
    help: String,
    kind: MetricType,
    unit: &str,
    metric: Vec<Metric>,
) -> MetricFamily {
    MetricFamily {
        name,
        help,
        r#type: kind as i32,
        metric,
        unit: unit.into(),
    }
}

fn label(name: &str, value: &str) -> LabelPair {
    LabelPair {
        name: name.into(),
        value: value.into(),
    }
}

/// An exemplar labelled with its `trace_id`, its value in seconds, and when
/// its span ended (protobuf exemplars carry a timestamp always).
fn exemplar(e: &Exemplar) -> ProtoExemplar {
    let at = e.at.duration_since(UNIX_EPOCH).unwrap_or_default();
    ProtoExemplar {
        label: vec![label("trace_id", &e.trace_id.to_string())],
        value: e.value.as_secs_f64(),
        timestamp: Some(Timestamp {
            seconds: i64::try_from(at.as_secs()).unwrap_or(i64::MAX),
            nanos: at.subsec_nanos() as i32,
        }),
    }
}
