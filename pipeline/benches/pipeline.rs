//! What the subscriber adds to a whole request: one `EmbeddingPipeline::embed`
//! with twelve trivial models (so the pipeline's own work is small and the
//! tracing cost shows), on a current-thread runtime, side by side in the group
//! `embed`:
//!
//! - `no_subscriber`: no dispatcher at all;
//! - `no_subscriber_built`: still no dispatcher, but ours (`enabled: false`)
//!   built beside it and not installed: the same process state (its
//!   preallocated slot table and ring, its aggregator thread) without any
//!   instrumented site reaching it. The control for the next one;
//! - `hdrtrace_disabled`: that subscriber installed;
//! - `hdrtrace_enabled`: ours, default config (1 % head sampling), every span
//!   recorded while the aggregator thread runs, as this thread's scoped
//!   default (`dispatcher::set_default`, as tests do);
//! - `hdrtrace_enabled_global`: the same installed with `init_tracing`, as in
//!   production. A scoped `Dispatch` is an `Arc` that every `Span` clones and
//!   drops (two locked read-modify-writes per span); the global one is a
//!   `&'static`. It runs last: a global default cannot be taken back;
//! - `floor_global` and `do_nothing_global`: the anchors of the span bench
//!   (`common/floor.rs`), the least a timing subscriber can do and tracing's
//!   own dispatch, each installed globally in a process of its own (the
//!   bench re-runs itself with `HDRTRACE_PIPELINE_GLOBAL` set, criterion's
//!   arguments passed on, and each child also times `hdrtrace_disabled`, the
//!   same-process baseline every global figure is read against, with its
//!   control `no_subscriber_built`).
//!
//! A request makes 16 spans (root, 3 stages, 12 models). The issue's targets:
//! enabled adds at most 1 µs per request over `no_subscriber`, disabled at most
//! 30 ns. Each variant installs its own dispatcher as this thread's default and
//! rebuilds tracing's interest cache on the way in and out, so none pays for
//! another's; `no_subscriber` runs first, before any dispatcher exists.
//!
//! ```text
//! cargo bench --bench pipeline
//! ```

#[path = "../../hdrtrace/benches/common/mod.rs"]
#[macro_use]
mod common;
#[path = "../../hdrtrace/benches/common/floor.rs"]
mod floor;
#[path = "../tests/pipeline_support/mod.rs"]
mod pipeline_support;

use common::{scoped, timed_batches};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use floor::Bare;
use hdrtrace::TracingConfig;
use hdrtrace_pipeline::EmbeddingPipeline;
use pipeline_support::fast_models;
use std::hint::black_box;
use tokio::runtime::Runtime;
use tracing::dispatcher::Dispatch;
use tracing::level_filters::LevelFilter;

const TEXT: &str = "Which of the twelve models made this request slow? The trace says.";

struct Setup {
    rt: Runtime,
    pipeline: EmbeddingPipeline,
}

impl Setup {
    fn new() -> Self {
        Self {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime"),
            pipeline: EmbeddingPipeline::new(fast_models()).expect("twelve distinct models"),
        }
    }

    #[inline(never)]
    fn embed(&self) {
        let fused = self.rt.block_on(self.pipeline.embed(black_box(TEXT)));
        black_box(fused.expect("fast models always answer"));
    }
}

fn no_subscriber(group: &mut BenchmarkGroup<'_, WallTime>, s: &Setup) {
    assert_eq!(
        LevelFilter::current(),
        LevelFilter::OFF,
        "no_subscriber must run before any dispatcher is created"
    );
    group.bench_function("no_subscriber", |b| b.iter(|| s.embed()));
}

fn hdrtrace_disabled(group: &mut BenchmarkGroup<'_, WallTime>, s: &Setup) {
    let config = TracingConfig {
        enabled: false,
        ..TracingConfig::default()
    };
    let (subscriber, guard) = hdrtrace::build(&config).expect("a valid config");
    // Built, not yet a dispatcher: tracing still has none.
    assert_eq!(LevelFilter::current(), LevelFilter::OFF);
    group.bench_function("no_subscriber_built", |b| b.iter(|| s.embed()));
    scoped(Dispatch::new(subscriber), |_| {
        group.bench_function("hdrtrace_disabled", |b| b.iter(|| s.embed()));
    });
    assert_eq!(guard.flushed_snapshot().counters().spans, 0);
}

fn enabled_config() -> TracingConfig {
    TracingConfig {
        ring_capacity: 1 << 16,
        ..TracingConfig::default()
    }
}

/// Times `embed` under `guard`'s subscriber (already installed), a quarter of
/// a ring between flushes (16 records a request): every record is pushed,
/// none dropped, while the aggregator drains concurrently as it does in use.
/// The flushes are not timed.
fn bench_enabled(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    s: &Setup,
    guard: &hdrtrace::TracingGuard,
) {
    let batch = (enabled_config().ring_capacity / 4 / 16) as u64;
    let mut ran = false;
    group.bench_function(id, |b| {
        ran = true;
        b.iter_custom(|iters| timed_batches(iters, batch, guard, || s.embed()))
    });
    if ran {
        let snap = guard.flushed_snapshot();
        let c = snap.counters();
        assert!(
            c.requests > 0,
            "{id}: the enabled subscriber recorded nothing"
        );
        assert_eq!(
            (c.dropped_spans, c.dropped_records),
            (0, 0),
            "{id}: records were dropped: the figure would flatter us"
        );
    }
}

fn hdrtrace_enabled(group: &mut BenchmarkGroup<'_, WallTime>, s: &Setup) {
    let (subscriber, guard) = hdrtrace::build(&enabled_config()).expect("a valid config");
    scoped(Dispatch::new(subscriber), |_| {
        bench_enabled(group, "hdrtrace_enabled", s, &guard);
    });
}

fn hdrtrace_enabled_global(group: &mut BenchmarkGroup<'_, WallTime>, s: &Setup) {
    let guard = hdrtrace::init_tracing(&enabled_config()).expect("the first global install");
    bench_enabled(group, "hdrtrace_enabled_global", s, &guard);
}

/// Set in a child process: the anchor it installs globally.
const ANCHOR: &str = "HDRTRACE_PIPELINE_GLOBAL";
const ANCHORS: [&str; 2] = ["floor", "do_nothing"];

/// A child's run: the disabled baseline (and its control), then `anchor`
/// installed globally.
fn anchor_global(group: &mut BenchmarkGroup<'_, WallTime>, s: &Setup, anchor: &str) {
    hdrtrace_disabled(group, s);
    let dispatch = match anchor {
        "floor" => Dispatch::new(Bare::<true>),
        "do_nothing" => Dispatch::new(Bare::<false>),
        other => panic!("{ANCHOR}={other:?} is not one of {ANCHORS:?}"),
    };
    tracing::dispatcher::set_global_default(dispatch).expect("the first global install");
    tracing_core::callsite::rebuild_interest_cache();
    group.bench_function(format!("{anchor}_global"), |b| b.iter(|| s.embed()));
}

fn main() {
    let anchor = std::env::var(ANCHOR).ok();
    let mut c = Criterion::default().configure_from_args();
    let setup = Setup::new();
    let mut group = c.benchmark_group("embed");
    match anchor.as_deref() {
        Some(anchor) => anchor_global(&mut group, &setup, anchor),
        None => {
            no_subscriber(&mut group, &setup);
            hdrtrace_disabled(&mut group, &setup);
            hdrtrace_enabled(&mut group, &setup);
            hdrtrace_enabled_global(&mut group, &setup);
        }
    }
    group.finish();
    c.final_summary();
    if anchor.is_none() {
        // Each anchor in a process of its own: a global default is for good.
        common::rerun_each(ANCHOR, &ANCHORS);
    }
}
