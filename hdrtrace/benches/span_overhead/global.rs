//! The group `span_lifecycle_global`: the lifecycle (new, enter, exit, close
//! of a model span with `model_id` and `input_tokens`, under a held request
//! root) with each subscriber installed as the *global* default, as in
//! production: a global dispatcher is not reference-counted per span, a
//! scoped one is.
//!
//! A global default cannot be replaced, so each variant runs in a process of
//! its own: the bench re-runs itself once per variant with
//! `HDRTRACE_GLOBAL_VARIANT` set (criterion's arguments passed on), and every
//! variant's result lands in this one group.
//!
//! - `none`: no subscriber ever installed;
//! - `hdrtrace_disabled`: ours, switched off;
//! - `do_nothing`: an enabled subscriber whose every method does nothing
//!   (tracing's own dispatch cost);
//! - `floor`: the least a timing subscriber can do: enabled, visits the span's
//!   fields, reads the TSC at new, enter, exit and close and adds the readings
//!   into a thread-local;
//! - `event_log_bound`: the hot path of an event-log design and nothing more
//!   (`common/event_log.rs`): a bound on what that design could reach, not a
//!   subscriber;
//! - `event_log_drained`: the same, with a consumer thread draining the ring
//!   every millisecond as an aggregator would (the hand-off's cost included);
//! - `local_hist_bound`: the hot path of a thread-local design and nothing more
//!   (`common/local_hist.rs`): per-thread model histograms recorded at close,
//!   a 32-byte summary per span handed to a consumer thread;
//! - `hdrtrace_enabled`: ours, installed with `init_tracing`;
//! - `registry_hdr_layer`: Registry + the naive HDR layer users write.

use crate::common::{lifecycle, timed_batches, MODEL, TOKENS};
use crate::floor::Bare;
use crate::{drained_ring, event_log, local_hist, naive};
use criterion::Criterion;
use hdrtrace::TracingConfig;
use std::hint::black_box;
use tracing_subscriber::layer::SubscriberExt;

/// Set in a child process: the one variant it runs.
pub const VARIANT: &str = "HDRTRACE_GLOBAL_VARIANT";
const VARIANTS: [&str; 9] = [
    "none",
    "hdrtrace_disabled",
    "do_nothing",
    "floor",
    "event_log_bound",
    "event_log_drained",
    "local_hist_bound",
    "hdrtrace_enabled",
    "registry_hdr_layer",
];

/// The measured unit: `common::lifecycle`, one model span, under the request
/// root the caller holds entered.
fn unit() {
    lifecycle(black_box(MODEL), black_box(TOKENS));
}

fn install(variant: &str) -> Option<hdrtrace::TracingGuard> {
    let global = |d: tracing::Dispatch| {
        tracing::dispatcher::set_global_default(d).expect("first global default");
        tracing_core::callsite::rebuild_interest_cache();
    };
    // The default config, as in production (its ring of 4 096 records,
    // 512 KiB of 128-byte wire records, fits in L2; a 65 536-record ring
    // does not, and each push then waits on lines coming from L3: see
    // docs/performance.md). Logs off: the lifecycle fires no event anyway.
    let config = TracingConfig {
        log_level: tracing_core::LevelFilter::OFF,
        ..TracingConfig::default()
    };
    match variant {
        "none" => None,
        "hdrtrace_disabled" => Some(
            hdrtrace::init_tracing(&TracingConfig {
                enabled: false,
                ..config
            })
            .expect("valid config"),
        ),
        "do_nothing" => {
            global(tracing::Dispatch::new(Bare::<false>));
            None
        }
        "floor" => {
            global(tracing::Dispatch::new(Bare::<true>));
            None
        }
        "event_log_bound" => {
            global(tracing::Dispatch::new(event_log::EventLog::<false>));
            None
        }
        "event_log_drained" => {
            global(tracing::Dispatch::new(event_log::EventLog::<true>));
            None
        }
        "local_hist_bound" => {
            global(tracing::Dispatch::new(local_hist::LocalHist));
            None
        }
        "hdrtrace_enabled" => Some(hdrtrace::init_tracing(&config).expect("valid config")),
        "registry_hdr_layer" => {
            let layer = naive::NaiveHdrLayer {
                histograms: naive::Histograms::default(),
            };
            global(tracing::Dispatch::new(
                tracing_subscriber::registry().with(layer),
            ));
            None
        }
        other => panic!("{VARIANT}={other:?} is not one of {VARIANTS:?}"),
    }
}

/// Runs one variant, installed as this process's global default.
pub fn run(variant: &str) {
    let guard = install(variant);
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("span_lifecycle_global");
    let root = tracing::info_span!("embed_pipeline", request_id = 1u64);
    let _r = root.enter();
    group.bench_function(variant, |b| match (&guard, variant) {
        // Ours enabled: flushed (untimed) every half ring, so every record is
        // pushed and none dropped (asserted below), as the aggregator's wake
        // at half full does in use.
        (Some(g), "hdrtrace_enabled") => {
            let half = TracingConfig::default().ring_capacity as u64 / 2;
            b.iter_custom(|iters| timed_batches(iters, half, g, unit))
        }
        _ => b.iter(unit),
    });
    group.finish();
    drop(_r);
    if let (Some(g), "hdrtrace_enabled") = (&guard, variant) {
        let snapshot = g.flushed_snapshot();
        assert_eq!(snapshot.dropped_records(), 0, "records were dropped");
    }
    if matches!(variant, "event_log_drained" | "local_hist_bound") {
        // A dropped entry skips its write, so many would make the figure a
        // bound of dropping, not of handing off: say how many.
        let (written, dropped) = drained_ring::counts();
        eprintln!(
            "{variant}: {written} entries handed off, {dropped} dropped ({:.3} %)",
            dropped as f64 * 100.0 / (written + dropped).max(1) as f64
        );
    }
    c.final_summary();
}

/// Runs every variant, each in a child process of its own (this binary,
/// re-run with `VARIANT` set and the same arguments).
pub fn run_each_variant() {
    crate::common::rerun_each(VARIANT, &VARIANTS);
}
