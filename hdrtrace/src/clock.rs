//! The span clock: raw TSC ticks through `quanta` on the hot path, converted to
//! nanoseconds only in the aggregator. See docs/design.md ("The clock") for the
//! measurement that chose it over `std::time::Instant` (benches/clock.rs).

/// A monotonic clock whose `now()` is one `rdtsc` on x86-64 with an invariant
/// TSC (quanta falls back to the OS monotonic clock elsewhere).
#[derive(Clone, Debug)]
pub struct Clock(quanta::Clock);

impl Clock {
    /// Calibrates a new clock (done once per subscriber).
    pub fn new() -> Self {
        Self(quanta::Clock::new())
    }

    /// Raw ticks: cheap, monotonic, meaningful only to [`Clock::nanos_between`].
    #[inline(always)]
    pub fn now(&self) -> u64 {
        self.0.raw()
    }

    /// Nanoseconds between two raw readings (0 if `end` precedes `start`).
    #[inline]
    pub fn nanos_between(&self, start: u64, end: u64) -> u64 {
        if end <= start {
            0
        } else {
            self.0.delta_as_nanos(start, end)
        }
    }

    /// Nanoseconds that `ticks` raw ticks span.
    #[inline]
    pub fn ticks_to_nanos(&self, ticks: u64) -> u64 {
        self.0.delta_as_nanos(0, ticks)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
