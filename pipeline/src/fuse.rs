//! Fusion of the models' vectors into one [`FusedEmbedding`] of fixed width.
//!
//! Each model vector is L2-normalised and projected into [`FUSED_DIM`]
//! dimensions by signed feature hashing (component `i` of model `m` lands on a
//! position and with a sign fixed by `m`'s name and `i`), the projections are
//! summed, and the sum is L2-normalised. Models that did not answer simply
//! contribute nothing.

use crate::error::Error;
use crate::model::{ModelEmbedding, ModelId};
use crate::orchestrator::ModelOutputs;
use crate::reference::math::{fnv1a, l2_normalize, mix};
use std::collections::BTreeSet;

/// The width of every fused embedding.
pub(crate) const FUSED_DIM: usize = FusedEmbedding::DIM;

/// The pipeline's output: one vector, and which models made it.
#[derive(Debug, Clone, PartialEq)]
pub struct FusedEmbedding {
    /// The request's id (its `request_id` span field).
    pub request_id: u64,
    /// The fused vector ([`FusedEmbedding::DIM`] wide, unit length).
    pub vector: Vec<f32>,
    /// The models whose vectors were fused.
    pub models: BTreeSet<ModelId>,
    /// The models that failed (error, panic, or an unusable embedding).
    pub failed: BTreeSet<ModelId>,
    /// The models that missed the deadline.
    pub timed_out: BTreeSet<ModelId>,
}

impl FusedEmbedding {
    /// The width of every fused vector.
    pub const DIM: usize = 256;

    /// The vector's width ([`FusedEmbedding::DIM`]).
    pub fn dim(&self) -> usize {
        self.vector.len()
    }

    /// Whether every model that ran contributed.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty() && self.timed_out.is_empty()
    }
}

/// Where component `i` of the model whose name hashes to `model` lands, and
/// with which sign.
#[inline]
fn slot(model: u64, i: usize) -> (usize, f32) {
    let h = mix(model ^ i as u64);
    let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
    ((h % FUSED_DIM as u64) as usize, sign)
}

/// Fuses the embeddings into one unit vector of [`FUSED_DIM`]. An empty slice
/// is an error (no model answered).
pub(crate) fn fuse_vectors(embeddings: &[ModelEmbedding]) -> Result<Vec<f32>, Error> {
    if embeddings.is_empty() {
        return Err(Error::Pipeline(
            "no model produced an embedding in time: nothing to fuse".into(),
        ));
    }
    let mut out = vec![0.0f32; FUSED_DIM];
    let mut v = Vec::new();
    // Fuse in model order, so the result does not depend on arrival order.
    let mut order: Vec<&ModelEmbedding> = embeddings.iter().collect();
    order.sort_by(|a, b| a.model_id.cmp(&b.model_id));
    for e in order {
        v.clear();
        v.extend_from_slice(&e.vector);
        l2_normalize(&mut v);
        let model = fnv1a(e.model_id.as_str().as_bytes()).rotate_left(32);
        for (i, x) in v.iter().enumerate() {
            let (pos, sign) = slot(model, i);
            out[pos] += sign * x;
        }
    }
    l2_normalize(&mut out);
    Ok(out)
}

/// Fuses the models' outputs for request `request_id`.
pub(crate) fn fuse(request_id: u64, outputs: ModelOutputs) -> Result<FusedEmbedding, Error> {
    Ok(FusedEmbedding {
        request_id,
        vector: fuse_vectors(&outputs.embeddings)?,
        models: outputs.embeddings.into_iter().map(|e| e.model_id).collect(),
        failed: outputs.failed,
        timed_out: outputs.timed_out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emb(m: &str, v: &[f32]) -> ModelEmbedding {
        ModelEmbedding {
            model_id: ModelId::new(m),
            vector: v.to_vec(),
        }
    }

    #[test]
    fn fused_is_fixed_width_unit_and_order_independent() {
        let a = emb("Semantic", &[1.0, 2.0, 3.0]);
        let b = emb("Code", &[0.5; 40]);
        let ab = fuse_vectors(&[a.clone(), b.clone()]).unwrap();
        let ba = fuse_vectors(&[b, a.clone()]).unwrap();
        assert_eq!(ab, ba);
        assert_eq!(ab.len(), FUSED_DIM);
        let norm: f32 = ab.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_ne!(ab, fuse_vectors(&[a]).unwrap());
    }

    #[test]
    fn nothing_to_fuse_is_an_error() {
        let err = fuse_vectors(&[]).unwrap_err().to_string();
        assert!(err.contains("nothing to fuse"), "{err}");
    }
}
