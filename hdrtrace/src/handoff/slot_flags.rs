//! The word a span's slot keeps its small decisions in: its class, the
//! statuses events marked it with, whether its request is sampled, and its
//! inline text's length and truncation. One `u32`, so that a status marked
//! by an event on another thread and a text recorded late each update it
//! with one atomic operation and neither erases the other.

use crate::handoff::record::{InlineText, SpanClass, Status, INLINE_TEXT};

// Bit positions: the class in 2 bits, the status marks in 8 (each `Status`
// is one bit, OR-ed in), the sampled flag in 1, the text's length in 7,
// its truncation in 1.
const CLASS_AT: u32 = 0;
const STATUS_AT: u32 = 8;
const SAMPLED_AT: u32 = 16;
const TEXT_LEN_AT: u32 = 24;
const TRUNCATED_AT: u32 = 31;

/// The bits the text's length and truncation take.
const TEXT_MASK: u32 = 0xFF << TEXT_LEN_AT;

// The text's length must fit its 7 bits.
const _: () = assert!(INLINE_TEXT < 0x80);

/// A slot's flags word, as `SpanSlot::flags` holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SlotFlags(u32);

impl SlotFlags {
    /// The sampled flag alone, for an atomic `fetch_or` / `fetch_and`.
    pub(crate) const SAMPLED: u32 = 1 << SAMPLED_AT;

    /// A new span's flags: no status marked yet.
    #[inline(always)]
    pub(crate) fn new(class: SpanClass, sampled: bool, text: &InlineText) -> Self {
        Self((class as u32) << CLASS_AT | (sampled as u32) << SAMPLED_AT | Self::text_bits(text))
    }

    /// The bits no decision takes (the wire record keeps its own there).
    pub(crate) const FREE: u32 = !(3 << CLASS_AT | 0xFF << STATUS_AT | 1 << SAMPLED_AT | TEXT_MASK);

    /// A record's decisions as a flags word (its status as a mark).
    pub(crate) fn of_record(r: &crate::handoff::record::Record) -> Self {
        Self(Self::new(r.class, r.sampled, &r.text).0 | Self::status_mark(r.status))
    }

    /// The word as the slot stores it.
    #[inline(always)]
    pub(crate) fn bits(self) -> u32 {
        self.0
    }

    /// The word the slot loaded.
    #[inline(always)]
    pub(crate) fn from_bits(bits: u32) -> Self {
        Self(bits)
    }

    /// `status`'s mark, for an atomic `fetch_or` (0 for `Ok`).
    #[inline(always)]
    pub(crate) fn status_mark(status: Status) -> u32 {
        (status as u32) << STATUS_AT
    }

    /// `flags` with its text's length and truncation replaced by `text`'s.
    #[inline(always)]
    pub(crate) fn with_text(self, text: &InlineText) -> Self {
        Self(self.0 & !TEXT_MASK | Self::text_bits(text))
    }

    #[inline(always)]
    fn text_bits(text: &InlineText) -> u32 {
        (text.len as u32) << TEXT_LEN_AT | (text.truncated as u32) << TRUNCATED_AT
    }

    #[inline(always)]
    pub(crate) fn class(self) -> SpanClass {
        SpanClass::from_bits(self.0 >> CLASS_AT)
    }

    /// The worst status marked: a timeout over an error over none.
    #[inline(always)]
    pub(crate) fn status(self) -> Status {
        let marks = self.0 >> STATUS_AT;
        if marks & Status::Timeout as u32 != 0 {
            Status::Timeout
        } else if marks & Status::Error as u32 != 0 {
            Status::Error
        } else {
            Status::Ok
        }
    }

    #[inline(always)]
    pub(crate) fn sampled(self) -> bool {
        self.0 >> SAMPLED_AT & 1 == 1
    }

    /// The inline text's length (at most `INLINE_TEXT`).
    #[inline(always)]
    pub(crate) fn text_len(self) -> u8 {
        ((self.0 >> TEXT_LEN_AT & 0x7F) as u8).min(INLINE_TEXT as u8)
    }

    /// Whether the inline text was truncated.
    #[inline(always)]
    pub(crate) fn text_truncated(self) -> bool {
        self.0 >> TRUNCATED_AT & 1 == 1
    }
}

#[cfg(test)]
mod tests {
    use super::SlotFlags;
    use crate::handoff::record::{InlineText, SpanClass, Status, INLINE_TEXT};

    /// Every decision comes back out of the word unchanged; status marks
    /// add up to the worst; a new text replaces only the text's bits.
    #[test]
    fn the_word_gives_back_every_decision() {
        let long = "x".repeat(INLINE_TEXT + 5);
        let texts = [
            InlineText::default(),
            InlineText::from_str_truncated("Causal"),
            InlineText::from_str_truncated(&long),
        ];
        let classes = [
            SpanClass::Request,
            SpanClass::Stage,
            SpanClass::Model,
            SpanClass::Batch,
        ];
        for class in classes {
            for sampled in [false, true] {
                for (n, text) in texts.iter().enumerate() {
                    let flags = SlotFlags::new(class, sampled, text);
                    let check = |f: SlotFlags, status: Status, text: &InlineText| {
                        assert_eq!(f.class(), class);
                        assert_eq!(f.sampled(), sampled);
                        assert_eq!(f.status(), status);
                        assert_eq!(f.text_len(), text.len);
                        assert_eq!(f.text_truncated(), text.truncated);
                    };
                    check(flags, Status::Ok, text);
                    let error =
                        SlotFlags::from_bits(flags.bits() | SlotFlags::status_mark(Status::Error));
                    check(error, Status::Error, text);
                    let both = SlotFlags::from_bits(
                        error.bits() | SlotFlags::status_mark(Status::Timeout),
                    );
                    check(both, Status::Timeout, text);
                    let other = &texts[(n + 1) % texts.len()];
                    check(both.with_text(other), Status::Timeout, other);
                }
            }
        }
        assert_eq!(SlotFlags::status_mark(Status::Ok), 0);
    }
}
