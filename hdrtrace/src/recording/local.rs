//! Per-thread state: this thread's ring producer and its stack of entered spans.
//!
//! One `Local` per (thread, subscriber) pair, created on the thread's first span
//! (the only allocation a thread ever makes here: warm-up). A call finds it
//! through `LAST`, a one-entry cache of the state used last (one thread-local
//! read, no lookup, no destructor-registration check), and only when that is
//! another subscriber's by a scan of a tiny list.

use crate::handoff::ring::Producer;
use crate::handoff::wire::WireRecord;
use crate::handoff::Handoff;
use crate::logs::ThreadLog;
use crate::recording::slots::{SlotCache, SlotTable};
use crate::recording::span::SpanSlot;
use crate::sync::{AtomicBool, Ordering};
use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
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
        // SAFETY: `local` came from `Box::leak` in `find_or_make` and is
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
/// re-entrant call for the same subscriber then gets `None`).
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
    // `Last` must stay without a destructor: a thread-local without one is
    // never registered for teardown, so reading it needs no check first.
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
        // `depth - 1` wraps to `usize::MAX` on an empty stack, an index `get`
        // refuses like any other past the top.
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
        self.handoff.unmatched.add(n);
    }

    /// `push` while the stack has room: false, having done nothing, when it
    /// is full (then `push` makes room). It reads and writes only the stack.
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
        // As in `current`: `depth - 1` wraps on an empty stack, and `get`
        // refuses it.
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
    leaf::assert_none_running();
    let last = LAST.get();
    if last.core != core_id {
        return find(core_id, make, |local| {
            // `find` made this state `LAST` unless another call holds `LAST`
            // (then it stays that call's, which restores it when it
            // returns). Made `LAST`, it is marked busy while `f` runs and
            // stays `LAST` once `f` returns or unwinds.
            let _lent = (!LAST.get().busy()).then(|| {
                LAST.set(Last {
                    core: core_id | BUSY,
                    local,
                });
                Lent(Last {
                    core: core_id,
                    local,
                })
            });
            // SAFETY: `local` is a live boxed `Local` owned by the list `find`
            // holds borrowed while this runs, so no other call can find it in
            // the list (a re-entrant call's `find` cannot borrow the list) or
            // free it. It is not lent out: `LAST` lends only the state it
            // points to, which is this one only if `find` just made it so, and
            // `find` returns `None` when this subscriber's state is lent out.
            Some(f(unsafe { &mut *local }))
        });
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
    // out elsewhere: it was not marked busy, and `find`, the only other way to
    // a `Local`, never hands out or frees one `LAST` lends. Nothing takes it
    // while `f` runs: we marked it busy, and no other thread reads `LAST`.
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
/// *leaf*: one that cannot re-enter (see [`with_local_leaf`]). Debug builds
/// check the promise: a leaf closure that reaches `with_local`,
/// `with_local_leaf` or `with_last_local` on its thread panics there.
#[derive(Clone, Copy)]
pub(crate) struct Leaf(());

impl Leaf {
    /// # Safety
    ///
    /// The closure passed with this token must not reach `with_local`,
    /// `with_local_leaf` or `with_last_local` on this thread, directly or
    /// through anything it runs: it must not call into `tracing`, user code or
    /// anything that might (the subscriber's own slot table, rings and
    /// counters are fine).
    #[inline(always)]
    pub(crate) const unsafe fn promise() -> Self {
        Leaf(())
    }
}

/// The debug-build check of the `Leaf` promise: a thread-local flag set while
/// a leaf closure runs, which every entry into this thread's state asserts is
/// clear. Release builds keep neither the flag nor the checks.
mod leaf {
    #[cfg(debug_assertions)]
    thread_local! {
        static RUNNING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// Panics, in debug builds, when a leaf closure is running on this thread:
    /// it broke its `Leaf` promise by reaching this thread's state.
    #[inline(always)]
    pub(super) fn assert_none_running() {
        #[cfg(debug_assertions)]
        assert!(
            !RUNNING.get(),
            "a leaf closure re-entered this thread's state (see `Leaf::promise`)"
        );
    }

    /// Marks a leaf closure as running on this thread until the guard is
    /// dropped, also when the closure unwinds (debug builds; in release builds
    /// the guard is an empty value with nothing to do).
    #[inline(always)]
    pub(super) fn running() -> Running {
        #[cfg(debug_assertions)]
        RUNNING.set(true);
        Running
    }

    pub(super) struct Running;

    #[cfg(debug_assertions)]
    impl Drop for Running {
        fn drop(&mut self) {
            RUNNING.set(false);
        }
    }
}

/// `with_local` for a leaf closure (the `Leaf` token is the caller's promise),
/// which is lent the state without marking `LAST` busy: a leaf cannot reach
/// `LAST` while it runs, so there is nothing to guard against. `f` runs here,
/// inline; the cold path (`find`) only finds the state.
#[inline(always)]
pub(crate) fn with_local_leaf<R>(
    _leaf: Leaf,
    core_id: u64,
    make: impl FnOnce() -> Local,
    f: impl FnOnce(&mut Local) -> R,
) -> Option<R> {
    leaf::assert_none_running();
    let last = LAST.get();
    let local = if last.core == core_id {
        last.local
    } else {
        find(core_id, make, Some)?
    };
    let _running = leaf::running();
    // SAFETY: `local` points to a live boxed `Local` owned by this thread's
    // `Locals`: the one `LAST` lends (freed only after `LAST` stops pointing to
    // it, and `LAST` is cleared before the list is destroyed), or the one
    // `find` found in the list. It is not lent out elsewhere: `LAST`'s was not
    // marked busy, `find` refuses this subscriber's state when it is, and
    // `find` never hands out or frees the one `LAST` lends. Nothing frees or
    // takes it while `f` runs: `f` is a leaf (the `Leaf` promise, checked in
    // debug builds), so it cannot reach `LAST` or `find` on this thread, and no
    // other thread reads this thread's `LAST` or list.
    Some(f(unsafe { &mut *local }))
}

/// `with_local_leaf`'s fast path alone: `f` on the state `LAST` lends when it
/// is `core_id`'s, `None` (without calling `f`) otherwise, and then the caller
/// takes its own slow path. It never finds or makes a state.
#[inline(always)]
pub(crate) fn with_last_local<R>(
    _leaf: Leaf,
    core_id: u64,
    f: impl FnOnce(&mut Local) -> R,
) -> Option<R> {
    leaf::assert_none_running();
    let last = LAST.get();
    if last.core != core_id {
        return None;
    }
    let _running = leaf::running();
    // SAFETY: as in `with_local_leaf`, for the state `LAST` lends: live,
    // owned by this thread's list, not lent out (not marked busy), and `f`, a
    // leaf, cannot reach anything that would free or take it.
    Some(f(unsafe { &mut *last.local }))
}

/// The cold path of every entry: this subscriber's state when `LAST` holds
/// another's (or none), found in this thread's list or made with `make`, and
/// made `LAST` unless `LAST` is lent out right now; `then` runs on it with the
/// list still borrowed. `None`, without calling `then`, when this
/// subscriber's state is itself lent out (a re-entrant call), when the list
/// is borrowed (a call re-entered from inside another's `then`), or when the
/// thread is being torn down.
#[inline(never)]
fn find<R>(
    core_id: u64,
    make: impl FnOnce() -> Local,
    then: impl FnOnce(*mut Local) -> Option<R>,
) -> Option<R> {
    leaf::assert_none_running();
    if LAST.get().core == core_id | BUSY {
        return None;
    }
    LOCALS
        .try_with(|cell| {
            let mut locals = cell.try_borrow_mut().ok()?;
            let local = locals.find_or_make(core_id, make).as_ptr();
            if !LAST.get().busy() {
                LAST.set(Last {
                    core: core_id,
                    local,
                });
            }
            then(local)
        })
        .ok()
        .flatten()
}

impl Locals {
    /// This subscriber's state, made with `make` when missing. Making one
    /// first drops the states of subscribers that have shut down meanwhile,
    /// except one lent out right now.
    fn find_or_make(&mut self, core_id: u64, make: impl FnOnce() -> Local) -> NonNull<Local> {
        if let Some(o) = self.0.iter().find(|o| o.core_id == core_id) {
            return o.local;
        }
        // This thread's first span for this subscriber.
        let last = LAST.get();
        let mut i = 0;
        while i < self.0.len() {
            let o = &self.0[i];
            // Relaxed: a hint; a stale `true` only keeps an entry longer.
            let dead = !o.core_alive.load(Ordering::Relaxed);
            let cached = o.local.as_ptr() == last.local;
            if dead && !(cached && last.busy()) {
                if cached {
                    LAST.set(Last::EMPTY);
                }
                self.0.swap_remove(i).free();
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
        self.0.push(owned);
        ptr
    }
}
