//! The lock-free single-producer / single-consumer ring buffer.
//!
//! Each thread that closes spans owns one [`Producer`]; the aggregator thread owns
//! the matching [`Consumer`]. A push reads only the producer's own copies of
//! the indices (the consumer's `head` only when the ring looks full), writes
//! the value in place and makes one release store; it never blocks and never
//! allocates. A full ring hands the value back (`Err`) so the caller counts the
//! drop.
//!
//! Indices are free-running `usize` counters (wrapping), reduced with a mask: the
//! capacity is a power of two, `tail - head` is the fill level even across
//! wrap-around, and a full ring is told from an empty one without a spare slot.
//!
//! A ring can be outgrown: the consumer offers a larger one
//! ([`Consumer::offer_larger`]), and the producer moves to it the next time its
//! ring is more than half full, or full (a `try_lock`, never a wait).
//! The old ring keeps what was pushed into it; its producer is then gone, so
//! the consumer drains and retires it like the ring of an ended thread.

use crate::sync::{
    fence, Arc, AtomicBool, AtomicU64, AtomicUsize, CachePadded, Mutex, Ordering, UnsafeCell,
};
use std::mem::MaybeUninit;

struct Ring<T> {
    /// Next index the consumer reads. Written only by the consumer.
    head: CachePadded<AtomicUsize>,
    /// Next index the producer writes. Written only by the producer.
    tail: CachePadded<AtomicUsize>,
    /// Values the producer could not push because the ring was full.
    dropped: CachePadded<AtomicU64>,
    buf: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: usize,
    /// A larger ring the consumer offers the producer (see the module docs).
    successor: Mutex<Option<Arc<Ring<T>>>>,
    /// Set once `successor` holds an offer: lets the producer skip the lock
    /// while there is none.
    offered: AtomicBool,
}

impl<T> Ring<T> {
    fn new(capacity: usize) -> Arc<Self> {
        let capacity = capacity.max(2).next_power_of_two();
        let buf = (0..capacity)
            .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
            .collect::<Vec<_>>()
            .into_boxed_slice();
        Arc::new(Ring {
            head: CachePadded(AtomicUsize::new(0)),
            tail: CachePadded(AtomicUsize::new(0)),
            dropped: CachePadded(AtomicU64::new(0)),
            buf,
            mask: capacity - 1,
            successor: Mutex::new(None),
            offered: AtomicBool::new(false),
        })
    }
}

// SAFETY: the ring hands `T` values from one thread to another, so it is Send
// and Sync when `T: Send`. Each slot is written only by the producer while it
// lies outside `head..tail` and read only by the consumer while it lies inside;
// the release/acquire pairs on `tail` and `head` order those accesses.
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: see `Send` above: no slot is ever accessed by both sides at once.
unsafe impl<T: Send> Sync for Ring<T> {}

/// The writing end: owned by exactly one thread (it is `Send` but not `Clone`,
/// and `push` takes `&mut self`).
pub struct Producer<T> {
    ring: Arc<Ring<T>>,
    /// Producer-local copy of `head`, refreshed only when the ring looks full,
    /// so a push does not touch the consumer's cache line.
    cached_head: usize,
    /// The ring's `tail` as this producer, its only writer, last stored it:
    /// a push reads it here, not through the ring.
    tail: usize,
    /// The ring's `mask`, kept beside `tail`.
    mask: usize,
}

/// The reading end: owned by the aggregator.
pub struct Consumer<T> {
    ring: Arc<Ring<T>>,
    /// Consumer-local copy of `tail`, refreshed only when the ring looks empty.
    cached_tail: usize,
}

/// Creates a ring that holds `capacity` values (rounded up to a power of two,
/// at least 2).
pub fn channel<T: Copy + Send>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let ring = Ring::new(capacity);
    (
        Producer {
            mask: ring.mask,
            ring: ring.clone(),
            cached_head: 0,
            tail: 0,
        },
        Consumer {
            ring,
            cached_tail: 0,
        },
    )
}

impl<T: Copy + Send> Producer<T> {
    /// Appends `value`, or returns it when the ring is full (the caller decides
    /// whether to count it with [`Producer::count_drop`]).
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), T> {
        // `T: Copy`: the closure copies `value`, so it is still ours to hand
        // back when the ring is full.
        if self.push_with(|| value) {
            Ok(())
        } else {
            Err(value)
        }
    }

    /// Appends the value `make` builds, writing it straight into the ring's slot
    /// (no intermediate copy of a large record); returns false, without calling
    /// `make`, when the ring is full.
    #[inline(always)]
    pub fn push_with(&mut self, make: impl FnOnce() -> T) -> bool {
        // SAFETY: `MaybeUninit::write` initializes the whole value.
        unsafe {
            self.push_init(|slot| {
                slot.write(make());
            })
        }
    }

    /// Appends the value `init` writes into the ring's slot field by field (so
    /// a large record is never assembled elsewhere and copied); returns false,
    /// without calling `init`, when the ring is full.
    ///
    /// # Safety
    ///
    /// `init` must initialize the whole value before it returns: the consumer
    /// reads the slot as a `T`.
    #[inline(always)]
    pub unsafe fn push_init(&mut self, init: impl FnOnce(&mut MaybeUninit<T>)) -> bool {
        let tail = self.reserve(1);
        // SAFETY: `reserve(1)` found room for `tail`, if any; the caller
        // guarantees `init` initializes the whole value.
        unsafe { self.push_one_at(tail, init) }
    }

    /// `push_init` when this producer's own view of the consumer's `head`
    /// already shows room: false, having done nothing, when it does not (then
    /// `push_init`, which refreshes that view, may still find room). It never
    /// loads the consumer's `head` and never moves to a successor ring.
    ///
    /// # Safety
    ///
    /// As [`Producer::push_init`]: `init` must initialize the whole value.
    #[inline(always)]
    pub unsafe fn push_init_if_room(&mut self, init: impl FnOnce(&mut MaybeUninit<T>)) -> bool {
        let tail = self.room_cached(1);
        // SAFETY: `room_cached(1)` found room for `tail`, if any; the caller
        // guarantees `init` initializes the whole value.
        unsafe { self.push_one_at(tail, init) }
    }

    /// Lets `init` write slot `tail` and publishes it; false, doing nothing,
    /// when there is no `tail` (no room).
    ///
    /// # Safety
    ///
    /// As [`Producer::write`]: `tail`, when there is one, is what `reserve(1)`
    /// or `room_cached(1)` just returned, and `init` must initialize the
    /// whole value.
    #[inline(always)]
    unsafe fn push_one_at(
        &mut self,
        tail: Option<usize>,
        init: impl FnOnce(&mut MaybeUninit<T>),
    ) -> bool {
        let Some(tail) = tail else {
            return false;
        };
        // SAFETY: by the caller's promise there was room for slot `tail`, and
        // `init` initializes all of it.
        unsafe { self.write(tail, init) };
        self.publish(tail.wrapping_add(1));
        true
    }

    /// Appends two values that belong together (`first`, then `second`), both
    /// written in place and published with one store, so the consumer sees
    /// both or neither; returns false, calling neither, when the ring has no
    /// room for both.
    ///
    /// # Safety
    ///
    /// As [`Producer::push_init`]: each closure must initialize its whole value.
    #[inline]
    pub unsafe fn push_pair_init(
        &mut self,
        first: impl FnOnce(&mut MaybeUninit<T>),
        second: impl FnOnce(&mut MaybeUninit<T>),
    ) -> bool {
        let Some(tail) = self.reserve(2) else {
            return false;
        };
        // SAFETY: `reserve(2)` found room for slots `tail` and `tail + 1`;
        // the caller guarantees each closure initializes all of its value.
        unsafe {
            self.write(tail, first);
            self.write(tail.wrapping_add(1), second);
        }
        self.publish(tail.wrapping_add(2));
        true
    }

    /// Appends every value of `values`, all published with one store, so the
    /// consumer sees all of them or none; returns false, taking none, when
    /// the ring has no room for `values.len()` more.
    pub fn push_all(&mut self, values: impl ExactSizeIterator<Item = T>) -> bool {
        let n = values.len();
        if n == 0 {
            return true;
        }
        let Some(tail) = self.reserve(n) else {
            return false;
        };
        // `take(n)`: `len` is only a promise of a safe trait, and room was
        // found for `n` values.
        let mut written = 0;
        for value in values.take(n) {
            // SAFETY: `reserve(n)` found room for slots `tail..tail + n`, and
            // `written < n`; `MaybeUninit::write` initializes the whole value.
            unsafe {
                self.write(tail.wrapping_add(written), |slot| {
                    slot.write(value);
                })
            };
            written += 1;
        }
        self.publish(tail.wrapping_add(written));
        true
    }

    /// Lets `init` write slot `index` in place.
    ///
    /// # Safety
    ///
    /// `reserve` must have found room for `index` (so it lies outside the
    /// consumer's readable range `head..tail`, and no later `publish` has
    /// passed it yet), and `init` must initialize the whole value.
    #[inline(always)]
    unsafe fn write(&mut self, index: usize, init: impl FnOnce(&mut MaybeUninit<T>)) {
        // SAFETY: `self.mask` is this ring's `mask` (set with `ring`), one less
        // than its buffer's power-of-two length, so the masked index is in
        // bounds.
        let cell = unsafe { self.ring.buf.get_unchecked(index & self.mask) };
        cell.with_mut(|slot| {
            // SAFETY: by the caller's promise the slot is outside the
            // consumer's readable range, so only this producer touches it, and
            // the consumer cannot read it until `publish` moves `tail` past it.
            init(unsafe { &mut *slot });
        });
    }

    /// Makes every slot below `tail` readable by the consumer.
    #[inline(always)]
    fn publish(&mut self, tail: usize) {
        self.tail = tail;
        // Release: publishes the slot writes before it to the consumer's
        // acquire load of `tail`.
        self.ring.tail.store(tail, Ordering::Release);
    }

    /// The index to write next, when the ring (or the successor it moves to)
    /// has room for `n` more values; `None` when it has not.
    #[inline(always)]
    fn reserve(&mut self, n: usize) -> Option<usize> {
        loop {
            if let Some(tail) = self.room_cached(n) {
                return Some(tail);
            }
            // Acquire: pairs with the consumer's release store of `head`, so
            // its reads of the slots it freed happen before we overwrite them.
            self.cached_head = self.ring.head.load(Ordering::Acquire);
            if let Some(tail) = self.room_cached(n) {
                return Some(tail);
            }
            if !self.adopt_successor() {
                return None;
            }
        }
    }

    /// The index to write next when this producer's own view of `head`
    /// shows room for `n` more values (then the ring surely has it: `head`
    /// only grows); `None` when it does not.
    #[inline(always)]
    fn room_cached(&self, n: usize) -> Option<usize> {
        let tail = self.tail;
        let last = tail.wrapping_add(n - 1);
        (last.wrapping_sub(self.cached_head) <= self.mask).then_some(tail)
    }

    /// Counts one value lost to a full ring.
    #[inline]
    pub fn count_drop(&self) {
        // Relaxed: a statistic; the aggregator reads it after it has drained, and
        // exactness at the end is given by the thread join / flush handshake.
        self.ring.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// True when the ring is more than half full, so the consumer
    /// should drain it soon. Reads the consumer's index only when the cached
    /// view already looks that full.
    #[inline]
    pub fn needs_drain(&mut self) -> bool {
        if !self.may_need_drain() {
            return false;
        }
        // Acquire: as in `push`.
        self.cached_head = self.ring.head.load(Ordering::Acquire);
        let drain = self.may_need_drain();
        if drain {
            // The old ring still needs its drain, so the answer stays true.
            self.adopt_successor();
        }
        drain
    }

    /// False when the ring is surely at most half full, by this producer's
    /// own view of `head` (no load of it); true when [`Producer::needs_drain`]
    /// must be asked.
    #[inline(always)]
    pub fn may_need_drain(&self) -> bool {
        self.tail.wrapping_sub(self.cached_head) > self.capacity() / 2
    }

    /// Moves to the larger ring the consumer offered, if one is on offer (and
    /// its lock is free: `try_lock`, never a wait). Returns whether it moved.
    /// Dropping this producer's handle on the old ring makes it orphaned, so
    /// the consumer retires it once drained.
    #[cold]
    #[inline(never)]
    fn adopt_successor(&mut self) -> bool {
        // Relaxed: only a hint; the lock below orders the offer itself. A
        // producer that misses a fresh offer takes it at a later push.
        if !self.ring.offered.load(Ordering::Relaxed) {
            return false;
        }
        let next = match self.ring.successor.try_lock() {
            Ok(mut offered) => offered.take(),
            Err(_) => None,
        };
        match next {
            Some(next) => {
                // The lock ordered the offer's writes (the new ring's
                // initialization) before this take.
                self.ring = next;
                self.mask = self.ring.mask;
                self.cached_head = 0;
                // Relaxed: a fresh ring; its `tail` is ours to store from now on.
                self.tail = self.ring.tail.load(Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// The ring's capacity.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }
}

impl<T: Copy + Send> Consumer<T> {
    /// Takes the oldest value, if any (the loom models' and the properties'
    /// view of the ring; the crate drains with `pop_with`).
    #[cfg_attr(not(test), allow(dead_code))]
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        self.pop_with(|value| *value)
    }

    /// Hands the oldest value to `f` where it lies in the ring (no copy of a
    /// large record), then frees its slot; `None`, without calling `f`, when
    /// the ring is empty.
    #[inline]
    pub fn pop_with<R>(&mut self, f: impl FnOnce(&T) -> R) -> Option<R> {
        let ring = &*self.ring;
        // Relaxed: only this consumer ever stores `head`.
        let head = ring.head.load(Ordering::Relaxed);
        if head == self.cached_tail {
            // Acquire: pairs with the producer's release store of `tail`, so the
            // slot writes before it are visible to the read below.
            self.cached_tail = ring.tail.load(Ordering::Acquire);
            if head == self.cached_tail {
                return None;
            }
        }
        let out = ring.buf[head & ring.mask].with(|slot| {
            // SAFETY: `head != tail`, so slot `head` was fully written by the
            // producer before its release store of a `tail` beyond it, which our
            // acquire load observed; the producer will not overwrite it until we
            // move `head` past it below, after `f` has returned (and `f` cannot
            // keep the reference: it is only borrowed for the call).
            f(unsafe { (*slot).assume_init_ref() })
        });
        // Release: our read of the slot happens before the producer's acquire
        // load of `head` lets it reuse the slot.
        ring.head.store(head.wrapping_add(1), Ordering::Release);
        Some(out)
    }

    /// Offers the producer a ring of `capacity` values (rounded up to a power
    /// of two) to move to, and returns that ring's consumer; `None` when it
    /// would not be larger, or when an offer is already pending.
    pub fn offer_larger(&mut self, capacity: usize) -> Option<Consumer<T>> {
        if capacity.max(2).next_power_of_two() <= self.capacity() {
            return None;
        }
        let mut offered = match self.ring.successor.try_lock() {
            Ok(offered) => offered,
            Err(_) => return None,
        };
        if offered.is_some() {
            return None;
        }
        let ring = Ring::new(capacity);
        *offered = Some(ring.clone());
        // Relaxed: a hint for the producer (see `adopt_successor`).
        self.ring.offered.store(true, Ordering::Relaxed);
        Some(Consumer {
            ring,
            cached_tail: 0,
        })
    }

    /// Hands up to `limit` values to `f`, each where it lies, oldest first.
    /// Returns how many, and whether the ring may now be discarded: its
    /// producer was gone before the first pop (so every value it pushed was
    /// visible to these pops) and the ring was found empty.
    pub fn drain_with(&mut self, limit: usize, mut f: impl FnMut(&T)) -> (usize, bool) {
        // Asked before the pops: asked after, the producer could have pushed
        // its last values and gone in between, and they would be lost.
        let orphaned = self.is_orphaned();
        let mut n = 0;
        while n < limit && self.pop_with(&mut f).is_some() {
            n += 1;
        }
        // Fewer than `limit` means a pop found the ring empty.
        (n, orphaned && n < limit)
    }

    /// Values lost to a full ring so far.
    pub fn dropped(&self) -> u64 {
        // Relaxed: a monotonic statistic (see `Producer::count_drop`).
        self.ring.dropped.load(Ordering::Relaxed)
    }

    /// True once the producer has been dropped (its thread ended). Every value
    /// it pushed is then visible to the pops that follow, so a consumer that
    /// saw this *before* draining the ring empty can be discarded (one that saw
    /// it after may have missed the producer's last pushes).
    pub fn is_orphaned(&self) -> bool {
        let orphaned = Arc::strong_count(&self.ring) == 1;
        if orphaned {
            // Acquire: pairs with the release decrement of the producer's
            // `Arc` as it was dropped, which its release stores of `tail` (and
            // of the drop counter) precede.
            fence(Ordering::Acquire);
        }
        orphaned
    }

    /// The ring's capacity.
    pub fn capacity(&self) -> usize {
        self.ring.mask + 1
    }
}
