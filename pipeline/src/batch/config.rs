//! How models are batched: a [`BatchConfig`] per model (largest batch, longest
//! wait for it to fill, queue bound) gathered in a [`BatchPlan`].

use crate::model::ModelId;
use std::collections::BTreeMap;
use std::time::Duration;

const MAX_BATCH_SIZE: usize = BatchConfig::MAX_SIZE;
const MAX_BATCH_WAIT: Duration = BatchConfig::MAX_WAIT;
const MAX_QUEUE_CAPACITY: usize = BatchConfig::MAX_QUEUE_CAPACITY;
const DEFAULT_QUEUE_CAPACITY: usize = BatchConfig::DEFAULT_QUEUE_CAPACITY;

/// A batch configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchConfigError {
    /// The batch size is zero or above [`BatchConfig::MAX_SIZE`].
    #[error("invalid batch size {0}: expected 1 to {MAX_BATCH_SIZE}")]
    Size(usize),
    /// The wait is above [`BatchConfig::MAX_WAIT`].
    #[error("invalid batch wait {0:?}: expected at most {MAX_BATCH_WAIT:?}")]
    Wait(Duration),
    /// The queue cannot hold one full batch, or is above [`BatchConfig::MAX_QUEUE_CAPACITY`].
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
    /// The largest batch a model may be configured for.
    pub const MAX_SIZE: usize = 1024;
    /// The longest a batch may be configured to wait for its inputs.
    pub const MAX_WAIT: Duration = Duration::from_secs(10);
    /// The most inputs one model's queue may be configured to hold.
    pub const MAX_QUEUE_CAPACITY: usize = 1 << 20;
    /// How many inputs a model's queue holds unless told otherwise.
    pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;

    /// Batches of at most `max_size` inputs (1 to [`BatchConfig::MAX_SIZE`]), run when
    /// full or when the oldest input has waited `max_wait` (at most
    /// [`BatchConfig::MAX_WAIT`]; zero runs whatever is queued at once), with a queue
    /// of [`BatchConfig::DEFAULT_QUEUE_CAPACITY`] inputs (or `max_size`, if larger).
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
    /// [`BatchConfig::MAX_QUEUE_CAPACITY`]).
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

/// Which models are batched, and how: a [`BatchConfig`] per model name, and
/// optionally one for every model not named. The default batches nothing:
/// every model runs once per request.
///
/// ```
/// use hdrtrace_pipeline::{BatchConfig, BatchPlan};
/// use std::time::Duration;
///
/// let config = BatchConfig::new(16, Duration::from_millis(2)).unwrap();
/// let plan = BatchPlan::all(config)
///     .without("LongContext")
///     .with("Causal", BatchConfig::new(32, Duration::from_millis(5)).unwrap());
/// assert_eq!(plan.get("Code"), Some(config));
/// assert_eq!(plan.get("LongContext"), None);
/// assert_eq!(plan.get("Causal").unwrap().max_size(), 32);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchPlan {
    /// The config of every model not in `models`.
    default: Option<BatchConfig>,
    /// Per model: its config, or `None` where it is not batched.
    models: BTreeMap<ModelId, Option<BatchConfig>>,
}

impl BatchPlan {
    /// Batches nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every model batched with `config` (until a model is given its own
    /// config or taken out).
    pub fn all(config: BatchConfig) -> Self {
        Self {
            default: Some(config),
            models: BTreeMap::new(),
        }
    }

    /// The same plan, with `model` batched as `config`.
    pub fn with(mut self, model: impl Into<ModelId>, config: BatchConfig) -> Self {
        self.set(model, Some(config));
        self
    }

    /// The same plan, with `model` not batched.
    pub fn without(mut self, model: impl Into<ModelId>) -> Self {
        self.set(model, None);
        self
    }

    /// Sets how `model` is batched (`None`: not at all), replacing what the
    /// plan said of it.
    pub fn set(&mut self, model: impl Into<ModelId>, config: Option<BatchConfig>) {
        self.models.insert(model.into(), config);
    }

    /// How the model named `model` is batched, if it is.
    pub fn get(&self, model: &str) -> Option<BatchConfig> {
        match self.models.get(model) {
            Some(config) => *config,
            None => self.default,
        }
    }

    /// Whether the plan batches no model.
    pub fn is_empty(&self) -> bool {
        self.default.is_none() && self.models.values().all(Option::is_none)
    }

    /// The models the plan names and batches, by name, with their configs
    /// (not those batched only by [`BatchPlan::all`]).
    pub fn iter(&self) -> impl Iterator<Item = (&ModelId, BatchConfig)> + '_ {
        self.models.iter().filter_map(|(m, c)| c.map(|c| (m, c)))
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
    fn a_plan_names_models_over_its_default() {
        let a = BatchConfig::new(4, Duration::ZERO).unwrap();
        let b = BatchConfig::new(8, Duration::from_millis(1)).unwrap();
        assert!(BatchPlan::new().is_empty());
        assert_eq!(BatchPlan::new().get("Code"), None);
        let plan = BatchPlan::all(a).with("Causal", b).without("Code");
        assert!(!plan.is_empty());
        assert_eq!(plan.get("Anything"), Some(a));
        assert_eq!(plan.get("Causal"), Some(b));
        assert_eq!(plan.get("Code"), None);
        assert_eq!(
            plan.iter()
                .map(|(m, c)| (m.as_str(), c))
                .collect::<Vec<_>>(),
            [("Causal", b)]
        );
        assert!(BatchPlan::new().without("Code").is_empty());
    }
}
