//! One log line, formatted on the recording thread into a fixed buffer (no
//! allocation), then cut into fixed-size chunks for the thread's log ring.

use crate::escape::{first_control, Escape};
use std::fmt::{self, Write as _};
use tracing_core::field::{Field, Visit};
use tracing_core::{Event, Level};

pub(crate) use crate::limits::{CUT_MARK, MAX_LINE};
/// Bytes of a line one ring chunk carries.
pub(crate) const CHUNK_BYTES: usize = 118;

/// A piece of a line as it travels through a ring; `last` ends the line.
#[derive(Clone, Copy)]
pub(crate) struct Chunk {
    pub(crate) len: u8,
    pub(crate) last: bool,
    pub(crate) bytes: [u8; CHUNK_BYTES],
}

/// A line being formatted: a fixed buffer that keeps what fits.
pub(crate) struct LineBuf {
    buf: Box<[u8; MAX_LINE]>,
    len: usize,
    cut: bool,
}

/// Everything a line carries goes through here, so every control character
/// is escaped on its way in, as tracing-subscriber's `fmt` does: no message,
/// field, target or model id can end the line early, forge another one or
/// send an escape sequence to a terminal. `\n`, `\r` and `\t` become those
/// two-character escapes, the other C0 controls and DEL `\x1b`-style ones,
/// the C1 controls (U+0080 to U+009F) `\u{9b}`-style ones.
impl fmt::Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some((at, c)) = first_control(rest) {
            self.push(&rest[..at]);
            self.push_escape(&Escape::of(c));
            rest = &rest[at + c.len_utf8()..];
        }
        self.push(rest);
        // Never an error: a caller's `Display` that unwraps its writes must
        // not panic because a line was cut.
        Ok(())
    }
}

/// What a line says about where its event fired.
pub(crate) struct Context<'a> {
    pub(crate) request_id: Option<u64>,
    pub(crate) model: Option<&'a str>,
}

impl LineBuf {
    /// Appends what fits of `s` (whole characters); once a line is cut,
    /// nothing more.
    fn push(&mut self, s: &str) {
        if self.cut {
            return;
        }
        let room = MAX_LINE - CUT_MARK.len() - self.len;
        let mut take = s.len().min(room);
        if take < s.len() {
            self.cut = true;
            while take > 0 && !s.is_char_boundary(take) {
                take -= 1;
            }
        }
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
    }

    /// Appends a control character's escape (see `crate::escape`), whole
    /// or, when it does not fit, not at all.
    fn push_escape(&mut self, escape: &Escape) {
        let escape = escape.as_str().as_bytes();
        if self.cut {
            return;
        }
        if self.len + escape.len() > MAX_LINE - CUT_MARK.len() {
            self.cut = true;
            return;
        }
        self.buf[self.len..self.len + escape.len()].copy_from_slice(escape);
        self.len += escape.len();
    }

    /// Cold: once per thread (the buffer is reused for every line).
    pub(crate) fn new() -> Self {
        Self {
            buf: Box::new([0; MAX_LINE]),
            len: 0,
            cut: false,
        }
    }

    /// Formats `event` as one line: UTC time, level, target, request id and
    /// model of the span it fired in, message, then the other fields.
    pub(crate) fn format(&mut self, event: &Event<'_>, unix_nanos: u64, ctx: Context<'_>) {
        self.len = 0;
        self.cut = false;
        let meta = event.metadata();
        let _ = write_time(self, unix_nanos);
        let level = match *meta.level() {
            Level::ERROR => "ERROR",
            Level::WARN => " WARN",
            Level::INFO => " INFO",
            Level::DEBUG => "DEBUG",
            Level::TRACE => "TRACE",
        };
        let _ = write!(self, " {level} {}:", meta.target());
        if let Some(id) = ctx.request_id {
            let _ = write!(self, " request_id={id}");
        }
        if let Some(model) = ctx.model {
            let _ = write!(self, " model={model}");
        }
        event.record(&mut Message(self));
        event.record(&mut Fields(self));
        if self.cut {
            let tail = CUT_MARK.as_bytes();
            self.buf[self.len..self.len + tail.len()].copy_from_slice(tail);
            self.len += tail.len();
        }
    }

    /// The line's chunks, in order (the last one marked).
    pub(crate) fn chunks(&self) -> impl ExactSizeIterator<Item = Chunk> + '_ {
        let pieces = self.len.div_ceil(CHUNK_BYTES).max(1);
        (0..pieces).map(move |i| {
            let from = i * CHUNK_BYTES;
            let to = (from + CHUNK_BYTES).min(self.len);
            let mut c = Chunk {
                len: (to - from) as u8,
                last: i + 1 == pieces,
                bytes: [0; CHUNK_BYTES],
            };
            c.bytes[..to - from].copy_from_slice(&self.buf[from..to]);
            c
        })
    }
}

/// Writes the `message` field.
struct Message<'a>(&'a mut LineBuf);
impl Visit for Message<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value}");
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        }
    }
}

/// Writes every other field as ` name=value`.
struct Fields<'a>(&'a mut LineBuf);
impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() != "message" {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() != "message" {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

/// `2026-11-30T06:15:00.123456Z`, from nanoseconds since the Unix epoch.
fn write_time(out: &mut LineBuf, unix_nanos: u64) -> fmt::Result {
    let secs = unix_nanos / 1_000_000_000;
    let micros = unix_nanos % 1_000_000_000 / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's `civil_from_days`: the proleptic Gregorian date of a
/// day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_gregorian() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        let mut b = LineBuf::new();
        write_time(&mut b, 1_764_483_300_123_456_789).unwrap();
        assert_eq!(&b.buf[..b.len], b"2025-11-30T06:15:00.123456Z");
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut b = LineBuf::new();
        b.write_str("a\nb\x1b[2J\u{9b}\x7f\t\r\0é\u{a0}").unwrap();
        assert_eq!(
            std::str::from_utf8(&b.buf[..b.len]).unwrap(),
            "a\\nb\\x1b[2J\\u{9b}\\x7f\\t\\r\\x00é\u{a0}"
        );
    }

    #[test]
    fn a_cut_line_ends_before_an_escape_that_does_not_fit() {
        let room = MAX_LINE - CUT_MARK.len();
        let mut b = LineBuf::new();
        b.write_str(&"x".repeat(room - 3)).unwrap();
        b.write_str("\x1b").unwrap();
        b.write_str("y").unwrap();
        assert!(b.cut);
        assert_eq!(b.len, room - 3, "no half escape, and nothing after the cut");
    }
}
