//! The field values the visitor reads on the hot path (typed model ids, a
//! traceparent given with `?` or of a later version, a model field after it)
//! allocate nothing: a counting global allocator counts the allocations the
//! recording thread makes after its warm-up.

use hdrtrace::TracingConfig;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static MEASURED: Cell<bool> = const { Cell::new(false) };
}

fn measured() -> bool {
    MEASURED.try_with(|m| m.get()).unwrap_or(false)
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if measured() {
            // Relaxed: a counter read by the thread that set `MEASURED`.
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if measured() {
            // Relaxed: as in `alloc`.
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const V00: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const V01: &str = "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-\
                   and-what-a-later-version-adds-after-the-four-fields";

fn request(i: u64) {
    let header = if i % 2 == 0 { V00 } else { V01 };
    let root = tracing::info_span!(
        "embed_pipeline",
        request_id = i,
        traceparent = ?header,
        model_id = "Causal"
    );
    let _r = root.enter();
    tracing::info_span!("model", model_id = -1i64).in_scope(|| {});
    tracing::info_span!("model", model_id = u64::MAX).in_scope(|| {});
    tracing::info_span!("model", model_id = 1.5f64).in_scope(|| {});
    tracing::info_span!("model", model_id = true).in_scope(|| {});
    tracing::info_span!("model", model_id = "").in_scope(|| {});
    let late = tracing::info_span!("model", model_id = tracing::field::Empty);
    late.record("model_id", i as i64 - 5);
    late.in_scope(|| {});
}

#[test]
fn reading_field_values_allocates_nothing() {
    let config = TracingConfig {
        sampling_rate: 1.0,
        ring_capacity: 1 << 16,
        ..TracingConfig::default()
    };
    let (subscriber, guard) = hdrtrace::build(&config).unwrap();
    let allocs = tracing::subscriber::with_default(subscriber, || {
        request(0);
        let before = ALLOCS.load(Ordering::Relaxed);
        MEASURED.with(|m| m.set(true));
        for i in 1..=2_000 {
            request(i);
        }
        MEASURED.with(|m| m.set(false));
        ALLOCS.load(Ordering::Relaxed) - before
    });
    assert_eq!(allocs, 0, "the hot path allocated");
    let snapshot = guard.flushed_snapshot();
    assert_eq!(snapshot.counters().requests, 2_001);
    assert_eq!(snapshot.counters().malformed_traceparents, 0);
    assert_eq!(snapshot.model("1.5").map(|m| m.count()), Some(2_001));
}
