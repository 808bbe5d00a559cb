//! Recent batches, kept for the requests they served.
//!
//! A batch span ([`SpanClass::Batch`]) serves several requests' model spans
//! and belongs to none of them: its records (and its children's, which have
//! no request either) reach the aggregator outside any request's assembly.
//! They wait here so that a captured request whose model span links to a
//! batch can carry it. Three kinds of entries, each dropped after
//! [`GRACE`](super::assembly::GRACE):
//!
//! - *loose* records under a batch (its children, events and links record,
//!   which close before the batch does; the hot path marks them with the
//!   batch's ID as their `request_id`), filed under the span they hang from
//!   until their batch arrives and claims them; records outside both requests
//!   and batches are not held;
//! - *batches* whose span closed, with what they claimed;
//! - *waits*: a model span's link to a batch that has not closed yet (its
//!   start, for the batch wait histogram, its request id, and the busy time
//!   it owes its series).
//!
//! A model span that links to batches owes its series one busy sample
//! (recorded here, not at its close): its share of the batch's work (the
//! batch span's busy time over its size) when its first link turns out to be
//! a batch, else its own busy time, once that link's wait is dropped
//! ([`Batches::take_unserved`]).
//!
//! All of them hold at most `cap` records together (their share of
//! `TracingConfig::memory_budget`), in at most `cap` entries; past it the
//! oldest entry goes first, and the records it held are counted in `dropped`.

use crate::handoff::record::{Record, RecordKind, SpanClass};
use crate::limits::MAX_BATCH_REQUESTS;
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A held record and the series it was recorded in (its interned key;
/// `u32::MAX` for an event or links record).
pub(crate) type HeldRecord = (Record, u32);

/// A closed batch span and what hangs from it.
pub(crate) struct Batch {
    /// Its span record.
    pub(crate) root: Record,
    /// The series its span was recorded in (a stage, by its name).
    pub(crate) series: u32,
    /// Its descendants' span, event and links records, and its own links
    /// record, in arrival order, each with its series.
    pub(crate) below: Vec<HeldRecord>,
    /// The ids of the requests it served (at most `MAX_BATCH_REQUESTS`).
    pub(crate) requests: Vec<u64>,
    /// Its batch size field's value (0 when it had none).
    pub(crate) size: u64,
    /// Its model's series.
    key: u32,
}

impl Batch {
    /// The spans it links to itself (its own links record).
    pub(crate) fn links(&self) -> &[u64] {
        self.below
            .iter()
            .find(|(r, _)| r.kind == RecordKind::Links && r.span == self.root.span)
            .map_or(&[], |(r, _)| r.links())
    }
}

/// A model span's link to a batch not closed yet.
struct Wait {
    /// The model span's start (clock ticks).
    start: u64,
    request_id: u64,
    /// The busy sample the model span owes, if this link carries it: its
    /// series and its own busy ticks (recorded when no batch claims it).
    owes: Option<(u32, u64)>,
}

/// What served a model span's request: the model series, the span's wait
/// for the batch to start, and its share of the batch's work (`None` when
/// another of its links carries the busy sample), all in clock ticks.
pub(crate) struct Service {
    pub(crate) key: u32,
    pub(crate) wait: u64,
    pub(crate) busy: Option<u64>,
}

impl Batch {
    /// A served span's share of this batch's work: its busy ticks over its
    /// size (all of them for a batch without a size).
    fn share(&self) -> u64 {
        self.root.busy / self.size.max(1)
    }

    /// What this batch did for a request's model span that started at
    /// `model_start` (`owes`: whether the span's busy sample is this batch's
    /// share); the request joins the batch's list while it has room.
    fn serve(&mut self, model_start: u64, request_id: u64, owes: Option<(u32, u64)>) -> Service {
        if self.requests.len() < MAX_BATCH_REQUESTS {
            self.requests.push(request_id);
        }
        Service {
            key: self.key,
            wait: self.root.start.saturating_sub(model_start),
            busy: owes.map(|_| self.share()),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Loose,
    Batch,
    Wait,
}

pub(crate) struct Batches {
    loose: FxHashMap<u64, Vec<HeldRecord>>,
    batches: FxHashMap<u64, Batch>,
    waits: FxHashMap<u64, Vec<Wait>>,
    /// Every entry by its first arrival, oldest first (an entry already gone
    /// is skipped when it comes up).
    order: VecDeque<(Instant, Kind, u64)>,
    /// Records (and waits) held.
    held: usize,
    cap: usize,
    retain: Duration,
    /// Records dropped for the cap.
    pub(crate) dropped: u64,
    /// Busy samples owed by waits dropped unclaimed: (series, own busy ticks).
    unserved: Vec<(u32, u64)>,
}

impl Batches {
    /// A store of at most `cap` records (at least one batch with a few
    /// children), each kept for `retain`.
    pub(crate) fn new(cap: usize, retain: Duration) -> Self {
        Self {
            loose: FxHashMap::default(),
            batches: FxHashMap::default(),
            waits: FxHashMap::default(),
            order: VecDeque::new(),
            held: 0,
            cap: cap.max(8),
            retain,
            dropped: 0,
            unserved: Vec::new(),
        }
    }

    /// A closed batch, by its span's ID.
    pub(crate) fn get(&self, id: u64) -> Option<&Batch> {
        self.batches.get(&id)
    }

    /// Files a record that belongs to no request (recorded in series
    /// `series`): a batch span claims what hangs from it and the waits for
    /// it (each handed to `served`); anything else waits for its batch.
    pub(crate) fn add(
        &mut self,
        r: &Record,
        series: u32,
        size: u64,
        key: u32,
        now: Instant,
        mut served: impl FnMut(Service),
    ) {
        if r.kind == RecordKind::Span && r.class == SpanClass::Batch {
            let mut below = Vec::new();
            self.claim(r.span, &mut below);
            let mut batch = Batch {
                root: *r,
                series,
                below,
                requests: Vec::new(),
                size,
                key,
            };
            if let Some(waits) = self.waits.remove(&r.span) {
                self.held -= waits.len();
                for w in waits {
                    served(batch.serve(w.start, w.request_id, w.owes));
                }
            }
            self.make_room(1);
            self.held += 1;
            if let Some(old) = self.batches.insert(r.span, batch) {
                // A reused span ID: the older batch goes.
                self.held -= 1 + old.below.len();
            }
            self.order.push_back((now, Kind::Batch, r.span));
            return;
        }
        // Only what lies under a batch waits for one (its `request_id` is the
        // batch's ID): the rest of a service's spans outside requests take
        // none of the store.
        if r.request_id == 0 {
            return;
        }
        // What a record hangs from: a links record from its own span, a span
        // or event from its parent.
        let under = if r.kind == RecordKind::Links {
            r.span
        } else {
            r.parent
        };
        if under == 0 {
            return;
        }
        self.make_room(1);
        self.held += 1;
        file(
            &mut self.order,
            &mut self.loose,
            (now, Kind::Loose, under),
            (*r, series),
        );
    }

    /// A request's model span (`model_start`, of request `request_id`) links
    /// to span `batch`: what served it is handed to `served` now if the batch
    /// closed, else when it does. `owes`: the model span's series and own
    /// busy ticks, when this link carries its busy sample (if no batch
    /// claims the link, the own busy is handed back by
    /// [`take_unserved`](Self::take_unserved)).
    pub(crate) fn served(
        &mut self,
        batch: u64,
        model_start: u64,
        request_id: u64,
        owes: Option<(u32, u64)>,
        now: Instant,
        mut served: impl FnMut(Service),
    ) {
        if let Some(b) = self.batches.get_mut(&batch) {
            served(b.serve(model_start, request_id, owes));
            return;
        }
        self.make_room(1);
        self.held += 1;
        let wait = Wait {
            start: model_start,
            request_id,
            owes,
        };
        file(
            &mut self.order,
            &mut self.waits,
            (now, Kind::Wait, batch),
            wait,
        );
    }

    /// Moves what hangs from `id`, and below it, into `into`.
    fn claim(&mut self, id: u64, into: &mut Vec<HeldRecord>) {
        let mut next = into.len();
        if let Some(list) = self.loose.remove(&id) {
            into.extend(list);
        }
        // Breadth first over what was claimed: each span's own hangers-on.
        while next < into.len() {
            let (r, _) = into[next];
            next += 1;
            if r.kind == RecordKind::Span && r.span != id {
                if let Some(list) = self.loose.remove(&r.span) {
                    into.extend(list);
                }
            }
        }
    }

    /// The busy samples owed by waits dropped since the last call (no batch
    /// claimed them: the link was not to a batch, or it was dropped): each
    /// model series and the span's own busy ticks.
    pub(crate) fn take_unserved(&mut self) -> std::vec::Drain<'_, (u32, u64)> {
        self.unserved.drain(..)
    }

    /// Drops entries older than the retention.
    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some(&(at, _, _)) = self.order.front() {
            if now.duration_since(at) < self.retain {
                break;
            }
            self.pop_oldest();
        }
    }

    /// Drops the oldest entries until `n` more records fit; what they held
    /// is counted as dropped. The age order (which keeps an entry already
    /// claimed until it comes up) is held to `cap` entries too.
    fn make_room(&mut self, n: usize) {
        while self.held + n > self.cap || self.order.len() >= self.cap {
            match self.pop_oldest() {
                Some(lost) => self.dropped += lost as u64,
                None => return,
            }
        }
    }

    /// Drops the oldest entry; returns how many records it held (`None`
    /// when there was none).
    fn pop_oldest(&mut self) -> Option<usize> {
        let (_, kind, id) = self.order.pop_front()?;
        let n = match kind {
            Kind::Loose => self.loose.remove(&id).map_or(0, |l| l.len()),
            Kind::Wait => self.waits.remove(&id).map_or(0, |l| {
                self.unserved.extend(l.iter().filter_map(|w| w.owes));
                l.len()
            }),
            Kind::Batch => self.batches.remove(&id).map_or(0, |b| 1 + b.below.len()),
        };
        self.held -= n;
        Some(n)
    }
}

/// Adds `value` to the list under `entry`'s key, a new list joining the age
/// order.
fn file<T>(
    order: &mut VecDeque<(Instant, Kind, u64)>,
    lists: &mut FxHashMap<u64, Vec<T>>,
    entry: (Instant, Kind, u64),
    value: T,
) {
    let list = lists.entry(entry.2).or_default();
    if list.is_empty() {
        order.push_back(entry);
    }
    list.push(value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_meta::META;

    /// A span record of no request, under batch `batch` (its request id, as
    /// the hot path marks it; a batch span's own ID).
    fn span(class: SpanClass, id: u64, parent: u64, start: u64, batch: u64) -> Record {
        Record {
            kind: RecordKind::Span,
            class,
            status: crate::handoff::record::Status::Ok,
            sampled: false,
            metadata: &META,
            span: id,
            parent,
            request_span: 0,
            request_id: batch,
            start,
            end: start + 10,
            busy: 0,
            descendants: 0,
            text: Default::default(),
            fields: Default::default(),
        }
    }

    #[test]
    fn a_batch_claims_its_descendants_and_the_requests_that_waited_for_it() {
        let now = Instant::now();
        let mut b = Batches::new(64, Duration::from_secs(2));
        let mut waits = Vec::new();
        let mut busy = Vec::new();
        let mut note = |s: Service, waits: &mut Vec<(u32, u64)>| {
            waits.push((s.key, s.wait));
            busy.push(s.busy);
        };
        b.served(1, 100, 7, Some((3, 0)), now, |s| note(s, &mut waits));
        b.add(&span(SpanClass::Stage, 2, 1, 150, 1), 0, 0, 0, now, |_| {});
        b.add(&span(SpanClass::Stage, 3, 2, 160, 1), 0, 0, 0, now, |_| {});
        b.add(
            &span(SpanClass::Stage, 4, 99, 160, 99),
            0,
            0,
            0,
            now,
            |_| {},
        );
        let mut batch_span = span(SpanClass::Batch, 1, 0, 140, 1);
        batch_span.busy = 50;
        b.add(&batch_span, 0, 5, 3, now, |s| note(s, &mut waits));
        assert_eq!(waits, [(3, 40)], "the wait: batch start - model start");
        let batch = b.get(1).expect("held");
        assert_eq!(batch.size, 5);
        assert_eq!(batch.requests, [7]);
        let below: Vec<u64> = batch.below.iter().map(|(r, _)| r.span).collect();
        assert_eq!(below, [2, 3], "its child and grandchild, not span 4");
        // A request linking to it now is served at once.
        b.served(1, 120, 8, Some((3, 0)), now, |s| note(s, &mut waits));
        assert_eq!(waits[1], (3, 20));
        // A second link of the same span carries no busy sample.
        b.served(1, 120, 8, None, now, |s| note(s, &mut waits));
        assert_eq!(busy, [Some(10), Some(10), None], "busy 50 over 5");
        assert_eq!(b.take_unserved().count(), 0);
        assert_eq!(b.get(1).unwrap().requests, [7, 8, 8]);
        assert_eq!(b.held, 4, "the batch, two claimed, span 4 still loose");
        assert_eq!(b.dropped, 0);
        // A record under no batch (request id 0) is not held at all.
        b.add(&span(SpanClass::Stage, 5, 4, 170, 0), 0, 0, 0, now, |_| {});
        assert_eq!(b.held, 4);
    }

    #[test]
    fn the_cap_drops_the_oldest_first_and_counts_what_it_held() {
        let now = Instant::now();
        let mut b = Batches::new(8, Duration::from_secs(2));
        for id in 1..=20 {
            b.add(
                &span(SpanClass::Stage, 100 + id, id, 0, id),
                0,
                0,
                0,
                now,
                |_| {},
            );
            assert!(b.held <= 8 && b.order.len() <= 8);
        }
        assert_eq!(b.dropped, 12);
        // Batches that claim nothing still leave age entries: bounded too.
        for id in 1..=50 {
            b.add(
                &span(SpanClass::Batch, 1000 + id, 0, 0, 1000 + id),
                0,
                1,
                0,
                now,
                |_| {},
            );
            assert!(b.held <= 8 && b.order.len() <= 8);
        }
        assert!(b.get(1050).is_some(), "the newest batch is held");
        assert!(b.get(1001).is_none(), "the oldest went");
    }

    #[test]
    fn entries_expire_after_the_retention_without_counting_as_dropped() {
        let now = Instant::now();
        let mut b = Batches::new(64, Duration::from_millis(10));
        b.add(&span(SpanClass::Stage, 2, 1, 0, 1), 0, 0, 0, now, |_| {});
        b.served(5, 0, 9, Some((2, 33)), now, |_| {});
        b.add(&span(SpanClass::Batch, 3, 0, 0, 3), 0, 1, 0, now, |_| {});
        b.expire(now + Duration::from_millis(5));
        assert!(b.get(3).is_some());
        b.expire(now + Duration::from_millis(10));
        assert!(b.get(3).is_none());
        assert_eq!((b.held, b.order.len(), b.dropped), (0, 0, 0));
        assert!(b.loose.is_empty() && b.waits.is_empty());
        let unserved: Vec<_> = b.take_unserved().collect();
        assert_eq!(unserved, [(2, 33)], "no batch claimed it: its own busy");
    }
}
