//! What every bound subscriber of `span_overhead`'s global group keeps per
//! thread: its state, made on the thread's first span, and the IDs it hands
//! out and enters.

use std::cell::UnsafeCell;
use std::thread::LocalKey;

/// How many entered spans the stack tracks (deeper enters are not tracked).
const STACK: usize = 64;

/// Runs `f` on this thread's state in `key`, made by `make` on first use.
///
/// # Safety
///
/// `f` must not reach `with_state` for the same `key` (it must not call into
/// tracing): no second `&mut` to the state may exist while it runs.
#[inline(always)]
pub unsafe fn with_state<T: 'static, R>(
    key: &'static LocalKey<UnsafeCell<Option<T>>>,
    make: fn() -> T,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    // SAFETY: the state is this thread's own, and the caller promises `f`
    // does not come back here while it holds it.
    key.with(|s| f(unsafe { &mut *s.get() }.get_or_insert_with(make)))
}

/// Span IDs (handed out in order, from 1) and the entered ones, innermost last.
pub struct SpanStack {
    ids: [u64; STACK],
    depth: usize,
    last_id: u64,
}

impl SpanStack {
    pub const fn new() -> Self {
        Self {
            ids: [0; STACK],
            depth: 0,
            last_id: 0,
        }
    }

    /// A new span's ID.
    #[inline(always)]
    pub fn next_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    /// The innermost entered span, or 0.
    #[inline(always)]
    pub fn current(&self) -> u64 {
        match self.depth {
            0 => 0,
            d => self.ids[d - 1],
        }
    }

    #[inline(always)]
    pub fn enter(&mut self, id: u64) {
        if self.depth < STACK {
            self.ids[self.depth] = id;
            self.depth += 1;
        }
    }

    #[inline(always)]
    pub fn exit(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }
}
