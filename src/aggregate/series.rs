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
pub(crate) struct Windowed {
    pub(crate) total: Histogram<u64>,
    slices: VecDeque<(u64, Histogram<u64>)>,
}

impl Windowed {
    pub(crate) fn new() -> Self {
        Self {
            total: new_histogram(),
            slices: VecDeque::new(),
        }
    }

    pub(crate) fn record(&mut self, value: u64, slice: u64) {
        self.total.saturating_record(value);
        if self.slices.back().map(|s| s.0) != Some(slice) {
            self.expire(slice);
            let h = match self.slices.len() as u64 >= SLICES {
                true => {
                    let (_, mut h) = self.slices.pop_front().expect("len checked");
                    h.reset();
                    h
                }
                false => new_histogram(),
            };
            self.slices.push_back((slice, h));
        }
        if let Some((_, h)) = self.slices.back_mut() {
            h.saturating_record(value);
        }
    }

    fn expire(&mut self, now_slice: u64) {
        while self
            .slices
            .front()
            .is_some_and(|s| s.0 + SLICES <= now_slice)
        {
            self.slices.pop_front();
        }
    }

    /// The samples of the last `SLICES` slices (the current one included).
    pub(crate) fn window(&self, now_slice: u64) -> Histogram<u64> {
        let mut h = new_histogram();
        for (i, s) in &self.slices {
            if i + SLICES > now_slice {
                // Same bounds on both sides, so `add` cannot fail.
                let _ = h.add(s);
            }
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
