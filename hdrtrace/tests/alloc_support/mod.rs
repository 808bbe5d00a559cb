//! A global allocator that counts the allocations of the threads a test
//! marks as measured (`MEASURED`), for the tests that prove a path allocates
//! nothing. Each test file installs it with
//! `#[global_allocator] static GLOBAL: alloc_support::Counting = alloc_support::Counting;`.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Forwards to the system allocator; counts what measured threads allocate.
pub struct Counting;

/// Allocations (and reallocations) by measured threads so far.
pub static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set by a test on the threads whose allocations count.
    pub static MEASURED: Cell<bool> = const { Cell::new(false) };
}

fn measured() -> bool {
    MEASURED.try_with(|m| m.get()).unwrap_or(false)
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if measured() {
            // Relaxed: a counter read after the measured threads are joined
            // (or by the measured thread itself).
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

/// `f`'s result and the allocations counted while it ran on this thread with
/// [`MEASURED`] set (by every measured thread then running: counting is
/// global). Nothing here allocates between setting and clearing `MEASURED`.
pub fn allocs_of<T>(f: impl FnOnce() -> T) -> (T, u64) {
    // Relaxed: a counter this thread reads after its own allocations, and
    // after any other measured threads are joined.
    let before = ALLOCS.load(Ordering::Relaxed);
    MEASURED.with(|m| m.set(true));
    let r = f();
    MEASURED.with(|m| m.set(false));
    (r, ALLOCS.load(Ordering::Relaxed) - before)
}
