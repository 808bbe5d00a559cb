//! A reference model's shape ([`Profile`], which decides its cost) and its
//! weights, generated deterministically from its name and a seed: the same
//! name and seed give bit-identical weights on every machine, so a GPU backend
//! can load the same model.

use super::math;
use crate::model::ModelId;

/// How a model mixes its tokens before the dense layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attention {
    /// No mixing: each token is encoded on its own.
    None,
    /// Each token attends to the tokens within this many positions.
    Window(usize),
    /// Every token attends to every token: cost grows with the square of length.
    Full,
}

/// How per-token vectors become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The mean over tokens.
    Mean,
    /// The element-wise maximum over tokens (late interaction).
    Max,
}

/// A reference model's shape, which decides its cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// Rows in the token-hash embedding table.
    pub buckets: usize,
    /// Width of a token's embedding.
    pub dim: usize,
    /// Widths of the hidden dense layers (ReLU after each).
    pub hidden: &'static [usize],
    /// Width of the output vector.
    pub out: usize,
    /// Token mixing.
    pub attention: Attention,
    /// Token pooling.
    pub pooling: Pooling,
    /// Longer inputs are truncated to this many tokens.
    pub max_tokens: usize,
    /// Keep only this many output entries (sparse models).
    pub top_k: Option<usize>,
}

/// One dense layer: `weight` is `input x output` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// Input width.
    pub input: usize,
    /// `input x output` weights, row-major.
    pub weight: Vec<f32>,
    /// `output` biases.
    pub bias: Vec<f32>,
}

/// A reference model's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    /// The model's name.
    pub model: ModelId,
    /// Its shape.
    pub profile: Profile,
    /// The `buckets x dim` token-hash embedding table.
    pub table: Vec<f32>,
    /// The dense layers, input to output.
    pub layers: Vec<Dense>,
}

/// splitmix64: a tiny, well-mixed, reproducible generator.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        math::mix(self.0)
    }

    /// Uniform in `[-scale, scale)`.
    fn uniform(&mut self, scale: f32) -> f32 {
        let unit = (self.next() >> 40) as f32 / (1u64 << 24) as f32;
        (unit * 2.0 - 1.0) * scale
    }
}

impl Weights {
    /// Generates the weights of the model named `model` with shape `profile`
    /// from a seed (Xavier-uniform layers, a unit-scale embedding table, small
    /// biases); models of different names draw different weights from one
    /// seed.
    pub fn generate(model: ModelId, profile: Profile, seed: u64) -> Self {
        let salt = math::fnv1a(model.as_str().as_bytes());
        let mut rng = SplitMix(seed ^ salt.wrapping_mul(0xA24B_AED4_963E_E407));
        let table = (0..profile.buckets * profile.dim)
            .map(|_| rng.uniform(1.0))
            .collect();
        let mut layers = Vec::with_capacity(profile.hidden.len() + 1);
        let mut input = profile.dim;
        for &output in profile.hidden.iter().chain([&profile.out]) {
            let scale = (6.0 / (input + output) as f32).sqrt();
            layers.push(Dense {
                input,
                weight: (0..input * output).map(|_| rng.uniform(scale)).collect(),
                bias: (0..output).map(|_| rng.uniform(0.01)).collect(),
            });
            input = output;
        }
        Self {
            model,
            profile,
            table,
            layers,
        }
    }

    /// The forward pass: lookup, token mixing, dense layers (ReLU between),
    /// pooling, optional top-k, L2 normalisation. Reads at most
    /// `profile.max_tokens` tokens; an empty input gives a zero vector.
    pub fn forward(&self, tokens: &[u32]) -> Vec<f32> {
        self.forward_batch(&[tokens]).pop().unwrap_or_default()
    }

    /// The forward pass of a batch, in one call: each input is looked up and
    /// mixed on its own (attention never crosses inputs), then the rows of
    /// every input go through the dense layers together as one matrix, and
    /// each input's rows are pooled into its vector. Output `i` is exactly
    /// `forward(inputs[i])` (the same operations in the same order).
    pub fn forward_batch<T: AsRef<[u32]>>(&self, inputs: &[T]) -> Vec<Vec<f32>> {
        let p = &self.profile;
        let mut rows = Vec::with_capacity(inputs.len());
        let mut x: Vec<f32> = Vec::new();
        for tokens in inputs {
            let tokens = tokens.as_ref();
            let tokens = &tokens[..tokens.len().min(p.max_tokens)];
            let mixed = self.mix(tokens);
            rows.push(tokens.len());
            if x.is_empty() {
                x = mixed;
            } else {
                x.extend_from_slice(&mixed);
            }
        }
        let total: usize = rows.iter().sum();
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = math::dense(&x, total, &layer.weight, &layer.bias, layer.input);
            if i < last {
                math::relu(&mut x);
            }
        }
        let mut start = 0;
        rows.iter()
            .map(|&n| {
                let own = &x[start * p.out..(start + n) * p.out];
                start += n;
                self.finish(own, n)
            })
            .collect()
    }

    /// One input's lookup and token mixing: `rows x dim`.
    fn mix(&self, tokens: &[u32]) -> Vec<f32> {
        let p = &self.profile;
        let x = math::lookup(&self.table, p.dim, tokens);
        match p.attention {
            Attention::None => x,
            Attention::Window(w) => math::attention(&x, tokens.len(), p.dim, Some(w)),
            Attention::Full => math::attention(&x, tokens.len(), p.dim, None),
        }
    }

    /// One input's pooling, top-k and normalisation of its `rows x out` rows.
    fn finish(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let p = &self.profile;
        let mut v = match p.pooling {
            Pooling::Mean => math::mean_pool(x, rows, p.out),
            Pooling::Max => math::max_pool(x, rows, p.out),
        };
        if let Some(k) = p.top_k {
            math::top_k(&mut v, k);
        }
        math::l2_normalize(&mut v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::{spec, REFERENCE_MODELS};

    fn generate(name: &str, seed: u64) -> Weights {
        spec(name).unwrap().weights(seed)
    }

    #[test]
    fn same_seed_same_weights_and_outputs() {
        let a = generate("Causal", 7);
        let b = generate("Causal", 7);
        assert_eq!(a, b);
        let c = generate("Causal", 8);
        assert_ne!(a.table, c.table);
        let tokens = [1, 2, 3, 99, 1000];
        assert_eq!(a.forward(&tokens), b.forward(&tokens));
        let renamed = Weights::generate(ModelId::new("Causal2"), a.profile, 7);
        assert_ne!(a.table, renamed.table);
    }

    #[test]
    fn outputs_have_profile_width_and_unit_length() {
        for s in &REFERENCE_MODELS {
            let w = s.weights(1);
            let v = w.forward(&[5, 6, 7, 8]);
            assert_eq!(v.len(), s.profile.out, "{}", s.name);
            let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "{}: {norm}", s.name);
        }
        let sparse = generate("Sparse", 1).forward(&[1, 2, 3]);
        assert_eq!(sparse.iter().filter(|v| **v != 0.0).count(), 16);
    }

    #[test]
    fn a_batch_gives_each_input_its_own_forward_pass() {
        for s in &REFERENCE_MODELS {
            let w = s.weights(3);
            let inputs: [&[u32]; 4] = [&[5, 6, 7, 8], &[], &[9; 40], &[1, 2]];
            let batch = w.forward_batch(&inputs);
            assert_eq!(batch.len(), inputs.len(), "{}", s.name);
            for (got, input) in batch.iter().zip(inputs) {
                assert_eq!(*got, w.forward(input), "{}", s.name);
            }
        }
        assert!(generate("Code", 1).forward_batch::<&[u32]>(&[]).is_empty());
    }

    #[test]
    fn empty_input_gives_zero_vector() {
        let v = generate("Semantic", 1).forward(&[]);
        assert!(v.iter().all(|x| *x == 0.0));
    }
}
