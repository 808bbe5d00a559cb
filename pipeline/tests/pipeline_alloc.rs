//! The subscriber adds no allocation while the pipeline runs: under a counting
//! allocator, a request allocates exactly as often with the subscriber enabled
//! (or switched off) as with no subscriber at all.
//!
//! Everything runs on this thread (a current-thread runtime, models that do not
//! leave it), and only this thread's allocations are counted, so the
//! aggregator thread's work (which does allocate) is not mixed in.

mod pipeline_support;

use hdrtrace::TracingConfig;
use hdrtrace_pipeline::{BatchConfig, BatchPlan, EmbeddingPipeline, PipelineConfig};
use pipeline_support::fast_models;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: the thread-local may be gone while the thread is torn down.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are ours; counting touches only a
// const-initialized thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller upholds `alloc`'s contract (non-zero size).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: the caller passes a block this allocator (that is, `System`)
        // returned, with its layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

const WARM_UP: usize = 300;
const MEASURED: usize = 2_000;

/// Allocations on this thread for `MEASURED` requests, after a warm-up.
fn allocations_per_run(rt: &tokio::runtime::Runtime, p: &EmbeddingPipeline) -> u64 {
    let text = "the same request, every time, so every run does identical work";
    rt.block_on(async {
        for _ in 0..WARM_UP {
            p.embed(text).await.unwrap();
        }
        let before = allocations();
        for _ in 0..MEASURED {
            p.embed(text).await.unwrap();
        }
        allocations() - before
    })
}

/// Unbatched, then with Causal batched: each request's input runs alone in
/// its own batch (size 1, no wait, one request at a time, so every run forms
/// the same batches), whose span is linked both ways with the request's
/// model span; recording the batch spans and links allocates nothing either.
/// One test, not two: with two such tests on two threads at once, a whole
/// run's spans sometimes never reached its subscriber (most likely `tracing`'s
/// global callsite interest, rebuilt as the other thread's subscribers come
/// and go, the disabled one among them).
#[test]
fn subscriber_adds_no_allocation_per_request() {
    let batching = BatchPlan::new().with("Causal", BatchConfig::new(1, Duration::ZERO).unwrap());
    for batching in [BatchPlan::new(), batching] {
        // No deadline can fire, however loaded the machine: every run does
        // the same work.
        let config = PipelineConfig {
            deadline: Duration::from_secs(600),
            batching,
            ..PipelineConfig::default()
        };
        let p = EmbeddingPipeline::with_config(fast_models(), config).unwrap();
        adds_no_allocation(&p);
    }
}

/// Runs `p` without a subscriber, then under ours enabled (1 % and 100 %
/// sampling) and disabled, on a current-thread runtime: the same number of
/// allocations on this thread each time.
fn adds_no_allocation(p: &EmbeddingPipeline) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let none = allocations_per_run(&rt, p);
    assert!(
        none >= MEASURED as u64,
        "the counter sees the pipeline's own allocations"
    );

    for (label, enabled, rate) in [
        ("enabled, 1%", true, 0.01),
        ("enabled, 100%", true, 1.0),
        ("disabled", false, 0.01),
    ] {
        let config = TracingConfig {
            enabled,
            sampling_rate: rate,
            // Flushed by this test, not by a timer racing it.
            flush_interval: Duration::from_secs(60),
            ring_capacity: 1 << 16,
            ..TracingConfig::default()
        };
        let (subscriber, guard) = hdrtrace::build(&config).unwrap();
        let ours = tracing::subscriber::with_default(subscriber, || allocations_per_run(&rt, p));
        assert_eq!(
            ours, none,
            "{label}: {ours} allocations for {MEASURED} requests, {none} without a subscriber"
        );
        let snap = guard.flushed_snapshot();
        let recorded = snap.stage("embed_pipeline").map_or(0, |s| s.count());
        let want = if enabled {
            (WARM_UP + MEASURED) as u64
        } else {
            0
        };
        assert_eq!(
            recorded, want,
            "{label}: the subscriber recorded the requests"
        );
        if enabled {
            let counts: Vec<_> = snap
                .models()
                .map(|(n, m)| (n.to_string(), m.count()))
                .collect();
            assert_eq!(
                snap.model("Causal").unwrap().count(),
                want,
                "{label}: {counts:?} {:?} stages {:?}",
                snap.counters(),
                snap.stages()
                    .map(|(n, m)| (n.to_string(), m.count()))
                    .collect::<Vec<_>>()
            );
            assert_eq!(snap.dropped_records(), 0);
        }
    }
}
