//! The fixed-size record of a closed span (or, for sampled requests, of an
//! event), as the aggregator sees it. It is `Copy` and holds no pointer to heap
//! memory. The hot path writes it into its ring in the compact form of
//! `wire.rs`, which the aggregator decodes back into this.

use std::fmt;
use tracing_core::Metadata;

/// How many numeric fields a record carries inline.
pub const INLINE_FIELDS: usize = 4;
/// How many bytes of text (a model name, an event message) a record carries inline.
pub const INLINE_TEXT: usize = 40;

/// What a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// A closed span.
    Span = 0,
    /// An event inside a sampled request.
    Event = 1,
    /// A closing span's links (`follows_from`), pushed right before its
    /// [`RecordKind::Span`] record and only when it has any: every field as
    /// in that record, except `fields`, whose words hold the linked spans'
    /// IDs (read them with [`Record::links`]). Spans without links cost no
    /// such record, and no record grows to carry links.
    Links = 2,
}

pub use crate::conventions::SpanClass;

/// The outcome a span closed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u8)]
pub enum Status {
    /// No error or timeout was reported inside the span.
    #[default]
    Ok = 0,
    /// An `ERROR`-level event fired inside the span.
    Error = 1,
    /// An event with a `timeout` field fired inside the span.
    Timeout = 2,
}

impl Status {
    /// The lower-case name the exports give the status: `ok`, `error`,
    /// `timeout`.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
            Status::Timeout => "timeout",
        }
    }

    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            1 => Status::Error,
            2 => Status::Timeout,
            _ => Status::Ok,
        }
    }
}

/// A numeric field value, as recorded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue {
    /// An unsigned integer.
    U64(u64),
    /// A signed integer.
    I64(i64),
    /// A float.
    F64(f64),
    /// A boolean.
    Bool(bool),
}

impl FieldValue {
    pub(crate) fn encode(self) -> (u8, u64) {
        match self {
            FieldValue::U64(v) => (1, v),
            FieldValue::I64(v) => (2, v as u64),
            FieldValue::F64(v) => (3, v.to_bits()),
            FieldValue::Bool(v) => (4, v as u64),
        }
    }

    pub(crate) fn decode(tag: u8, bits: u64) -> Option<Self> {
        Some(match tag {
            1 => FieldValue::U64(bits),
            2 => FieldValue::I64(bits as i64),
            3 => FieldValue::F64(f64::from_bits(bits)),
            4 => FieldValue::Bool(bits != 0),
            _ => return None,
        })
    }
}

/// The value as its type writes it: `12`, `-3`, `0.5`, `true`.
impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::U64(v) => v.fmt(f),
            FieldValue::I64(v) => v.fmt(f),
            FieldValue::F64(v) => v.fmt(f),
            FieldValue::Bool(v) => v.fmt(f),
        }
    }
}

/// Up to [`INLINE_FIELDS`] numeric fields: `(field index in the callsite's
/// FieldSet, type tag, bits)`.
///
/// The count, indices and tags share one word (`meta`: count in bits 0-7,
/// index `i` in bits `8 + 8i`, tag `i` in the 4 bits at `40 + 4i`), so a span
/// slot keeps and a close record copies them with one store.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct InlineFields {
    pub(crate) meta: u64,
    pub(crate) bits: [u64; INLINE_FIELDS],
}

// Four tags of 4 bits from bit 40 fit in the word.
const _: () = assert!(40 + 4 * INLINE_FIELDS <= 64 && 8 + 8 * INLINE_FIELDS <= 40);

impl InlineFields {
    /// How many fields are kept.
    #[inline]
    pub fn len(&self) -> usize {
        (self.meta & 0xFF) as usize
    }

    /// Whether no field is kept.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a field; a field beyond the inline capacity is not kept.
    #[inline]
    pub(crate) fn push(&mut self, index: usize, value: FieldValue) {
        let n = self.len();
        if n < INLINE_FIELDS && index < u8::MAX as usize {
            let (tag, bits) = value.encode();
            self.meta += 1;
            self.meta |= (index as u64) << (8 + 8 * n) | (tag as u64 & 0xF) << (40 + 4 * n);
            self.bits[n] = bits;
        }
    }

    /// A links record's fields: the linked spans' IDs as its words (at most
    /// [`INLINE_FIELDS`]), read back by [`Record::links`].
    pub(crate) fn of_links(links: &[u64]) -> Self {
        let n = links.len().min(INLINE_FIELDS);
        let mut f = Self {
            meta: n as u64,
            ..Self::default()
        };
        f.bits[..n].copy_from_slice(&links[..n]);
        f
    }

    /// The kept fields as `(field index, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (usize, FieldValue)> + '_ {
        (0..self.len()).filter_map(|i| {
            let index = (self.meta >> (8 + 8 * i)) as u8 as usize;
            let tag = (self.meta >> (40 + 4 * i) & 0xF) as u8;
            FieldValue::decode(tag, self.bits[i]).map(|v| (index, v))
        })
    }
}

/// Short text kept inline (truncated at a UTF-8 boundary). Text longer than
/// [`INLINE_TEXT`] bytes keeps its first bytes and a 64-bit hash of the whole,
/// so two long texts that share a prefix stay apart.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct InlineText {
    pub(crate) len: u8,
    /// Whether the text was longer than what is kept; then `hash` is FNV-1a of
    /// the whole text, otherwise 0.
    pub(crate) truncated: bool,
    pub(crate) bytes: [u8; INLINE_TEXT],
    pub(crate) hash: u64,
}

impl Default for InlineText {
    fn default() -> Self {
        Self {
            len: 0,
            truncated: false,
            bytes: [0; INLINE_TEXT],
            hash: 0,
        }
    }
}

/// FNV-1a's starting value.
pub(crate) const FNV_OFFSET: u64 = 0xCBF2_9CE4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01B3;

/// FNV-1a: `h` continued over `bytes` (start from [`FNV_OFFSET`]).
pub(crate) fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h = (h ^ b as u64).wrapping_mul(FNV_PRIME);
    }
    h
}

/// Copies `src` (at most `INLINE_TEXT` bytes) to the start of `dst`, leaving
/// the rest of `dst` as it was, in at most a few overlapping word-sized moves
/// (a model key is usually a handful of bytes).
#[inline(always)]
fn copy_short(dst: &mut [u8; INLINE_TEXT], src: &[u8]) {
    let n = src.len();
    if n >= 8 {
        // Whole words, then the last word again (overlapping) for the tail.
        let mut i = 0;
        while i + 8 <= n {
            dst[i..i + 8].copy_from_slice(&src[i..i + 8]);
            i += 8;
        }
        if i < n {
            dst[n - 8..n].copy_from_slice(&src[n - 8..n]);
        }
    } else if n >= 4 {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..n].copy_from_slice(&src[n - 4..n]);
    } else {
        dst[..n].copy_from_slice(src);
    }
}

impl InlineText {
    /// The text (its first [`INLINE_TEXT`] bytes when it was longer).
    pub fn as_str(&self) -> &str {
        // The writer only ever cuts at a char boundary, so this never fails; an
        // empty string is the safe answer if it somehow did.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0 && !self.truncated
    }

    /// True when the text was longer than what is kept inline.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    pub(crate) fn clear(&mut self) {
        self.len = 0;
        self.truncated = false;
        self.hash = 0;
    }

    /// Replaces the text with `s`: `clear` then `write_str`, with the common
    /// case (the whole of `s` fits) a plain copy.
    #[inline]
    pub(crate) fn set(&mut self, s: &str) {
        if s.len() <= INLINE_TEXT {
            copy_short(&mut self.bytes, s.as_bytes());
            self.len = s.len() as u8;
            self.truncated = false;
            self.hash = 0;
        } else {
            self.clear();
            let _ = std::fmt::Write::write_str(self, s);
        }
    }

    /// Builds one from a string (truncating at a char boundary), exactly as the
    /// hot path builds it from the same text.
    pub fn from_str_truncated(s: &str) -> Self {
        let mut t = Self::default();
        std::fmt::Write::write_str(&mut t, s).ok();
        t
    }

    /// The name a key is published under: the text itself, or for a truncated
    /// text its kept prefix, `…#` and the whole text's hash in hex (unique per
    /// whole text, and what [`InlineText::from_str_truncated`] of the whole
    /// text names too).
    pub fn key_name(&self) -> std::borrow::Cow<'_, str> {
        if self.truncated {
            std::borrow::Cow::Owned(format!("{}…#{:016x}", self.as_str(), self.hash))
        } else {
            std::borrow::Cow::Borrowed(self.as_str())
        }
    }
}

impl std::fmt::Write for InlineText {
    /// Appends what fits, hashing the whole text once it no longer fits; never
    /// fails, so formatting into it never panics.
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.truncated {
            self.hash = fnv(self.hash, s.as_bytes());
            return Ok(());
        }
        let used = self.len as usize;
        let room = INLINE_TEXT - used;
        if s.len() > room {
            // From here on the hash covers every byte written since `clear`.
            self.truncated = true;
            self.hash = fnv(fnv(FNV_OFFSET, &self.bytes[..used]), s.as_bytes());
        }
        let mut take = s.len().min(room);
        while take > 0 && !s.is_char_boundary(take) {
            take -= 1;
        }
        self.bytes[used..used + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take as u8;
        Ok(())
    }
}

impl std::fmt::Debug for InlineText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// One closed span or one event, as the hot path wrote it.
#[derive(Debug, Clone, Copy)]
pub struct Record {
    /// Span, event, or a span's links.
    pub kind: RecordKind,
    /// The span's class (for events: the class of the span they fired in).
    pub class: SpanClass,
    /// Error / timeout / ok.
    pub status: Status,
    /// Whether the request this record belongs to was head-sampled.
    pub sampled: bool,
    /// The callsite's static metadata (name, target, level, field names).
    pub metadata: &'static Metadata<'static>,
    /// This span's ID (for an event: the span it fired in, or 0).
    pub span: u64,
    /// The parent span's ID, or 0 for a root.
    pub parent: u64,
    /// The ID of the request's root span, or 0 outside any request.
    pub request_span: u64,
    /// The request's numeric id (its `request_id` field, or one the subscriber
    /// made up). Outside any request (`request_span` 0): for a batch span and
    /// everything under it, the batch span's ID; otherwise 0.
    pub request_id: u64,
    /// Clock ticks at creation (for an event: when it fired).
    pub start: u64,
    /// Clock ticks at close.
    pub end: u64,
    /// Clock ticks spent entered (polled), summed over every enter / exit.
    pub busy: u64,
    /// For a request root: how many descendant spans were created under it.
    pub descendants: u32,
    /// The model key for model spans; the message for events.
    pub text: InlineText,
    /// Numeric fields (for a [`RecordKind::Links`] record: the links).
    pub fields: InlineFields,
}

// A links record carries every kept link in the inline field words.
const _: () = assert!(crate::limits::MAX_LINKS <= INLINE_FIELDS);

impl Record {
    /// The IDs of the spans this span links to (`follows_from`), for a
    /// [`RecordKind::Links`] record; empty for any other.
    pub fn links(&self) -> &[u64] {
        match self.kind {
            RecordKind::Links => &self.fields.bits[..self.fields.len().min(INLINE_FIELDS)],
            _ => &[],
        }
    }
}

/// A fast, successful model span's record keyed `model`, with no fields: the
/// shape tests start from (struct update syntax sets the rest).
#[cfg(test)]
pub(crate) fn model_span(model: &str) -> Record {
    Record {
        kind: RecordKind::Span,
        class: SpanClass::Model,
        status: Status::Ok,
        sampled: true,
        metadata: &crate::test_meta::META,
        span: 7,
        parent: 3,
        request_span: 1,
        request_id: 42,
        start: 10,
        end: 20,
        busy: 5,
        descendants: 0,
        text: InlineText::from_str_truncated(model),
        fields: InlineFields::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::{FieldValue, InlineText, Status, INLINE_TEXT};

    /// Each value prints as its own type does; each status by its name.
    #[test]
    fn values_and_statuses_print_as_exported() {
        for (v, want) in [
            (FieldValue::U64(u64::MAX), "18446744073709551615"),
            (FieldValue::I64(-3), "-3"),
            (FieldValue::F64(0.5), "0.5"),
            (FieldValue::F64(1e21), "1000000000000000000000"),
            (FieldValue::Bool(true), "true"),
        ] {
            assert_eq!(v.to_string(), want);
        }
        let names = [Status::Ok, Status::Error, Status::Timeout].map(Status::name);
        assert_eq!(names, ["ok", "error", "timeout"]);
    }

    /// `set` keeps every length exactly (each branch of its inline copy),
    /// touches no byte past the text, and hands a longer text to the
    /// truncating writer.
    #[test]
    fn set_copies_every_length_and_nothing_past_it() {
        let source: String = ('a'..='z').cycle().take(INLINE_TEXT + 3).collect();
        for n in 0..=INLINE_TEXT {
            let mut t = InlineText {
                bytes: [b'#'; INLINE_TEXT],
                ..InlineText::default()
            };
            t.set(&source[..n]);
            assert_eq!(t.as_str(), &source[..n], "length {n}");
            assert!(!t.is_truncated());
            assert!(t.bytes[n..].iter().all(|&b| b == b'#'), "length {n}");
        }
        let mut t = InlineText::default();
        t.set(&source);
        assert!(t.is_truncated());
        assert_eq!(t, InlineText::from_str_truncated(&source));
    }
}
