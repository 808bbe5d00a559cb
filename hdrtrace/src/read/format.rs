//! How a duration reads in every view of a captured request (its verdict,
//! the text tree).

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
