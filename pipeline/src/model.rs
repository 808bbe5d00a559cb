//! The twelve model identities, the [`EmbeddingModel`] trait users implement, and
//! what flows into and out of a model.

use crate::error::EmbeddingResult;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

/// One of the pipeline's twelve models, by a stable name.
///
/// The name ([`ModelId::as_str`]) is what the subscriber keys its per-model
/// histograms by (the model span's `model_id` field), so it never changes.
/// The discriminant is the model's position `E1..E12` minus one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ModelId {
    /// E1: general-purpose dense semantic similarity.
    Semantic = 0,
    /// E2: time expressions and ordering.
    Temporal = 1,
    /// E3: cause and effect relations.
    Causal = 2,
    /// E4: sparse lexical expansion (SPLADE-style, top-k activations).
    Sparse = 3,
    /// E5: long-context encoder (Longformer-style); attention cost grows with length.
    LongContext = 4,
    /// E6: source code.
    Code = 5,
    /// E7: graph and relation structure.
    Graph = 6,
    /// E8: named entities.
    Entity = 7,
    /// E9: multilingual alignment.
    Multilingual = 8,
    /// E10: document layout and structure.
    Structural = 9,
    /// E11: sentiment and tone.
    Sentiment = 10,
    /// E12: late interaction (ColBERT-style): per-token vectors, max-pooled.
    LateInteraction = 11,
}

impl ModelId {
    /// How many models there are.
    pub const COUNT: usize = 12;

    /// Every model, in `E1..E12` order.
    pub const ALL: [ModelId; ModelId::COUNT] = [
        ModelId::Semantic,
        ModelId::Temporal,
        ModelId::Causal,
        ModelId::Sparse,
        ModelId::LongContext,
        ModelId::Code,
        ModelId::Graph,
        ModelId::Entity,
        ModelId::Multilingual,
        ModelId::Structural,
        ModelId::Sentiment,
        ModelId::LateInteraction,
    ];

    /// The stable name (a `&'static str`, so recording it costs no formatting).
    pub const fn as_str(self) -> &'static str {
        match self {
            ModelId::Semantic => "Semantic",
            ModelId::Temporal => "Temporal",
            ModelId::Causal => "Causal",
            ModelId::Sparse => "Sparse",
            ModelId::LongContext => "LongContext",
            ModelId::Code => "Code",
            ModelId::Graph => "Graph",
            ModelId::Entity => "Entity",
            ModelId::Multilingual => "Multilingual",
            ModelId::Structural => "Structural",
            ModelId::Sentiment => "Sentiment",
            ModelId::LateInteraction => "LateInteraction",
        }
    }

    /// The position in [`ModelId::ALL`] (0 for E1).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The model at a position in [`ModelId::ALL`].
    pub fn from_index(index: usize) -> Option<Self> {
        Self::ALL.get(index).copied()
    }
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names none of the twelve models.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown model {name:?}: expected one of Semantic, Temporal, Causal, Sparse, LongContext, Code, Graph, Entity, Multilingual, Structural, Sentiment, LateInteraction (or E1 to E12)")]
pub struct UnknownModel {
    /// What was given.
    pub name: String,
}

impl FromStr for ModelId {
    type Err = UnknownModel;

    /// Accepts the stable name in any case, `E1`..`E12`, and the aliases
    /// `longformer` and `colbert`.
    fn from_str(s: &str) -> Result<Self, UnknownModel> {
        let t = s.trim();
        if let Some(m) = Self::ALL
            .iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(t))
        {
            return Ok(*m);
        }
        if t.eq_ignore_ascii_case("longformer") {
            return Ok(ModelId::LongContext);
        }
        if t.eq_ignore_ascii_case("colbert") {
            return Ok(ModelId::LateInteraction);
        }
        if let Some(n) = t.strip_prefix(['E', 'e']) {
            if let Some(m) = n.parse::<usize>().ok().and_then(|n| n.checked_sub(1)) {
                if let Some(m) = Self::from_index(m) {
                    return Ok(m);
                }
            }
        }
        Err(UnknownModel {
            name: s.to_string(),
        })
    }
}

/// A set of models, as a bitmask (no allocation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ModelSet(u16);

impl ModelSet {
    /// The empty set.
    pub const fn new() -> Self {
        Self(0)
    }

    /// Adds a model; returns whether it was new.
    pub fn insert(&mut self, m: ModelId) -> bool {
        let bit = 1 << m.index();
        let new = self.0 & bit == 0;
        self.0 |= bit;
        new
    }

    /// Removes a model; returns whether it was there.
    pub fn remove(&mut self, m: ModelId) -> bool {
        let bit = 1 << m.index();
        let had = self.0 & bit != 0;
        self.0 &= !bit;
        had
    }

    /// Whether the model is in the set.
    pub fn contains(self, m: ModelId) -> bool {
        self.0 & (1 << m.index()) != 0
    }

    /// How many models are in the set.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The models in the set, in `E1..E12` order.
    pub fn iter(self) -> impl Iterator<Item = ModelId> {
        ModelId::ALL.into_iter().filter(move |m| self.contains(*m))
    }
}

impl FromIterator<ModelId> for ModelSet {
    fn from_iter<I: IntoIterator<Item = ModelId>>(iter: I) -> Self {
        let mut s = Self::new();
        for m in iter {
            s.insert(m);
        }
        s
    }
}

/// A tokenized request, shared by every model (cloning it is a reference-count
/// increment, not a copy of the tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedInput {
    tokens: Arc<[u32]>,
    content_len: usize,
}

impl PreparedInput {
    /// An input from token ids and the byte length of the text they came from.
    pub fn new(tokens: impl Into<Arc<[u32]>>, content_len: usize) -> Self {
        Self {
            tokens: tokens.into(),
            content_len,
        }
    }

    /// The token ids.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// The token ids as a shared handle (to move into a blocking task).
    pub fn shared_tokens(&self) -> Arc<[u32]> {
        self.tokens.clone()
    }

    /// How many tokens there are.
    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }

    /// The byte length of the original text.
    pub fn content_len(&self) -> usize {
        self.content_len
    }
}

/// One model's output vector.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelEmbedding {
    /// The model that produced it.
    pub model_id: ModelId,
    /// The vector (model-specific width).
    pub vector: Vec<f32>,
}

impl ModelEmbedding {
    /// The vector's width.
    pub fn dim(&self) -> usize {
        self.vector.len()
    }
}

/// The future a model returns: boxed so that `dyn EmbeddingModel` works, `Send`
/// so that it can run as a `JoinSet` task.
pub type ModelFuture<'a> =
    Pin<Box<dyn Future<Output = EmbeddingResult<ModelEmbedding>> + Send + 'a>>;

/// A batch's outputs: one embedding per input, in input order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchEmbeddings {
    /// One embedding per input, in the order of the inputs.
    pub embeddings: Vec<ModelEmbedding>,
    /// Device time of the batch's forward pass, in nanoseconds, when it ran on
    /// a GPU; recorded as `gpu_ns` on the model span of every request it served.
    pub device_ns: Option<u64>,
}

/// The future [`EmbeddingModel::embed_batch`] returns.
pub type BatchFuture<'a> =
    Pin<Box<dyn Future<Output = EmbeddingResult<BatchEmbeddings>> + Send + 'a>>;

/// A model the pipeline can run. Implement it for your own models; the pipeline
/// instruments every call (a `model` span with `model_id` and `input_tokens`),
/// enforces the deadline and turns errors and panics into records.
///
/// ```
/// use hdrtrace_pipeline::{EmbeddingModel, ModelEmbedding, ModelFuture, ModelId, PreparedInput};
///
/// struct Constant;
///
/// impl EmbeddingModel for Constant {
///     fn model_id(&self) -> ModelId {
///         ModelId::Sentiment
///     }
///     fn embed<'a>(&'a self, _input: &'a PreparedInput) -> ModelFuture<'a> {
///         Box::pin(async move {
///             Ok(ModelEmbedding { model_id: ModelId::Sentiment, vector: vec![1.0; 8] })
///         })
///     }
/// }
/// ```
pub trait EmbeddingModel: Send + Sync + 'static {
    /// Which of the twelve models this is. Must not change between calls.
    fn model_id(&self) -> ModelId;

    /// Embeds one input. Long synchronous work belongs off the async workers
    /// (`tokio::task::spawn_blocking`, entered in `tracing::Span::current()` so
    /// that it counts as the model's busy time, as the reference models do).
    /// The returned embedding must carry this model's id and a non-empty vector
    /// of finite values; anything else is recorded as the model's error.
    fn embed<'a>(&'a self, input: &'a PreparedInput) -> ModelFuture<'a>;

    /// Embeds several inputs in one call, as a batcher
    /// ([`BatchPlan`](crate::BatchPlan)) calls it: one embedding per input, in
    /// input order; an error fails every input of the batch.
    ///
    /// The default runs [`embed`](Self::embed) on each input in turn (no
    /// saving). The reference models override it with one computation for the
    /// whole batch, whose cost is a fixed part paid once per call plus a part
    /// per input.
    fn embed_batch<'a>(&'a self, inputs: &'a [PreparedInput]) -> BatchFuture<'a> {
        Box::pin(async move {
            let mut embeddings = Vec::with_capacity(inputs.len());
            for input in inputs {
                embeddings.push(self.embed(input).await?);
            }
            Ok(BatchEmbeddings {
                embeddings,
                device_ns: None,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_aliases_parse() {
        for (i, m) in ModelId::ALL.iter().enumerate() {
            assert_eq!(m.index(), i);
            assert_eq!(m.as_str().parse::<ModelId>().unwrap(), *m);
            assert_eq!(m.as_str().to_lowercase().parse::<ModelId>().unwrap(), *m);
            assert_eq!(format!("E{}", i + 1).parse::<ModelId>().unwrap(), *m);
        }
        assert_eq!("longformer".parse::<ModelId>(), Ok(ModelId::LongContext));
        assert_eq!("ColBERT".parse::<ModelId>(), Ok(ModelId::LateInteraction));
        for bad in ["", "E0", "E13", "Causa", "e-1"] {
            let err = bad.parse::<ModelId>().unwrap_err();
            assert!(err.to_string().contains("expected one of"), "{err}");
        }
    }

    #[test]
    fn model_set_counts_and_iterates_in_order() {
        let mut s = ModelSet::new();
        assert!(s.insert(ModelId::Code));
        assert!(s.insert(ModelId::Semantic));
        assert!(!s.insert(ModelId::Code));
        assert_eq!(s.len(), 2);
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            [ModelId::Semantic, ModelId::Code]
        );
        assert!(s.remove(ModelId::Code));
        assert!(!s.contains(ModelId::Code));
        let all: ModelSet = ModelId::ALL.into_iter().collect();
        assert_eq!(all.len(), 12);
    }
}
