//! The field values the visitor reads on the hot path (typed model ids, a
//! traceparent given with `?` or of a later version, a model field after it)
//! allocate nothing: a counting global allocator counts the allocations the
//! recording thread makes after its warm-up.

mod alloc_support;

use alloc_support::allocs_of;
use hdrtrace::TracingConfig;

#[global_allocator]
static GLOBAL: alloc_support::Counting = alloc_support::Counting;

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
    let ((), allocs) = tracing::subscriber::with_default(subscriber, || {
        request(0);
        allocs_of(|| {
            for i in 1..=2_000 {
                request(i);
            }
        })
    });
    assert_eq!(allocs, 0, "the hot path allocated");
    let snapshot = guard.flushed_snapshot();
    assert_eq!(snapshot.counters().requests, 2_001);
    assert_eq!(snapshot.counters().malformed_traceparents, 0);
    assert_eq!(snapshot.model("1.5").map(|m| m.count()), Some(2_001));
}
