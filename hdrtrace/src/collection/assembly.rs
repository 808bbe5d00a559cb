//! Request assembly under a memory bound.
//!
//! A request's records reach the aggregator from several threads' rings in any
//! order, and whether it is kept (sampled, over the latency target, failed) is
//! known only once its root has closed. Until then its records wait here, in
//! one arena of fixed-size nodes shared by every request and chained per
//! request (`head` to `tail` through `next`). The common request, fast and
//! successful and not sampled, is then discarded in bulk: its chain is spliced
//! onto the free list in O(1), and nothing was allocated for it (the arena, the
//! request table and the index reuse their space). Only a request that is kept
//! pays for building a [`RequestTrace`].
//!
//! The arena and the request table together hold at most `units` entries (set
//! from `TracingConfig::memory_budget`). When a record does not fit, the oldest
//! records of the oldest pending request are dropped first (counted in
//! `budget_dropped`) and the request is marked as having lost records, so it
//! is finalized as incomplete; a request left with nothing is dropped whole.
//! No fixed timeout drops a long request's children: memory does, oldest
//! first.

use crate::clock::Clock;
use crate::collection::batches::Batches;
use crate::collection::keys::Keys;
use crate::collection::FieldIndex;
use crate::handoff::record::{Record, RecordKind, SpanClass, Status};
use crate::read::requests::{CaptureReason, RequestTrace};
use rustc_hash::FxHashMap;
use std::time::{Duration, Instant};

mod capture;

/// How long a request whose root closed may wait for stragglers.
pub(crate) const GRACE: Duration = Duration::from_secs(2);

const NIL: u32 = u32::MAX;

/// One retained record, chained to the next record of its request (or of the
/// free list).
struct Node {
    rec: Record,
    /// The interned model or stage key of a span record.
    key: u32,
    next: u32,
}

/// Bytes one unit of the budget stands for: a node, or a request's entry with
/// its index slot (smaller than a node).
pub(crate) const UNIT_BYTES: usize = std::mem::size_of::<Node>();

/// An intrusive doubly-linked list of request entries (by index).
#[derive(Clone, Copy)]
struct Links {
    prev: u32,
    next: u32,
}

const UNLINKED: Links = Links {
    prev: NIL,
    next: NIL,
};

/// A request whose records are still arriving.
struct Pending {
    /// The root span's ID (the key in `index`).
    root_span: u64,
    /// The root's node, once it arrived.
    root: u32,
    /// The chain of its other records (spans and events).
    head: u32,
    tail: u32,
    /// Descendant span records seen (kept or not).
    children: u32,
    /// Nodes in the chain.
    nodes: u32,
    /// Whether records of it were dropped for the budget.
    lost: bool,
    /// Whether a model span of it has links (it may wait for a batch).
    linked: bool,
    /// The worst status seen in any record.
    worst: Status,
    /// When its root arrived.
    root_seen: Option<Instant>,
    /// In the age list: every entry, oldest first.
    age: Links,
    /// In the rooted list: entries whose root arrived, by its arrival.
    rooted: Links,
}

/// Head and tail of one intrusive list.
#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

const EMPTY: List = List {
    head: NIL,
    tail: NIL,
};

/// What a kept request's trace may hold, and what it is judged against.
pub(crate) struct Judge<'a> {
    pub(crate) clock: &'a Clock,
    pub(crate) target: Duration,
    /// Spans (and, separately, events) a captured trace holds at most.
    pub(crate) max_spans: usize,
    /// Recent batches, which the request's model spans may link to.
    pub(crate) batches: &'a Batches,
    /// The series, by interned key, that spans were recorded in.
    pub(crate) keys: &'a Keys,
    /// Where each callsite's device time and batch size fields are, by
    /// metadata address (filled as records are aggregated).
    pub(crate) field_index: &'a FieldIndex,
}

pub(crate) struct Assembler {
    index: FxHashMap<u64, u32>,
    entries: Vec<Pending>,
    free_entries: Vec<u32>,
    nodes: Vec<Node>,
    free_nodes: u32,
    age: List,
    rooted: List,
    /// Live nodes plus live entries.
    used: usize,
    units: usize,
    /// Reused while building a kept trace: its span and event nodes.
    scratch: Vec<u32>,
    scratch_events: Vec<u32>,
    /// Records of requests finalized before they arrived, or still waiting
    /// for a root at shutdown.
    pub(crate) late_records: u64,
    /// Records dropped to stay within the budget.
    pub(crate) budget_dropped: u64,
    /// Requests that lost records to the budget.
    pub(crate) budget_evicted: u64,
}

impl Assembler {
    /// An assembler that holds at most `units` nodes and entries together
    /// (at least 2: one record and its request; at most what a `u32` index
    /// reaches).
    pub(crate) fn new(units: usize) -> Self {
        Self {
            index: FxHashMap::default(),
            entries: Vec::new(),
            free_entries: Vec::new(),
            nodes: Vec::new(),
            free_nodes: NIL,
            age: EMPTY,
            rooted: EMPTY,
            used: 0,
            // Indices are `u32`, `NIL` excluded.
            units: units.clamp(2, NIL as usize - 1),
            scratch: Vec::new(),
            scratch_events: Vec::new(),
            late_records: 0,
            budget_dropped: 0,
            budget_evicted: 0,
        }
    }

    /// Pending requests.
    pub(crate) fn pending(&self) -> usize {
        self.index.len()
    }

    /// Files one record (of key `key`); returns the entry of the request it
    /// completed, for [`Assembler::judge`].
    #[inline]
    pub(crate) fn add(&mut self, r: &Record, key: u32, now: Instant) -> Option<u32> {
        if r.request_span == 0 {
            return None;
        }
        let is_root = r.kind == RecordKind::Span && r.span == r.request_span;
        // A root that arrives first with no descendants is complete at once:
        // nothing is stored.
        if is_root && r.descendants == 0 && !self.index.contains_key(&r.request_span) {
            self.make_room(2);
            let node = self.node(r, key)?;
            let e = self.entry(r.request_span)?;
            return Some(self.set_root(e, node, now));
        }
        // Room for this node and, if the request is new, its entry; making it
        // may drop the oldest request, this one included.
        self.make_room(2);
        let e = match self.index.get(&r.request_span) {
            Some(&e) => e,
            None => self.entry(r.request_span)?,
        };
        let node = self.node(r, key)?;
        let p = &mut self.entries[e as usize];
        p.worst = p.worst.max(r.status);
        if is_root {
            let e = self.set_root(e, node, now);
            let p = &self.entries[e as usize];
            return (p.children >= self.nodes[p.root as usize].rec.descendants).then_some(e);
        }
        match r.kind {
            RecordKind::Span => p.children += 1,
            RecordKind::Links => p.linked |= r.class == SpanClass::Model,
            RecordKind::Event => {}
        }
        if p.tail == NIL {
            p.head = node;
        } else {
            self.nodes[p.tail as usize].next = node;
        }
        p.tail = node;
        p.nodes += 1;
        let p = &self.entries[e as usize];
        (p.root != NIL && p.children >= self.nodes[p.root as usize].rec.descendants).then_some(e)
    }

    fn set_root(&mut self, e: u32, node: u32, now: Instant) -> u32 {
        let p = &mut self.entries[e as usize];
        if p.root != NIL {
            // A second root record for one request ID cannot come from the
            // recording side; keep the first.
            self.release_node(node);
            return e;
        }
        p.root = node;
        p.root_seen = Some(now);
        let worst = self.nodes[node as usize].rec.status;
        let p = &mut self.entries[e as usize];
        p.worst = p.worst.max(worst);
        self.push_rooted(e);
        e
    }

    /// Drops the oldest records of the oldest requests until `n` more units
    /// fit; a request left with no record is dropped whole.
    fn make_room(&mut self, n: usize) {
        while self.used + n > self.units {
            let oldest = self.age.head;
            if oldest == NIL {
                return;
            }
            let p = &mut self.entries[oldest as usize];
            if !p.lost {
                p.lost = true;
                self.budget_evicted += 1;
            }
            let head = p.head;
            if head != NIL {
                let next = self.nodes[head as usize].next;
                p.head = next;
                if next == NIL {
                    p.tail = NIL;
                }
                p.nodes -= 1;
                self.budget_dropped += 1;
                self.release_node(head);
            } else {
                self.budget_dropped += (p.root != NIL) as u64;
                self.release(oldest);
            }
        }
    }

    fn chain_len(&self, e: u32) -> u64 {
        let p = &self.entries[e as usize];
        p.nodes as u64 + (p.root != NIL) as u64
    }

    /// A node holding `r`; `None` (the record counted as dropped) when the
    /// budget has no room even after dropping every older request.
    fn node(&mut self, r: &Record, key: u32) -> Option<u32> {
        self.take_unit()?;
        let node = Node {
            rec: *r,
            key,
            next: NIL,
        };
        if self.free_nodes != NIL {
            let i = self.free_nodes;
            self.free_nodes = self.nodes[i as usize].next;
            self.nodes[i as usize] = node;
            return Some(i);
        }
        grow(&mut self.nodes, self.units);
        self.nodes.push(node);
        Some((self.nodes.len() - 1) as u32)
    }

    /// One unit of the budget, making room first; `None` (counted as
    /// dropped) when there is none even after dropping every older request.
    fn take_unit(&mut self) -> Option<()> {
        self.make_room(1);
        if self.used >= self.units {
            self.budget_dropped += 1;
            return None;
        }
        self.used += 1;
        Some(())
    }

    fn release_node(&mut self, i: u32) {
        self.nodes[i as usize].next = self.free_nodes;
        self.free_nodes = i;
        self.used -= 1;
    }

    /// A new entry for `root_span`, youngest in the age list.
    fn entry(&mut self, root_span: u64) -> Option<u32> {
        self.take_unit()?;
        let p = Pending {
            root_span,
            root: NIL,
            head: NIL,
            tail: NIL,
            children: 0,
            nodes: 0,
            lost: false,
            linked: false,
            worst: Status::Ok,
            root_seen: None,
            age: UNLINKED,
            rooted: UNLINKED,
        };
        let e = match self.free_entries.pop() {
            Some(e) => {
                self.entries[e as usize] = p;
                e
            }
            None => {
                grow(&mut self.entries, self.units);
                self.entries.push(p);
                (self.entries.len() - 1) as u32
            }
        };
        self.index.insert(root_span, e);
        link(&mut self.entries, &mut self.age, e, |p| &mut p.age);
        Some(e)
    }

    fn push_rooted(&mut self, e: u32) {
        link(&mut self.entries, &mut self.rooted, e, |p| &mut p.rooted);
    }

    /// Frees a request's entry and every node it holds (the chain spliced
    /// onto the free list whole).
    fn release(&mut self, e: u32) {
        let p = &self.entries[e as usize];
        let (root, head, tail, root_span, has_root) =
            (p.root, p.head, p.tail, p.root_span, p.root_seen.is_some());
        if root != NIL {
            self.release_node(root);
        }
        if head != NIL {
            self.nodes[tail as usize].next = self.free_nodes;
            self.free_nodes = head;
            self.used -= self.entries[e as usize].nodes as usize;
        }
        unlink(&mut self.entries, &mut self.age, e, |p| &mut p.age);
        if has_root {
            unlink(&mut self.entries, &mut self.rooted, e, |p| &mut p.rooted);
        }
        self.index.remove(&root_span);
        self.free_entries.push(e);
        self.used -= 1;
    }

    /// The pending request of root span `root_span`.
    pub(crate) fn entry_of(&self, root_span: u64) -> Option<u32> {
        self.index.get(&root_span).copied()
    }

    /// Whether every descendant the request's root counted has arrived (and
    /// none was dropped).
    pub(crate) fn counted_all(&self, e: u32) -> bool {
        let p = &self.entries[e as usize];
        p.root != NIL && !p.lost && p.children >= self.nodes[p.root as usize].rec.descendants
    }

    /// A span one of the request's model spans links to that is neither in
    /// the request nor held by `batches` (yet): the request waits for it, at
    /// most until the sweep.
    pub(crate) fn unclosed_batch(&self, e: u32, batches: &Batches) -> Option<u64> {
        let p = &self.entries[e as usize];
        if !p.linked {
            return None;
        }
        let chain = || {
            let mut at = p.head;
            std::iter::from_fn(move || {
                let node = self.nodes.get(at as usize)?;
                at = node.next;
                Some(&node.rec)
            })
        };
        let own = |id: u64| {
            id == p.root_span || chain().any(|r| r.kind == RecordKind::Span && r.span == id)
        };
        chain()
            .filter(|r| r.kind == RecordKind::Links && r.class == SpanClass::Model)
            .flat_map(|r| r.links().iter().copied())
            .find(|&b| batches.get(b).is_none() && !own(b))
    }

    /// Judges a finished request (`complete`: every record it counted
    /// arrived; it is incomplete anyway if some were dropped since), builds its trace if it is kept, and frees its entry. Returns
    /// the trace and the interned key of the model it blames.
    pub(crate) fn judge(
        &mut self,
        e: u32,
        complete: bool,
        j: &Judge<'_>,
    ) -> Option<(RequestTrace, Option<u32>)> {
        let p = &self.entries[e as usize];
        let complete = complete && !p.lost;
        let root = self.nodes[p.root as usize].rec;
        let total = Duration::from_nanos(j.clock.nanos_between(root.start, root.end));
        let reason = CaptureReason {
            sampled: root.sampled,
            over_budget: total > j.target,
            failed: p.worst != Status::Ok,
        };
        let kept = (reason.sampled || reason.over_budget || reason.failed)
            .then(|| self.build(e, root, total, reason, complete, j));
        self.release(e);
        kept
    }

    /// Requests whose root closed at least [`GRACE`] ago (all of them with
    /// `force`), handed to `done` as incomplete; with `force`, requests whose
    /// root never came are dropped and their records counted as late.
    pub(crate) fn sweep(
        &mut self,
        now: Instant,
        force: bool,
        mut done: impl FnMut(&mut Self, u32),
    ) {
        while self.rooted.head != NIL {
            let e = self.rooted.head;
            let seen = self.entries[e as usize].root_seen;
            if !force && seen.is_some_and(|s| now.duration_since(s) < GRACE) {
                break;
            }
            done(self, e);
            if self.rooted.head == e {
                // `done` did not finalize it: never loop on one entry.
                self.release(e);
            }
        }
        if force {
            while self.age.head != NIL {
                let e = self.age.head;
                self.late_records += self.chain_len(e);
                self.release(e);
            }
        }
    }
}

/// Grows `v` for one more element, never past `cap` in all (so the budget
/// bounds the allocation, not only its use).
fn grow<T>(v: &mut Vec<T>, cap: usize) {
    if v.len() == v.capacity() {
        let more = v.len().max(64).min(cap.saturating_sub(v.len()).max(1));
        v.reserve_exact(more);
    }
}

fn link(entries: &mut [Pending], list: &mut List, e: u32, at: fn(&mut Pending) -> &mut Links) {
    *at(&mut entries[e as usize]) = Links {
        prev: list.tail,
        next: NIL,
    };
    if list.tail == NIL {
        list.head = e;
    } else {
        at(&mut entries[list.tail as usize]).next = e;
    }
    list.tail = e;
}

fn unlink(entries: &mut [Pending], list: &mut List, e: u32, at: fn(&mut Pending) -> &mut Links) {
    let Links { prev, next } = *at(&mut entries[e as usize]);
    if prev == NIL {
        list.head = next;
    } else {
        at(&mut entries[prev as usize]).next = next;
    }
    if next == NIL {
        list.tail = prev;
    } else {
        at(&mut entries[next as usize]).prev = prev;
    }
    *at(&mut entries[e as usize]) = UNLINKED;
}
