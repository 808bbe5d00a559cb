//! Two threads close millions of spans at once: histogram counts plus counted
//! drops equal the spans closed, exactly, also when rings and slots are too small
//! and drops really happen.

use hdrtrace::TracingConfig;

const PER_THREAD: u64 = 5_000_000;

fn hammer(config: TracingConfig) -> (u64, u64, u64) {
    let (subscriber, guard) = hdrtrace::build(&config).unwrap();
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            let sub = subscriber.clone();
            std::thread::spawn(move || {
                tracing::subscriber::with_default(sub, || {
                    let model = if t == 0 { "Semantic" } else { "Causal" };
                    for i in 0..PER_THREAD {
                        let span = tracing::debug_span!("model", model_id = model, n = i);
                        let _e = span.enter();
                    }
                })
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    guard.flush();
    let snap = guard.snapshot();
    let recorded: u64 = snap.models().map(|(_, m)| m.count()).sum::<u64>()
        + snap.stages().map(|(_, m)| m.count()).sum::<u64>();
    (recorded, snap.dropped_records(), snap.dropped_spans())
}

#[test]
fn counts_plus_drops_equal_spans_closed() {
    let (recorded, dropped_records, dropped_spans) = hammer(TracingConfig::default());
    assert_eq!(recorded + dropped_records + dropped_spans, 2 * PER_THREAD);
    assert!(recorded > 0);
}

#[test]
fn exact_accounting_when_rings_overflow() {
    // A tiny ring and a slow drain force ring drops.
    let (recorded, dropped_records, dropped_spans) = hammer(TracingConfig {
        ring_capacity: 8,
        flush_interval: std::time::Duration::from_millis(200),
        ..TracingConfig::default()
    });
    assert!(dropped_records > 0, "the tiny ring overflowed");
    assert_eq!(recorded + dropped_records + dropped_spans, 2 * PER_THREAD);
}

#[test]
fn exact_accounting_when_slots_run_out() {
    let (subscriber, guard) = hdrtrace::build(&TracingConfig {
        slot_capacity: 4,
        ..TracingConfig::default()
    })
    .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        // Ten spans open at once, four slots: six are untracked, and entering,
        // recording into and closing them is harmless.
        let spans: Vec<_> = (0..10)
            .map(|i| tracing::debug_span!("model", model_id = "Code", i = i as u64))
            .collect();
        for s in &spans {
            let _e = s.enter();
            s.record("i", 99u64);
        }
        drop(spans);
        // Slots are free again.
        tracing::debug_span!("model", model_id = "Code").in_scope(|| {});
    });
    guard.flush();
    let snap = guard.snapshot();
    assert_eq!(snap.dropped_spans(), 6);
    assert_eq!(snap.model("Code").unwrap().count(), 5);
}
