//! A global allocator that tracks the bytes live and their peak, for the
//! tests that bound what decoding or merging untrusted snapshot bytes may
//! take. Each test file installs it with
//! `#[global_allocator] static GLOBAL: peak_support::Peak = peak_support::Peak;`
//! and measures with [`peak_of`] while holding [`serial`].
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Forwards to the system allocator; counts bytes live and their peak.
pub struct Peak;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // Relaxed: statistics, read by the one test that holds `serial`.
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Relaxed: as in `alloc`.
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Tests in a binary that use [`peak_of`] run one at a time, so a peak is
/// one operation's.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// `f`'s result and the most it held allocated at once above what was live
/// before it.
pub fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    // Relaxed: this thread is the only one allocating meanwhile (`serial`).
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let r = f();
    (r, PEAK.load(Ordering::Relaxed) - before)
}

/// `f`'s error, as text, and the peak it reached as [`peak_of`] measures it;
/// panics, at the caller's line, if `f` succeeds.
#[track_caller]
pub fn refused<T, E: std::fmt::Display>(f: impl FnOnce() -> Result<T, E>) -> (String, usize) {
    let (r, peak) = peak_of(f);
    match r {
        Ok(_) => panic!("the hostile input was accepted (peak {peak} bytes)"),
        Err(e) => (e.to_string(), peak),
    }
}
