//! The model span: one callsite for every model, so the subscriber classifies it
//! once, with fields that cost no formatting (`model_id` is a `&'static str`).

use super::model::ModelId;
use tracing::Span;

/// The `model` span of one model call, a child of `parent` (the request's
/// `model_execution` span) whichever thread the call later runs on.
#[inline]
pub fn model_span(parent: &Span, model_id: ModelId, input_tokens: usize) -> Span {
    tracing::debug_span!(
        parent: parent,
        "model",
        model_id = model_id.as_str(),
        input_tokens = input_tokens as u64,
        // Device time, recorded later by GPU models (`Span::record`).
        gpu_ns = tracing::field::Empty
    )
}

/// What a model call needs to open its span inside a `JoinSet` task, where the
/// spawning task's context is not current.
#[derive(Debug, Clone)]
pub struct ModelSpanContext {
    /// The model.
    pub model_id: ModelId,
    /// The span the model span is a child of (`model_execution`).
    pub parent_span: Span,
    /// The input's token count, recorded as `input_tokens`.
    pub input_tokens: usize,
}

impl ModelSpanContext {
    /// Creates the model span (see [`model_span`]) without entering it; attach
    /// it to the task's future with `tracing::Instrument::instrument`.
    pub fn span(&self) -> Span {
        model_span(&self.parent_span, self.model_id, self.input_tokens)
    }

    /// Creates the model span and enters it on this thread, for synchronous
    /// model code. Do not hold the guard across an `.await`.
    pub fn enter_model_span(&self) -> tracing::span::EnteredSpan {
        self.span().entered()
    }
}
