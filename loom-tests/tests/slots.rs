//! Loom models of the span slot table (`src/recording/slots.rs`): concurrent
//! alloc/free on the lock-free free stacks, generation reuse, exhaustion and
//! double free.

use hdrtrace_loom_tests::{unpack_id, Arc, SlotTable};
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::thread;

fn table(capacity: usize, shards: usize) -> Arc<SlotTable<AtomicU64>> {
    Arc::new(SlotTable::new(capacity, shards, || AtomicU64::new(0)))
}

/// Holds a slot, stamps it with `me`, and checks nobody else wrote it before
/// freeing it. Returns whether a slot was had.
fn hold_and_check(t: &SlotTable<AtomicU64>, me: u64, home: usize) -> bool {
    let Some((id, value)) = t.alloc(home) else {
        return false;
    };
    // Relaxed: loom explores every value a store by a co-tenant could expose;
    // with exclusive ownership there is none.
    value.store(me, Ordering::Relaxed);
    assert_eq!(
        t.get(id).map(|v| v as *const AtomicU64),
        Some(value as *const AtomicU64),
        "a live ID must look up its own slot"
    );
    thread::yield_now();
    assert_eq!(
        value.load(Ordering::Relaxed),
        me,
        "slot {:?} was handed to two threads at once",
        unpack_id(id)
    );
    t.free(id);
    assert!(t.get(id).is_none(), "a freed ID still resolves");
    true
}

/// Every slot is free exactly once: allocating drains `capacity` distinct
/// slots and then fails (a slot pushed twice, or a corrupted free stack,
/// shows up as a repeat).
fn assert_all_free(t: &SlotTable<AtomicU64>) {
    let mut indices: Vec<usize> = (0..t.slot_count())
        .map(|_| unpack_id(t.alloc(0).expect("a free slot is missing").0).0)
        .collect();
    assert!(t.alloc(0).is_none(), "the free stacks hold a slot twice");
    indices.sort_unstable();
    indices.dedup();
    assert_eq!(indices.len(), t.slot_count(), "a slot was handed out twice");
}

/// Two threads allocate, stamp, check and free, twice each, on a table of 2
/// slots in one shard (both pop and push race on one stack head): no slot is
/// ever held by both, and afterwards both slots are free exactly once.
#[test]
fn no_slot_handed_out_twice() {
    // Unbounded exploration of this model takes ~30 s; a bound of five
    // preemptions keeps it under a second. The ABA model below is unbounded.
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(5);
    builder.check(|| {
        let t = table(2, 1);
        let t2 = t.clone();
        let other = thread::spawn(move || {
            assert!(hold_and_check(&t2, 2, 0));
            assert!(hold_and_check(&t2, 2, 0));
        });
        // Two slots, two tenants at most: an alloc never fails here.
        assert!(hold_and_check(&t, 1, 0));
        assert!(hold_and_check(&t, 1, 0));
        other.join().unwrap();
        assert_all_free(&t);
    });
}

/// The ABA shape of a Treiber stack: one thread reads the top slot and its
/// successor, then stalls while the other pops both and pushes the first
/// back; the stalled CAS must fail (the head's tag moved) rather than install
/// a successor that is in use. Both threads check their tenancy, and the
/// stack is intact afterwards.
#[test]
fn aba_on_free_stack_is_prevented() {
    loom::model(|| {
        let t = table(2, 1);
        let t2 = t.clone();
        let other = thread::spawn(move || {
            let first = t2.alloc(0).map(|(id, _)| id);
            let second = t2.alloc(0);
            if let Some(id) = first {
                t2.free(id);
            }
            if let Some((id, value)) = second {
                value.store(2, Ordering::Relaxed);
                thread::yield_now();
                assert_eq!(value.load(Ordering::Relaxed), 2, "slot shared");
                t2.free(id);
            }
        });
        hold_and_check(&t, 1, 0);
        other.join().unwrap();
        assert_all_free(&t);
    });
}

/// Two shards, one slot each, each thread homed on a different shard and
/// falling back to the other: allocation across shards never hands a slot
/// out twice.
#[test]
fn cross_shard_fallback_is_exclusive() {
    loom::model(|| {
        let t = table(2, 2);
        assert_eq!(t.shard_count(), 2);
        let held = t.alloc(1).expect("shard 1 has a slot");
        let t2 = t.clone();
        // Both threads want shard 0's only slot; one of them may find it taken.
        let other = thread::spawn(move || hold_and_check(&t2, 2, 1));
        let mine = hold_and_check(&t, 1, 0);
        let theirs = other.join().unwrap();
        assert!(mine || theirs, "a free slot was refused to both threads");
        t.free(held.0);
        assert_all_free(&t);
    });
}

/// One slot, two threads allocating and keeping it: exactly one gets it.
/// The loser gets `None`, not a shared slot or a panic.
#[test]
fn exhaustion_returns_none() {
    loom::model(|| {
        let t = table(1, 1);
        let t2 = t.clone();
        let other = thread::spawn(move || t2.alloc(0).map(|(id, _)| id));
        let mine = t.alloc(0).map(|(id, _)| id);
        let theirs = other.join().unwrap();
        assert!(
            mine.is_some() != theirs.is_some(),
            "one slot, two holders: mine {mine:?}, theirs {theirs:?}"
        );
        assert!(t.alloc(0).is_none(), "an exhausted table allocated");
        let id = mine.or(theirs).unwrap();
        assert!(t.get(id).is_some());
    });
}

/// One thread frees an ID while another allocates from the same one-slot
/// table: a re-issued slot carries a new generation, so the old ID never
/// resolves again and never equals the new one.
#[test]
fn generation_reuse_rejects_stale_id() {
    loom::model(|| {
        let t = table(1, 1);
        let (old, _) = t.alloc(0).unwrap();
        let t2 = t.clone();
        let freer = thread::spawn(move || t2.free(old));
        let new = t.alloc(0).map(|(id, _)| id);
        freer.join().unwrap();
        assert!(t.get(old).is_none(), "a freed ID resolves after reuse");
        match new {
            // The alloc ran before the free was visible: the slot is free now.
            None => {}
            Some(new) => {
                assert_ne!(new, old, "reuse kept the old generation");
                assert_eq!(unpack_id(new).0, unpack_id(old).0);
                assert_eq!(unpack_id(new).1, unpack_id(old).1.wrapping_add(1));
                assert!(t.get(new).is_some());
                assert!(t.alloc(0).is_none());
                t.free(new);
            }
        }
        assert_all_free(&t);
    });
}

/// Two threads free the same ID at once: the generation CAS lets only one
/// push the slot, so the table still has exactly one slot to give, and a
/// stale free after reuse leaves the new tenant alone.
#[test]
fn double_free_pushes_once() {
    loom::model(|| {
        let t = table(1, 1);
        let (id, _) = t.alloc(0).unwrap();
        let t2 = t.clone();
        let other = thread::spawn(move || t2.free(id));
        t.free(id);
        other.join().unwrap();
        let (new, _) = t.alloc(0).expect("the freed slot");
        assert!(t.alloc(0).is_none(), "a double free pushed the slot twice");
        t.free(id);
        assert!(t.get(new).is_some(), "a stale free evicted the new tenant");
        assert!(t.alloc(0).is_none(), "a stale free pushed a live slot");
    });
}

/// A thread allocating and freeing through its private cache (refilled from
/// and released to the shared stacks) races a thread using the stacks
/// directly: no slot is ever held by both, and after the cache is released
/// every slot is free exactly once.
#[test]
fn cached_and_shared_allocation_are_exclusive() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(|| {
        // 8 slots in one shard, and 2 more for the caches: each may keep 2.
        let t = table(8, 1);
        let t2 = t.clone();
        let other = thread::spawn(move || {
            assert!(hold_and_check(&t2, 2, 0));
        });
        let mut cache = t.new_cache();
        assert_eq!(cache.limit(), 2);
        for _ in 0..2 {
            let (id, value) = t.alloc_cached(&mut cache, 0).expect("slots are free");
            value.store(1, Ordering::Relaxed);
            thread::yield_now();
            assert_eq!(value.load(Ordering::Relaxed), 1, "slot shared");
            t.free_cached(id, &mut cache);
            assert!(t.get(id).is_none(), "a freed ID no longer resolves");
        }
        t.release(&mut cache);
        other.join().unwrap();
        let mut held = std::collections::HashSet::new();
        while let Some((id, _)) = t.alloc(0) {
            assert!(held.insert(unpack_id(id).0), "slot listed twice");
        }
        assert_eq!(held.len(), 10, "every slot came back");
    });
}

/// Two threads take caches from a reserve that holds one: exactly one gets
/// it, the other allocates from the shards, and releasing gives it back.
#[test]
fn the_cache_reserve_is_never_overdrawn() {
    loom::model(|| {
        // 8 open slots in 2 shards: caches may keep 1 each, the reserve is 2.
        let t = table(8, 2);
        let first = t.new_cache();
        assert_eq!(first.limit(), 1);
        let t2 = t.clone();
        let other = thread::spawn(move || t2.new_cache().limit());
        let mine = t.new_cache();
        let theirs = other.join().unwrap();
        assert_eq!(mine.limit() + theirs, 1, "the reserve held one more cache");
        let mut first = first;
        t.release(&mut first);
        assert_eq!(t.new_cache().limit(), 1, "a released share is reusable");
    });
}
