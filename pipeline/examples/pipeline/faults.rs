//! Injected faults, for the demo and the tests: a model made slower, failing,
//! panicking or never answering. Built on the pipeline's public API only, as
//! a service's own wrapper models would be.

use hdrtrace_pipeline::{
    BatchFuture, EmbeddingModel, EmbeddingResult, Error, ModelFuture, ModelId, PreparedInput,
};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// What goes wrong with a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The model takes this much longer. The delay is spent blocked on a
    /// blocking-pool thread inside the model's span, so it counts as busy time,
    /// as slow compute would (not as executor starvation).
    Delay(Duration),
    /// The model returns an error.
    Error,
    /// The model panics.
    Panic,
    /// The model never answers (until the deadline aborts it).
    Hang,
}

/// At most one fault per model, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultPlan(BTreeMap<ModelId, Fault>);

impl FaultPlan {
    /// No faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Gives `model` `fault`, replacing any earlier one.
    pub fn set(&mut self, model: impl Into<ModelId>, fault: Fault) {
        self.0.insert(model.into(), fault);
    }

    /// Whether no model has a fault.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `(model, fault)` pairs, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&ModelId, Fault)> + '_ {
        self.0.iter().map(|(m, f)| (m, *f))
    }

    /// Wraps each model that has a fault in a [`FaultyModel`]; the others are
    /// returned as they are.
    pub fn apply(&self, models: Vec<Arc<dyn EmbeddingModel>>) -> Vec<Arc<dyn EmbeddingModel>> {
        models
            .into_iter()
            .map(|m| match self.0.get(m.model_id()) {
                Some(&fault) => {
                    Arc::new(FaultyModel { inner: m, fault }) as Arc<dyn EmbeddingModel>
                }
                None => m,
            })
            .collect()
    }
}

/// A model with an injected fault.
pub struct FaultyModel {
    inner: Arc<dyn EmbeddingModel>,
    fault: Fault,
}

/// A boxed model call: [`ModelFuture`] or [`BatchFuture`].
type Call<'a, T> = Pin<Box<dyn Future<Output = EmbeddingResult<T>> + Send + 'a>>;

impl FaultyModel {
    /// The inner model's call `work` with the fault applied: once per call, so
    /// a batched call's fault hits every input of the batch.
    fn faulted<'a, T: Send + 'a>(&'a self, work: Call<'a, T>) -> Call<'a, T> {
        let model = self.inner.model_id();
        match self.fault {
            Fault::Delay(delay) => Box::pin(async move {
                let out = work.await?;
                let span = tracing::Span::current();
                tokio::task::spawn_blocking(move || span.in_scope(|| std::thread::sleep(delay)))
                    .await
                    .map_err(|_| Error::Model {
                        model: model.clone(),
                        reason: "its injected delay was cancelled".into(),
                    })?;
                Ok(out)
            }),
            Fault::Error => Box::pin(async move {
                Err(Error::Model {
                    model: model.clone(),
                    reason: "injected error".into(),
                })
            }),
            Fault::Panic => Box::pin(async move { panic!("{INJECTED_PANIC} in model {model}") }),
            Fault::Hang => Box::pin(std::future::pending()),
        }
    }
}

impl EmbeddingModel for FaultyModel {
    fn model_id(&self) -> &ModelId {
        self.inner.model_id()
    }

    fn embed<'a>(&'a self, input: &'a PreparedInput) -> ModelFuture<'a> {
        self.faulted(self.inner.embed(input))
    }

    fn embed_batch<'a>(&'a self, inputs: &'a [PreparedInput]) -> BatchFuture<'a> {
        self.faulted(self.inner.embed_batch(inputs))
    }
}

/// How every panic that [`Fault::Panic`] injects begins.
const INJECTED_PANIC: &str = "injected panic";

/// Keeps injected panics ([`Fault::Panic`]) off stderr, and spares them the
/// default hook's work (with `RUST_BACKTRACE` set, resolving a backtrace can
/// take seconds and hold the thread the model ran on, past a request's
/// deadline): they are expected, and recorded in the spans. Any other panic
/// goes to the hook that was installed before. Installed once per process.
pub fn quiet_injected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let msg = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("");
            if !msg.starts_with(INJECTED_PANIC) {
                previous(info);
            }
        }));
    });
}
