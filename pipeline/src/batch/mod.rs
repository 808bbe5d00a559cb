//! Batching a model's inputs across requests: how ([`BatchConfig`], gathered
//! per model in a [`BatchPlan`]) and the batcher that does it
//! ([`BatchedModel`]).

mod batcher;
mod config;

pub use batcher::BatchedModel;
pub use config::{BatchConfig, BatchConfigError, BatchPlan};
