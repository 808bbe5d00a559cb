//! Native (exponential) histogram buckets computed from an HDR histogram's
//! counts.
//!
//! # Schema and error bound
//!
//! The HDR histograms keep 3 significant figures: each HDR bucket is at most
//! 1/1024 of its values wide (under 0.1%). The finest native schema
//! Prometheus reads is [`SCHEMA`] 8, whose buckets grow by
//! `2^(1/256) ≈ 1.00271` (0.271% wide): every HDR bucket fits inside one
//! or two native buckets, never spreads over more. Each HDR bucket's whole
//! count goes to the native bucket that holds its **highest** value (the
//! value HDR reports for its own quantiles, and the one the classic buckets
//! are filled by), so every recorded value counts exactly once.
//!
//! A quantile Prometheus computes from these buckets lies in the native
//! bucket that holds the HDR quantile (both rank the same counts in the same
//! order), so it is within [`RELATIVE_ERROR`] (`2^(1/256) - 1`, under 0.28%)
//! of the HDR quantile, and within 0.37% of the true value (HDR's own 0.1%
//! added).
//!
//! Values of 0 (nothing below 1 ns, or a batch of none) count in the zero
//! bucket, [`ZERO_THRESHOLD`] wide: below every nonzero value the histograms
//! hold (1 ns is 1e-9 s).

use super::proto::{BucketSpan, Histogram as Proto};
use hdrhistogram::Histogram;

/// The native schema: bucket bounds grow by `2^(2^-8)`.
pub const SCHEMA: i32 = 8;

/// How far a quantile from the native buckets may be from the HDR
/// quantile, relative to it: one bucket's growth, `2^(2^-SCHEMA) - 1`.
pub const RELATIVE_ERROR: f64 = 0.002_711_275_050_202_485;

/// The zero bucket's threshold, `2^-31` (about 0.47 ns in seconds): below
/// every nonzero value, so it holds exactly the values recorded as 0.
pub const ZERO_THRESHOLD: f64 = 1.0 / (1u64 << 31) as f64;

/// The native bucket index of `value` (above zero) at [`SCHEMA`]: the `i`
/// with `2^((i-1)/256) < value ≤ 2^(i/256)`.
pub fn index_of(value: f64) -> i32 {
    let scaled = value.log2() * f64::from(1u32 << SCHEMA);
    // Finite for every value an HDR histogram holds (1e-9 to u64::MAX).
    scaled.ceil() as i32
}

/// Fills `out`'s native fields ([`SCHEMA`], [`ZERO_THRESHOLD`], zero count,
/// positive spans and deltas) from `hist`, whose values are divided by
/// `per_unit` on export (1e9 for nanoseconds exported in seconds, 1 for
/// counts), placed
/// as the [module docs](self) describe. An empty histogram gets the no-op
/// span `(0, 0)`, so that it reads as native all the same. A bucket count
/// above `i64::MAX` is written as `i64::MAX`.
pub(super) fn fill(out: &mut Proto, hist: &Histogram<u64>, per_unit: f64) {
    out.schema = SCHEMA;
    out.zero_threshold = ZERO_THRESHOLD;
    out.zero_count = 0;
    out.positive_span.clear();
    out.positive_delta.clear();
    // (index, count) of each populated native bucket, in increasing order:
    // HDR buckets come smallest first, and the index only grows with them.
    let mut buckets: Vec<(i32, i64)> = Vec::new();
    for v in hist.iter_recorded() {
        let count = i64::try_from(v.count_at_value()).unwrap_or(i64::MAX);
        let high = v.value_iterated_to();
        if high == 0 {
            out.zero_count = out.zero_count.saturating_add(v.count_at_value());
            continue;
        }
        let index = index_of(high as f64 / per_unit);
        match buckets.last_mut() {
            Some((last, c)) if *last == index => *c = c.saturating_add(count),
            _ => buckets.push((index, count)),
        }
    }
    let mut previous: Option<i32> = None;
    let mut previous_count = 0i64;
    for (index, count) in buckets {
        match previous {
            Some(p) if index == p + 1 => {
                if let Some(span) = out.positive_span.last_mut() {
                    span.length += 1;
                }
            }
            _ => out.positive_span.push(BucketSpan {
                offset: previous.map_or(index, |p| index - p - 1),
                length: 1,
            }),
        }
        out.positive_delta.push(count - previous_count);
        previous = Some(index);
        previous_count = count;
    }
    if out.positive_span.is_empty() {
        out.positive_span.push(BucketSpan {
            offset: 0,
            length: 0,
        });
    }
}

/// The populated native buckets of `h` as `(index, count)`, smallest first:
/// its spans and deltas read back (a decoder's view, for tests).
#[cfg(test)]
pub(super) fn buckets_of(h: &Proto) -> Vec<(i32, i64)> {
    let mut out = Vec::new();
    let (mut index, mut count, mut deltas) = (0i32, 0i64, h.positive_delta.iter());
    for (k, span) in h.positive_span.iter().enumerate() {
        index = if k == 0 {
            span.offset
        } else {
            index + span.offset
        };
        for _ in 0..span.length {
            count += deltas.next().copied().unwrap_or(0);
            out.push((index, count));
            index += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: &[u64]) -> Histogram<u64> {
        let mut h = Histogram::<u64>::new_with_bounds(1, 120_000_000_000, 3).unwrap();
        for &v in values {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn constants_are_what_they_say() {
        let base = 2f64.powf(2f64.powi(-SCHEMA));
        assert!((RELATIVE_ERROR - (base - 1.0)).abs() < 1e-15);
        assert_eq!(ZERO_THRESHOLD, 2f64.powi(-31));
        const { assert!(ZERO_THRESHOLD < 1e-9) };
    }

    #[test]
    fn index_brackets_the_value() {
        let base = 2f64.powf(1.0 / 256.0);
        for v in [1e-9, 3.3e-6, 0.001, 0.0351, 1.0, 2.0, 59.9, 120.0, 1024.0] {
            let i = index_of(v);
            let (low, high) = (base.powi(i - 1), base.powi(i));
            assert!(
                low < v * (1.0 + 1e-12) && v <= high * (1.0 + 1e-12),
                "{v}: {i}"
            );
        }
        // Powers of two are bucket bounds: 1 closes bucket 0, 2 bucket 256.
        assert_eq!(index_of(1.0), 0);
        assert_eq!(index_of(2.0), 256);
        assert_eq!(index_of(0.5), -256);
    }

    #[test]
    fn spans_and_deltas_follow_the_format() {
        // 1 s twice, 1 s + 0.35% once (the next native bucket up), 2 s once,
        // and two zeros.
        let h = hist(&[
            0,
            0,
            1_000_000_000,
            1_000_000_000,
            1_003_500_000,
            2_000_000_000,
        ]);
        let mut p = Proto::default();
        fill(&mut p, &h, 1e9);
        assert_eq!(p.schema, 8);
        assert_eq!(p.zero_count, 2);
        let one = index_of(h.highest_equivalent(1_000_000_000) as f64 / 1e9);
        let two = index_of(h.highest_equivalent(2_000_000_000) as f64 / 1e9);
        assert_eq!(
            p.positive_span,
            vec![
                BucketSpan {
                    offset: one,
                    length: 2
                },
                BucketSpan {
                    offset: two - one - 2,
                    length: 1
                },
            ]
        );
        assert_eq!(p.positive_delta, vec![2, -1, 0]);
        assert_eq!(buckets_of(&p), vec![(one, 2), (one + 1, 1), (two, 1)]);
    }

    #[test]
    fn an_empty_histogram_is_still_native() {
        let mut p = Proto::default();
        fill(&mut p, &hist(&[]), 1e9);
        assert_eq!(p.positive_span, vec![BucketSpan::default()]);
        assert!(p.positive_delta.is_empty());
        assert_eq!((p.zero_count, p.zero_threshold), (0, ZERO_THRESHOLD));
    }

    #[test]
    fn every_hdr_bucket_lands_in_one_native_bucket() {
        // Values spread over 1 µs .. 100 s: the native counts add up to the
        // HDR total, and each HDR bucket's count is where its highest
        // value belongs.
        let values: Vec<u64> = (0..2000u64).map(|i| 1_000 + i * i * 29_000).collect();
        let h = hist(&values);
        let mut p = Proto::default();
        fill(&mut p, &h, 1e9);
        let native = buckets_of(&p);
        let total: i64 = native.iter().map(|(_, c)| c).sum();
        assert_eq!(total as u64, h.len());
        let mut want: std::collections::BTreeMap<i32, i64> = Default::default();
        for v in h.iter_recorded() {
            *want
                .entry(index_of(v.value_iterated_to() as f64 / 1e9))
                .or_default() += v.count_at_value() as i64;
        }
        assert_eq!(native, want.into_iter().collect::<Vec<_>>());
    }
}
