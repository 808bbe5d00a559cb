//! One latency series (wall, busy, device time; batch size and wait) per model or stage, each kept
//! cumulative and over a sliding window of ten slices.

use crate::aggregate::snapshot::ModelLatency;
use hdrhistogram::Histogram;
use std::collections::VecDeque;
use std::sync::Arc;

/// Histograms record nanoseconds from 1 ns up to this, at 3 significant figures;
/// larger values saturate at the top.
pub const HIGHEST_NS: u64 = 120 * 1_000_000_000;
/// Significant figures kept.
pub const SIGFIGS: u8 = 3;
/// Slices per window.
pub const SLICES: u64 = 10;

pub(crate) fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that HDR accepts (1 <= low, high >= 2 * low,
    // sigfigs <= 5), so this cannot fail.
    let mut h =
        Histogram::new_with_bounds(1, 2, SIGFIGS).expect("constant histogram bounds are valid");
    // Grows to the largest value recorded (at most `HIGHEST_NS`, see
    // `Windowed::record`): a series of microsecond spans costs 16 KiB, not the
    // 229 KiB a histogram sized for 120 s takes.
    h.auto(true);
    h
}

/// One closed slice, kept sparse: `(value, count)` of each non-empty bucket.
type Slice = (u64, Vec<(u64, u64)>);

/// A histogram kept since start and over the last `SLICES` slices.
///
/// A sample is recorded once, into the current slice (one HDR record). When the
/// slice ends it is added to the cumulative histogram and kept, sparse, until
/// it falls out of the window; the window's histogram is built from the live
/// slices only when a snapshot asks for it. So a series holds two histograms
/// (both sized to the largest value seen) and at most ten short lists.
pub(crate) struct Windowed {
    /// Every closed slice, summed.
    total: Histogram<u64>,
    /// The slice being recorded into, and its index.
    current: (u64, Histogram<u64>),
    /// Closed slices still inside the window, oldest first.
    closed: VecDeque<Slice>,
    /// An expired slice's list, kept for reuse.
    spare: Vec<(u64, u64)>,
}

impl Windowed {
    pub(crate) fn new() -> Self {
        Self {
            total: new_histogram(),
            current: (0, new_histogram()),
            closed: VecDeque::new(),
            spare: Vec::new(),
        }
    }

    #[inline]
    pub(crate) fn record(&mut self, value: u64, slice: u64) {
        if self.current.0 != slice {
            self.roll(slice);
        }
        // Clamped, so the auto-resizing histogram never grows past the range
        // every histogram of the crate shares; it then cannot fail.
        let _ = self.current.1.record(value.min(HIGHEST_NS));
    }

    /// Closes the current slice (if it is older than `now_slice`) and expires
    /// closed slices that left the window. The histograms resize to take any
    /// value up to `HIGHEST_NS`, so `add` cannot fail.
    fn roll(&mut self, now_slice: u64) {
        if self.current.0 < now_slice {
            let idx = std::mem::replace(&mut self.current.0, now_slice);
            let h = &mut self.current.1;
            if !h.is_empty() {
                let _ = self.total.add(&*h);
                let mut sparse = std::mem::take(&mut self.spare);
                sparse.extend(
                    h.iter_recorded()
                        .map(|v| (v.value_iterated_to(), v.count_at_value())),
                );
                self.closed.push_back((idx, sparse));
                h.reset();
            }
        }
        while self
            .closed
            .front()
            .is_some_and(|s| s.0 + SLICES <= now_slice)
        {
            if let Some((_, mut list)) = self.closed.pop_front() {
                list.clear();
                self.spare = list;
            }
        }
    }

    /// Every sample since start.
    pub(crate) fn total(&self) -> Histogram<u64> {
        let mut h = self.total.clone();
        let _ = h.add(&self.current.1);
        h
    }

    /// The samples of the last `SLICES` slices (the current one included).
    pub(crate) fn window(&mut self, now_slice: u64) -> Histogram<u64> {
        self.roll(now_slice);
        let mut h = new_histogram();
        for (_, list) in &self.closed {
            for &(value, count) in list {
                let _ = h.record_n(value, count);
            }
        }
        if self.current.0 + SLICES > now_slice {
            let _ = h.add(&self.current.1);
        }
        h
    }
}

/// Everything recorded for one model or stage.
pub(crate) struct Series {
    pub(crate) wall: Windowed,
    pub(crate) busy: Windowed,
    pub(crate) gpu: Option<Windowed>,
    /// Batch sizes, one per batch span (models that ran batched).
    pub(crate) batch_size: Option<Windowed>,
    /// Each served request's wait for its batch (model span start to batch
    /// span start), in nanoseconds.
    pub(crate) batch_wait: Option<Windowed>,
    pub(crate) errors: u64,
    pub(crate) timeouts: u64,
    pub(crate) blamed: u64,
    /// Changed since the last snapshot.
    pub(crate) dirty: bool,
    /// The last published views (cumulative, recent) and the slice they were
    /// built in: reused while nothing changed.
    pub(crate) cache: Option<(Arc<ModelLatency>, Arc<ModelLatency>, u64)>,
}

impl Series {
    pub(crate) fn new() -> Self {
        Self {
            wall: Windowed::new(),
            busy: Windowed::new(),
            gpu: None,
            batch_size: None,
            batch_wait: None,
            errors: 0,
            timeouts: 0,
            blamed: 0,
            dirty: true,
            cache: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The rank HdrHistogram reports for quantile `q` over sorted samples.
    fn exact(sorted: &[u64], q: f64) -> u64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
        sorted[rank.min(sorted.len()) - 1]
    }

    proptest! {
        #[test]
        fn quantiles_agree_with_exact_within_hdr_precision(
            samples in prop::collection::vec(1u64..HIGHEST_NS, 1..2000),
            q in 0.0f64..=1.0,
        ) {
            let mut w = Windowed::new();
            for &s in &samples {
                w.record(s, 0);
            }
            let mut sorted = samples.clone();
            sorted.sort_unstable();
            let want = exact(&sorted, q);
            let total = w.total();
            let got = total.value_at_quantile(q);
            // 3 significant figures: values in one bucket differ by < 1/1024.
            let tolerance = want / 1000 + 1;
            prop_assert!(got.abs_diff(want) <= tolerance, "q={q} got {got} want {want}");
            prop_assert_eq!(total.len(), samples.len() as u64);
        }

        #[test]
        fn the_window_holds_exactly_the_last_slices(
            per_slice in prop::collection::vec(0u64..20, 1..30),
        ) {
            let mut w = Windowed::new();
            for (slice, &n) in per_slice.iter().enumerate() {
                for k in 0..n {
                    w.record(1000 + k, slice as u64);
                }
            }
            let now = per_slice.len() as u64 - 1;
            let expected: u64 = per_slice
                .iter()
                .enumerate()
                .filter(|(s, _)| *s as u64 + SLICES > now)
                .map(|(_, n)| n)
                .sum();
            let window = w.window(now);
            prop_assert_eq!(window.len(), expected);
            let live_max = per_slice
                .iter()
                .enumerate()
                .filter(|(s, n)| *s as u64 + SLICES > now && **n > 0)
                .map(|(_, n)| 1000 + n - 1)
                .max();
            if let Some(m) = live_max {
                prop_assert_eq!(window.max(), m, "expired slices leave the max");
            }
            prop_assert_eq!(w.total().len(), per_slice.iter().sum::<u64>());
        }
    }
}
