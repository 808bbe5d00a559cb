//! Per-thread state: this thread's ring producer and its stack of entered spans.
//!
//! One `Local` per (thread, subscriber) pair, created on the thread's first span
//! (the only allocation a thread ever makes here: warm-up). A call finds it
//! through `LAST`, a one-entry cache of the state used last (one thread-local
//! read, no lookup, no destructor-registration check), and only when that is
//! another subscriber's by a scan of a tiny list.

use crate::handoff::Handoff;
use crate::logs::ThreadLog;
use crate::ring::Producer;
use crate::subscriber::slots::{SlotCache, SlotTable};
use crate::subscriber::span::SpanSlot;
use crate::wire::WireRecord;
use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

/// How many entered spans one thread's stack tracks: the innermost ones. A
/// deeper enter evicts the outermost entry (counted; that span's busy time
/// for this enter is lost, and its exit is then an unmatched one).
pub(crate) const STACK_DEPTH: usize = 64;

pub(crate) struct Local {
    core_alive: Arc<AtomicBool>,
    pub(crate) producer: Producer<WireRecord>,
    /// This thread's log ring and line buffer, from its first log line on.
    pub(crate) log: Option<ThreadLog>,
    /// Free slots this thread keeps for itself, and the table they belong to
    /// (to give them back when the thread ends). Weak: a thread that outlives
    /// its subscriber must not keep the subscriber's table alive.
    pub(crate) slot_cache: SlotCache,
    slots: Weak<SlotTable<SpanSlot>>,
    /// Entered spans and when, innermost last.
    stack: [(u64, u64); STACK_DEPTH],
    depth: usize,
    /// Where enters and exits that could not be matched are counted, for the
    /// whole subscriber: entries evicted from a full stack, entries of spans
    /// that closed while still entered here, and exits of spans this thread
    /// did not enter (entered elsewhere).
    handoff: Arc<Handoff>,
    pub(crate) home: usize,
    /// This thread's ordinal among the core's threads, plus one: its token
    /// (`Local::thread`), kept as it is used.
    thread: u64,
    seq: u64,
}

impl Drop for Local {
    fn drop(&mut self) {
        if let Some(slots) = self.slots.upgrade() {
            slots.release(&mut self.slot_cache);
        }
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
        producer: Producer<WireRecord>,
        slots: &Arc<SlotTable<SpanSlot>>,
        handoff: Arc<Handoff>,
        home: usize,
        ordinal: u64,
    ) -> Self {
        Self {
            core_alive,
            producer,
            log: None,
            slot_cache: slots.new_cache(),
            slots: Arc::downgrade(slots),
            stack: [(0, 0); STACK_DEPTH],
            depth: 0,
            handoff,
            home,
            thread: ordinal + 1,
            seq: 0,
        }
    }

    /// The innermost span this thread is in that is still open, with what
    /// `lookup` finds for it (`None` for a span that has closed), or `None`.
    /// Entries of spans that closed while entered here (an `Entered` guard
    /// forgotten, or moved to another thread) are dropped on the way and
    /// counted, so they never become parents.
    #[inline]
    pub(crate) fn current<T>(&mut self, lookup: impl Fn(u64) -> Option<T>) -> Option<(u64, T)> {
        // `get` of `depth - 1`, wrapped: one comparison says both that the
        // stack is not empty and that the index is in bounds.
        while let Some(&(id, _)) = self.stack.get(self.depth.wrapping_sub(1)) {
            if let Some(found) = lookup(id) {
                return Some((id, found));
            }
            self.depth -= 1;
            self.count_unmatched(1);
        }
        None
    }

    #[cold]
    fn count_unmatched(&self, n: u64) {
        self.handoff.count_unmatched(n);
    }

    /// `push` while the stack has room: false, having done nothing, when it
    /// is full (then `push` makes room). No call, so a caller's fast path
    /// keeps its values in scratch registers.
    #[inline(always)]
    pub(crate) fn try_push(&mut self, id: u64, now: u64) -> bool {
        match self.stack.get_mut(self.depth) {
            Some(entry) => {
                *entry = (id, now);
                self.depth += 1;
                true
            }
            None => false,
        }
    }

    /// Enters `id` at `now`. A full stack first drops entries of spans that
    /// have closed (`live`), then, if still full, evicts the outermost entry:
    /// the innermost spans, which new spans and events belong to, stay exact.
    #[inline]
    pub(crate) fn push(&mut self, id: u64, now: u64, live: impl Fn(u64) -> bool) {
        if !self.try_push(id, now) {
            self.make_room(live);
            self.stack[self.depth] = (id, now);
            self.depth += 1;
        }
    }

    #[cold]
    fn make_room(&mut self, live: impl Fn(u64) -> bool) {
        let before = self.depth;
        let mut kept = 0;
        for i in 0..before {
            if live(self.stack[i].0) {
                self.stack[kept] = self.stack[i];
                kept += 1;
            }
        }
        self.depth = kept;
        if kept == STACK_DEPTH {
            self.stack.copy_within(1.., 0);
            self.depth -= 1;
        }
        self.count_unmatched((before - self.depth) as u64);
    }

    /// Removes `id`'s entry when it is the innermost one (the common case:
    /// the innermost span exits first) and returns when it was entered;
    /// `None` otherwise, and then [`Local::pop_below`] finds it.
    #[inline(always)]
    pub(crate) fn pop_top(&mut self, id: u64) -> Option<u64> {
        // As in `current`: `None` for an empty stack too.
        match self.stack.get(self.depth.wrapping_sub(1)) {
            Some(&(top, entered)) if top == id => {
                self.depth -= 1;
                Some(entered)
            }
            _ => None,
        }
    }

    /// Removes the innermost entry for `id` below the top (exits may come
    /// out of order, as with `Registry`) and returns when it was entered;
    /// `None`, counted, for a span this thread has no entry of.
    #[cold]
    #[inline(never)]
    pub(crate) fn pop_below(&mut self, id: u64) -> Option<u64> {
        let found = self.stack[..self.depth].iter().rposition(|e| e.0 == id);
        match found {
            Some(i) => {
                let entered = self.stack[i].1;
                self.stack.copy_within(i + 1..self.depth, i);
                self.depth -= 1;
                Some(entered)
            }
            None => {
                self.count_unmatched(1);
                None
            }
        }
    }

    /// This thread's token for slot ownership (`SpanSlot::add_busy`): unique
    /// among the threads of one core, never 0.
    #[inline]
    pub(crate) fn thread(&self) -> u64 {
        self.thread
    }

    /// A request id unique within this subscriber, for requests that bring none.
    #[inline]
    pub(crate) fn next_request_id(&mut self) -> u64 {
        self.seq += 1;
        self.thread << 40 | (self.seq & ((1 << 40) - 1))
    }
}

/// Runs `f` on this thread's state for the subscriber `core_id`, creating it with
/// `make` on first use. `None` when the thread is being torn down or the call
/// re-entered (both leave the caller to count what it could not record).
///
/// The state is marked busy in `LAST` while `f` runs, so `f` may run user code
/// that calls back into the subscriber: that call gets `None`. User code that
/// panics unwinds through here with the state intact and no longer busy.
#[inline(always)]
pub(crate) fn with_local<R>(
    core_id: u64,
    make: impl FnOnce() -> Local,
    f: impl FnOnce(&mut Local) -> R,
) -> Option<R> {
    let last = LAST.get();
    if last.core != core_id {
        if last.core == core_id | BUSY {
            return None;
        }
        return with_local_slow(core_id, make, f);
    }
    LAST.set(Last {
        core: core_id | BUSY,
        ..last
    });
    // `f` may run user code that panics: the state is given back on the way
    // out either way, or the thread would stay busy, and untracked, for good.
    let _lent = Lent(last);
    // SAFETY: `last.local` points to a live boxed `Local` owned by this
    // thread's `Locals` (an entry is freed only after `LAST` stops pointing to
    // it, and `LAST` is cleared before the list is destroyed). It is not lent
    // out elsewhere: it was not marked busy, and the only other ways to a
    // `Local` (`with_local_slow`, `leaf_slow`) never hand out or free the one
    // `LAST` lends. Nothing takes it while `f` runs: we marked it busy, and no
    // other thread reads `LAST`.
    Some(f(unsafe { &mut *last.local }))
}

/// Gives `LAST` back its value when dropped: after the call it was lent for
/// returns, and when that call unwinds.
struct Lent(Last);

impl Drop for Lent {
    #[inline(always)]
    fn drop(&mut self) {
        LAST.set(self.0);
    }
}

/// A caller's promise that the closure it passes along with this token is a
/// *leaf*: one that cannot re-enter (see [`with_local_leaf`]).
#[derive(Clone, Copy)]
pub(crate) struct Leaf(());

impl Leaf {
    /// # Safety
    ///
    /// The closure passed with this token must not reach `with_local` or
    /// `with_local_leaf` on this thread, directly or through anything it runs:
    /// it must not call into `tracing`, user code or anything that might (the
    /// subscriber's own slot table, rings and counters are fine).
    #[inline(always)]
    pub(crate) const unsafe fn promise() -> Self {
        Leaf(())
    }
}

/// `with_local` for a leaf closure (the `Leaf` token is the caller's promise),
/// which is lent the state without marking `LAST` busy: two stores fewer per
/// call. `f` is called in one place only, inline, and never handed to the cold
/// path (`leaf_slow` only finds the state), so the values it captures stay in
/// registers instead of being stored for a call that does not happen.
#[inline(always)]
pub(crate) fn with_local_leaf<R>(
    _leaf: Leaf,
    core_id: u64,
    make: impl FnOnce() -> Local,
    f: impl FnOnce(&mut Local) -> R,
) -> Option<R> {
    let last = LAST.get();
    let local = if last.core == core_id {
        last.local
    } else {
        leaf_slow(core_id, make)?
    };
    // SAFETY: `local` points to a live boxed `Local` owned by this thread's
    // `Locals`: the one `LAST` lends (freed only after `LAST` stops pointing to
    // it, and `LAST` is cleared before the list is destroyed), or the one
    // `leaf_slow` found in the list. It is not lent out elsewhere: `LAST`'s was
    // not marked busy, `leaf_slow` refuses a state that is, and the other ways
    // to a `Local` (`with_local_slow`, `leaf_slow`) never hand out or free the
    // one `LAST` lends. Nothing frees or takes it while `f` runs: `f` is a leaf
    // (the `Leaf` promise), so it cannot reach any of them on this thread, and
    // no other thread reads this thread's `LAST` or list.
    Some(f(unsafe { &mut *local }))
}

/// `with_local_leaf`'s fast path alone: `f` on the state `LAST` lends when it
/// is `core_id`'s, `None` (without calling `f`) otherwise. It makes no call, so
/// a caller that takes its slow path (`with_local_leaf`) in a function of its
/// own keeps its hot path free of calls, and of the registers a call makes it
/// save.
#[inline(always)]
pub(crate) fn with_last_local<R>(
    _leaf: Leaf,
    core_id: u64,
    f: impl FnOnce(&mut Local) -> R,
) -> Option<R> {
    let last = LAST.get();
    if last.core != core_id {
        return None;
    }
    // SAFETY: as in `with_local_leaf`, for the state `LAST` lends: live,
    // owned by this thread's list, not lent out (not marked busy), and `f`, a
    // leaf, cannot reach anything that would free or take it.
    Some(f(unsafe { &mut *last.local }))
}

/// Cold path of `with_local_leaf`: this subscriber's state when `LAST` holds
/// another's (or none), found by a scan of this thread's list or created, and
/// made `LAST` unless `LAST` is lent out right now. `None` when this
/// subscriber's state is itself lent out (a re-entrant call) or the thread is
/// being torn down.
#[inline(never)]
fn leaf_slow(core_id: u64, make: impl FnOnce() -> Local) -> Option<*mut Local> {
    if LAST.get().core == core_id | BUSY {
        return None;
    }
    LOCALS
        .try_with(|cell| {
            let mut locals = cell.try_borrow_mut().ok()?;
            let ptr = find_or_make(&mut locals, core_id, make);
            if !LAST.get().busy() {
                LAST.set(Last {
                    core: core_id,
                    local: ptr.as_ptr(),
                });
            }
            Some(ptr.as_ptr())
        })
        .ok()
        .flatten()
}

/// Cold path of `with_local`: another subscriber than last time (or the first
/// call), found by a scan of this thread's list, created when missing; it
/// becomes `LAST`.
#[inline(never)]
fn with_local_slow<R>(
    core_id: u64,
    make: impl FnOnce() -> Local,
    f: impl FnOnce(&mut Local) -> R,
) -> Option<R> {
    LOCALS
        .try_with(|cell| {
            let mut locals = cell.try_borrow_mut().ok()?;
            let ptr = find_or_make(&mut locals, core_id, make);
            // Another call holds `LAST`'s state: leave the cache to it (it
            // restores it when it returns).
            // It becomes `LAST` once `f` returns or unwinds (see `with_local`).
            let _lent = (!LAST.get().busy()).then(|| {
                LAST.set(Last {
                    core: core_id | BUSY,
                    local: ptr.as_ptr(),
                });
                Lent(Last {
                    core: core_id,
                    local: ptr.as_ptr(),
                })
            });
            // SAFETY: `ptr` is a live boxed `Local` owned by the list we hold
            // borrowed. It is not lent out: `LAST` lends only its own state,
            // and when `LAST` is busy it lends another subscriber's (a busy
            // `LAST` for this `core_id` returned `None` in `with_local`).
            Some(f(unsafe { &mut *ptr.as_ptr() }))
        })
        .ok()
        .flatten()
}

/// This subscriber's state in this thread's list, created with `make` when
/// missing. Creating one first drops the states of subscribers that have shut
/// down meanwhile, except one lent out right now.
fn find_or_make(locals: &mut Locals, core_id: u64, make: impl FnOnce() -> Local) -> NonNull<Local> {
    if let Some(o) = locals.0.iter().find(|o| o.core_id == core_id) {
        return o.local;
    }
    // Cold: first span of this thread for this subscriber.
    let last = LAST.get();
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
