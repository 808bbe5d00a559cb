//! The std / loom switch.
//!
//! Every concurrent primitive the core uses comes from here, so the same source
//! compiles against `std` in production and against `loom` in the model checks
//! (`loom-tests/` includes the real files with `#[path]` and builds them with
//! `--cfg loom`, set by its build script for that crate only).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{
    fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex};

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// `std::cell::UnsafeCell` with loom's closure API, so loom can see every access.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// A cell holding an `Arc<T>` that one writer replaces and many readers load
/// without blocking. In production it is `arc_swap::ArcSwap`; under loom it is a
/// loom mutex, so the publication protocol around it (see
/// `aggregate::publish`) is model-checked while arc-swap's own correctness stays
/// that crate's business.
#[cfg(not(loom))]
pub(crate) struct ArcCell<T>(arc_swap::ArcSwap<T>);

#[cfg(not(loom))]
impl<T> ArcCell<T> {
    pub(crate) fn new(value: Arc<T>) -> Self {
        Self(arc_swap::ArcSwap::new(value))
    }
    #[inline]
    pub(crate) fn load_full(&self) -> Arc<T> {
        self.0.load_full()
    }
    #[inline]
    pub(crate) fn store(&self, value: Arc<T>) {
        self.0.store(value)
    }
}

#[cfg(loom)]
pub(crate) struct ArcCell<T>(loom::sync::Mutex<Arc<T>>);

#[cfg(loom)]
impl<T> ArcCell<T> {
    pub(crate) fn new(value: Arc<T>) -> Self {
        Self(loom::sync::Mutex::new(value))
    }
    pub(crate) fn load_full(&self) -> Arc<T> {
        self.0.lock().unwrap().clone()
    }
    pub(crate) fn store(&self, value: Arc<T>) {
        *self.0.lock().unwrap() = value;
    }
}

/// Pads and aligns a value to its own cache lines (128 bytes covers adjacent-line
/// prefetching on x86-64), so a producer's and a consumer's indices never share one.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        &self.0
    }
}
