//! The hand-written `tracing_core::Subscriber`.
//!
//! Data flow on the hot path: `new_span` takes a slot from the [`slots`] table
//! (its index and generation are the span's ID) and fills it; `enter` / `exit`
//! push and pop this thread's [`local`] stack and add the polled time to the
//! slot; the last `try_close` turns the slot into one fixed-size
//! [`Record`](crate::handoff::record::Record), pushes it into this thread's ring and frees
//! the slot. Nothing here allocates after a thread's first span, and nothing
//! blocks. The aggregator (`crate::collection`) does everything else.

pub(crate) mod callsite_table;
pub(crate) mod callsites;
pub(crate) mod core;
#[cfg(feature = "layer")]
pub(crate) mod layer;
#[cfg(feature = "layer")]
pub(crate) mod layer_ids;
pub(crate) mod links;
pub(crate) mod local;
pub(crate) mod refcount;
pub(crate) mod sampling;
pub(crate) mod slots;
pub(crate) mod span;
pub(crate) mod split_sum;
pub(crate) mod trace_context;

use self::core::{tracing_id, Core};
use std::sync::Arc;
use tracing_core::span::{Attributes, Current, Id, Record as Values};
use tracing_core::subscriber::{Interest, Subscriber};
use tracing_core::{Event, LevelFilter, Metadata};

/// The `hdrtrace` subscriber. Build one with [`crate::build`] (scoped use, with
/// `tracing::subscriber::with_default`) or install it with
/// [`crate::init_tracing`]. Cloning is cheap and shares the recording core.
#[derive(Clone)]
pub struct HdrSubscriber {
    pub(crate) core: Arc<Core>,
}

impl std::fmt::Debug for HdrSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HdrSubscriber")
            .field("enabled", &self.core.switch.is_on())
            .field("level", &self.core.level)
            .field("sampling_rate", &self.core.sampler.rate())
            .finish()
    }
}

impl Subscriber for HdrSubscriber {
    /// Classifies the callsite once; the answer is cached in the callsite, so a
    /// callsite outside the level (or any callsite while switched off) is never
    /// asked about again until the interest cache is rebuilt.
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        let info = self.core.register_callsite(meta);
        if self.core.switch.is_on() && info.in_level() {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        // Asked per span only when several dispatchers disagree about a
        // callsite; answered from the cache `register_callsite` filled.
        self.core.enabled(meta)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(if self.core.switch.is_on() {
            self.core.level.max_level()
        } else {
            LevelFilter::OFF
        })
    }

    #[inline]
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        tracing_id(self.core.new_span(attrs))
    }

    #[inline]
    fn record(&self, span: &Id, values: &Values<'_>) {
        self.core.record(span.into_u64(), values);
    }

    #[inline]
    fn record_follows_from(&self, span: &Id, follows: &Id) {
        self.core.follows_from(span.into_u64(), follows.into_u64());
    }

    #[inline]
    fn event(&self, event: &Event<'_>) {
        self.core.event(event);
    }

    #[inline]
    fn enter(&self, span: &Id) {
        self.core.enter(span.into_u64());
    }

    #[inline]
    fn exit(&self, span: &Id) {
        self.core.exit(span.into_u64());
    }

    #[inline]
    fn clone_span(&self, id: &Id) -> Id {
        self.core.clone_span(id.into_u64());
        id.clone()
    }

    #[inline]
    fn try_close(&self, id: Id) -> bool {
        self.core.try_close(id.into_u64())
    }

    fn current_span(&self) -> Current {
        match self.core.current() {
            Some((id, meta)) => Current::new(id, meta),
            None => Current::none(),
        }
    }
}
