//! The HDR layer users write today on top of `Registry`: the start time and
//! model name in the span's extensions, the duration into a
//! `Mutex<HashMap<String, Histogram<u64>>>` keyed by model on close. The
//! anchor both lifecycle benches measure hdrtrace against.

use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Histograms in every variant cover 1 ns to 60 s at 3 significant figures.
pub const MAX_NS: u64 = 60_000_000_000;

/// Per-model histograms, as a user keeps them behind a lock.
pub type Histograms = Arc<Mutex<HashMap<String, Histogram<u64>>>>;

/// The naive layer.
pub struct NaiveHdrLayer {
    pub histograms: Histograms,
}

/// Stored in the span's extensions by `on_new_span`.
struct Started {
    at: Instant,
    model: String,
}

/// Finds the `model_id` field, whatever its type.
#[derive(Default)]
struct ModelVisitor(Option<String>);

impl Visit for ModelVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "model_id" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        if field.name() == "model_id" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S> Layer<S> for NaiveHdrLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut visitor = ModelVisitor::default();
        attrs.record(&mut visitor);
        let model = visitor
            .0
            .unwrap_or_else(|| attrs.metadata().name().to_owned());
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Started {
                at: Instant::now(),
                model,
            });
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let extensions = span.extensions();
        let Some(started) = extensions.get::<Started>() else {
            return;
        };
        let ns = u64::try_from(started.at.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut histograms = self
            .histograms
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(h) = histograms.get_mut(&started.model) {
            h.saturating_record(ns);
        } else if let Ok(mut h) = Histogram::new_with_bounds(1, MAX_NS, 3) {
            h.saturating_record(ns);
            histograms.insert(started.model.clone(), h);
        }
    }
}
