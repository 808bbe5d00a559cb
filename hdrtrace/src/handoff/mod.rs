//! The hand-off between the recording threads and the aggregator: ring
//! registration, wake-ups and the counts of what never reached a ring
//! ([`Handoff`], shared), and the draining of every registered ring
//! ([`Rings`], owned by the aggregator). The aggregator sees the recording side
//! only through these two.

use crate::handoff::record::{Record, RecordKind};
pub(crate) mod record;
pub(crate) mod ring;
#[cfg(test)]
mod ring_properties;
pub(crate) mod slot_flags;
pub(crate) mod wire;

use crate::handoff::wire::{Decoder, WireRecord};
use crossbeam_channel::{Receiver, Sender};
use ring::{Consumer, Producer};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::ThreadId;

/// The shared half: what recording threads call (cold registration, a
/// non-blocking wake-up, the counts of what was lost) and what the aggregator
/// reads.
pub(crate) struct Handoff {
    ring_capacity: usize,
    /// Consumers of rings registered since the aggregator last took them,
    /// each with whether the aggregator thread itself registered it.
    new_rings: Mutex<Vec<(Consumer<WireRecord>, bool)>>,
    /// The aggregator thread, once it runs.
    aggregator: OnceLock<ThreadId>,
    wake_tx: Sender<()>,
    wake_rx: Receiver<()>,
    /// Spans not tracked because every slot was in use.
    pub(crate) untracked: Counter,
    /// Records lost outside any ring (a span closed during thread teardown).
    pub(crate) ringless: Counter,
    /// Enters and exits no thread's stack could match (see `Local::pop`).
    pub(crate) unmatched: Counter,
    /// Log lines lost to a full log ring or a failing writer.
    pub(crate) log_drops: Counter,
    /// Log writers dropped because they panicked.
    pub(crate) failed_log_writers: Counter,
    /// Request roots whose traceparent field was not a valid W3C one.
    pub(crate) malformed_traceparents: Counter,
    /// `follows_from` links past a span's `MAX_LINKS`.
    pub(crate) dropped_links: Counter,
    /// User `Display`/`Debug` impls that panicked while being formatted.
    pub(crate) format_panics: Counter,
}

impl Handoff {
    pub(crate) fn new(ring_capacity: usize) -> Self {
        // One slot: a pending wake-up is all the aggregator needs to know.
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        Self {
            ring_capacity,
            new_rings: Mutex::new(Vec::new()),
            aggregator: OnceLock::new(),
            wake_tx,
            wake_rx,
            untracked: Counter::default(),
            ringless: Counter::default(),
            unmatched: Counter::default(),
            log_drops: Counter::default(),
            failed_log_writers: Counter::default(),
            malformed_traceparents: Counter::default(),
            dropped_links: Counter::default(),
            format_panics: Counter::default(),
        }
    }

    /// Cold: a new ring for a thread's first span; its consumer waits here
    /// until the aggregator's next drain takes it. A ring of the aggregator
    /// thread itself (a `RequestSink` recording into the subscriber that
    /// feeds it) is drained and counted, never aggregated.
    pub(crate) fn register(&self) -> Producer<WireRecord> {
        let (producer, consumer) = ring::channel(self.ring_capacity);
        let own = self.on_aggregator_thread();
        self.new_rings
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((consumer, own));
        producer
    }

    /// Called once, by the aggregator thread, before it aggregates anything.
    pub(crate) fn set_aggregator_thread(&self) {
        let _ = self.aggregator.set(std::thread::current().id());
    }

    /// Whether the caller is this subscriber's aggregator thread.
    pub(crate) fn on_aggregator_thread(&self) -> bool {
        self.aggregator.get() == Some(&std::thread::current().id())
    }

    /// Asks the aggregator to drain now rather than at its next tick. Never
    /// blocks: the channel holds one wake-up, and a full one means one is
    /// already pending.
    #[inline]
    pub(crate) fn wake(&self) {
        let _ = self.wake_tx.try_send(());
    }

    /// What the aggregator waits on between ticks.
    pub(crate) fn wake_receiver(&self) -> &Receiver<()> {
        &self.wake_rx
    }
}

/// A count of something lost or refused, added to by any thread and read by
/// the aggregator when it publishes.
#[derive(Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        // Relaxed: a statistic, read for publication only; a flush's channel
        // handshake orders what matters, and no other memory depends on it.
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        // Relaxed: as in `add`.
        self.0.load(Ordering::Relaxed)
    }
}

/// How many times `ring_capacity` a busy thread's ring may grow to.
pub(crate) const RING_GROWTH: usize = 16;
/// Bytes one ring slot takes.
pub(crate) const SLOT_BYTES: usize = std::mem::size_of::<WireRecord>();
/// The factor of a growth step: one step to the largest size, since the
/// bursts that need it (an aggregator descheduled for milliseconds, as a
/// busy virtual machine does) come without warning.
const GROWTH_STEP: usize = RING_GROWTH;

/// How much of each ring one [`Rings::drain`] takes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Take {
    /// At most this many slots of each ring: one fair pass.
    Up(usize),
    /// As many slots as each ring has: every record pushed before the drain
    /// began, however fast its producer pushes meanwhile (what a flush owes
    /// its caller), and never more than all rings hold.
    Present,
}

/// What one [`Rings::drain`] did.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Drained {
    /// Records handed over (the ingest bench's count).
    #[cfg_attr(not(feature = "bench-internals"), allow(dead_code))]
    pub(crate) records: usize,
    /// Some ring gave all its `take`, so it may hold more.
    pub(crate) backlog: bool,
}

/// The aggregator's half: every registered ring's consumer, drained in turn.
/// A ring found more than a quarter full by one drain is offered a successor
/// [`RING_GROWTH`] times its size, up to `max_capacity`, while all rings
/// together hold at most `max_total` records: a thread whose bursts outrun the
/// aggregator's wake-ups (or a descheduled aggregator) gets room for them, and
/// a quiet thread keeps the small ring it started with.
pub(crate) struct Rings {
    consumers: Vec<Consumer<WireRecord>>,
    /// The aggregator thread's own rings: drained, counted, never aggregated.
    own: Vec<Consumer<WireRecord>>,
    /// Span and event records of `own` rings.
    own_records: u64,
    /// Consumers of rings offered this drain, added after it.
    offered: Vec<Consumer<WireRecord>>,
    max_capacity: usize,
    max_total: usize,
    /// Records all live rings hold.
    held: usize,
    /// Ring drops of rings already retired (their threads ended).
    retired_drops: u64,
}

impl Rings {
    /// Rings that may grow to `max_capacity` records each while all of them
    /// together hold at most `max_total`.
    pub(crate) fn new(max_capacity: usize, max_total: usize) -> Self {
        Self {
            consumers: Vec::new(),
            own: Vec::new(),
            own_records: 0,
            offered: Vec::new(),
            max_capacity,
            max_total,
            held: 0,
            retired_drops: 0,
        }
    }

    /// Takes the rings registered since the last call, then hands the records
    /// of every ring to `each`, where they lie in the ring, until the ring is
    /// empty or `take` of it was handed over; the rings take turns in one
    /// order, so a producer that keeps its ring full delays the others by at
    /// most one `take` per call.
    pub(crate) fn drain(
        &mut self,
        handoff: &Handoff,
        take: Take,
        mut each: impl FnMut(&Record),
    ) -> Drained {
        {
            let mut new = handoff
                .new_rings
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for (consumer, own) in new.drain(..) {
                self.held += consumer.capacity();
                if own {
                    self.own.push(consumer);
                } else {
                    self.consumers.push(consumer);
                }
            }
        }
        let mut handed = 0;
        let mut backlog = false;
        let mut retired = 0;
        let (offered, max) = (&mut self.offered, self.max_capacity);
        let (held, max_total) = (&mut self.held, self.max_total);
        self.consumers.retain_mut(|consumer| {
            let limit = take.of(consumer);
            let (n, decoded, done) = drain_one(consumer, limit, &mut each);
            handed += decoded;
            // The limit reached: the ring may hold more.
            let full_pass = n == limit;
            backlog |= full_pass;
            if done {
                // Its producer is gone (its thread ended, or it moved to a
                // larger ring) and every record it pushed is counted: only its
                // drop count is kept.
                retired += consumer.dropped();
                *held -= consumer.capacity();
                return false;
            }
            let capacity = consumer.capacity();
            let larger = (capacity * GROWTH_STEP).min(max);
            if (n > capacity / 4 || full_pass)
                && larger > capacity
                && *held + larger <= max_total
                && !consumer.is_orphaned()
            {
                if let Some(c) = consumer.offer_larger(larger) {
                    *held += c.capacity();
                    offered.push(c);
                }
            }
            true
        });
        self.consumers.append(&mut self.offered);
        // Last, so that what a sink recorded while this drain fed it is
        // counted by the same drain.
        let own_records = &mut self.own_records;
        self.own.retain_mut(|consumer| {
            let limit = take.of(consumer);
            let (n, _, done) = drain_one(consumer, limit, &mut |r: &Record| {
                *own_records += (r.kind != RecordKind::Links) as u64;
            });
            backlog |= n == limit;
            if done {
                retired += consumer.dropped();
                *held -= consumer.capacity();
            }
            !done
        });
        self.retired_drops += retired;
        Drained {
            records: handed,
            backlog,
        }
    }

    /// Records lost so far: to full rings, and outside any ring.
    pub(crate) fn dropped(&self, handoff: &Handoff) -> u64 {
        self.retired_drops
            + self.consumers.iter().map(|c| c.dropped()).sum::<u64>()
            + self.own.iter().map(|c| c.dropped()).sum::<u64>()
            + handoff.ringless.get()
    }

    /// Span and event records the aggregator thread recorded itself, ignored.
    pub(crate) fn own_records(&self) -> u64 {
        self.own_records
    }
}

impl Take {
    fn of(self, consumer: &Consumer<WireRecord>) -> usize {
        match self {
            Take::Up(n) => n,
            Take::Present => consumer.capacity(),
        }
    }
}

/// Hands up to `limit` slots of one ring to `each` as records; returns the
/// slots taken, the records handed over and whether the ring is retired (see
/// `Consumer::drain_with`).
fn drain_one(
    consumer: &mut Consumer<WireRecord>,
    limit: usize,
    each: &mut impl FnMut(&Record),
) -> (usize, usize, bool) {
    let mut decoder = Decoder::default();
    let mut decoded = 0;
    let (n, done) = consumer.drain_with(limit, |w| decoded += decoder.feed(w, each));
    if decoder.pending() {
        // The limit fell between an extension and its record, which was
        // published with it: take that too.
        consumer.pop_with(|w| decoded += decoder.feed(w, each));
    }
    (n, decoded, done)
}
