//! The messages of Prometheus's protobuf exposition
//! (`io.prometheus.client`, the proto3 `metrics.proto` that Prometheus reads:
//! the same wire format as client_model's proto2 file), written out as prost
//! structs so that no `protoc` runs at build time. Field names and tags are
//! the `.proto`'s; a scrape answer is a stream of [`MetricFamily`] messages,
//! each prefixed with its length as a varint
//! ([`prost::Message::encode_length_delimited`]).
//!
//! These are public so that a client can decode what the server sends with
//! the very definitions it was encoded with
//! (`MetricFamily::decode_length_delimited`).

/// The type of a [`MetricFamily`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MetricType {
    /// A [`Counter`] in each metric.
    Counter = 0,
    /// A [`Gauge`] in each metric.
    Gauge = 1,
    /// A [`Summary`] in each metric.
    Summary = 2,
    /// An [`Untyped`] value in each metric.
    Untyped = 3,
    /// A [`Histogram`] in each metric, classic, native or both.
    Histogram = 4,
    /// A [`Histogram`] whose counts may go down.
    GaugeHistogram = 5,
}

/// One label of a [`Metric`] or an [`Exemplar`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPair {
    /// The label name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The label value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// A gauge's value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Gauge {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
}

/// A counter's value, with an optional exemplar.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Counter {
    /// The value, only ever growing.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// An observation that counted.
    #[prost(message, optional, tag = "2")]
    pub exemplar: Option<Exemplar>,
    /// When the counter started at zero.
    #[prost(message, optional, tag = "3")]
    pub created_timestamp: Option<Timestamp>,
}

/// One quantile of a [`Summary`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct Quantile {
    /// The quantile, in [0, 1].
    #[prost(double, tag = "1")]
    pub quantile: f64,
    /// The value at that quantile.
    #[prost(double, tag = "2")]
    pub value: f64,
}

/// A summary: count, sum and quantiles.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// How many observations.
    #[prost(uint64, tag = "1")]
    pub sample_count: u64,
    /// Their sum.
    #[prost(double, tag = "2")]
    pub sample_sum: f64,
    /// The quantiles reported.
    #[prost(message, repeated, tag = "3")]
    pub quantile: Vec<Quantile>,
    /// When the summary started empty.
    #[prost(message, optional, tag = "4")]
    pub created_timestamp: Option<Timestamp>,
}

/// A value of unknown type.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Untyped {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
}

/// A histogram: classic buckets (`bucket`), native buckets (`schema` and
/// what follows), or both at once; `sample_count` and `sample_sum` are
/// shared.
///
/// Native bucket `i` of schema `s` holds the values in
/// `(base^(i-1), base^i]` with `base = 2^(2^-s)`; `positive_span` gives the
/// populated indices as runs (the first span's `offset` is its first index,
/// each later one's the gap after the previous run) and `positive_delta`
/// each populated bucket's count minus the one before it (the first minus
/// zero). Values within `zero_threshold` of zero count in `zero_count`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    /// How many observations (classic and native).
    #[prost(uint64, tag = "1")]
    pub sample_count: u64,
    /// Overrides `sample_count` if above zero (float histograms).
    #[prost(double, tag = "4")]
    pub sample_count_float: f64,
    /// Their sum (classic and native).
    #[prost(double, tag = "2")]
    pub sample_sum: f64,
    /// Classic buckets, in increasing order of `upper_bound`.
    #[prost(message, repeated, tag = "3")]
    pub bucket: Vec<Bucket>,
    /// When the histogram started empty.
    #[prost(message, optional, tag = "15")]
    pub created_timestamp: Option<Timestamp>,
    /// The native schema `s`, from -4 to 8: bucket bounds grow by `2^(2^-s)`.
    #[prost(sint32, tag = "5")]
    pub schema: i32,
    /// The native zero bucket holds the values in `[-zero_threshold, zero_threshold]`.
    #[prost(double, tag = "6")]
    pub zero_threshold: f64,
    /// How many observations the zero bucket holds.
    #[prost(uint64, tag = "7")]
    pub zero_count: u64,
    /// Overrides `zero_count` if above zero (float histograms).
    #[prost(double, tag = "8")]
    pub zero_count_float: f64,
    /// The populated negative buckets, as runs.
    #[prost(message, repeated, tag = "9")]
    pub negative_span: Vec<BucketSpan>,
    /// Each negative bucket's count minus the previous one's.
    #[prost(sint64, repeated, tag = "10")]
    pub negative_delta: Vec<i64>,
    /// Each negative bucket's count (float histograms).
    #[prost(double, repeated, tag = "11")]
    pub negative_count: Vec<f64>,
    /// The populated positive buckets, as runs; one `(0, 0)` span marks an empty native histogram.
    #[prost(message, repeated, tag = "12")]
    pub positive_span: Vec<BucketSpan>,
    /// Each positive bucket's count minus the previous one's (the first minus zero).
    #[prost(sint64, repeated, tag = "13")]
    pub positive_delta: Vec<i64>,
    /// Each positive bucket's count (float histograms).
    #[prost(double, repeated, tag = "14")]
    pub positive_count: Vec<f64>,
    /// The native histogram's exemplars; each has a timestamp.
    #[prost(message, repeated, tag = "16")]
    pub exemplars: Vec<Exemplar>,
}

/// One classic bucket: how many values are at most `upper_bound`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Bucket {
    /// How many observations are at most `upper_bound`.
    #[prost(uint64, tag = "1")]
    pub cumulative_count: u64,
    /// Overrides `cumulative_count` if above zero (float histograms).
    #[prost(double, tag = "4")]
    pub cumulative_count_float: f64,
    /// The bucket's inclusive upper bound (`le`).
    #[prost(double, tag = "2")]
    pub upper_bound: f64,
    /// An observation in this bucket.
    #[prost(message, optional, tag = "3")]
    pub exemplar: Option<Exemplar>,
}

/// A run of `length` consecutive native buckets, `offset` after the previous
/// run (or starting at index `offset`, for the first).
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct BucketSpan {
    /// The gap after the previous run, or the first index for the first run.
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    /// How many consecutive buckets.
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

/// One observation that stands for its bucket: its labels (here the
/// `trace_id`), value and time.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    /// Its labels.
    #[prost(message, repeated, tag = "1")]
    pub label: Vec<LabelPair>,
    /// The observed value.
    #[prost(double, tag = "2")]
    pub value: f64,
    /// When it was observed.
    #[prost(message, optional, tag = "3")]
    pub timestamp: Option<Timestamp>,
}

/// `google.protobuf.Timestamp`: seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Timestamp {
    /// Whole seconds since the Unix epoch.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds past `seconds`, 0 to 999,999,999.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// One series of a family: its labels and the value of the family's type.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    /// The series' labels, the family name aside.
    #[prost(message, repeated, tag = "1")]
    pub label: Vec<LabelPair>,
    /// The value, in a gauge family.
    #[prost(message, optional, tag = "2")]
    pub gauge: Option<Gauge>,
    /// The value, in a counter family.
    #[prost(message, optional, tag = "3")]
    pub counter: Option<Counter>,
    /// The value, in a summary family.
    #[prost(message, optional, tag = "4")]
    pub summary: Option<Summary>,
    /// The value, in an untyped family.
    #[prost(message, optional, tag = "5")]
    pub untyped: Option<Untyped>,
    /// The value, in a histogram family.
    #[prost(message, optional, tag = "7")]
    pub histogram: Option<Histogram>,
    /// When it was observed, in Unix milliseconds; 0 for the time of the scrape.
    #[prost(int64, tag = "6")]
    pub timestamp_ms: i64,
}

/// A metric family: name, help, type and its series. A counter family is
/// named with its `_total`, as in the Prometheus text format.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricFamily {
    /// The family name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// What it measures.
    #[prost(string, tag = "2")]
    pub help: String,
    /// Its [`MetricType`].
    #[prost(enumeration = "MetricType", tag = "3")]
    pub r#type: i32,
    /// Its series.
    #[prost(message, repeated, tag = "4")]
    pub metric: Vec<Metric>,
    /// Its unit, if any.
    #[prost(string, tag = "5")]
    pub unit: String,
}
