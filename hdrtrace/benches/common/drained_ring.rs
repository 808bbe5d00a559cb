//! The per-thread ring the bound subscribers of `span_overhead`'s global
//! group append to (not a subscriber's ring to use): fixed entries, a release
//! store per append, and optionally a consumer thread that drains every ring
//! every millisecond, as an aggregator would, so each entry's lines move to
//! the consumer's core.

use std::cell::UnsafeCell;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::time::Duration;

/// What the consumer reads of an entry (folded into a checksum, so the reads
/// are not optimized away).
pub trait Entry: Copy + Send + 'static {
    fn fold(&self) -> u64;
}

/// Keeps the producer's and the consumer's index on lines of their own.
#[repr(align(128))]
struct Padded<T>(T);

/// One thread's entries: written by it, read by the consumer (if any).
struct Ring<E> {
    entries: Box<[UnsafeCell<E>]>,
    /// Published entry count (the producer's).
    tail: Padded<AtomicUsize>,
    /// Consumed entry count (the consumer's).
    head: Padded<AtomicUsize>,
    /// Entries not written because the consumer was a whole ring behind.
    dropped: AtomicU64,
}

// SAFETY: an entry is written only by the ring's thread while it is outside
// `head..tail`, and read by the consumer only inside it; the release stores
// of `tail` and of `head` order the two (see `append` and `drain`).
unsafe impl<E: Send> Sync for Ring<E> {}

/// A ring as the consumer sees it, whatever its entries.
trait Drain: Sync {
    /// Reads every published entry; their checksum.
    fn drain(&self) -> u64;
    /// (written, dropped).
    fn counts(&self) -> (u64, u64);
}

impl<E: Entry> Drain for Ring<E> {
    fn drain(&self) -> u64 {
        let mask = self.entries.len() - 1;
        // Relaxed: only the consumer stores `head`.
        let head = self.head.0.load(Ordering::Relaxed);
        // Acquire: pairs with the producer's release store in `append`.
        let tail = self.tail.0.load(Ordering::Acquire);
        let mut sum = 0u64;
        for i in head..tail {
            // SAFETY: `i` is in `head..tail`: published, and not rewritten
            // before the release store of `head` below.
            sum = sum.wrapping_add(unsafe { &*self.entries[i & mask].get() }.fold());
        }
        // Release: our reads of the entries happen before the producer's
        // acquire load of `head` lets it overwrite them.
        self.head.0.store(tail, Ordering::Release);
        sum
    }

    fn counts(&self) -> (u64, u64) {
        (
            self.tail.0.load(Ordering::Relaxed) as u64,
            self.dropped.load(Ordering::Relaxed),
        )
    }
}

/// Every drained ring, for the consumer.
static RINGS: Mutex<Vec<&'static dyn Drain>> = Mutex::new(Vec::new());

/// The drained rings' entries, over every thread: (written, not written
/// because the consumer was a whole ring behind).
pub fn counts() -> (u64, u64) {
    let rings = RINGS.lock().expect("rings");
    rings.iter().fold((0, 0), |(w, d), r| {
        let (rw, rd) = r.counts();
        (w + rw, d + rd)
    })
}

/// This thread's end of one ring.
pub struct Writer<E: 'static> {
    ring: &'static Ring<E>,
    cached_head: usize,
}

impl<E: Entry> Writer<E> {
    /// Cold: a ring of `len` (a power of two) entries, filled with `empty`;
    /// when `drained`, handed to the consumer (started with the first one).
    #[inline(never)]
    pub fn new(len: usize, empty: E, drained: bool) -> Self {
        let ring: &'static Ring<E> = Box::leak(Box::new(Ring {
            entries: (0..len).map(|_| UnsafeCell::new(empty)).collect(),
            tail: Padded(AtomicUsize::new(0)),
            head: Padded(AtomicUsize::new(0)),
            dropped: AtomicU64::new(0),
        }));
        if drained {
            RINGS.lock().expect("rings").push(ring);
            static CONSUMER: Once = Once::new();
            CONSUMER.call_once(|| {
                std::thread::spawn(|| loop {
                    let rings = RINGS.lock().expect("rings").clone();
                    black_box(rings.iter().map(|r| r.drain()).sum::<u64>());
                    std::thread::sleep(Duration::from_millis(1));
                });
            });
        }
        Self {
            ring,
            cached_head: 0,
        }
    }

    /// Appends `entry`; a drained ring a whole ring ahead of its consumer
    /// drops it (counted), an undrained one just wraps.
    #[inline(always)]
    pub fn append<const DRAINED: bool>(&mut self, entry: E) {
        let ring = self.ring;
        // Relaxed: only this thread stores `tail`.
        let tail = ring.tail.0.load(Ordering::Relaxed);
        if DRAINED && tail.wrapping_sub(self.cached_head) >= ring.entries.len() {
            // Acquire: pairs with the consumer's release store of `head`.
            self.cached_head = ring.head.0.load(Ordering::Acquire);
            if tail.wrapping_sub(self.cached_head) >= ring.entries.len() {
                ring.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        // SAFETY: slot `tail` is outside the consumer's `head..tail` (checked
        // above when drained; an undrained ring has no consumer).
        unsafe { *ring.entries[tail & (ring.entries.len() - 1)].get() = entry };
        // Release: publishes the entry to the consumer's acquire load.
        ring.tail.0.store(tail.wrapping_add(1), Ordering::Release);
    }
}
