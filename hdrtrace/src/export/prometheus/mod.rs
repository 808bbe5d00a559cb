//! Prometheus: a [`LatencySnapshot`] as exposition text (OpenMetrics 1.0 with
//! exemplars, or the Prometheus text format for clients that ask for it), and
//! a small HTTP server (hyper on one background thread, under
//! [`ServerLimits`]) that serves it.
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
//! | `hdrtrace_{model,stage}_latency_seconds` | histogram | wall time, creation to close |
//! | `hdrtrace_{model,stage}_busy_seconds` | histogram | busy time, entered or polled |
//! | `hdrtrace_{model,stage}_gpu_seconds` | histogram | device time (where `gpu_ns` was set) |
//! | `hdrtrace_model_batch_wait_seconds` | histogram | each batched request's wait for its batch to start |
//! | `hdrtrace_{model,stage}_recent_{latency,busy,gpu,batch_wait}_seconds` | summary | the same, quantiles over the recent window |
//! | `hdrtrace_model_batch_size` | histogram | batch sizes, one per batch span (`le` = [`BATCH_SIZE_BOUNDS`], powers of two to 1024) |
//! | `hdrtrace_{model,stage}_errors_total` | counter | spans closed with an error |
//! | `hdrtrace_{model,stage}_timeouts_total` | counter | spans closed timed out |
//! | `hdrtrace_model_blamed_total` | counter | requests blamed on the model, one series per `reason` (`over_target`, `timed_out`, `failed`) |
//!
//! and the process-wide counters `hdrtrace_{spans,events,requests,
//! sampled_requests,degraded_requests,captured_requests,dropped_spans,dropped_records,
//! late_records,…}_total` (the full list: `docs/prometheus.md`).
//!
//! **Histograms** are cumulative since start, so their `_bucket`, `_count`
//! and `_sum` only grow and Prometheus can add them across instances: the
//! fleet's p95 of a model is
//! `histogram_quantile(0.95, sum by (le, model) (rate(hdrtrace_model_latency_seconds_bucket[5m])))`.
//! The `le` bounds are a [`Buckets`] ([`serve_with_buckets`]; default
//! [`Buckets::INFERENCE_LATENCY`], 100 µs to 60 s), filled exactly from the
//! HDR histogram: every recorded value is counted once, placed as
//! [`Buckets`] documents (a value within 0.1% below a bound may count in the
//! next bucket up, never one below). `_sum` counts each value at the middle
//! of its HDR bucket (within 0.05%).
//!
//! **Exemplars** (OpenMetrics only): each bucket whose range holds the value
//! of a span of a captured request (the snapshot's most recent and slowest
//! requests) carries `# {trace_id="<32 hex>"} <value> <unix time>` for the
//! one that ended last: the same trace id the OTLP export, the text tree and
//! the Perfetto JSON show ([`RequestTrace::trace_id`](crate::RequestTrace::trace_id)).
//!
//! **Summaries** give [`QUANTILES`] over the recent window
//! ([`LatencySnapshot::recent`], the last `TracingConfig::window`), `NaN`
//! where the window saw no span; their `_count` and `_sum` are the
//! histogram's, since start. A quantile of quantiles is not a quantile: sum
//! the histograms for fleet views.
//!
//! # Formats
//!
//! The server reads a request's `Accept` with one parser of media ranges
//! ([`Exposition::negotiate`]; a `q` that is not a number from 0 to 1
//! refuses its range, as `q=0` does). A request whose `Accept` asks for
//! Prometheus's protobuf exposition ([`PROTOBUF_CONTENT_TYPE`]; what
//! Prometheus sends with native histograms on) gets length-delimited
//! [`proto::MetricFamily`] messages ([`render_protobuf`]): the same families,
//! every histogram classic and native at once ([`native`]: schema 8, within
//! [`native::RELATIVE_ERROR`] of the HDR quantiles), exemplars on both.
//! Otherwise the server answers in OpenMetrics ([`CONTENT_TYPE`]) unless the
//! request's `Accept` asks for `text/plain` and not for
//! `application/openmetrics-text` ([`Format::negotiate`]); then in the
//! Prometheus text format 0.0.4 ([`TEXT_CONTENT_TYPE`]), without exemplars,
//! which is what `curl -H 'Accept: text/plain' …/metrics | promtool check
//! metrics` lints. An unknown or malformed `Accept` gets OpenMetrics.

mod buckets;
mod exemplars;
mod limits;
pub mod native;
mod negotiate;
pub mod proto;
mod protobuf;
mod render;
mod server;
mod write_deadline;

pub use buckets::Buckets;
pub use limits::ServerLimits;
pub use negotiate::Exposition;
pub use protobuf::{render_protobuf, PROTOBUF_CONTENT_TYPE};
pub use render::{render_with, Format, BATCH_SIZE_BOUNDS, QUANTILES};
pub use server::{serve, serve_with, serve_with_buckets, MetricsServer};

use crate::read::snapshot::LatencySnapshot;

/// The `Content-Type` of an OpenMetrics answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `Content-Type` of a Prometheus text format answer.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The snapshot in OpenMetrics with the default [`Buckets`], `# EOF`
/// included: what the server sends Prometheus.
pub fn render(snapshot: &LatencySnapshot) -> String {
    render_with(snapshot, Format::OpenMetrics, &Buckets::default())
}
