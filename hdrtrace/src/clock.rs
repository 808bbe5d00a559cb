//! The span clock: raw TSC ticks on the hot path, converted to nanoseconds
//! only in the aggregator, with `quanta`'s calibration. See docs/design.md
//! ("The clock") for the measurement that chose it over `std::time::Instant`
//! (benches/clock.rs).

/// A monotonic clock whose `now()` reads the TSC itself on x86-64 with an
/// invariant TSC (quanta falls back to the OS monotonic clock elsewhere, and
/// `now()` then asks quanta). Both give quanta's raw ticks, which quanta
/// converts.
#[derive(Clone, Debug)]
pub struct Clock {
    quanta: quanta::Clock,
    /// quanta's raw readings are the TSC's (`reads_tsc`), so `now()` reads
    /// the TSC itself and gets the same ticks without calling into quanta.
    // Read only on x86-64.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    tsc: bool,
}

impl Clock {
    /// Calibrates a new clock (done once per subscriber).
    pub fn new() -> Self {
        let quanta = quanta::Clock::new();
        let tsc = reads_tsc(&quanta);
        Self { quanta, tsc }
    }

    /// Raw ticks: cheap, monotonic, meaningful only to [`Clock::nanos_between`].
    #[inline(always)]
    pub fn now(&self) -> u64 {
        match self.now_inline() {
            Some(ticks) => ticks,
            None => self.quanta.raw(),
        }
    }

    /// `now()` when this clock reads the TSC itself, else `None` (then
    /// `now()` asks quanta): a fast path takes a reading only from here and
    /// leaves the other case to its slow path.
    #[inline(always)]
    pub(crate) fn now_inline(&self) -> Option<u64> {
        #[cfg(target_arch = "x86_64")]
        if self.tsc {
            // SAFETY: `rdtsc` exists on every x86-64 CPU and only reads the
            // time-stamp counter.
            return Some(unsafe { std::arch::x86_64::_rdtsc() });
        }
        None
    }

    /// Nanoseconds between two raw readings (0 if `end` precedes `start`).
    #[inline]
    pub fn nanos_between(&self, start: u64, end: u64) -> u64 {
        if end <= start {
            0
        } else {
            self.quanta.delta_as_nanos(start, end)
        }
    }

    /// Nanoseconds that `ticks` raw ticks span.
    #[inline]
    pub fn ticks_to_nanos(&self, ticks: u64) -> u64 {
        self.quanta.delta_as_nanos(0, ticks)
    }
}

/// Whether quanta's raw readings are the TSC's. quanta does not say which
/// source it chose, so look: a raw reading taken between two TSC readings
/// lies between them only if it is one (the OS clock counts nanoseconds from
/// another origin at another rate). Three tries, so that an interrupt between
/// the readings cannot mislead it; a wrong `false` only costs speed.
#[cfg(target_arch = "x86_64")]
fn reads_tsc(quanta: &quanta::Clock) -> bool {
    (0..3).any(|_| {
        // SAFETY (both): `rdtsc` exists on every x86-64 CPU and only reads
        // the time-stamp counter.
        let before = unsafe { std::arch::x86_64::_rdtsc() };
        let raw = quanta.raw();
        let after = unsafe { std::arch::x86_64::_rdtsc() };
        before <= raw && raw <= after
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn reads_tsc(_: &quanta::Clock) -> bool {
    false
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::Clock;
    use std::time::{Duration, Instant};

    /// Readings never go back, and the time between two of them converts to
    /// at least the time that passed (whichever source `now` reads: its
    /// ticks are the ones quanta converts).
    #[test]
    fn readings_convert_to_the_time_that_passed() {
        let clock = Clock::new();
        let wall = Instant::now();
        let start = clock.now();
        std::thread::sleep(Duration::from_millis(20));
        let end = clock.now();
        let passed = wall.elapsed();
        assert!(end >= start);
        let nanos = clock.nanos_between(start, end);
        assert!(nanos >= 20_000_000, "{nanos} ns for a 20 ms sleep");
        // The same span seen by the OS clock, with room for the two readings.
        assert!(
            nanos <= passed.as_nanos() as u64 + 1_000_000,
            "{nanos} ns, but only {passed:?} passed"
        );
    }
}
