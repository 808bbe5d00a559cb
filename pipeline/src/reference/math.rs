//! The reference models' arithmetic as plain functions over row-major `f32`
//! slices, so that another backend (a GPU kernel) can reproduce it exactly.
//! Every function is deterministic: same inputs, same outputs, same order of
//! floating-point operations.

/// Which table row a token id reads (a multiplicative hash, so nearby ids
/// spread out).
#[inline]
pub fn bucket(token: u32, buckets: usize) -> usize {
    ((token as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % buckets.max(1)
}

/// Token-hash embedding lookup: row `i` of the `tokens.len() x dim` result is
/// the table row of token `i`'s bucket. `table` is `buckets x dim`.
pub fn lookup(table: &[f32], dim: usize, tokens: &[u32]) -> Vec<f32> {
    let buckets = table.len() / dim.max(1);
    let mut out = Vec::with_capacity(tokens.len() * dim);
    for &t in tokens {
        let b = bucket(t, buckets);
        out.extend_from_slice(&table[b * dim..(b + 1) * dim]);
    }
    out
}

/// A dense layer: `out[r] = bias + x[r] · weight` for each of `rows` rows, where
/// `weight` is `input x output` row-major and `x` is `rows x input`.
pub fn dense(x: &[f32], rows: usize, weight: &[f32], bias: &[f32], input: usize) -> Vec<f32> {
    let output = bias.len();
    debug_assert_eq!(weight.len(), input * output);
    debug_assert_eq!(x.len(), rows * input);
    let mut out = Vec::with_capacity(rows * output);
    for r in 0..rows {
        let start = out.len();
        out.extend_from_slice(bias);
        let row = &mut out[start..];
        for (i, &xi) in x[r * input..(r + 1) * input].iter().enumerate() {
            for (o, &w) in row.iter_mut().zip(&weight[i * output..(i + 1) * output]) {
                *o += xi * w;
            }
        }
    }
    out
}

/// `max(0, v)` in place.
pub fn relu(x: &mut [f32]) {
    for v in x {
        *v = v.max(0.0);
    }
}

/// Dot-product self-attention with a residual connection: row `i` becomes
/// `x[i] + Σ_j softmax_j(x[i]·x[j] / √dim) x[j]` over the keys `j` within
/// `window` positions of `i` (all keys when `window` is `None`), so its cost
/// grows with `rows x keys x dim`.
pub fn attention(x: &[f32], rows: usize, dim: usize, window: Option<usize>) -> Vec<f32> {
    let scale = 1.0 / (dim.max(1) as f32).sqrt();
    let mut out = x.to_vec();
    let mut scores = Vec::with_capacity(rows);
    for i in 0..rows {
        let (lo, hi) = match window {
            Some(w) => (i.saturating_sub(w), (i + w + 1).min(rows)),
            None => (0, rows),
        };
        let q = &x[i * dim..(i + 1) * dim];
        scores.clear();
        let mut max = f32::NEG_INFINITY;
        for j in lo..hi {
            let k = &x[j * dim..(j + 1) * dim];
            let s = q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale;
            max = max.max(s);
            scores.push(s);
        }
        let mut total = 0.0;
        for s in &mut scores {
            *s = (*s - max).exp();
            total += *s;
        }
        let row = &mut out[i * dim..(i + 1) * dim];
        for (j, s) in (lo..hi).zip(&scores) {
            let p = s / total;
            for (o, v) in row.iter_mut().zip(&x[j * dim..(j + 1) * dim]) {
                *o += p * v;
            }
        }
    }
    out
}

/// The mean of `rows` rows of width `dim`.
pub fn mean_pool(x: &[f32], rows: usize, dim: usize) -> Vec<f32> {
    let mut out = vec![0.0; dim];
    for r in 0..rows {
        for (o, v) in out.iter_mut().zip(&x[r * dim..(r + 1) * dim]) {
            *o += v;
        }
    }
    let n = rows.max(1) as f32;
    for o in &mut out {
        *o /= n;
    }
    out
}

/// The element-wise maximum of `rows` rows of width `dim` (late interaction's
/// pooling of per-token vectors).
pub fn max_pool(x: &[f32], rows: usize, dim: usize) -> Vec<f32> {
    let mut out = vec![f32::NEG_INFINITY; dim];
    for r in 0..rows {
        for (o, v) in out.iter_mut().zip(&x[r * dim..(r + 1) * dim]) {
            *o = o.max(*v);
        }
    }
    if rows == 0 {
        out.fill(0.0);
    }
    out
}

/// Keeps the `k` entries of largest magnitude (ties: the lower index) and zeroes
/// the rest.
pub fn top_k(v: &mut [f32], k: usize) {
    if k >= v.len() {
        return;
    }
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[b].abs().total_cmp(&v[a].abs()).then(a.cmp(&b)));
    for &i in &order[k..] {
        v[i] = 0.0;
    }
}

/// Scales `v` to unit length (an all-zero vector stays zero).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        for x in v {
            *x /= norm;
        }
    }
}

/// FNV-1a over `bytes`: how a model's name salts its weights and places its
/// components in the fused vector, and how the tokenizer hashes a piece.
#[inline]
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, &b| fnv1a_step(h, b))
}

/// FNV-1a's hash of no bytes, where [`fnv1a_step`] starts.
pub(crate) const FNV_OFFSET: u64 = 0xCBF2_9CE4_8422_2325;

/// One FNV-1a step: `h` with the byte `b` folded in (for hashing bytes as
/// they come).
#[inline]
pub(crate) fn fnv1a_step(h: u64, b: u8) -> u64 {
    (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
}

/// splitmix64's finalizer: the deterministic stream weights and fusion
/// salts are drawn from.
#[inline]
pub fn mix(x: u64) -> u64 {
    let x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_matches_hand_computation() {
        // x = [[1, 2]], w = [[1, 0, 2], [3, 1, 0]], b = [0.5, 0, -1]
        let out = dense(
            &[1.0, 2.0],
            1,
            &[1.0, 0.0, 2.0, 3.0, 1.0, 0.0],
            &[0.5, 0.0, -1.0],
            2,
        );
        assert_eq!(out, [7.5, 2.0, 1.0]);
    }

    #[test]
    fn attention_over_one_row_doubles_it() {
        // One key: softmax weight 1, so x + x.
        assert_eq!(attention(&[1.0, -2.0], 1, 2, None), [2.0, -4.0]);
    }

    #[test]
    fn attention_window_limits_keys() {
        let x = [1.0, 0.0, 0.0, 1.0, 5.0, 5.0];
        let full = attention(&x, 3, 2, None);
        let local = attention(&x, 3, 2, Some(0));
        assert_eq!(local, x.iter().map(|v| v * 2.0).collect::<Vec<_>>());
        assert_ne!(full, local);
    }

    #[test]
    fn pooling_top_k_and_normalize() {
        let x = [1.0, -3.0, 3.0, 1.0];
        assert_eq!(mean_pool(&x, 2, 2), [2.0, -1.0]);
        assert_eq!(max_pool(&x, 2, 2), [3.0, 1.0]);
        let mut v = [0.5, -4.0, 2.0, 0.1];
        top_k(&mut v, 2);
        assert_eq!(v, [0.0, -4.0, 2.0, 0.0]);
        let mut u = [3.0, 4.0];
        l2_normalize(&mut u);
        assert_eq!(u, [0.6, 0.8]);
        let mut z = [0.0, 0.0];
        l2_normalize(&mut z);
        assert_eq!(z, [0.0, 0.0]);
    }

    #[test]
    fn lookup_reads_the_hashed_row() {
        let table: Vec<f32> = (0..8).map(|v| v as f32).collect(); // 4 buckets x 2
        let out = lookup(&table, 2, &[7]);
        let b = bucket(7, 4);
        assert_eq!(out, [table[b * 2], table[b * 2 + 1]]);
    }
}
