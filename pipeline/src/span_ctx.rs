//! The model span: one callsite for every model, so the subscriber classifies
//! it once.

use crate::model::ModelId;
use tracing::Span;

/// The model span's field for device time in nanoseconds, the one field of
/// it GPU models and the batcher record device time in: hdrtrace's default
/// device-time field (`Conventions::device_time_field`), which it routes into
/// the model's GPU histogram. A GPU backend that records device time in
/// another field cannot build the pipeline's GPU models
/// (`GpuModel::with_options` refuses it).
pub(crate) const DEVICE_TIME_FIELD: &str = "gpu_ns";

/// The `model` span of one model call, a child of `parent` (the request's
/// `model_execution` span) whichever thread the call later runs on.
#[inline]
pub(crate) fn model_span(parent: &Span, model_id: &ModelId, input_tokens: usize) -> Span {
    tracing::debug_span!(
        parent: parent,
        "model",
        model_id = model_id.as_str(),
        input_tokens = input_tokens as u64,
        // Device time, recorded later by GPU models and the batcher
        // (`Span::record`).
        { DEVICE_TIME_FIELD } = tracing::field::Empty
    )
}
