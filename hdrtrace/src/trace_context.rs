//! W3C trace context: a request root's `traceparent` field
//! (`00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>`), parsed on
//! the hot path without allocating and carried to the captured request in the
//! root record's inline text (a request root has no other use for it).

use crate::record::{InlineText, INLINE_TEXT};
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

/// Parses a version-00 traceparent: lowercase hex, dashes in place, neither
/// id all zeros. Anything else (version `ff`, other lengths, upper case,
/// trailing data) is `None`.
pub(crate) fn parse(s: &str) -> Option<RemoteParent> {
    let b = s.trim().as_bytes();
    if b.len() != 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    if hex(&b[0..2])? != 0 {
        return None;
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

/// A `Debug`/`Display` value formatted into a fixed buffer (a traceparent
/// given as `%value`); longer values are marked too long.
pub(crate) struct Small {
    buf: [u8; 64],
    len: usize,
    too_long: bool,
}

impl Small {
    pub(crate) fn new() -> Self {
        Self {
            buf: [0; 64],
            len: 0,
            too_long: false,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        if self.too_long {
            return None;
        }
        std::str::from_utf8(&self.buf[..self.len]).ok()
    }
}

impl fmt::Write for Small {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            self.too_long = true;
            return Ok(());
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Parses a `%value` traceparent.
pub(crate) fn parse_debug(value: &dyn fmt::Debug) -> Option<RemoteParent> {
    let mut s = Small::new();
    let _ = write!(s, "{value:?}");
    parse(s.as_str()?)
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
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
