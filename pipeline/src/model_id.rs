//! [`ModelId`]: a model's name.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

/// A model's name: any non-empty string, fixed for the model's life.
///
/// It is what the subscriber keys its per-model histograms by (the model
/// span's `model_id` field), what the pipeline tells models apart by (two
/// models of one pipeline never share a name), and what fusion orders the
/// models' vectors by. Cloning it is a reference-count increment.
///
/// ```
/// use hdrtrace_pipeline::ModelId;
///
/// let id = ModelId::new("Causal");
/// assert_eq!(id, "Causal");
/// assert_eq!(id.to_string(), "Causal");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelId(Arc<str>);

impl ModelId {
    /// A model named `name`. The pipeline refuses an empty name when it is
    /// built ([`EmbeddingPipeline::new`](crate::EmbeddingPipeline::new)).
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self(name.into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for ModelId {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

impl From<String> for ModelId {
    fn from(name: String) -> Self {
        Self::new(name)
    }
}

impl Borrow<str> for ModelId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for ModelId {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for ModelId {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn a_name_compares_and_prints_as_its_string() {
        let a = ModelId::new("Code");
        assert_eq!(a, "Code");
        assert_eq!(a, ModelId::from(String::from("Code")));
        assert_eq!(format!("{a} {a:?}"), "Code \"Code\"");
        let set: BTreeSet<ModelId> = ["Semantic", "Code"].map(ModelId::from).into();
        assert!(set.contains("Code"));
        assert_eq!(set.first().unwrap(), "Code");
    }
}
