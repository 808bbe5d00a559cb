//! Per-thread state: this thread's ring producer and its stack of entered spans.
//!
//! One `Local` per (thread, subscriber) pair, created on the thread's first span
//! (the only allocation a thread ever makes here: warm-up). A call finds it
//! through `LAST`, a one-entry cache of the state used last (one thread-local
//! read, no lookup, no destructor-registration check), and only when that is
//! another subscriber's by a scan of a tiny list.

use crate::record::Record;
use crate::ring::Producer;
use crate::subscriber::slots::{SlotCache, SlotTable};
use crate::subscriber::span::SpanSlot;
use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// How deep one thread's entered-span stack goes; deeper enters are counted
/// (and matched on exit) but not tracked.
pub(crate) const STACK_DEPTH: usize = 64;

pub(crate) struct Local {
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

/// This thread's states, one per live subscriber, each boxed and owned through
/// a raw pointer so [`LAST`] can keep a pointer to one while the list changes.
/// The subscriber's id and liveness flag are kept beside the pointer, so a scan
/// of the list never reads a `Local` (one may be lent out as `&mut` meanwhile).
struct Locals(Vec<Owned>);

struct Owned {
    core_id: u64,
    core_alive: Arc<AtomicBool>,
    local: NonNull<Local>,
}

impl Owned {
    fn free(self) {
        // SAFETY: `local` came from `Box::into_raw` in `with_local_slow` and is
        // freed only here, once: the entry is removed from the list as it is
        // freed, and the caller made sure it is not lent out (nor cached in
        // `LAST`, which it cleared when it pointed here).
        drop(unsafe { Box::from_raw(self.local.as_ptr()) });
    }
}

impl Drop for Locals {
    fn drop(&mut self) {
        // The thread is ending: nothing may find these states through the
        // cache any more (a span closed by a later thread-local destructor
        // finds no state and is counted as an orphan, as before).
        LAST.set(Last::EMPTY);
        for owned in self.0.drain(..) {
            owned.free();
        }
    }
}

/// The state used last, so the common call (the same subscriber as the call
/// before) costs one thread-local read and no lookup. `core` is the
/// subscriber's id, with [`BUSY`] set while its state is lent out to a call (a
/// re-entrant call for the same subscriber then gets `None`, as the `RefCell`
/// gave before). Two words and no padding: copying it in and out of the cell is
/// two plain moves each way.
#[derive(Clone, Copy)]
struct Last {
    core: u64,
    local: *mut Local,
}

/// Marks `Last::core` while the state is lent out (subscriber ids are counted
/// from 1 and never reach it).
const BUSY: u64 = 1 << 63;

impl Last {
    const EMPTY: Last = Last {
        core: 0,
        local: std::ptr::null_mut(),
    };

    fn busy(self) -> bool {
        self.core & BUSY != 0
    }
}

thread_local! {
    static LOCALS: RefCell<Locals> = const { RefCell::new(Locals(Vec::new())) };
    // No destructor, so reading it is a plain thread-local load with no
    // registration check.
    static LAST: Cell<Last> = const { Cell::new(Last::EMPTY) };
}

impl Local {
    pub(crate) fn new(
        core_alive: Arc<AtomicBool>,
        producer: Producer<Record>,
        slots: Arc<SlotTable<SpanSlot>>,
        home: usize,
        ordinal: u64,
    ) -> Self {
        Self {
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
    let last = LAST.get();
    if last.core == core_id {
        LAST.set(Last {
            core: core_id | BUSY,
            ..last
        });
        // SAFETY: `last.local` points to a live boxed `Local` owned by this
        // thread's `Locals` (an entry is freed only after `LAST` stops pointing
        // to it, and `LAST` is cleared before the list is destroyed). It is not
        // lent out elsewhere: it was not marked busy, we marked it, and the only other
        // way to a `Local` (`with_local_slow`) never hands out or frees the one
        // `LAST` lends.
        let r = f(unsafe { &mut *last.local });
        LAST.set(last);
        return Some(r);
    }
    if last.core == core_id | BUSY {
        return None;
    }
    with_local_slow(core_id, make, f)
}

/// Cold path: another subscriber than last time (or the first call), found by a
/// scan of this thread's list, created when missing; it becomes `LAST`.
#[inline(never)]
fn with_local_slow<R>(
    core_id: u64,
    make: impl FnOnce() -> Local,
    f: impl FnOnce(&mut Local) -> R,
) -> Option<R> {
    LOCALS
        .try_with(|cell| {
            let mut locals = cell.try_borrow_mut().ok()?;
            let last = LAST.get();
            let ptr = match locals.0.iter().find(|o| o.core_id == core_id) {
                Some(o) => o.local,
                None => {
                    // Cold: first span of this thread for this subscriber. Drop
                    // the states of subscribers that have shut down meanwhile,
                    // except one lent out right now.
                    let mut i = 0;
                    while i < locals.0.len() {
                        let o = &locals.0[i];
                        // Relaxed: a hint; a stale `true` only keeps an entry longer.
                        let dead = !o.core_alive.load(Ordering::Relaxed);
                        let cached = o.local.as_ptr() == last.local;
                        if dead && !(cached && last.busy()) {
                            if cached {
                                LAST.set(Last::EMPTY);
                            }
                            locals.0.swap_remove(i).free();
                        } else {
                            i += 1;
                        }
                    }
                    let local = make();
                    let owned = Owned {
                        core_id,
                        core_alive: local.core_alive.clone(),
                        local: NonNull::from(Box::leak(Box::new(local))),
                    };
                    let ptr = owned.local;
                    locals.0.push(owned);
                    ptr
                }
            };
            // Another call holds `LAST`'s state: leave the cache to it (it
            // restores it when it returns).
            let cache = !LAST.get().busy();
            if cache {
                LAST.set(Last {
                    core: core_id | BUSY,
                    local: ptr.as_ptr(),
                });
            }
            // SAFETY: `ptr` is a live boxed `Local` owned by the list we hold
            // borrowed. It is not lent out: `LAST` lends only its own state,
            // and when `LAST` is busy it lends another subscriber's (a busy
            // `LAST` for this `core_id` returned `None` in `with_local`).
            let r = f(unsafe { &mut *ptr.as_ptr() });
            if cache {
                LAST.set(Last {
                    core: core_id,
                    local: ptr.as_ptr(),
                });
            }
            Some(r)
        })
        .ok()
        .flatten()
}
