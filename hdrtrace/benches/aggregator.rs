//! How fast the aggregator ingests records, on one core: pipeline-shaped
//! requests (an `embed_pipeline` root with a `request_id`, a `model_execution`
//! stage and twelve `model` spans with a static `model_id`, each entered and
//! closed at once: 14 records) are recorded through the real hot path into the
//! rings of a subscriber that has no aggregator thread
//! (`hdrtrace::aggregate::bench::IngestBench`), then drained into the
//! histograms and the request assembler, timed. Nothing else runs meanwhile.
//!
//! In the same run, `record` times the recording side producing the same
//! records on one thread, the rate the aggregator has to beat per recording
//! thread. The issue's goal: `drain` at least 10 M records/s.
//!
//! ```text
//! cargo bench --bench aggregator
//! ```

mod common;

use common::scoped;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hdrtrace::aggregate::bench::IngestBench;
use hdrtrace::TracingConfig;
use std::time::{Duration, Instant};
use tracing::dispatcher::Dispatch;

use hdrtrace::aggregate::bench::MODEL_NAMES as MODELS;
/// Records one request makes.
const PER_REQUEST: u64 = 14;
/// Requests recorded before each timed drain (70 000 records: the ring holds
/// them all, so nothing is dropped).
const REQUESTS: u64 = 5_000;

fn request(id: u64) {
    let root = tracing::info_span!("embed_pipeline", request_id = id);
    let _r = root.enter();
    let stage = tracing::info_span!("model_execution");
    let _s = stage.enter();
    for model in MODELS {
        let span = tracing::debug_span!("model", model_id = model);
        let _e = span.enter();
    }
}

fn config() -> TracingConfig {
    TracingConfig {
        ring_capacity: 1 << 17,
        ..TracingConfig::default()
    }
}

fn ingest(c: &mut Criterion) {
    let (subscriber, mut bench) = IngestBench::new(&config()).expect("a valid config");
    let mut next_id = 0u64;
    scoped(Dispatch::new(subscriber), |_| {
        let mut group = c.benchmark_group("aggregator");
        group.throughput(Throughput::Elements(REQUESTS * PER_REQUEST));
        group.bench_function("drain", |b| {
            b.iter_custom(|iters| {
                let mut measured = Duration::ZERO;
                for _ in 0..iters {
                    for _ in 0..REQUESTS {
                        next_id += 1;
                        request(next_id);
                    }
                    let start = Instant::now();
                    let n = bench.drain();
                    measured += start.elapsed();
                    assert_eq!(n as u64, REQUESTS * PER_REQUEST, "every record drained");
                }
                measured
            })
        });
        group.bench_function("record", |b| {
            b.iter_custom(|iters| {
                let mut measured = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    for _ in 0..REQUESTS {
                        next_id += 1;
                        request(next_id);
                    }
                    measured += start.elapsed();
                    bench.drain();
                }
                measured
            })
        });
        group.finish();
    });
    let counters = bench.counters();
    assert_eq!(counters.dropped_records, 0, "the rings held every record");
    assert_eq!(counters.budget_dropped_records, 0);
}

criterion_group!(benches, ingest);
criterion_main!(benches);
