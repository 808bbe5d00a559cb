//! Loom models of the SPSC ring (`src/handoff/ring.rs`): push, pop, full, empty,
//! wrap-around and the drop counter, with the producer and the consumer on
//! different threads.

use hdrtrace_loom_tests::ring::channel;
use loom::thread;

/// The producer pushes 0..3 while the consumer makes three pop attempts; the
/// main thread then drains what is left. Every value arrives exactly once, in
/// order, and the consumer's `None` (if any) came before the values it missed.
#[test]
fn values_arrive_once_in_order() {
    loom::model(|| {
        let (mut tx, mut rx) = channel::<u64>(4);
        let producer = thread::spawn(move || {
            for v in 0..3 {
                assert_eq!(
                    tx.push(v),
                    Ok(()),
                    "a ring of 4 holding at most 3 refused {v}"
                );
            }
        });
        let consumer = thread::spawn(move || {
            let got: Vec<u64> = (0..3).filter_map(|_| rx.pop()).collect();
            (rx, got)
        });
        producer.join().unwrap();
        let (mut rx, mut got) = consumer.join().unwrap();
        while let Some(v) = rx.pop() {
            got.push(v);
        }
        assert_eq!(got, vec![0, 1, 2]);
        assert_eq!(rx.pop(), None, "drained ring must be empty");
        assert_eq!(rx.dropped(), 0);
    });
}

/// A consumer popping an empty ring while one value is pushed sees either
/// nothing or exactly that value; whatever it missed is there after the join.
#[test]
fn empty_ring_pops_none() {
    loom::model(|| {
        let (mut tx, mut rx) = channel::<u64>(2);
        assert_eq!(rx.pop(), None, "a new ring is empty");
        let producer = thread::spawn(move || {
            tx.push(7).unwrap();
            tx
        });
        let first = rx.pop();
        assert!(matches!(first, None | Some(7)), "popped {first:?}");
        let _tx = producer.join().unwrap();
        let rest = rx.pop();
        assert_eq!(
            first.or(rest),
            Some(7),
            "the value must arrive exactly once"
        );
        assert!(first.is_none() || rest.is_none(), "the value arrived twice");
        assert_eq!(rx.pop(), None);
    });
}

/// A ring of 2 with a consumer popping once concurrently: the producer's
/// third push succeeds only if the pop freed a slot; a refused push hands the
/// same value back, is counted, and nothing accepted is lost.
#[test]
fn full_ring_returns_value_and_counts_drop() {
    loom::model(|| {
        let (mut tx, mut rx) = channel::<u64>(2);
        assert_eq!(tx.capacity(), 2);
        let producer = thread::spawn(move || {
            let mut accepted = Vec::new();
            let mut refused = Vec::new();
            for v in 10..13 {
                match tx.push(v) {
                    Ok(()) => accepted.push(v),
                    Err(back) => {
                        assert_eq!(back, v, "a full ring must hand back the pushed value");
                        tx.count_drop();
                        refused.push(v);
                    }
                }
            }
            (tx, accepted, refused)
        });
        let popped = rx.pop();
        let (_tx, accepted, refused) = producer.join().unwrap();
        // Two always fit; the third only when the concurrent pop came first.
        assert!(accepted.len() >= 2, "accepted {accepted:?}");
        assert_eq!(accepted.len() + refused.len(), 3);
        let mut got: Vec<u64> = popped.into_iter().collect();
        while let Some(v) = rx.pop() {
            got.push(v);
        }
        assert_eq!(
            got, accepted,
            "accepted values lost, duplicated or reordered"
        );
        assert_eq!(rx.dropped(), refused.len() as u64);
    });
}

/// Capacity 2, filled; the consumer pops once while the producer offers a
/// third value to `push_init_if_room`, then (refused) to `push`. The push that
/// trusts the producer's own view of `head` never overwrites a value the
/// consumer has not read (the first value arrives as pushed), and `push`,
/// which refreshes that view, takes the third value exactly when the pop
/// came first.
#[test]
fn a_push_by_the_cached_head_never_overwrites_an_unread_value() {
    loom::model(|| {
        let (mut tx, mut rx) = channel::<u64>(2);
        tx.push(10).unwrap();
        tx.push(11).unwrap();
        let producer = thread::spawn(move || {
            // SAFETY: the closure writes the whole value.
            let trusted = unsafe {
                tx.push_init_if_room(|slot| {
                    slot.write(12);
                })
            };
            assert!(!trusted, "the producer has seen no pop yet");
            let refreshed = tx.push(12).is_ok();
            (tx, refreshed)
        });
        let popped = rx.pop();
        let (_tx, refreshed) = producer.join().unwrap();
        assert_eq!(popped, Some(10), "the first value, unread, was overwritten");
        let mut got = vec![10];
        while let Some(v) = rx.pop() {
            got.push(v);
        }
        let want: &[u64] = if refreshed { &[10, 11, 12] } else { &[10, 11] };
        assert_eq!(got, want);
    });
}

/// Capacity 2, four values: the ring starts full, the consumer pops three
/// times while the producer pushes two more (waiting for room), so indices 2
/// and 3 wrap onto slots 0 and 1. All four arrive once, in order.
#[test]
fn wrap_around_across_threads() {
    loom::model(|| {
        let (mut tx, mut rx) = channel::<u64>(2);
        tx.push(0).unwrap();
        tx.push(1).unwrap();
        assert_eq!(tx.push(2), Err(2), "a full ring refused nothing");
        let producer = thread::spawn(move || {
            for v in 2..4 {
                let mut value = v;
                while let Err(back) = tx.push(value) {
                    assert_eq!(back, v);
                    value = back;
                    thread::yield_now();
                }
            }
        });
        let consumer = thread::spawn(move || {
            let got: Vec<u64> = (0..3).filter_map(|_| rx.pop()).collect();
            (rx, got)
        });
        producer.join().unwrap();
        let (mut rx, mut got) = consumer.join().unwrap();
        // The ring starts full, so the first two pops always succeed.
        assert!(got.len() >= 2, "got {got:?}");
        while let Some(v) = rx.pop() {
            got.push(v);
        }
        assert_eq!(got, vec![0, 1, 2, 3]);
        assert_eq!(rx.dropped(), 0);
    });
}

/// Drops counted on the producer's thread are never over-reported while it
/// runs, are all visible once the consumer has joined that thread, and
/// `is_orphaned` then reports the producer gone.
#[test]
fn drop_counter_is_exact_after_join() {
    loom::model(|| {
        let (mut tx, rx) = channel::<u64>(2);
        let producer = thread::spawn(move || {
            let mut drops = 0u64;
            for v in 0..4 {
                if tx.push(v).is_err() {
                    tx.count_drop();
                    drops += 1;
                }
            }
            drops
        });
        // Read while the producer may be counting: never more than will be.
        let seen = rx.dropped();
        assert!(seen <= 2, "counted {seen} drops of at most 2");
        let drops = producer.join().unwrap();
        assert_eq!(drops, 2, "a ring of 2 without a consumer takes exactly 2");
        assert_eq!(rx.dropped(), 2);
        assert!(
            rx.is_orphaned(),
            "the producer's end was dropped with its thread"
        );
    });
}

/// The aggregator's retirement rule: a consumer that saw its producer gone
/// (`is_orphaned`) *before* draining has every value after that drain, so it
/// can be discarded without losing any, however the producer's last pushes and
/// its drop interleave with the consumer's checks.
#[test]
fn orphaned_before_a_drain_means_nothing_is_left() {
    loom::model(|| {
        let (mut tx, mut rx) = channel::<u64>(4);
        let producer = thread::spawn(move || {
            tx.push(1).unwrap();
            tx.push(2).unwrap();
            // `tx` is dropped here, as a thread's ring producer is at its end.
        });
        let mut got = Vec::new();
        loop {
            let orphaned = rx.is_orphaned();
            while let Some(v) = rx.pop() {
                got.push(v);
            }
            if orphaned {
                break;
            }
            thread::yield_now();
        }
        assert_eq!(got, vec![1, 2], "a value was lost or duplicated");
        assert_eq!(rx.pop(), None, "nothing is pushed after the producer went");
        producer.join().unwrap();
    });
}

/// The same rule as the aggregator applies it (`Consumer::drain_with`, at
/// most `limit` values per call so a snapshot can be built between calls): a
/// ring is declared done only when its producer was gone before the call and
/// the call found it empty; until then every value arrives, once, in order,
/// however the producer's pushes and its drop interleave with the calls.
#[test]
fn drain_with_a_limit_retires_only_an_empty_orphan() {
    loom::model(|| {
        let (mut tx, mut rx) = channel::<u64>(4);
        let producer = thread::spawn(move || {
            for v in 1..=3 {
                tx.push(v).unwrap();
            }
        });
        let mut got = Vec::new();
        loop {
            let (n, done) = rx.drain_with(2, |v| got.push(*v));
            assert!(n <= 2, "the limit holds");
            if done {
                assert!(n < 2, "a ring declared done was found empty");
                break;
            }
            thread::yield_now();
        }
        assert_eq!(got, vec![1, 2, 3], "a value was lost or duplicated");
        assert_eq!(rx.pop(), None, "nothing is left once the ring is done");
        producer.join().unwrap();
    });
}

/// A ring outgrown (`Consumer::offer_larger`): the producer moves to the
/// offered ring when its own is full, however that interleaves with the
/// consumer draining both. Every value pushed arrives exactly once, every
/// refused one is counted, the old ring is declared done only once drained,
/// and the new one once its producer is gone.
#[test]
fn a_producer_moves_to_an_offered_ring_and_nothing_is_lost() {
    loom::model(|| {
        let (mut tx, mut rx) = channel::<u64>(2);
        let mut larger = rx.offer_larger(4).expect("a larger ring is on offer");
        assert_eq!(larger.capacity(), 4);
        assert!(rx.offer_larger(8).is_none(), "one offer at a time");
        let producer = thread::spawn(move || {
            let mut pushed = Vec::new();
            for v in 0..4 {
                match tx.push(v) {
                    Ok(()) => pushed.push(v),
                    Err(_) => tx.count_drop(),
                }
            }
            pushed
        });
        let mut got = Vec::new();
        loop {
            let (_, old_done) = rx.drain_with(usize::MAX, |v| got.push(*v));
            larger.drain_with(usize::MAX, |v| got.push(*v));
            if old_done {
                break;
            }
            thread::yield_now();
        }
        let old_dropped = rx.dropped();
        // Retiring the old ring drops its offer too, if it was never taken.
        drop(rx);
        loop {
            let (_, done) = larger.drain_with(usize::MAX, |v| got.push(*v));
            if done {
                break;
            }
            thread::yield_now();
        }
        let pushed = producer.join().unwrap();
        got.sort_unstable();
        assert_eq!(got, pushed, "a value was lost or duplicated");
        assert_eq!(
            pushed.len() as u64 + old_dropped + larger.dropped(),
            4,
            "every value is pushed or counted"
        );
    });
}

/// Pairs (`push_pair_init`) are published together: a consumer racing the
/// producer never sees a pair's first value without its second, a pair that
/// does not fit is refused whole (its first value is not left behind), and
/// the values that went in come out once, in order.
#[test]
fn a_pair_arrives_whole_or_not_at_all() {
    loom::model(|| {
        let (mut tx, mut rx) = channel::<u64>(4);
        let producer = thread::spawn(move || {
            let mut pushed = Vec::new();
            for pair in [[1, 2], [3, 4], [5, 6]] {
                // SAFETY: each closure writes a whole `u64`.
                let ok = unsafe {
                    tx.push_pair_init(
                        |dst| {
                            dst.write(pair[0]);
                        },
                        |dst| {
                            dst.write(pair[1]);
                        },
                    )
                };
                if ok {
                    pushed.extend(pair);
                }
            }
            pushed
        });
        let consumer = thread::spawn(move || {
            let mut got = Vec::new();
            for _ in 0..2 {
                if let Some(first) = rx.pop() {
                    // The second value of the pair was published with the first.
                    let second = rx.pop();
                    assert_eq!(second, Some(first + 1), "a pair came apart");
                    got.extend([first, first + 1]);
                }
            }
            (rx, got)
        });
        let pushed = producer.join().unwrap();
        let (mut rx, mut got) = consumer.join().unwrap();
        while let Some(v) = rx.pop() {
            got.push(v);
        }
        assert_eq!(got, pushed, "every pushed pair, once, in order");
        assert!(pushed.len() >= 4, "a ring of 4 took {pushed:?}");
    });
}
