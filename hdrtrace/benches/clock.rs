//! What one clock read costs: `std::time::Instant::now()` against `quanta`'s raw
//! TSC read (what the span hot path calls, through `hdrtrace::Clock::now`) and
//! `quanta::Instant::now()` (raw read plus scaling to nanoseconds). A span
//! lifecycle reads the clock four times (new, enter, exit, close), so this is
//! the figure that chose the clock; see docs/performance.md.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

fn clock(c: &mut Criterion) {
    let mut group = c.benchmark_group("clock");
    group.bench_function("std_instant_now", |b| {
        b.iter(|| black_box(std::time::Instant::now()))
    });
    // Calibrated once, outside the measurement, as `hdrtrace::Clock` does once
    // per subscriber.
    let quanta_clock = quanta::Clock::new();
    group.bench_function("quanta_clock_raw", |b| {
        b.iter(|| black_box(quanta_clock.raw()))
    });
    // The read the span hot path makes (an inlined `rdtsc` where quanta reads
    // the TSC, else `quanta_clock_raw`).
    let hdrtrace_clock = hdrtrace::__bench::Clock::new();
    group.bench_function("hdrtrace_clock_now", |b| {
        b.iter(|| black_box(hdrtrace_clock.now()))
    });
    group.bench_function("quanta_instant_now", |b| {
        b.iter(|| black_box(quanta::Instant::now()))
    });
    group.finish();
}

criterion_group!(benches, clock);
criterion_main!(benches);
