//! Per-thread state: this thread's ring producer and its stack of entered spans.
//!
//! One `Local` per (thread, subscriber) pair, created on the thread's first span
//! (the only allocation a thread ever makes here: warm-up) and found by a scan of
//! a tiny vector on every call after that.

use crate::record::Record;
use crate::ring::Producer;
use crate::subscriber::slots::{SlotCache, SlotTable};
use crate::subscriber::span::SpanSlot;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// How deep one thread's entered-span stack goes; deeper enters are counted
/// (and matched on exit) but not tracked.
pub(crate) const STACK_DEPTH: usize = 64;

pub(crate) struct Local {
    core_id: u64,
    core_alive: Arc<AtomicBool>,
    pub(crate) producer: Producer<Record>,
    /// Free slots this thread keeps for itself, and the table they belong to
    /// (to give them back when the thread ends).
    pub(crate) slot_cache: SlotCache,
    slots: Arc<SlotTable<SpanSlot>>,
    stack: [(u64, u64); STACK_DEPTH],
    depth: usize,
    overflow: usize,
    pub(crate) home: usize,
    ordinal: u64,
    seq: u64,
}

impl Drop for Local {
    fn drop(&mut self) {
        self.slots.release(&mut self.slot_cache);
    }
}

thread_local! {
    static LOCALS: RefCell<Vec<Local>> = const { RefCell::new(Vec::new()) };
}

impl Local {
    pub(crate) fn new(
        core_id: u64,
        core_alive: Arc<AtomicBool>,
        producer: Producer<Record>,
        slots: Arc<SlotTable<SpanSlot>>,
        home: usize,
        ordinal: u64,
    ) -> Self {
        Self {
            core_id,
            core_alive,
            producer,
            slot_cache: SlotCache::new(),
            slots,
            stack: [(0, 0); STACK_DEPTH],
            depth: 0,
            overflow: 0,
            home,
            ordinal,
            seq: 0,
        }
    }

    /// The innermost span this thread is in, or 0.
    #[inline]
    pub(crate) fn current(&self) -> u64 {
        if self.depth == 0 {
            0
        } else {
            self.stack[self.depth - 1].0
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, id: u64, now: u64) {
        if self.depth < STACK_DEPTH {
            self.stack[self.depth] = (id, now);
            self.depth += 1;
        } else {
            self.overflow += 1;
        }
    }

    /// Removes the innermost entry for `id` (exits may come out of order, as
    /// with `Registry`) and returns when it was entered.
    #[inline]
    pub(crate) fn pop(&mut self, id: u64) -> Option<u64> {
        let found = self.stack[..self.depth].iter().rposition(|e| e.0 == id);
        match found {
            Some(i) => {
                let entered = self.stack[i].1;
                self.stack.copy_within(i + 1..self.depth, i);
                self.depth -= 1;
                Some(entered)
            }
            None => {
                self.overflow = self.overflow.saturating_sub(1);
                None
            }
        }
    }

    /// A request id unique within this subscriber, for requests that bring none.
    #[inline]
    pub(crate) fn next_request_id(&mut self) -> u64 {
        self.seq += 1;
        (self.ordinal + 1) << 40 | (self.seq & ((1 << 40) - 1))
    }
}

/// Runs `f` on this thread's state for the subscriber `core_id`, creating it with
/// `make` on first use. `None` when the thread is being torn down or the call
/// re-entered (both leave the caller to count what it could not record).
#[inline]
pub(crate) fn with_local<R>(
    core_id: u64,
    make: impl FnOnce() -> Local,
    f: impl FnOnce(&mut Local) -> R,
) -> Option<R> {
    LOCALS
        .try_with(|cell| {
            let mut locals = cell.try_borrow_mut().ok()?;
            let i = match locals.iter().position(|l| l.core_id == core_id) {
                Some(i) => i,
                None => {
                    // Cold: first span of this thread for this subscriber. Drop
                    // the states of subscribers that have shut down meanwhile.
                    // Relaxed: a hint; a stale `true` only keeps an entry longer.
                    locals.retain(|l| l.core_alive.load(Ordering::Relaxed));
                    locals.push(make());
                    locals.len() - 1
                }
            };
            Some(f(&mut locals[i]))
        })
        .ok()
        .flatten()
}
