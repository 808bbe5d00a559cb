//! The second front end: the same recording core as a `tracing_subscriber::Layer`
//! on a `Registry` stack, for users who must share the stack with other layers
//! (tokio-console's `ConsoleLayer` needs a Registry).
//!
//! Every operation calls the one [`Core`] the hand-written subscriber calls; the
//! only thing this front end adds is the mapping from the Registry's span IDs to
//! ours, kept in a fixed table of its own ([`IdMap`]), so it allocates nothing
//! per span itself (a span whose table entry is taken by a colliding live span
//! falls back to the span's extensions, which allocate). The Registry itself
//! allocates per span, so the zero-allocation guarantee holds only for the
//! hand-written subscriber (docs/performance.md measures both).

use crate::recording::core::{Core, Parent, UNTRACKED};
use crate::recording::layer_ids::IdMap;
use std::sync::Arc;
use tracing_core::span::{Attributes, Id, Record as Values};
use tracing_core::subscriber::{Interest, Subscriber};
use tracing_core::{Event, Metadata};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Our ID for a Registry span whose `IdMap` entry was taken, stored in its
/// extensions.
struct HdrId(u64);

/// The recording core as a `Layer`. Get one from [`crate::Builder::build_layer`].
#[derive(Clone)]
pub struct HdrLayer {
    pub(crate) core: Arc<Core>,
    pub(crate) ids: Arc<IdMap>,
}

impl std::fmt::Debug for HdrLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HdrLayer").finish_non_exhaustive()
    }
}

impl HdrLayer {
    #[inline]
    fn ours<S>(&self, ctx: &Context<'_, S>, id: &Id) -> Option<u64>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        self.ids
            .get(id.into_u64())
            .or_else(|| Self::in_extensions(ctx, id))
    }

    #[cold]
    fn in_extensions<S>(ctx: &Context<'_, S>, id: &Id) -> Option<u64>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        ctx.span(id)?.extensions().get::<HdrId>().map(|h| h.0)
    }
}

impl<S> Layer<S> for HdrLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    /// Classifies the callsite once. A layer's "never" would disable the
    /// callsite for every other layer too (tokio-console needs tokio's TRACE task
    /// spans), so callsites outside our level are skipped in `on_new_span`
    /// instead, from the cached classification.
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        self.core.register_callsite(meta);
        Interest::always()
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let info = self.core.callsites.get(attrs.metadata());
        if !info.in_level() {
            return;
        }
        let parent = Parent::resolve(attrs.parent(), attrs.is_contextual(), |p| {
            self.ours(&ctx, p)
        });
        let ours = self.core.open_span(attrs, info, parent);
        if ours != UNTRACKED && !self.ids.insert(id.into_u64(), ours) {
            if let Some(span) = ctx.span(id) {
                span.extensions_mut().insert(HdrId(ours));
            }
        }
    }

    fn on_record(&self, id: &Id, values: &Values<'_>, ctx: Context<'_, S>) {
        if let Some(ours) = self.ours(&ctx, id) {
            self.core.record(ours, values);
        }
    }

    fn on_follows_from(&self, span: &Id, follows: &Id, ctx: Context<'_, S>) {
        if let (Some(span), Some(follows)) = (self.ours(&ctx, span), self.ours(&ctx, follows)) {
            self.core.follows_from(span, follows);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let info = self.core.callsites.get(event.metadata());
        if !info.in_level() {
            return;
        }
        let parent = Parent::resolve(event.parent(), event.is_contextual(), |p| {
            self.ours(&ctx, p)
        });
        self.core.record_event(event, info, parent);
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(ours) = self.ours(&ctx, id) {
            self.core.enter(ours);
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(ours) = self.ours(&ctx, id) {
            self.core.exit(ours);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        // The Registry counts references; it calls this once, at the last close,
        // and we hold exactly one reference to our slot.
        let ours = self
            .ids
            .remove(id.into_u64())
            .or_else(|| Self::in_extensions(&ctx, &id));
        if let Some(ours) = ours {
            self.core.try_close(ours);
        }
    }
}
