//! Properties of the ring against a model: it neither loses nor duplicates
//! nor reorders, on one thread and across two.

use super::ring::channel;
use proptest::prelude::*;
use std::collections::VecDeque;

#[derive(Debug, Clone)]
enum Op {
    Push(u32),
    /// `push_init_if_room`: the push that trusts the producer's own view of
    /// the consumer's progress.
    PushIfRoom(u32),
    Pop,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            any::<u32>().prop_map(Op::Push),
            any::<u32>().prop_map(Op::PushIfRoom),
            Just(Op::Pop)
        ],
        0..400,
    )
}

proptest! {
    #[test]
    fn ring_matches_a_bounded_queue(capacity in 1usize..40, ops in ops()) {
        let (mut tx, mut rx) = channel::<u32>(capacity);
        let cap = tx.capacity();
        prop_assert!(cap >= capacity && cap.is_power_of_two());
        let mut model = VecDeque::new();
        let mut dropped = 0;
        for op in ops {
            match op {
                Op::Push(v) => {
                    let r = tx.push(v);
                    if model.len() == cap {
                        prop_assert_eq!(r, Err(v), "a full ring hands the value back");
                        tx.count_drop();
                        dropped += 1;
                    } else {
                        prop_assert_eq!(r, Ok(()));
                        model.push_back(v);
                    }
                }
                Op::PushIfRoom(v) => {
                    // SAFETY: the closure writes the whole value.
                    let pushed = unsafe { tx.push_init_if_room(|slot| { slot.write(v); }) };
                    // It may refuse while there is room (its view of the
                    // consumer is old), never accept without room.
                    if pushed {
                        prop_assert!(model.len() < cap, "accepted a value into a full ring");
                        model.push_back(v);
                    }
                }
                Op::Pop => prop_assert_eq!(rx.pop(), model.pop_front()),
            }
            // Its view is old, never ahead: it may ask for a drain the
            // consumer has already done, never miss one.
            if model.len() > cap / 2 {
                prop_assert!(tx.may_need_drain(), "{} of {cap} held", model.len());
            }
        }
        while let Some(v) = rx.pop() {
            prop_assert_eq!(Some(v), model.pop_front());
        }
        prop_assert!(model.is_empty(), "nothing lost");
        prop_assert_eq!(rx.dropped(), dropped);
    }

    #[test]
    fn ring_across_threads_keeps_every_value_once(capacity in 1usize..16, n in 0u32..5000) {
        let (mut tx, mut rx) = channel::<u32>(capacity);
        let producer = std::thread::spawn(move || {
            for v in 0..n {
                let mut v = v;
                loop {
                    match tx.push(v) {
                        Ok(()) => break,
                        Err(back) => { v = back; std::thread::yield_now(); }
                    }
                }
            }
        });
        let mut next = 0;
        while next < n {
            match rx.pop() {
                Some(v) => { prop_assert_eq!(v, next); next += 1; }
                None => std::thread::yield_now(),
            }
        }
        producer.join().unwrap();
        prop_assert_eq!(rx.pop(), None);
    }
}
