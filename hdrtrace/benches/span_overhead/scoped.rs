//! The group `span_lifecycle`: what one full span lifecycle costs (new, enter,
//! exit, close of a model span with a `model_id` and an `input_tokens` field)
//! with each variant's dispatcher scoped to this thread, side by side:
//!
//! - `no_subscriber`: no dispatcher at all (tracing's `NoSubscriber`);
//! - `hdrtrace_disabled`: ours, built with `enabled: false`;
//! - `hdrtrace_enabled`: ours, default config, every record pushed to the ring
//!   while the aggregator thread runs;
//! - `registry_hdr_layer`: `tracing_subscriber::registry()` with the HDR layer
//!   users write today (start time in the span's extensions, the duration into a
//!   `Mutex<HashMap<String, Histogram<u64>>>` keyed by model on close);
//! - `tracing_timing`: the `tracing-timing` subscriber, timing span closes.
//!
//! tracing caches each callsite's interest and the max level over every live
//! dispatcher, so each variant makes its own dispatcher, sets it as this
//! thread's default, rebuilds the interest cache, and drops it (rebuilding
//! again) before the next variant runs: no variant pays for another's
//! dispatcher. `no_subscriber` runs first, before any dispatcher exists (see
//! its doc). Figures and the command: docs/performance.md.

use crate::common::{lifecycle, scoped, timed_batches, MODEL, TOKENS};
use crate::naive::{Histograms, NaiveHdrLayer, MAX_NS};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use hdrhistogram::Histogram;
use hdrtrace::TracingConfig;
use std::hint::black_box;
use std::sync::PoisonError;
use tracing::dispatcher::Dispatch;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;

/// Must run first: only a process that has never had a dispatcher is in the
/// state of an application with no subscriber (max level `OFF`). Once the last
/// dispatcher is gone, tracing-core rebuilds from `NoSubscriber`, which gives no
/// level hint, so the max level becomes `TRACE` and each site is turned away
/// by its `Interest::never()` instead, a few loads later.
fn no_subscriber(group: &mut BenchmarkGroup<'_, WallTime>) {
    assert_eq!(
        LevelFilter::current(),
        LevelFilter::OFF,
        "no_subscriber must run before any dispatcher is created"
    );
    group.bench_function("no_subscriber", |b| {
        b.iter(|| lifecycle(black_box(MODEL), black_box(TOKENS)))
    });
}

fn hdrtrace_disabled(group: &mut BenchmarkGroup<'_, WallTime>) {
    let config = TracingConfig {
        enabled: false,
        ..TracingConfig::default()
    };
    let (subscriber, guard) = hdrtrace::build(&config).expect("default config is valid");
    let mut ran = false;
    scoped(Dispatch::new(subscriber), |_| {
        // Our `max_level_hint` (OFF when switched off), not another's.
        assert_eq!(
            LevelFilter::current(),
            LevelFilter::OFF,
            "a dispatcher leaked in"
        );
        group.bench_function("hdrtrace_disabled", |b| {
            ran = true;
            b.iter(|| lifecycle(black_box(MODEL), black_box(TOKENS)))
        });
    });
    if ran {
        let snapshot = guard.flushed_snapshot();
        assert_eq!(
            snapshot.counters().spans,
            0,
            "a disabled subscriber recorded"
        );
    }
}

/// The default config with a larger ring, so the untimed flushes between
/// batches (each publishes a snapshot) come every 32 768 spans rather than
/// every 2 048: the aggregator's publication work, which in use happens every
/// 100 ms, would otherwise run beside the measured loop far more often than it
/// ever does in use.
fn bench_config() -> TracingConfig {
    TracingConfig {
        ring_capacity: 1 << 16,
        ..TracingConfig::default()
    }
}

fn hdrtrace_enabled(group: &mut BenchmarkGroup<'_, WallTime>) {
    let (subscriber, guard) = hdrtrace::build(&bench_config()).expect("default config is valid");
    bench_ours(group, "hdrtrace_enabled", Dispatch::new(subscriber), guard);
}

/// Times one of our front ends. Half a ring between flushes: every record is
/// pushed, none dropped (asserted), and the aggregator (ticking every few ms)
/// drains concurrently as it does in use.
fn bench_ours(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    dispatch: Dispatch,
    guard: hdrtrace::TracingGuard,
) {
    let batch = (bench_config().ring_capacity.next_power_of_two() / 2) as u64;
    let mut ran = false;
    scoped(dispatch, |_| {
        group.bench_function(name, |b| {
            ran = true;
            b.iter_custom(|iters| {
                timed_batches(iters, batch, &guard, || {
                    lifecycle(black_box(MODEL), black_box(TOKENS))
                })
            })
        });
    });
    if ran {
        let snapshot = guard.flushed_snapshot();
        let recorded = snapshot.model(MODEL).map_or(0, |m| m.count());
        assert!(recorded > 0, "{name} recorded nothing");
        assert_eq!(snapshot.dropped_records(), 0, "records were dropped");
        assert_eq!(snapshot.dropped_spans(), 0, "spans went untracked");
    }
}

/// A bare `Registry`, no layer: the floor `HdrLayer` is measured against.
fn bare_registry(group: &mut BenchmarkGroup<'_, WallTime>) {
    scoped(Dispatch::new(tracing_subscriber::registry()), |_| {
        group.bench_function("bare_registry", |b| {
            b.iter(|| lifecycle(black_box(MODEL), black_box(TOKENS)))
        });
    });
}

fn registry_hdr_layer(group: &mut BenchmarkGroup<'_, WallTime>) {
    let histograms = Histograms::default();
    let subscriber = tracing_subscriber::registry().with(NaiveHdrLayer {
        histograms: histograms.clone(),
    });
    let mut ran = false;
    scoped(Dispatch::new(subscriber), |_| {
        group.bench_function("registry_hdr_layer", |b| {
            ran = true;
            b.iter(|| lifecycle(black_box(MODEL), black_box(TOKENS)))
        });
    });
    let histograms = histograms.lock().unwrap_or_else(PoisonError::into_inner);
    let recorded = histograms.get(MODEL).map_or(0, |h| h.len());
    assert!(!ran || recorded > 0, "the registry layer recorded nothing");
}

/// Our core as a `Layer` on a `Registry` (the mode `init_tracing` uses when
/// tokio-console is on): what the Registry stack costs on top of the core.
#[cfg(feature = "layer")]
fn hdrtrace_layer_registry(group: &mut BenchmarkGroup<'_, WallTime>) {
    let config = bench_config();
    let (layer, guard) = hdrtrace::Builder::new(&config)
        .build_layer()
        .expect("default config is valid");
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    bench_ours(group, "hdrtrace_layer_on_registry", dispatch, guard);
}

fn tracing_timing(group: &mut BenchmarkGroup<'_, WallTime>) {
    // `span_close_events` makes a span's close a timed event (creation to
    // close); without it a span with no events records nothing.
    let subscriber = tracing_timing::Builder::default()
        .span_close_events()
        .build(|| Histogram::new_with_bounds(1, MAX_NS, 3).expect("valid bounds"));
    let downcaster = subscriber.downcaster();
    let mut ran = false;
    let recorded = scoped(Dispatch::new(subscriber), |dispatch| {
        group.bench_function("tracing_timing", |b| {
            ran = true;
            b.iter(|| lifecycle(black_box(MODEL), black_box(TOKENS)))
        });
        let timing = downcaster
            .downcast(dispatch)
            .expect("the dispatcher holds the tracing-timing subscriber");
        timing.force_synchronize();
        timing.with_histograms(|spans| {
            spans
                .values_mut()
                .flat_map(|events| events.values_mut())
                .map(|h| h.len())
                .sum::<u64>()
        })
    });
    assert!(!ran || recorded > 0, "tracing-timing recorded nothing");
}

/// The group `span_lifecycle`: every variant with a scoped dispatcher, in this
/// process.
pub fn span_lifecycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("span_lifecycle");
    no_subscriber(&mut group);
    hdrtrace_disabled(&mut group);
    hdrtrace_enabled(&mut group);
    bare_registry(&mut group);
    registry_hdr_layer(&mut group);
    #[cfg(feature = "layer")]
    hdrtrace_layer_registry(&mut group);
    tracing_timing(&mut group);
    group.finish();
}
