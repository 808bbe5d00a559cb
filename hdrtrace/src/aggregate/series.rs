//! One latency series (wall, busy, device time) per model or stage, each kept
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
    Histogram::new_with_bounds(1, HIGHEST_NS, SIGFIGS).expect("constant histogram bounds are valid")
}

/// A histogram kept since start and over the last `SLICES` slices.
///
/// A sample is recorded once, into the current slice. When the slice ends it is
/// added to the cumulative histogram and to the running window, and it is
/// subtracted from the window when it falls out of it, so the per-record cost is
/// one HDR record and a snapshot is a clone plus the current slice.
pub(crate) struct Windowed {
    /// Every closed slice, summed.
    total: Histogram<u64>,
    /// The closed slices still inside the window, summed.
    window: Histogram<u64>,
    /// The slice being recorded into, and its index.
    current: (u64, Histogram<u64>),
    /// Closed slices still inside the window, oldest first.
    closed: VecDeque<(u64, Histogram<u64>)>,
    /// An expired slice's histogram, kept for reuse.
    spare: Option<Histogram<u64>>,
}

impl Windowed {
    pub(crate) fn new() -> Self {
        Self {
            total: new_histogram(),
            window: new_histogram(),
            current: (0, new_histogram()),
            closed: VecDeque::new(),
            spare: None,
        }
    }

    pub(crate) fn record(&mut self, value: u64, slice: u64) {
        if self.current.0 != slice {
            self.roll(slice);
        }
        self.current.1.saturating_record(value);
    }

    /// Closes the current slice (if it is older than `now_slice`) and expires
    /// closed slices that left the window. All histograms share one set of
    /// bounds, so `add` and `subtract` cannot fail.
    fn roll(&mut self, now_slice: u64) {
        if self.current.0 < now_slice {
            let fresh = self.spare.take().unwrap_or_else(new_histogram);
            let (idx, h) = std::mem::replace(&mut self.current, (now_slice, fresh));
            if !h.is_empty() {
                let _ = self.total.add(&h);
                let _ = self.window.add(&h);
                self.closed.push_back((idx, h));
            } else {
                self.spare = Some(h);
            }
        }
        while self
            .closed
            .front()
            .is_some_and(|s| s.0 + SLICES <= now_slice)
        {
            if let Some((_, mut h)) = self.closed.pop_front() {
                let _ = self.window.subtract(&h);
                h.reset();
                self.spare = Some(h);
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
        let mut h = self.window.clone();
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
