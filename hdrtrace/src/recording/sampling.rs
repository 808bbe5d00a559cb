//! Run-time switches read on the hot path: the enable flag and the head-sampling
//! rate. Both are single atomics, so a reader never sees a torn value, and both
//! are read with `Relaxed`: they are hints that take effect "soon", and nothing
//! else is published through them.

use crate::sync::{AtomicBool, AtomicU64, Ordering};

/// The on/off switch.
pub(crate) struct Switch(AtomicBool);

impl Switch {
    pub(crate) fn new(on: bool) -> Self {
        Self(AtomicBool::new(on))
    }

    /// One relaxed load: the disabled path's whole cost inside the subscriber.
    #[inline(always)]
    pub(crate) fn is_on(&self) -> bool {
        // Relaxed: the flag guards no other memory; a thread that sees the old
        // value for a moment records (or skips) one more span, which is harmless.
        self.0.load(Ordering::Relaxed)
    }

    /// Sets the flag; returns the previous value.
    pub(crate) fn set(&self, on: bool) -> bool {
        // SeqCst is not needed for memory; AcqRel gives the caller a clean
        // "previous value" to decide whether to rebuild the interest cache.
        self.0.swap(on, Ordering::AcqRel)
    }
}

/// The head-sampling decision: a request is sampled when a hash of its id falls
/// below a threshold derived from the rate. The threshold is stored, not the
/// rate, so the hot path does one load and one compare.
pub(crate) struct Sampler {
    threshold: AtomicU64,
}

/// A request with this threshold is always sampled.
const ALL: u64 = u64::MAX;

impl Sampler {
    pub(crate) fn new(rate: f32) -> Self {
        Self {
            threshold: AtomicU64::new(threshold(rate)),
        }
    }

    /// Changes the rate at run time (the caller validated it).
    pub(crate) fn set_rate(&self, rate: f32) {
        // Relaxed: the threshold is self-contained; requests started after a
        // reader observes the store use it, earlier ones keep their decision.
        self.threshold.store(threshold(rate), Ordering::Relaxed);
    }

    /// The rate now in force.
    pub(crate) fn rate(&self) -> f32 {
        // Relaxed: see `set_rate`.
        let t = self.threshold.load(Ordering::Relaxed);
        if t == ALL {
            1.0
        } else {
            (t as f64 / 2f64.powi(64)) as f32
        }
    }

    /// Deterministic for a given request id: the same id and rate always get the
    /// same answer, on any thread.
    #[inline]
    pub(crate) fn decide(&self, request_id: u64) -> bool {
        // Relaxed: see `set_rate`.
        let t = self.threshold.load(Ordering::Relaxed);
        t == ALL || mix(request_id) < t
    }
}

/// The threshold for a rate: `rate * 2^64`, saturating at both ends.
fn threshold(rate: f32) -> u64 {
    if rate.is_nan() || rate <= 0.0 {
        0
    } else if rate >= 1.0 {
        ALL
    } else {
        (rate as f64 * 2f64.powi(64)) as u64
    }
}

/// splitmix64's finalizer: spreads sequential ids uniformly over u64.
#[inline]
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn sampled_fraction_is_within_a_binomial_bound(rate in 0.0f32..=1.0, base in any::<u64>()) {
            let s = Sampler::new(rate);
            let n = 20_000u64;
            let kept = (0..n).filter(|i| s.decide(base.wrapping_add(*i))).count() as f64;
            let p = rate as f64;
            let sigma = (n as f64 * p * (1.0 - p)).sqrt();
            prop_assert!((kept - n as f64 * p).abs() <= 5.0 * sigma + 1.0,
                "rate {rate}: kept {kept} of {n}");
        }

        #[test]
        fn decisions_are_deterministic_per_request(rate in 0.0f32..=1.0, id in any::<u64>()) {
            let a = Sampler::new(rate);
            let b = Sampler::new(rate);
            prop_assert_eq!(a.decide(id), b.decide(id));
        }
    }

    #[test]
    fn the_extremes_are_exact() {
        let none = Sampler::new(0.0);
        let all = Sampler::new(1.0);
        assert!((0..10_000).all(|i| !none.decide(i) && all.decide(i)));
        assert_eq!(all.rate(), 1.0);
        none.set_rate(1.0);
        assert!(none.decide(3));
    }
}
