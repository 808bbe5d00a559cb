//! One latency series (wall, busy, device time; batch size and wait) per model or stage, each kept
//! cumulative and over a sliding window of ten slices.

use crate::read::decode::{counts_len, sub_bucket_count};
use crate::read::snapshot::{new_histogram, ModelLatency, HIGHEST_NS, SIGFIGS};
use hdrhistogram::Histogram;
use std::collections::VecDeque;
use std::sync::Arc;

/// Slices per window.
pub const SLICES: u64 = 10;

/// One closed slice, kept sparse: `(value, count)` of each non-empty bucket.
type Slice = (u64, Vec<(u64, u64)>);

/// Sub-buckets of one bucket at `SIGFIGS`.
const SUB_BUCKETS: u64 = sub_bucket_count(SIGFIGS as u32);
/// Bytes a series is charged per histogram bin it covers: its cumulative and
/// current histograms, and the two views (cumulative, recent) a snapshot
/// holds, in the snapshot being built and in the one readers still hold.
const BIN_BYTES: usize = 6 * std::mem::size_of::<u64>();
/// Bytes a sparse slice entry takes.
const ENTRY_BYTES: usize = std::mem::size_of::<(u64, u64)>();
/// What a new histogram pair is charged (it covers values up to 2047 ns).
pub(crate) const WINDOWED_BYTES: usize = bins_for(0) * BIN_BYTES;
/// What a new series (wall and busy time) is charged.
pub(crate) const SERIES_BYTES: usize = 2 * WINDOWED_BYTES;

/// The bins a histogram of this crate has once it covers `value` (HDR's
/// counts length at `SIGFIGS` with a lowest value of 1).
const fn bins_for(value: u64) -> usize {
    counts_len(0, SUB_BUCKETS, value) as usize
}

/// The largest value `bins` bins cover.
fn top_of(bins: usize) -> u64 {
    let buckets = bins as u64 / (SUB_BUCKETS / 2) - 1;
    (SUB_BUCKETS << (buckets - 1)) - 1
}

/// The bytes every series' histograms are charged, against a limit: a
/// histogram grows, a slice is kept for the recent window, and a key gets a
/// series of its own only while the charge fits. Each charge is at least
/// what it pays for, so the histograms take no more than `used`.
pub(crate) struct Account {
    pub(crate) used: usize,
    limit: usize,
    /// Samples kept less exactly because a charge did not fit (see
    /// `Counters::budget_clamped_samples`).
    pub(crate) clamped: u64,
}

impl Account {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            used: 0,
            limit,
            clamped: 0,
        }
    }

    /// Charges `bytes` if they fit.
    pub(crate) fn try_charge(&mut self, bytes: usize) -> bool {
        let fits = bytes == 0 || self.has_room(bytes);
        if fits {
            self.used += bytes;
        }
        fits
    }

    /// The bytes it allows.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Whether `bytes` more would fit.
    pub(crate) fn has_room(&self, bytes: usize) -> bool {
        self.used.saturating_add(bytes) <= self.limit
    }
}

/// A histogram kept since start and over the last `SLICES` slices.
///
/// A sample is recorded once, into the current slice (one HDR record). When the
/// slice ends it is added to the cumulative histogram and kept, sparse, until
/// it falls out of the window; the window's histogram is built from the live
/// slices only when a snapshot asks for it. So a series holds two histograms
/// (both sized to the largest value seen) and at most ten short lists.
///
/// Every byte of it is charged to an [`Account`] before it is taken: a value
/// that would grow the histograms past what the account allows is recorded
/// at the top of their range, and a slice whose list does not fit is left out
/// of the window (it stays in the cumulative histogram); both are counted in
/// `Account::clamped`.
pub(crate) struct Windowed {
    /// Every closed slice, summed.
    total: Histogram<u64>,
    /// The slice being recorded into, and its index.
    current: (u64, Histogram<u64>),
    /// Closed slices still inside the window, oldest first.
    closed: VecDeque<Slice>,
    /// An expired slice's list, kept for reuse.
    spare: Vec<(u64, u64)>,
    /// The bins charged: both histograms cover values up to `top`.
    bins: usize,
    top: u64,
}

impl Windowed {
    /// A new histogram pair, if the account can pay for it.
    pub(crate) fn charged(account: &mut Account) -> Option<Self> {
        account.try_charge(WINDOWED_BYTES).then(Self::paid)
    }

    /// A new histogram pair whose `WINDOWED_BYTES` were charged.
    pub(crate) fn paid() -> Self {
        let bins = bins_for(0);
        Self {
            total: new_histogram(),
            current: (0, new_histogram()),
            closed: VecDeque::new(),
            spare: Vec::new(),
            bins,
            top: top_of(bins),
        }
    }

    #[inline]
    pub(crate) fn record(&mut self, value: u64, slice: u64, account: &mut Account) {
        if self.current.0 != slice {
            self.roll(slice, account);
        }
        // Clamped, so the auto-resizing histogram never grows past the range
        // every histogram of the crate shares; it then cannot fail.
        let mut value = value.min(HIGHEST_NS);
        if value > self.top {
            value = self.grow(value, account);
        }
        let _ = self.current.1.record(value);
    }

    /// Records into an optional histogram pair, made on first use if the
    /// account can pay for it (else the sample is counted as clamped).
    pub(crate) fn record_into(
        slot: &mut Option<Self>,
        value: u64,
        slice: u64,
        account: &mut Account,
    ) {
        if slot.is_none() {
            *slot = Self::charged(account);
        }
        match slot {
            Some(w) => w.record(value, slice, account),
            None => account.clamped += 1,
        }
    }

    /// Charges the bins that cover `value`; when they do not fit, returns
    /// what to record instead: the top of the range paid for.
    #[cold]
    fn grow(&mut self, value: u64, account: &mut Account) -> u64 {
        let bins = bins_for(value);
        if !account.try_charge((bins - self.bins) * BIN_BYTES) {
            account.clamped += 1;
            return self.top;
        }
        self.bins = bins;
        self.top = top_of(bins);
        value
    }

    /// Closes the current slice (if it is older than `now_slice`) and expires
    /// closed slices that left the window. The histograms resize to take any
    /// value up to `HIGHEST_NS`, so `add` cannot fail.
    fn roll(&mut self, now_slice: u64, account: &mut Account) {
        if self.current.0 < now_slice {
            let idx = std::mem::replace(&mut self.current.0, now_slice);
            let h = &mut self.current.1;
            if !h.is_empty() {
                let _ = self.total.add(&*h);
                let mut sparse = std::mem::take(&mut self.spare);
                let entries = h.iter_recorded().count();
                let had = sparse.capacity();
                if account.try_charge(entries.saturating_sub(had) * ENTRY_BYTES) {
                    sparse.reserve_exact(entries);
                    // Should the allocator give more than asked, that is
                    // charged too.
                    account.used += (sparse.capacity() - had.max(entries)) * ENTRY_BYTES;
                    sparse.extend(
                        h.iter_recorded()
                            .map(|v| (v.value_iterated_to(), v.count_at_value())),
                    );
                    self.closed.push_back((idx, sparse));
                } else {
                    account.clamped += h.len();
                    self.spare = sparse;
                }
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
                // The larger list is kept for reuse, the other's bytes given
                // back.
                if list.capacity() < self.spare.capacity() {
                    std::mem::swap(&mut list, &mut self.spare);
                }
                account.used -= self.spare.capacity() * ENTRY_BYTES;
                self.spare = list;
            }
        }
    }

    /// Bytes this pair's histograms and lists hold: what its charge pays for
    /// (the snapshot views aside).
    #[cfg(test)]
    fn held(&self) -> usize {
        (self.total.distinct_values() + self.current.1.distinct_values()) * 8
            + self
                .closed
                .iter()
                .map(|(_, l)| l.capacity())
                .chain([self.spare.capacity()])
                .sum::<usize>()
                * ENTRY_BYTES
    }

    /// Every sample since start.
    pub(crate) fn total(&self) -> Histogram<u64> {
        let mut h = self.total.clone();
        let _ = h.add(&self.current.1);
        h
    }

    /// The samples of the last `SLICES` slices (the current one included).
    pub(crate) fn window(&mut self, now_slice: u64, account: &mut Account) -> Histogram<u64> {
        self.roll(now_slice, account);
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
    /// Requests blamed on this model, by `BlameReason::index`.
    pub(crate) blamed: [u64; 3],
    /// Changed since the last snapshot.
    pub(crate) dirty: bool,
    /// The last published views (cumulative, recent) and the slice they were
    /// built in: reused while nothing changed.
    pub(crate) cache: Option<(Arc<ModelLatency>, Arc<ModelLatency>, u64)>,
}

impl Series {
    /// A new series whose `SERIES_BYTES` were charged.
    pub(crate) fn paid() -> Self {
        Self {
            wall: Windowed::paid(),
            busy: Windowed::paid(),
            gpu: None,
            batch_size: None,
            batch_wait: None,
            errors: 0,
            timeouts: 0,
            blamed: [0; 3],
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
            let mut w = Windowed::paid();
            let mut account = Account::new(usize::MAX);
            for &s in &samples {
                w.record(s, 0, &mut account);
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
            let mut w = Windowed::paid();
            let mut account = Account::new(usize::MAX);
            for (slice, &n) in per_slice.iter().enumerate() {
                for k in 0..n {
                    w.record(1000 + k, slice as u64, &mut account);
                }
            }
            let now = per_slice.len() as u64 - 1;
            let expected: u64 = per_slice
                .iter()
                .enumerate()
                .filter(|(s, _)| *s as u64 + SLICES > now)
                .map(|(_, n)| n)
                .sum();
            let window = w.window(now, &mut account);
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

        /// What a pair is charged covers what it holds, within any limit;
        /// what a limit refuses is counted, never lost from the cumulative
        /// histogram.
        #[test]
        fn the_charge_covers_what_is_held_and_stays_within_the_limit(
            samples in prop::collection::vec((0u64..30, 1u64..HIGHEST_NS), 1..3000),
            limit in WINDOWED_BYTES..4 * WINDOWED_BYTES,
        ) {
            let mut account = Account::new(limit);
            let mut w = Windowed::charged(&mut account).expect("room for one pair");
            let mut sorted = samples.clone();
            sorted.sort_by_key(|&(slice, _)| slice);
            for &(slice, value) in &sorted {
                w.record(value, slice, &mut account);
                prop_assert!(account.used >= w.held(), "{} < {}", account.used, w.held());
                prop_assert!(account.used <= limit);
            }
            let last = sorted.last().unwrap().0;
            let window = w.window(last + SLICES / 2, &mut account);
            prop_assert!(account.used >= w.held() && account.used <= limit);
            prop_assert_eq!(w.total().len(), samples.len() as u64);
            let in_window = sorted.iter().filter(|(s, _)| s + SLICES > last + SLICES / 2).count();
            prop_assert!(window.len() + account.clamped >= in_window as u64);
        }
    }

    /// `bins_for` and `top_of` agree with HDR's own sizing.
    #[test]
    fn bins_agree_with_the_histograms() {
        for value in [0, 1, 2047, 2048, 4095, 4096, 999_999, 1 << 33, HIGHEST_NS] {
            let mut h = new_histogram();
            h.record(value).unwrap();
            let bins = bins_for(value);
            assert_eq!(h.distinct_values(), bins, "value {value}");
            let top = top_of(bins);
            assert!(top >= value);
            h.record(top).unwrap();
            assert_eq!(h.distinct_values(), bins, "{top} fits {bins} bins");
            h.record(top + 1).unwrap();
            assert!(h.distinct_values() > bins, "{} does not", top + 1);
        }
    }

    /// A value the account cannot grow the histograms for is recorded at the
    /// top of their range, and counted.
    #[test]
    fn a_value_past_the_account_is_recorded_at_the_top_and_counted() {
        let mut account = Account::new(WINDOWED_BYTES);
        let mut w = Windowed::charged(&mut account).unwrap();
        w.record(5, 0, &mut account);
        w.record(HIGHEST_NS, 0, &mut account);
        assert_eq!(account.clamped, 1);
        assert_eq!(account.used, WINDOWED_BYTES);
        let total = w.total();
        assert_eq!(total.len(), 2);
        assert_eq!(total.max(), total.highest_equivalent(top_of(bins_for(0))));
    }
}
