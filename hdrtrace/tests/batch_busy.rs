//! A batched model's busy time is its share of the batch's work: each served
//! model span (never entered itself: it awaits the batch) records the batch
//! span's busy time over the batch's size, once, whether the batch's record
//! reaches the aggregator before or after the model spans'.

mod batch_support;

use batch_support::{batch_for, requests};
use hdrtrace::TracingConfig;
use std::sync::Mutex;
use std::thread::sleep;
use std::time::Duration;
use tracing::subscriber::with_default;

/// One scenario at a time: scoped subscribers built and dropped on several
/// test threads at once race in tracing-core's interest cache.
static SERIAL: Mutex<()> = Mutex::new(());

/// Three requests served by one batch of 3 that works (is entered) `work`;
/// `batch_last`: its span closes after the requests' roots.
fn run(work: Duration, batch_last: bool) -> hdrtrace::LatencySnapshot {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let config = TracingConfig {
        sampling_rate: 1.0,
        ..TracingConfig::default()
    };
    let (subscriber, guard) = hdrtrace::build(&config).unwrap();
    with_default(subscriber, || {
        let (roots, models) = requests(1..=3);
        let batch = batch_for(&models, 3);
        batch.in_scope(|| sleep(work));
        if batch_last {
            drop(models);
            drop(roots);
            drop(batch);
        } else {
            drop(batch);
            drop(models);
            drop(roots);
        }
    });
    guard.flushed_snapshot()
}

fn assert_shares(snap: &hdrtrace::LatencySnapshot) {
    let batch = snap.stage("batch").expect("the batch span's series");
    let causal = snap.model("Causal").expect("the model's series");
    assert_eq!(causal.count(), 3);
    assert_eq!(causal.busy().count(), 3, "one busy sample per model span");
    let batch_busy = batch.busy().max().as_nanos() as u64;
    assert!(batch_busy > 0);
    // Every share is the batch's busy time over 3, to HDR's 3 figures.
    for q in [0.0, 1.0] {
        let share = causal.busy().quantile(q).as_nanos() as u64;
        let want = batch_busy / 3;
        assert!(
            share.abs_diff(want) <= want / 500 + 1,
            "q {q}: {share} ns, the batch {batch_busy} ns over 3"
        );
    }
    let waits = causal.batch_wait().expect("batch waits");
    assert_eq!(waits.count(), 3);
}

#[test]
fn batched_model_spans_record_their_share_of_the_batch_work() {
    assert_shares(&run(Duration::from_millis(6), false));
}

#[test]
fn the_share_is_the_same_when_the_batch_closes_last() {
    assert_shares(&run(Duration::from_millis(6), true));
}
