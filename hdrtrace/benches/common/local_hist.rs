//! A measurement, not a subscriber to use: the least the hot path of a
//! *thread-local* design would do. At close, each span's wall time goes into
//! this thread's HDR histogram for its model (an aggregator would merge the
//! threads' histograms now and then), and only a 32-byte summary (id, parent,
//! wall, busy) is handed to a consumer thread, two to a cache line, through a
//! drained ring. Open spans live in a small per-thread table (start, busy,
//! model). There are no refcounts, request context, sampling or full records:
//! it bounds a design that keeps full records only for the requests that turn
//! out slow or failed, it does not implement one.

use crate::common::clock;
use crate::drained_ring::{self, Writer};
use crate::thread_state::{with_state, SpanStack};
use hdrhistogram::Histogram;
use std::cell::UnsafeCell;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;

/// Open spans tracked per thread (indexed by ID).
const OPEN: usize = 256;
/// Model histograms per thread (indexed by the model key's hash).
const MODELS: usize = 64;
/// Summaries per ring: 16 MiB, as `event_log_drained`'s ring.
const SUMMARIES: usize = 1 << 19;

#[derive(Clone, Copy)]
#[repr(C, align(32))]
struct Summary {
    id: u64,
    parent: u64,
    wall: u64,
    busy: u64,
}

impl drained_ring::Entry for Summary {
    fn fold(&self) -> u64 {
        self.id ^ self.wall ^ self.busy
    }
}

#[derive(Clone, Copy, Default)]
struct Open {
    start: u64,
    entered: u64,
    busy: u64,
    parent: u64,
    model: usize,
}

struct Local {
    summaries: Writer<Summary>,
    open: [Open; OPEN],
    models: Vec<Histogram<u64>>,
    spans: SpanStack,
}

thread_local! {
    static LOCAL: UnsafeCell<Option<Local>> = const { UnsafeCell::new(None) };
}

#[inline(always)]
fn with_local<R>(f: impl FnOnce(&mut Local) -> R) -> R {
    // SAFETY: no closure passed here calls into tracing.
    unsafe { with_state(&LOCAL, new_local, f) }
}

/// Cold: this thread's first span.
#[inline(never)]
fn new_local() -> Local {
    let empty = Summary {
        id: 0,
        parent: 0,
        wall: 0,
        busy: 0,
    };
    Local {
        summaries: Writer::new(SUMMARIES, empty, true),
        open: [Open::default(); OPEN],
        models: (0..MODELS)
            .map(|_| Histogram::new_with_max(1 << 40, 2).expect("valid bounds"))
            .collect(),
        spans: SpanStack::new(),
    }
}

/// The model key's histogram: FNV-1a of its bytes, modulo `MODELS`.
struct ModelOf(usize);

impl Visit for ModelOf {
    fn record_str(&mut self, _: &Field, v: &str) {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in v.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h as usize % MODELS;
    }
    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

/// See the module docs.
pub struct LocalHist;

impl Subscriber for LocalHist {
    bound_subscriber!();
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let start = clock().now();
        let mut model = ModelOf(0);
        attrs.record(&mut model);
        let id = with_local(|l| {
            let id = l.spans.next_id();
            l.open[id as usize % OPEN] = Open {
                start,
                entered: 0,
                busy: 0,
                parent: l.spans.current(),
                model: model.0,
            };
            id
        });
        Id::from_u64(id)
    }
    fn enter(&self, id: &Id) {
        let now = clock().now();
        let id = id.into_u64();
        with_local(|l| {
            l.open[id as usize % OPEN].entered = now;
            l.spans.enter(id);
        });
    }
    fn exit(&self, id: &Id) {
        let now = clock().now();
        let id = id.into_u64();
        with_local(|l| {
            let open = &mut l.open[id as usize % OPEN];
            open.busy += now.saturating_sub(open.entered);
            l.spans.exit();
        });
    }
    fn try_close(&self, id: Id) -> bool {
        let end = clock().now();
        let id = id.into_u64();
        with_local(|l| {
            let open = l.open[id as usize % OPEN];
            let wall = end.saturating_sub(open.start);
            l.models[open.model].saturating_record(wall);
            l.summaries.append::<true>(Summary {
                id,
                parent: open.parent,
                wall,
                busy: open.busy,
            });
        });
        true
    }
}
