//! The classic histogram buckets (`le` bounds) exported for every latency
//! series, and how an HDR histogram's counts are placed in them.

use crate::error::ExportError;
use hdrhistogram::Histogram;
use std::time::Duration;

/// The upper bounds (`le`) of the classic histogram buckets exported for every
/// latency series; `+Inf` is always added after the last.
///
/// [`Buckets::default`] ([`Buckets::INFERENCE_LATENCY`]) runs from 100 µs to
/// 60 s in 1-2.5-5 steps, which resolves both a sub-millisecond tokenizer and
/// a model stuck for tens of seconds. Every instance scraped into one query
/// must use the same bounds, or `sum by (le)` mixes buckets.
///
/// # How HDR counts are placed
///
/// The HDR histograms keep 3 significant figures: a recorded value is stored
/// in an HDR bucket no wider than 1/1024 of the values it holds (under 0.1%).
/// Each HDR bucket's whole count goes to the first `le` bucket whose bound is
/// at least the HDR bucket's **highest** value (the value HDR reports for its
/// quantiles). So every recorded value is counted exactly once; none is
/// counted below its true bucket; and a value `v ≤ bound` whose HDR bucket
/// reaches past `bound`, which needs `v > bound × (1 - 1/1024)`, is counted in
/// the next bucket up. A value above the histogram's highest trackable value
/// (120 s for the aggregator's histograms) was recorded as that value and is
/// counted where it falls.
///
/// ```
/// use hdrtrace::export::prometheus::Buckets;
/// use std::time::Duration;
///
/// let b = Buckets::new(&[Duration::from_millis(1), Duration::from_millis(10)]).unwrap();
/// assert_eq!(b.len(), 2);
/// assert!(Buckets::new(&[Duration::from_millis(10), Duration::from_millis(1)]).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Buckets {
    /// Upper bounds in nanoseconds, strictly increasing, each above zero.
    bounds: Vec<u64>,
}

impl Buckets {
    /// The default bounds, in seconds: 0.0001, 0.00025, 0.0005, 0.001,
    /// 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60.
    pub const INFERENCE_LATENCY: [Duration; 18] = [
        Duration::from_micros(100),
        Duration::from_micros(250),
        Duration::from_micros(500),
        Duration::from_millis(1),
        Duration::from_micros(2500),
        Duration::from_millis(5),
        Duration::from_millis(10),
        Duration::from_millis(25),
        Duration::from_millis(50),
        Duration::from_millis(100),
        Duration::from_millis(250),
        Duration::from_millis(500),
        Duration::from_secs(1),
        Duration::from_millis(2500),
        Duration::from_secs(5),
        Duration::from_secs(10),
        Duration::from_secs(25),
        Duration::from_secs(60),
    ];

    /// Most bounds one set may hold (each costs a series per model and stage).
    pub const MAX_BOUNDS: usize = 64;

    /// Buckets with these upper bounds. They must be 1 to
    /// [`MAX_BOUNDS`](Self::MAX_BOUNDS) durations, strictly increasing, each
    /// at least 1 ns and at most `u64::MAX` ns; anything else is an
    /// [`ExportError::Exporter`] saying which bound is wrong.
    pub fn new(bounds: &[Duration]) -> Result<Self, ExportError> {
        let refuse = |reason: String| ExportError::Exporter {
            what: "prometheus buckets",
            reason,
        };
        if bounds.is_empty() || bounds.len() > Self::MAX_BOUNDS {
            return Err(refuse(format!(
                "{} bounds given; accepted: 1..={}",
                bounds.len(),
                Self::MAX_BOUNDS
            )));
        }
        let mut ns = Vec::with_capacity(bounds.len());
        for (i, b) in bounds.iter().enumerate() {
            let n = u64::try_from(b.as_nanos())
                .map_err(|_| refuse(format!("bound {i} ({b:?}) exceeds u64::MAX nanoseconds")))?;
            if n == 0 {
                return Err(refuse(format!("bound {i} is zero; bounds must be above 0")));
            }
            if let Some(&prev) = ns.last() {
                if n <= prev {
                    return Err(refuse(format!(
                        "bound {i} ({b:?}) is not above bound {} ({:?}); bounds must strictly increase",
                        i - 1,
                        bounds[i - 1]
                    )));
                }
            }
            ns.push(n);
        }
        Ok(Buckets { bounds: ns })
    }

    /// How many bounds (the `+Inf` bucket not counted).
    pub fn len(&self) -> usize {
        self.bounds.len()
    }

    /// Always false: a `Buckets` holds at least one bound.
    pub fn is_empty(&self) -> bool {
        self.bounds.is_empty()
    }

    /// The bounds, smallest first.
    pub fn bounds(&self) -> impl Iterator<Item = Duration> + '_ {
        self.bounds.iter().map(|&n| Duration::from_nanos(n))
    }

    /// The bucket an exact value of `nanos` belongs in: the index of the first
    /// bound at least `nanos`, or [`len`](Self::len) for `+Inf`.
    pub fn index_of(&self, nanos: u64) -> usize {
        self.bounds.partition_point(|&b| b < nanos)
    }

    /// The cumulative count of every bucket of `hist` (nanoseconds), one per
    /// bound and then `+Inf` (which is `hist.len()`), placed as the [type
    /// docs](Self) describe.
    pub fn cumulative_counts(&self, hist: &Histogram<u64>) -> Vec<u64> {
        let mut counts = vec![0u64; self.bounds.len() + 1];
        for v in hist.iter_recorded() {
            let i = self.index_of(v.value_iterated_to());
            counts[i] = counts[i].saturating_add(v.count_at_value());
        }
        let mut total = 0u64;
        for c in &mut counts {
            total = total.saturating_add(*c);
            *c = total;
        }
        counts
    }
}

impl Default for Buckets {
    fn default() -> Self {
        Buckets {
            bounds: Self::INFERENCE_LATENCY
                .iter()
                .map(|d| d.as_nanos() as u64)
                .collect(),
        }
    }
}

/// The sum of every recorded value of `hist` in nanoseconds, each counted at
/// the middle of its HDR bucket (so within 0.05% of the true sum). Only grows
/// as the histogram does.
pub(crate) fn sum_nanos(hist: &Histogram<u64>) -> u128 {
    hist.iter_recorded()
        .map(|v| {
            let high = v.value_iterated_to();
            let low = hist.lowest_equivalent(high);
            let mid = low + (high - low) / 2;
            u128::from(mid) * u128::from(v.count_at_value())
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: &[u64]) -> Histogram<u64> {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for &v in values {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn every_value_counts_once_in_its_bucket() {
        let b = Buckets::new(&[Duration::from_micros(10), Duration::from_millis(1)]).unwrap();
        // 5 µs, 9 µs | 20 µs, 999 µs | 2 ms, 1 s
        let h = hist(&[5_000, 9_000, 20_000, 999_000, 2_000_000, 1_000_000_000]);
        assert_eq!(b.cumulative_counts(&h), vec![2, 4, 6]);
        assert_eq!(b.cumulative_counts(&hist(&[])), vec![0, 0, 0]);
    }

    #[test]
    fn a_value_on_a_bound_within_hdr_precision_counts_next_bucket_up() {
        // 1 ms = 1_000_000 ns lies in an HDR bucket of width 512 ns ending at
        // 1_000_447, past the bound: it is counted above, as documented.
        let b = Buckets::new(&[Duration::from_millis(1)]).unwrap();
        let h = hist(&[1_000_000]);
        assert!(h.highest_equivalent(1_000_000) > 1_000_000);
        assert_eq!(b.cumulative_counts(&h), vec![0, 1]);
        // 0.2% below the bound is always below it.
        assert_eq!(b.cumulative_counts(&hist(&[998_000])), vec![1, 1]);
    }

    #[test]
    fn sum_is_within_hdr_precision() {
        let values = [1_000u64, 123_456, 9_999_999, 1_000_000_000];
        let exact: u128 = values.iter().map(|&v| u128::from(v)).sum();
        let sum = sum_nanos(&hist(&values));
        assert!(sum.abs_diff(exact) * 1000 <= exact, "{sum} vs {exact}");
    }

    #[test]
    fn bad_bounds_are_refused_with_a_reason() {
        let ms = Duration::from_millis;
        for (bounds, needle) in [
            (vec![], "0 bounds"),
            (vec![Duration::ZERO], "zero"),
            (vec![ms(2), ms(2)], "strictly increase"),
            (vec![ms(2), ms(1)], "bound 1"),
            (vec![Duration::MAX], "u64::MAX"),
            (vec![ms(1); 65], "65 bounds"),
        ] {
            let err = Buckets::new(&bounds).unwrap_err().to_string();
            assert!(err.contains(needle), "{bounds:?}: {err}");
        }
        assert_eq!(
            Buckets::new(&Buckets::INFERENCE_LATENCY).unwrap(),
            Buckets::default()
        );
    }
}
