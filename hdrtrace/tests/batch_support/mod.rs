//! Requests served by one batch, made with plain `tracing` macros the way a
//! dynamic batcher makes them (docs/design.md, section 10).

use tracing::Span;

/// Request roots with these ids, each with a `Causal` model span.
pub fn requests(ids: impl IntoIterator<Item = u64>) -> (Vec<Span>, Vec<Span>) {
    let roots: Vec<Span> = ids
        .into_iter()
        .map(|id| tracing::info_span!("embed_pipeline", request_id = id))
        .collect();
    let models = roots
        .iter()
        .map(|r| tracing::info_span!(parent: r, "model", model_id = "Causal", input_tokens = 3u64))
        .collect();
    (roots, models)
}

/// A batch of `size` serving `models`: a span of no parent (it belongs to no
/// request), linked with each model span both ways.
pub fn batch_for(models: &[Span], size: u64) -> Span {
    let batch = tracing::info_span!(parent: None, "batch", model_id = "Causal", batch_size = size);
    for m in models {
        m.follows_from(batch.id());
        batch.follows_from(m.id());
    }
    batch
}
