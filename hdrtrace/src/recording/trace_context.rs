//! W3C trace context: a request root's `traceparent` field
//! (`<2 hex version>-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>`),
//! parsed on the hot path without allocating and carried to the captured
//! request in the root record's inline text (a request root has no other use
//! for it: its model field is never kept there).

use crate::handoff::record::{InlineText, INLINE_TEXT};
use std::fmt::{self, Write as _};

/// The caller's span a request joined through its `traceparent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RemoteParent {
    /// The caller's trace id (the request is exported under it).
    pub trace_id: u128,
    /// The caller's span: the parent of the request's root on export.
    pub span_id: u64,
    /// The caller's sampled flag.
    pub sampled: bool,
}

/// First byte of inline text that holds a parsed traceparent: never the
/// first byte of UTF-8 text, so a model name or message is never taken for
/// one.
const MARK: u8 = 0xFF;
/// Mark, trace id, span id, flags.
const ENCODED_LEN: usize = 1 + 16 + 8 + 1;
const _: () = assert!(ENCODED_LEN <= INLINE_TEXT);

/// The length of the four fields every version starts with (and all of a
/// version `00` header).
const FIELDS_LEN: usize = 55;

fn hex(s: &[u8]) -> Option<u128> {
    let mut v: u128 = 0;
    for &c in s {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = v << 4 | u128::from(d);
    }
    Some(v)
}

/// Parses a traceparent as W3C Trace Context says a receiver does: lowercase
/// hex, dashes in place, neither id all zeros; version `00` is exactly the
/// four fields; a later version is parsed by its first four fields and may
/// carry more after a `-`; version `ff` is invalid. Anything else is `None`.
pub(crate) fn parse(s: &str) -> Option<RemoteParent> {
    parse_prefix(s.as_bytes().trim_ascii(), false)
}

/// `parse` over the first bytes of a value (`cut`: the value went on past
/// them; `b` then holds more than the four fields).
fn parse_prefix(b: &[u8], cut: bool) -> Option<RemoteParent> {
    if b.len() < FIELDS_LEN || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let longer = cut || b.len() > FIELDS_LEN;
    match hex(&b[0..2])? {
        0xff => return None,
        0 if longer => return None,
        _ if longer && b[FIELDS_LEN] != b'-' => return None,
        _ => {}
    }
    let trace_id = hex(&b[3..35])?;
    let span_id = hex(&b[36..52])? as u64;
    let flags = hex(&b[53..55])? as u8;
    (trace_id != 0 && span_id != 0).then_some(RemoteParent {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
    })
}

/// The first bytes of a `Debug`/`Display` value, formatted into a fixed
/// buffer (a traceparent given as `%value` or `?value`), and whether it went
/// on past them and what its last byte was.
struct Small {
    buf: [u8; 64],
    len: usize,
    cut: bool,
    last: u8,
}

const _: () = assert!(
    64 > FIELDS_LEN + 2,
    "room for the fields, a quote and a dash"
);

impl Small {
    fn new() -> Self {
        Self {
            buf: [0; 64],
            len: 0,
            cut: false,
            last: 0,
        }
    }

    /// The value without one pair of surrounding double quotes (`Debug` of
    /// a string adds them), and whether it was cut.
    fn unquoted(&self) -> (&[u8], bool) {
        let b = &self.buf[..self.len];
        match b {
            [b'"', rest @ ..] if self.last == b'"' && (self.cut || !rest.is_empty()) => {
                if self.cut {
                    (rest, true)
                } else {
                    (&rest[..rest.len() - 1], false)
                }
            }
            _ => (b, self.cut),
        }
    }
}

impl fmt::Write for Small {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let Some(&last) = s.as_bytes().last() else {
            return Ok(());
        };
        self.last = last;
        let take = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        self.cut |= take < s.len();
        Ok(())
    }
}

/// Parses a `%value` or `?value` traceparent (one pair of surrounding
/// quotes, as `Debug` of a string writes, is not part of it).
pub(crate) fn parse_debug(value: &dyn fmt::Debug) -> Option<RemoteParent> {
    let mut s = Small::new();
    let _ = write!(s, "{value:?}");
    let (b, cut) = s.unquoted();
    let b = b.trim_ascii_start();
    if cut {
        parse_prefix(b, true)
    } else {
        parse_prefix(b.trim_ascii_end(), false)
    }
}

/// The inline text a request root carries its caller in.
pub(crate) fn encode(p: RemoteParent) -> InlineText {
    let mut t = InlineText::default();
    t.bytes[0] = MARK;
    t.bytes[1..17].copy_from_slice(&p.trace_id.to_be_bytes());
    t.bytes[17..25].copy_from_slice(&p.span_id.to_be_bytes());
    t.bytes[25] = u8::from(p.sampled);
    t.len = ENCODED_LEN as u8;
    t
}

/// The caller a request root's inline text carries, if any.
pub(crate) fn decode(t: &InlineText) -> Option<RemoteParent> {
    if t.len as usize != ENCODED_LEN || t.bytes[0] != MARK {
        return None;
    }
    let mut trace = [0u8; 16];
    trace.copy_from_slice(&t.bytes[1..17]);
    let mut span = [0u8; 8];
    span.copy_from_slice(&t.bytes[17..25]);
    Some(RemoteParent {
        trace_id: u128::from_be_bytes(trace),
        span_id: u64::from_be_bytes(span),
        sampled: t.bytes[25] & 1 == 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn a_valid_traceparent_round_trips_through_inline_text() {
        let p = parse(VALID).unwrap();
        assert_eq!(p.trace_id, 0x0af7651916cd43dd8448eb211c80319c);
        assert_eq!(p.span_id, 0xb7ad6b7169203331);
        assert!(p.sampled);
        assert_eq!(decode(&encode(p)), Some(p));
        assert_eq!(parse_debug(&format_args!("{VALID}")), Some(p));
        assert_eq!(decode(&InlineText::from_str_truncated("Causal")), None);
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        for bad in [
            "",
            "garbage",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00_0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333z-01",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0",
            "0g-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "0A-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
            assert_eq!(parse_debug(&bad), None, "{bad:?} quoted");
            assert_eq!(parse_debug(&format_args!("{bad}")), None, "{bad:?}");
        }
    }

    /// W3C Trace Context: a receiver parses a later version by its first
    /// four fields; whatever follows comes after a `-`.
    #[test]
    fn a_later_version_is_read_by_its_first_four_fields() {
        let p = parse(VALID).unwrap();
        let rest = &VALID[2..];
        let long = format!("9a{rest}-{}", "0123456789abcdef".repeat(8));
        for later in [
            format!("01{rest}"),
            format!("01{rest}-"),
            format!("fe{rest}-what-comes-next"),
            long.clone(),
        ] {
            assert_eq!(parse(&later), Some(p), "{later}");
            assert_eq!(parse_debug(&later), Some(p), "{later} quoted");
            assert_eq!(parse_debug(&format_args!("{later}")), Some(p), "{later}");
        }
        // A long value cut where `Small` ends is never read as version 00.
        let long00 = format!("00{rest}-{}", "0".repeat(80));
        assert_eq!(parse_debug(&long00), None);
    }

    /// One pair of surrounding quotes (`Debug` of a string) is not part of
    /// the value; anything else around it is.
    #[test]
    fn debug_quotes_are_not_part_of_the_value() {
        let p = parse(VALID).unwrap();
        assert_eq!(parse_debug(&VALID), Some(p));
        assert_eq!(parse_debug(&VALID.to_string()), Some(p));
        assert_eq!(parse_debug(&format_args!(" {VALID} ")), Some(p));
        for bad in [
            format!("\"\"{VALID}\"\""),
            format!("\"{VALID}"),
            format!("{VALID}\""),
            "\"".to_string(),
        ] {
            assert_eq!(parse_debug(&format_args!("{bad}")), None, "{bad}");
        }
    }

    /// Whitespace around the value (a header's optional spaces and tabs) is
    /// not part of it; any other character is, the same for a `&str` and a
    /// recorded `Display` or `Debug` value.
    #[test]
    fn only_ascii_whitespace_around_the_value_is_ignored() {
        let p = parse(VALID).unwrap();
        let spaced = format!(" \t{VALID}\t ");
        assert_eq!(parse(&spaced), Some(p));
        assert_eq!(parse_debug(&format_args!("{spaced}")), Some(p));
        for other in ['\u{a0}', '\u{2003}'] {
            let wrapped = format!("{other}{VALID}{other}");
            assert_eq!(parse(&wrapped), None, "{wrapped:?}");
            assert_eq!(parse_debug(&format_args!("{wrapped}")), None, "{wrapped:?}");
        }
    }
}
