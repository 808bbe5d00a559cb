//! [`PerModel`]: at most one value per model, the shape of [`FaultPlan`]
//! (a fault per model) and [`BatchPlan`] (a batch config per model).
//!
//! [`FaultPlan`]: crate::FaultPlan
//! [`BatchPlan`]: crate::BatchPlan

use super::model::{EmbeddingModel, ModelId};
use std::sync::Arc;

/// At most one `T` per model (no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerModel<T> {
    values: [Option<T>; ModelId::COUNT],
}

impl<T: Copy> Default for PerModel<T> {
    fn default() -> Self {
        Self {
            values: [None; ModelId::COUNT],
        }
    }
}

impl<T: Copy> PerModel<T> {
    /// No model has a value.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a model's value (replacing any earlier one); returns the map.
    pub fn with(mut self, model: ModelId, value: T) -> Self {
        self.set(model, value);
        self
    }

    /// Sets a model's value (replacing any earlier one).
    pub fn set(&mut self, model: ModelId, value: T) {
        self.values[model.index()] = Some(value);
    }

    /// Clears a model's value; returns whether it had one.
    pub fn remove(&mut self, model: ModelId) -> bool {
        self.values[model.index()].take().is_some()
    }

    /// A model's value.
    pub fn get(&self, model: ModelId) -> Option<T> {
        self.values[model.index()]
    }

    /// Whether no model has a value.
    pub fn is_empty(&self) -> bool {
        self.values.iter().all(Option::is_none)
    }

    /// `(model, value)` pairs, in `E1..E12` order.
    pub fn iter(&self) -> impl Iterator<Item = (ModelId, T)> + '_ {
        ModelId::ALL
            .into_iter()
            .filter_map(|m| self.get(m).map(|v| (m, v)))
    }

    /// Each model that has a value wrapped by `wrap`; the others as they are.
    pub(crate) fn wrap(
        &self,
        models: Vec<Arc<dyn EmbeddingModel>>,
        wrap: impl Fn(Arc<dyn EmbeddingModel>, T) -> Arc<dyn EmbeddingModel>,
    ) -> Vec<Arc<dyn EmbeddingModel>> {
        models
            .into_iter()
            .map(|m| match self.get(m.model_id()) {
                Some(value) => wrap(m, value),
                None => m,
            })
            .collect()
    }
}
