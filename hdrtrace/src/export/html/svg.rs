//! What every picture of the HTML report writes the same way: escaped text,
//! pixel coordinates, axis ticks.

use std::fmt::Write as _;
use std::time::Duration;

/// `text` safe inside HTML or SVG text and inside a quoted attribute: `&`,
/// `<`, `>`, `"` and `'` become character references; everything else is
/// kept as it is.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A label cut to `max` characters (`…` marking the cut), escaped; the whole
/// label goes in the element's `<title>`.
pub(super) fn short_label(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => escape(&format!("{}…", &text[..end])),
        None => escape(text),
    }
}

/// A pixel coordinate as every picture writes it: rounded to one decimal.
pub(super) fn px(out: &mut String, v: f64) {
    let v = if v.is_finite() { v } else { 0.0 };
    let _ = write!(out, "{v:.1}");
}

/// A coordinate as a string, for attributes (see [`px`]).
pub(super) fn coord(v: f64) -> String {
    let mut s = String::new();
    px(&mut s, v);
    s
}

/// The top of a linear latency axis holding `max` and its tick step: a
/// 1, 2 or 5 times a power of ten step giving at most five ticks, the top a
/// whole number of steps (1 µs and one step for an empty axis).
pub(super) fn latency_axis(max: Duration) -> (Duration, Duration) {
    let max_ns = max.as_nanos().clamp(1000, u64::MAX as u128 / 10) as u64;
    let mut step = 1u64;
    loop {
        let mut found = None;
        for m in [1, 2, 5] {
            let s = step.saturating_mul(m);
            if max_ns.div_ceil(s) <= 5 {
                found = Some(s);
                break;
            }
        }
        if let Some(s) = found {
            let top = max_ns.div_ceil(s).max(1) * s;
            return (Duration::from_nanos(top), Duration::from_nanos(s));
        }
        step = step.saturating_mul(10);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_markup_character() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(short_label("αβγδ<", 3), "αβγ…");
        assert_eq!(short_label("a<b", 3), "a&lt;b");
    }

    #[test]
    fn axes_end_on_a_whole_step() {
        let ms = Duration::from_millis;
        assert_eq!(latency_axis(ms(180)), (ms(200), ms(50)));
        assert_eq!(latency_axis(ms(3)), (ms(3), ms(1)));
        assert_eq!(latency_axis(ms(7)), (ms(8), ms(2)));
        assert_eq!(latency_axis(Duration::ZERO).0, Duration::from_micros(1));
    }
}
