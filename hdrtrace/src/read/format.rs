//! How a duration reads in every view of a captured request (its verdict,
//! the text tree, the HTML report).

use std::time::Duration;

/// Milliseconds with a precision that suits the size: `205.0ms`, `2.50ms`,
/// `0.042ms`.
pub(crate) fn fmt_ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms >= 10.0 {
        format!("{ms:.1}ms")
    } else if ms >= 1.0 {
        format!("{ms:.2}ms")
    } else {
        format!("{ms:.3}ms")
    }
}

/// A round duration as people write it (targets, windows, axis ticks):
/// `0`, `200ms`, `1.5s`, `2.5ms`, `250µs`, to three decimals at most.
pub(crate) fn fmt_round(d: Duration) -> String {
    let ns = d.as_nanos();
    let trim = |v: f64, unit: &str| {
        let s = format!("{v:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        format!("{s}{unit}")
    };
    if ns >= 1_000_000_000 {
        trim(ns as f64 / 1e9, "s")
    } else if ns >= 1_000_000 {
        trim(ns as f64 / 1e6, "ms")
    } else if ns >= 1_000 {
        trim(ns as f64 / 1e3, "µs")
    } else if ns == 0 {
        "0".to_string()
    } else {
        format!("{ns}ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_durations_read_as_written() {
        let ms = Duration::from_millis;
        assert_eq!(fmt_round(ms(200)), "200ms");
        assert_eq!(fmt_round(ms(1500)), "1.5s");
        assert_eq!(fmt_round(ms(60_000)), "60s");
        assert_eq!(fmt_round(Duration::from_micros(2500)), "2.5ms");
        assert_eq!(fmt_round(Duration::from_micros(250)), "250µs");
        assert_eq!(fmt_round(Duration::from_nanos(1)), "1ns");
        assert_eq!(fmt_round(Duration::ZERO), "0");
    }
}
