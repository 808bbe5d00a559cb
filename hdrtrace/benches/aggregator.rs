//! How fast the aggregator ingests records, on one core: pipeline-shaped
//! requests (an `embed_pipeline` root with a `request_id`, a `model_execution`
//! stage and twelve `model` spans with a static `model_id`, each entered and
//! closed at once: 14 records) are recorded through the real hot path into the
//! rings of a subscriber that has no aggregator thread
//! (`hdrtrace::__bench::IngestBench`), then drained into the
//! histograms and the request assembler, timed. Nothing else runs meanwhile.
//!
//! In the same run, `record` times the recording side producing the same
//! records on one thread, the rate the aggregator has to beat per recording
//! thread. The issue's goal: `drain` at least 10 M records/s.
//!
//! ```text
//! cargo bench -p hdrtrace --features bench-internals --bench aggregator
//! ```

mod common;

use common::scoped;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hdrtrace::__bench::{pipeline_request, IngestBench, SPANS_PER_REQUEST};
use hdrtrace::TracingConfig;
use std::time::{Duration, Instant};
use tracing::dispatcher::Dispatch;

/// Requests recorded before each timed drain (56 000 records: the ring, at
/// its largest, holds them all, so nothing is dropped).
const REQUESTS: u64 = 4_000;

fn config() -> TracingConfig {
    TracingConfig {
        ring_capacity: hdrtrace::limits::MAX_RING,
        ..TracingConfig::default()
    }
}

// Every record of a round fits the ring.
const _: () = assert!(REQUESTS * SPANS_PER_REQUEST <= hdrtrace::limits::MAX_RING as u64);

fn ingest(c: &mut Criterion) {
    let (subscriber, mut bench) = IngestBench::new(&config()).expect("a valid config");
    let mut next_id = 0u64;
    scoped(Dispatch::new(subscriber), |_| {
        let mut group = c.benchmark_group("aggregator");
        group.throughput(Throughput::Elements(REQUESTS * SPANS_PER_REQUEST));
        group.bench_function("drain", |b| {
            b.iter_custom(|iters| {
                let mut measured = Duration::ZERO;
                for _ in 0..iters {
                    for _ in 0..REQUESTS {
                        next_id += 1;
                        pipeline_request(next_id, None);
                    }
                    let start = Instant::now();
                    let n = bench.drain();
                    measured += start.elapsed();
                    assert_eq!(
                        n as u64,
                        REQUESTS * SPANS_PER_REQUEST,
                        "every record drained"
                    );
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
                        pipeline_request(next_id, None);
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
