//! How models are batched: a [`BatchConfig`] per model (largest batch, longest
//! wait for it to fill, queue bound) gathered in a [`BatchPlan`], which wraps
//! each configured model in a [`BatchedModel`].

use super::batcher::BatchedModel;
use super::faults::parse_duration;
use super::model::{EmbeddingModel, ModelId, UnknownModel};
use super::per_model::PerModel;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The largest batch a model may be configured for.
pub const MAX_BATCH_SIZE: usize = 1024;
/// The longest a batch may be configured to wait for its inputs.
pub const MAX_BATCH_WAIT: Duration = Duration::from_secs(10);
/// The most inputs one model's queue may be configured to hold.
pub const MAX_QUEUE_CAPACITY: usize = 1 << 20;
/// How many inputs a model's queue holds unless told otherwise.
pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;

/// A batch configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchConfigError {
    /// The batch size is zero or above [`MAX_BATCH_SIZE`].
    #[error("invalid batch size {0}: expected 1 to {MAX_BATCH_SIZE}")]
    Size(usize),
    /// The wait is above [`MAX_BATCH_WAIT`].
    #[error("invalid batch wait {0:?}: expected at most {MAX_BATCH_WAIT:?}")]
    Wait(Duration),
    /// The queue cannot hold one full batch, or is above [`MAX_QUEUE_CAPACITY`].
    #[error("invalid batch queue capacity {capacity}: expected {max_size} (the batch size) to {MAX_QUEUE_CAPACITY}")]
    Queue {
        /// The capacity given.
        capacity: usize,
        /// The batch size it must hold.
        max_size: usize,
    },
}

/// How one model is batched: its inputs queue up and run together when
/// `max_size` of them are queued or the oldest has waited `max_wait`. At most
/// `queue_capacity` inputs wait; one more is refused (an error for its
/// request), so a model that falls behind never grows memory without bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    max_size: usize,
    max_wait: Duration,
    queue_capacity: usize,
}

impl BatchConfig {
    /// Batches of at most `max_size` inputs (1 to [`MAX_BATCH_SIZE`]), run when
    /// full or when the oldest input has waited `max_wait` (at most
    /// [`MAX_BATCH_WAIT`]; zero runs whatever is queued at once), with a queue
    /// of [`DEFAULT_QUEUE_CAPACITY`] inputs (or `max_size`, if larger).
    pub fn new(max_size: usize, max_wait: Duration) -> Result<Self, BatchConfigError> {
        if max_size == 0 || max_size > MAX_BATCH_SIZE {
            return Err(BatchConfigError::Size(max_size));
        }
        if max_wait > MAX_BATCH_WAIT {
            return Err(BatchConfigError::Wait(max_wait));
        }
        Ok(Self {
            max_size,
            max_wait,
            queue_capacity: DEFAULT_QUEUE_CAPACITY.max(max_size),
        })
    }

    /// The same, with a queue of `capacity` inputs (from `max_size` to
    /// [`MAX_QUEUE_CAPACITY`]).
    pub fn with_queue_capacity(self, capacity: usize) -> Result<Self, BatchConfigError> {
        if capacity < self.max_size || capacity > MAX_QUEUE_CAPACITY {
            return Err(BatchConfigError::Queue {
                capacity,
                max_size: self.max_size,
            });
        }
        Ok(Self {
            queue_capacity: capacity,
            ..self
        })
    }

    /// The largest batch.
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// The longest the oldest input waits for its batch to fill.
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// How many inputs may wait at once.
    pub fn queue_capacity(&self) -> usize {
        self.queue_capacity
    }
}

/// Which models are batched, and how (at most one [`BatchConfig`] per model).
/// The default batches nothing: every model runs once per request.
pub type BatchPlan = PerModel<BatchConfig>;

impl PerModel<BatchConfig> {
    /// Every model batched with `config`.
    pub fn all(config: BatchConfig) -> Self {
        ModelId::ALL
            .into_iter()
            .fold(Self::new(), |plan, m| plan.with(m, config))
    }

    /// The models where batching pays, batched with `config`: every model but
    /// `LongContext`. Its inputs run to 4096 tokens and its cost grows with
    /// length, so a batch's run is dominated by its longest input: short
    /// requests would wait for long ones and the fixed part per call it saves
    /// is small beside its compute.
    pub fn where_it_pays(config: BatchConfig) -> Self {
        let mut plan = Self::all(config);
        plan.remove(ModelId::LongContext);
        plan
    }

    /// Wraps each model that has a config in a [`BatchedModel`]; the others
    /// are returned as they are.
    pub fn apply(&self, models: Vec<Arc<dyn EmbeddingModel>>) -> Vec<Arc<dyn EmbeddingModel>> {
        self.wrap(models, |m, config| Arc::new(BatchedModel::new(m, config)))
    }
}

/// One model's batching as a flag gives it: `Causal=32/5ms` (batches of up
/// to 32 inputs, waiting at most 5 ms), or `Causal=off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpec {
    /// The model.
    pub model: ModelId,
    /// Its batching; `None` for `off`.
    pub config: Option<BatchConfig>,
}

/// A batch spec that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchSpecError {
    /// Not `MODEL=SIZE/WAIT` or `MODEL=off`.
    #[error(
        "invalid batch spec {0:?}: expected MODEL=SIZE/WAIT (e.g. Causal=32/5ms) or MODEL=off"
    )]
    Form(String),
    /// The model part names no model.
    #[error(transparent)]
    UnknownModel(#[from] UnknownModel),
    /// The size or wait is out of range.
    #[error(transparent)]
    Config(#[from] BatchConfigError),
}

impl FromStr for BatchSpec {
    type Err = BatchSpecError;

    fn from_str(s: &str) -> Result<Self, BatchSpecError> {
        let form = || BatchSpecError::Form(s.to_string());
        let (model, batching) = s.split_once('=').ok_or_else(form)?;
        let model = model.parse()?;
        let batching = batching.trim();
        if batching.eq_ignore_ascii_case("off") {
            return Ok(Self {
                model,
                config: None,
            });
        }
        let (size, wait) = batching.split_once('/').ok_or_else(form)?;
        let size = size.trim().parse().map_err(|_| form())?;
        let wait = parse_duration(wait).map_err(|_| form())?;
        Ok(Self {
            model,
            config: Some(BatchConfig::new(size, wait)?),
        })
    }
}

impl Extend<BatchSpec> for PerModel<BatchConfig> {
    /// Applies each spec in turn: a config replaces the model's, `off`
    /// removes it.
    fn extend<I: IntoIterator<Item = BatchSpec>>(&mut self, specs: I) {
        for spec in specs {
            match spec.config {
                Some(config) => self.set(spec.model, config),
                None => {
                    self.remove(spec.model);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_configs_say_what_is_wrong() {
        let ms = Duration::from_millis;
        let err = |r: Result<BatchConfig, BatchConfigError>| r.unwrap_err().to_string();
        assert!(err(BatchConfig::new(0, ms(1))).contains("batch size 0"));
        assert!(err(BatchConfig::new(MAX_BATCH_SIZE + 1, ms(1))).contains("1 to 1024"));
        assert!(err(BatchConfig::new(8, Duration::from_secs(11))).contains("batch wait"));
        let ok = BatchConfig::new(8, ms(2)).unwrap();
        assert_eq!((ok.max_size(), ok.max_wait()), (8, ms(2)));
        assert_eq!(ok.queue_capacity(), DEFAULT_QUEUE_CAPACITY);
        assert!(err(ok.with_queue_capacity(7)).contains("expected 8 (the batch size)"));
        assert!(err(ok.with_queue_capacity(MAX_QUEUE_CAPACITY + 1)).contains("capacity"));
        assert_eq!(ok.with_queue_capacity(8).unwrap().queue_capacity(), 8);
        let big = BatchConfig::new(MAX_BATCH_SIZE, Duration::ZERO).unwrap();
        assert_eq!(big.queue_capacity(), DEFAULT_QUEUE_CAPACITY);
    }

    #[test]
    fn specs_parse_and_bad_ones_say_what_is_expected() {
        let spec: BatchSpec = "Causal=32/5ms".parse().unwrap();
        assert_eq!(spec.model, ModelId::Causal);
        let config = spec.config.unwrap();
        assert_eq!(
            (config.max_size(), config.max_wait()),
            (32, Duration::from_millis(5))
        );
        assert_eq!("e5=OFF".parse::<BatchSpec>().unwrap().config, None);
        let mut plan = BatchPlan::new();
        plan.extend(["Code=4/0ms", "Causal=8/1s", "Code=off"].map(|s| s.parse().unwrap()));
        assert_eq!(
            plan.iter().map(|(m, _)| m).collect::<Vec<_>>(),
            [ModelId::Causal]
        );
        for (spec, want) in [
            ("Causal", "expected MODEL=SIZE/WAIT"),
            ("Causal=32", "expected MODEL=SIZE/WAIT"),
            ("Causal=x/5ms", "expected MODEL=SIZE/WAIT"),
            ("Causal=32/5", "expected MODEL=SIZE/WAIT"),
            ("Nope=32/5ms", "unknown model"),
            ("Causal=0/5ms", "batch size 0"),
            ("Causal=8/20s", "batch wait"),
        ] {
            let err = spec.parse::<BatchSpec>().unwrap_err().to_string();
            assert!(err.contains(want), "{spec}: {err}");
        }
    }

    #[test]
    fn the_default_plan_batches_all_but_long_context() {
        let config = BatchConfig::new(16, Duration::from_millis(2)).unwrap();
        let plan = BatchPlan::where_it_pays(config);
        assert_eq!(plan.iter().count(), 11);
        assert_eq!(plan.get(ModelId::LongContext), None);
        assert_eq!(plan.get(ModelId::Causal), Some(config));
        assert!(BatchPlan::new().is_empty());
        assert!(!BatchPlan::all(config).is_empty());
    }
}
