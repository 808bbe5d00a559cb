//! A dropped subscriber's memory goes when it does, not when every thread
//! that recorded for it exits: threads keep no strong hold on its slot table.

mod rss_support;

use hdrtrace::{limits, TracingConfig};
use rss_support::rss;
use std::sync::{Arc, Barrier};

#[test]
fn dropping_the_subscriber_frees_its_slot_table_while_its_threads_live() {
    const THREADS: usize = 4;
    let before = rss();
    let config = TracingConfig {
        slot_capacity: limits::MAX_SLOTS,
        ring_capacity: 64,
        ..TracingConfig::default()
    };
    let (sub, guard) = hdrtrace::build(&config).unwrap();
    let dispatch = tracing::Dispatch::new(sub);
    let recorded = Arc::new(Barrier::new(THREADS + 1));
    let dropped = Arc::new(Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (d, recorded, dropped) = (dispatch.clone(), recorded.clone(), dropped.clone());
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&d, || {
                    tracing::info_span!("model", model_id = "M").in_scope(|| {})
                });
                drop(d);
                recorded.wait();
                // Alive, idle, holding its per-thread state, until told.
                dropped.wait();
            })
        })
        .collect();
    recorded.wait();
    let built = rss();
    assert_eq!(
        guard.flushed_snapshot().model("M").unwrap().count(),
        THREADS as u64
    );
    drop(dispatch);
    drop(guard);
    let after = rss();
    dropped.wait();
    for t in threads {
        t.join().unwrap();
    }
    let mb = |b: u64| b as f64 / 1e6;
    assert!(
        built > before + (100 << 20),
        "a {}-slot table should take over 100 MB: {:.0} -> {:.0} MB",
        limits::MAX_SLOTS,
        mb(before),
        mb(built)
    );
    assert!(
        after < before + (30 << 20),
        "the table outlived its subscriber: {:.0} MB before, {:.0} built, {:.0} after the drop",
        mb(before),
        mb(built),
        mb(after)
    );
}
