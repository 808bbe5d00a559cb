//! Throughput of span lifecycles with one enabled subscriber on 1 thread against
//! 2 threads at once (the same subscriber, each thread its own loop). With no
//! contended shared cache line on the hot path, 2 threads do close to twice the
//! spans of one.
//!
//! Each sample runs in rounds: every thread waits at a barrier, closes `BATCH`
//! spans, and the round's time is from the earliest start to the latest end
//! (so barrier skew counts against 2 threads). Between rounds the bench's main
//! thread flushes, untimed: no ring ever fills, so every record is really pushed, and
//! the aggregator's own CPU time (it shares the cores) is not charged to the
//! recording threads.
//!
//! `compute/1` and `compute/2` are the control: the same harness running pure
//! arithmetic that shares nothing. Their ratio is what the machine can give at
//! that moment; on a shared 2-core machine it is often far below 2.
//!
//! Two dispatch modes for the spans, because `tracing` itself behaves
//! differently in each:
//! - `scoped`: the subscriber is each thread's scoped default
//!   (`dispatcher::set_default`), as in tests; every `Span` then holds a clone
//!   of the `Dispatch`, an `Arc` whose count all threads increment and
//!   decrement on every span;
//! - `global`: installed with `hdrtrace::init_tracing`, as in production; a
//!   global `Dispatch` is a `&'static` and cloning it touches no shared count.
//!
//! `scoped` runs first and is torn down before `global` installs the global
//! default (which cannot be uninstalled: it is switched off at the end).

mod common;

use common::{lifecycle, MODEL, TOKENS};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion};
use hdrtrace::{TracingConfig, TracingGuard};
use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};
use tracing::dispatcher::{self, Dispatch};
use tracing_core::callsite::rebuild_interest_cache;

/// Spans per thread per round; the ring holds twice as many.
const BATCH: u64 = 8 * 1024;

fn config() -> TracingConfig {
    TracingConfig {
        ring_capacity: 2 * BATCH as usize,
        ..TracingConfig::default()
    }
}

/// The control: about as much arithmetic as a span lifecycle takes, touching no
/// memory at all. Its 2-thread figure is the most this machine can give right
/// now (other load, shared cores): read the span figures against it.
#[inline(never)]
fn compute(_model: &str, seed: u64) {
    let mut x = seed;
    for _ in 0..40 {
        x = (x ^ (x >> 31)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    black_box(x);
}

/// What a bench thread runs, and what it runs under.
#[derive(Clone, Copy)]
struct Workload<'a> {
    step: fn(&str, u64),
    /// Flushed between rounds (`None`: nothing to flush).
    guard: Option<&'a TracingGuard>,
    /// The scoped default each thread sets (`None`: the global default).
    dispatch: Option<&'a Dispatch>,
}

/// Runs `iters` steps on each of `threads` threads at once and returns the
/// summed wall time of the rounds.
fn run(threads: usize, iters: u64, work: Workload<'_>) -> Duration {
    let Workload {
        step,
        guard,
        dispatch,
    } = work;
    let rounds = iters.div_ceil(BATCH) as usize;
    // The workers and this thread, which flushes between rounds.
    let barrier = Barrier::new(threads + 1);
    let spans: Vec<Vec<(Instant, Instant)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let _default = dispatch.map(dispatcher::set_default);
                    // Warm-up, untimed: this thread's state and ring.
                    step(MODEL, TOKENS);
                    barrier.wait();
                    let mut times = Vec::with_capacity(rounds);
                    let mut left = iters;
                    while left > 0 {
                        let n = left.min(BATCH);
                        barrier.wait();
                        let start = Instant::now();
                        for _ in 0..n {
                            step(black_box(MODEL), black_box(TOKENS));
                        }
                        times.push((start, Instant::now()));
                        barrier.wait();
                        left -= n;
                    }
                    times
                })
            })
            .collect();
        let flush = || guard.iter().for_each(|g| g.flush());
        barrier.wait();
        flush();
        for _ in 0..rounds {
            barrier.wait();
            barrier.wait();
            flush();
        }
        workers
            .into_iter()
            .map(|w| w.join().expect("a bench thread panicked"))
            .collect()
    });
    (0..rounds)
        .map(|r| {
            let start = spans.iter().map(|t| t[r].0).min();
            let end = spans.iter().map(|t| t[r].1).max();
            match (start, end) {
                (Some(s), Some(e)) => e.duration_since(s),
                _ => Duration::ZERO,
            }
        })
        .sum()
}

fn bench_threads(group: &mut BenchmarkGroup<'_, WallTime>, mode: &str, work: Workload<'_>) -> bool {
    let mut ran = false;
    for threads in [1usize, 2] {
        group.throughput(criterion::Throughput::Elements(threads as u64));
        group.bench_function(BenchmarkId::new(mode, threads), |b| {
            ran = true;
            b.iter_custom(|iters| run(threads, iters, work))
        });
    }
    ran
}

/// Every span that ran was recorded: nothing dropped, nothing untracked.
fn check(guard: &TracingGuard) {
    let snapshot = guard.flushed_snapshot();
    assert!(
        snapshot.model(MODEL).is_some_and(|m| m.count() > 0),
        "nothing was recorded"
    );
    assert_eq!(snapshot.dropped_records(), 0, "records were dropped");
    assert_eq!(snapshot.dropped_spans(), 0, "spans went untracked");
}

fn threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("threads");

    let control = Workload {
        step: compute,
        guard: None,
        dispatch: None,
    };
    bench_threads(&mut group, "compute", control);

    let (subscriber, guard) = hdrtrace::build(&config()).expect("valid config");
    let dispatch = Dispatch::new(subscriber);
    let default = dispatcher::set_default(&dispatch);
    // With one registered dispatcher tracing rebuilds from this thread's default.
    rebuild_interest_cache();
    let scoped = Workload {
        step: lifecycle,
        guard: Some(&guard),
        dispatch: Some(&dispatch),
    };
    if bench_threads(&mut group, "scoped", scoped) {
        check(&guard);
    }
    drop(default);
    drop(dispatch);
    drop(guard);
    rebuild_interest_cache();

    match hdrtrace::init_tracing(&config()) {
        Ok(guard) => {
            let global = Workload {
                step: lifecycle,
                guard: Some(&guard),
                dispatch: None,
            };
            if bench_threads(&mut group, "global", global) {
                check(&guard);
            }
            // Stops the aggregator and switches the (still global) subscriber off.
            drop(guard);
        }
        Err(e) => eprintln!("scaling: global mode skipped: {e}"),
    }
    group.finish();
}

criterion_group!(benches, threads);
criterion_main!(benches);
