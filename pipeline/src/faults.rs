//! Injected faults, for tests and the demo: a model made slower, failing,
//! panicking or never answering. Specs read like `Causal=180ms`, `Code=error`,
//! `Sparse=panic`, `Semantic=hang`.

use super::model::{
    BatchFuture, EmbeddingModel, ModelFuture, ModelId, PreparedInput, UnknownModel,
};
use super::per_model::PerModel;
use crate::error::{EmbeddingResult, Error};
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
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

/// The longest injectable delay.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// A fault spec that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultParseError {
    /// No `=` between model and fault.
    #[error("invalid fault {0:?}: expected MODEL=FAULT, e.g. Causal=180ms, Code=error, Sparse=panic or Semantic=hang")]
    MissingEquals(String),
    /// The model part names no model.
    #[error(transparent)]
    UnknownModel(#[from] UnknownModel),
    /// The fault part is neither a duration nor error, panic or hang.
    #[error(
        "invalid fault {0:?}: expected a delay (e.g. 180ms, 1.5s, 250us), error, panic or hang"
    )]
    UnknownFault(String),
    /// The delay is out of range.
    #[error("invalid delay {0:?}: expected a duration from 0ms to 1h with a unit (us, ms, s), e.g. 180ms")]
    BadDelay(String),
}

/// Reads a duration with a unit: `250us`, `180ms`, `1.5s` (also `µs`).
pub fn parse_duration(s: &str) -> Result<Duration, FaultParseError> {
    let t = s.trim();
    let bad = || FaultParseError::BadDelay(s.to_string());
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| bad())?;
    let scale = match unit.trim() {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        _ => return Err(bad()),
    };
    let secs = value * scale;
    if !secs.is_finite() || secs < 0.0 || secs > MAX_DELAY.as_secs_f64() {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

impl FromStr for Fault {
    type Err = FaultParseError;

    fn from_str(s: &str) -> Result<Self, FaultParseError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "error" | "fail" => Ok(Fault::Error),
            "panic" => Ok(Fault::Panic),
            "hang" => Ok(Fault::Hang),
            t if t.starts_with(|c: char| c.is_ascii_digit() || c == '.') => {
                parse_duration(s).map(Fault::Delay)
            }
            _ => Err(FaultParseError::UnknownFault(s.to_string())),
        }
    }
}

/// One model's fault, as in `Causal=180ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultSpec {
    /// The model.
    pub model: ModelId,
    /// What goes wrong.
    pub fault: Fault,
}

impl FromStr for FaultSpec {
    type Err = FaultParseError;

    fn from_str(s: &str) -> Result<Self, FaultParseError> {
        let (model, fault) = s
            .split_once('=')
            .ok_or_else(|| FaultParseError::MissingEquals(s.to_string()))?;
        Ok(Self {
            model: model.parse()?,
            fault: fault.parse()?,
        })
    }
}

/// At most one fault per model: `FaultPlan::new().with(ModelId::Causal,
/// Fault::Delay(..))`, or parsed from `Causal=180ms,Code=error`.
pub type FaultPlan = PerModel<Fault>;

impl PerModel<Fault> {
    /// Wraps each model that has a fault; the others are returned as they are.
    pub fn apply(&self, models: Vec<Arc<dyn EmbeddingModel>>) -> Vec<Arc<dyn EmbeddingModel>> {
        self.wrap(models, |m, fault| Arc::new(FaultyModel::new(m, fault)))
    }
}

impl FromStr for FaultPlan {
    type Err = FaultParseError;

    /// A comma-separated list of specs, e.g. `Causal=180ms,Code=error`; an empty
    /// string is no faults.
    fn from_str(s: &str) -> Result<Self, FaultParseError> {
        let mut plan = Self::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let spec: FaultSpec = part.parse()?;
            plan.set(spec.model, spec.fault);
        }
        Ok(plan)
    }
}

impl Extend<FaultSpec> for FaultPlan {
    fn extend<I: IntoIterator<Item = FaultSpec>>(&mut self, iter: I) {
        for spec in iter {
            self.set(spec.model, spec.fault);
        }
    }
}

/// A model with an injected fault.
pub struct FaultyModel {
    inner: Arc<dyn EmbeddingModel>,
    fault: Fault,
}

impl FaultyModel {
    /// Wraps `inner` with `fault`.
    pub fn new(inner: Arc<dyn EmbeddingModel>, fault: Fault) -> Self {
        Self { inner, fault }
    }
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
                        model: model.as_str(),
                        reason: "its injected delay was cancelled".into(),
                    })?;
                Ok(out)
            }),
            Fault::Error => Box::pin(async move {
                Err(Error::Model {
                    model: model.as_str(),
                    reason: "injected error".into(),
                })
            }),
            Fault::Panic => Box::pin(async move { panic!("{INJECTED_PANIC} in model {model}") }),
            Fault::Hang => Box::pin(std::future::pending()),
        }
    }
}

impl EmbeddingModel for FaultyModel {
    fn model_id(&self) -> ModelId {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let s: FaultSpec = "Causal=180ms".parse().unwrap();
        assert_eq!(s.model, ModelId::Causal);
        assert_eq!(s.fault, Fault::Delay(Duration::from_millis(180)));
        assert_eq!(
            "e5=1.5s".parse::<FaultSpec>().unwrap().fault,
            Fault::Delay(Duration::from_millis(1500))
        );
        assert_eq!(
            "Code=250us".parse::<FaultSpec>().unwrap().fault,
            Fault::Delay(Duration::from_micros(250))
        );
        assert_eq!(
            "Code=error".parse::<FaultSpec>().unwrap().fault,
            Fault::Error
        );
        assert_eq!(
            "Sparse=PANIC".parse::<FaultSpec>().unwrap().fault,
            Fault::Panic
        );
        assert_eq!(
            "Semantic=hang".parse::<FaultSpec>().unwrap().fault,
            Fault::Hang
        );
        let plan: FaultPlan = "Causal=180ms, Code=error,".parse().unwrap();
        assert_eq!(plan.iter().count(), 2);
        assert_eq!(plan.get(ModelId::Code), Some(Fault::Error));
        assert!("".parse::<FaultPlan>().unwrap().is_empty());
    }

    #[test]
    fn bad_specs_say_what_is_expected() {
        let cases = [
            ("Causal", "expected MODEL=FAULT"),
            ("Nope=1ms", "unknown model"),
            ("Causal=slow", "expected a delay"),
            ("Causal=180", "with a unit"),
            ("Causal=180h", "with a unit"),
            ("Causal=2h", "from 0ms to 1h"),
            ("Causal=1.2.3ms", "with a unit"),
            ("Causal=", "expected a delay"),
        ];
        for (spec, want) in cases {
            let err = spec.parse::<FaultSpec>().unwrap_err().to_string();
            assert!(err.contains(want), "{spec}: {err}");
        }
    }
}
