//! A measurement, not a subscriber to use: the least the hot path of an
//! *event-log* design would do (issue 13's "next design"). Each operation
//! appends one fixed 64-byte entry to this thread's ring (new: callsite, id,
//! parent, clock, the model key and up to two numbers; enter / exit / close:
//! id and clock) and publishes it with a release store; everything else
//! (busy time, request context, refcounts, sampling, histograms) would be the
//! aggregator's work. It keeps no per-span state at all, so `try_close`
//! cannot know a clone from the last handle: this variant bounds what such a
//! design could reach, it does not implement one.
//!
//! `EventLog<false>` (`event_log_bound`) writes a 1 024-entry ring nobody
//! reads: its lines never leave the recording core. `EventLog<true>`
//! (`event_log_drained`) writes a 262 144-entry ring (16 MiB) that a consumer
//! thread drains every millisecond, as an aggregator would: the entries'
//! lines then move to the consumer's core and back, the hand-off every design
//! that aggregates off the recording thread pays.

use crate::common::clock;
use crate::drained_ring::{self, Writer};
use crate::thread_state::{with_state, SpanStack};
use std::cell::UnsafeCell;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Metadata, Subscriber};

const ENTRIES: usize = 1024;
const DRAINED_ENTRIES: usize = 1 << 18;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Entry {
    kind: u64,
    id: u64,
    parent: u64,
    at: u64,
    text: [u8; 16],
    numbers: [u64; 2],
}

const EMPTY: Entry = Entry {
    kind: 0,
    id: 0,
    parent: 0,
    at: 0,
    text: [0; 16],
    numbers: [0; 2],
};

impl drained_ring::Entry for Entry {
    fn fold(&self) -> u64 {
        self.at ^ self.id ^ self.kind
    }
}

struct Log {
    ring: Writer<Entry>,
    spans: SpanStack,
}

thread_local! {
    static LOG: UnsafeCell<Option<Log>> = const { UnsafeCell::new(None) };
}

#[inline(always)]
fn with_log<const DRAINED: bool, R>(f: impl FnOnce(&mut Log) -> R) -> R {
    // SAFETY: no closure passed here calls into tracing.
    unsafe { with_state(&LOG, new_log::<DRAINED>, f) }
}

/// Cold: this thread's first entry.
#[inline(never)]
fn new_log<const DRAINED: bool>() -> Log {
    let len = if DRAINED { DRAINED_ENTRIES } else { ENTRIES };
    Log {
        ring: Writer::new(len, EMPTY, DRAINED),
        spans: SpanStack::new(),
    }
}

impl Log {
    #[inline(always)]
    fn append<const DRAINED: bool>(&mut self, entry: Entry) {
        self.ring.append::<DRAINED>(entry);
    }
}

/// Keeps the model key's first bytes and up to two numbers.
struct Fields<'a>(&'a mut Entry, usize);

impl Visit for Fields<'_> {
    fn record_u64(&mut self, _: &Field, v: u64) {
        if let Some(slot) = self.0.numbers.get_mut(self.1) {
            *slot = v;
            self.1 += 1;
        }
    }
    fn record_str(&mut self, _: &Field, v: &str) {
        let n = v.len().min(16);
        self.0.text[..n].copy_from_slice(&v.as_bytes()[..n]);
    }
    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

/// See the module docs.
pub struct EventLog<const DRAINED: bool>;

impl<const DRAINED: bool> EventLog<DRAINED> {
    #[inline(always)]
    fn mark(kind: u64, id: u64) {
        let at = clock().now();
        with_log::<DRAINED, _>(|log| {
            log.append::<DRAINED>(Entry {
                kind,
                id,
                at,
                ..EMPTY
            })
        });
    }
}

impl<const DRAINED: bool> Subscriber for EventLog<DRAINED> {
    bound_subscriber!();
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let at = clock().now();
        let mut entry = Entry {
            kind: attrs.metadata() as *const Metadata<'static> as u64,
            at,
            ..EMPTY
        };
        attrs.record(&mut Fields(&mut entry, 0));
        let id = with_log::<DRAINED, _>(|log| {
            entry.id = log.spans.next_id();
            entry.parent = log.spans.current();
            log.append::<DRAINED>(entry);
            entry.id
        });
        Id::from_u64(id)
    }
    fn enter(&self, id: &Id) {
        let id = id.into_u64();
        Self::mark(1, id);
        with_log::<DRAINED, _>(|log| log.spans.enter(id));
    }
    fn exit(&self, id: &Id) {
        Self::mark(2, id.into_u64());
        with_log::<DRAINED, _>(|log| log.spans.exit());
    }
    fn try_close(&self, id: Id) -> bool {
        Self::mark(3, id.into_u64());
        true
    }
}
