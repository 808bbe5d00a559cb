//! The instrumented 12-model embedding pipeline (the spec's `EmbeddingPipeline`).
