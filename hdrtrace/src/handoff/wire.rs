//! The record as it travels through a ring: [`WireRecord`], 128 bytes
//! aligned to a cache line, so each record fills two whole lines and shares
//! none with its neighbours. The aggregator decodes each back into the
//! [`Record`] it works with ([`Decoder`]); nothing of a record is lost on the
//! way.
//!
//! Two writers produce it and must agree byte for byte: [`WireRecord::encode`]
//! (events, and the reference) and `SpanSlot::close_into`, which writes a
//! span's close record field by field straight from its slot into the ring
//! (a property test in `recording/span.rs` holds them equal).
//!
//! What does not fit travels in an *extension*, a wire record of its own
//! pushed right before the one it extends, in the same ring and published
//! with it ([`crate::handoff::ring::Producer::push_pair_init`]): more than
//! [`WIRE_FIELDS`] numeric fields, the hash of a truncated text, or a links
//! record's links. Most records need none.

use crate::handoff::record::{InlineFields, InlineText, Record, RecordKind, INLINE_TEXT};
use crate::handoff::slot_flags::SlotFlags;
use tracing_core::Metadata;

/// Numeric fields a wire record carries itself.
pub(crate) const WIRE_FIELDS: usize = 2;

/// A record's kind on the wire: a [`RecordKind`], or an extension.
const KIND_EXT: u64 = 3;

// Bits of `WireRecord::head`. The low 32 are the fields' count, the first two
// fields' indices and their type tags (`InlineFields::meta`'s bits 0-23, and
// its tags from bit 40 moved down to 24). The high 32 are the span's
// `SlotFlags` word as its slot keeps it (class, status marks, sampled, text
// length and truncation), moved in whole, and in bits the flags leave free,
// the record's kind and whether it is a request root.
const FIELDS_MASK: u64 = 0xFFFF_FFFF;
const FLAGS_AT: u32 = 32;
const KIND_AT: u32 = FLAGS_AT + 2;
const KIND_BITS: u64 = 3 << KIND_AT;
/// The record is its request's root: `request_word` holds its descendant
/// count, and its request span is itself.
const ROOT: u64 = 1 << (FLAGS_AT + 4);
const _: () = assert!(SlotFlags::FREE & 0b111 << 2 == 0b111 << 2);

/// One record in a ring. See the module docs.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct WireRecord {
    /// Kind, class, status, flags, text length and the inline fields' layout.
    pub(crate) head: u64,
    pub(crate) metadata: &'static Metadata<'static>,
    pub(crate) span: u64,
    pub(crate) parent: u64,
    /// The request root's ID; for the root itself (`ROOT` set in `head`), its
    /// descendant count.
    pub(crate) request_word: u64,
    pub(crate) request_id: u64,
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) busy: u64,
    /// The inline text's bytes; an extension's: its fields (`meta`, then the
    /// four value words, little-endian).
    pub(crate) text: [u8; INLINE_TEXT],
    /// The first [`WIRE_FIELDS`] field values (zero in a links record, whose
    /// links are all in its extension); an extension's first word: the
    /// truncated text's hash.
    pub(crate) bits: [u64; WIRE_FIELDS],
}

#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<WireRecord>() == 128);
// An extension's text area holds a whole `InlineFields`.
const _: () = assert!(INLINE_TEXT == 8 + 8 * crate::handoff::record::INLINE_FIELDS);

/// The wire form of the inline fields' layout word (count, indices, tags) of
/// up to [`WIRE_FIELDS`] fields.
#[inline(always)]
pub(crate) fn fields_word(meta: u64) -> u64 {
    (meta & 0x00FF_FFFF) | ((meta >> 16) & 0xFF00_0000)
}

/// `fields_word` undone, for a record of at most [`WIRE_FIELDS`] fields.
fn fields_meta(word: u64) -> u64 {
    (word & 0x00FF_FFFF) | ((word & 0xFF00_0000) << 16)
}

/// Whether a record with `meta`'s fields and a text `truncated` or not needs
/// an extension (a links record always has one).
#[inline(always)]
pub(crate) fn needs_ext(field_meta: u64, truncated: bool) -> bool {
    (field_meta & 0xFF) as usize > WIRE_FIELDS || truncated
}

/// A record's `head` word.
#[inline(always)]
pub(crate) fn head(kind: RecordKind, flags: SlotFlags, field_meta: u64, root: bool) -> u64 {
    fields_word(field_meta)
        | (flags.bits() as u64) << FLAGS_AT
        | (kind as u64) << KIND_AT
        | if root { ROOT } else { 0 }
}

/// The `request_word` and whether the record is its request's root: a root
/// (its own request span) carries its descendant count there instead.
#[inline(always)]
pub(crate) fn request_word(span: u64, request_span: u64, descendants: u32) -> (u64, bool) {
    if request_span == span && span != 0 {
        (descendants as u64, true)
    } else {
        (request_span, false)
    }
}

impl WireRecord {
    /// The extension of a record of span `span`: `fields` (all of them, or a
    /// links record's links) and the text's `hash`.
    pub(crate) fn ext(
        span: u64,
        metadata: &'static Metadata<'static>,
        fields: &InlineFields,
        hash: u64,
    ) -> Self {
        let mut text = [0u8; INLINE_TEXT];
        text[..8].copy_from_slice(&fields.meta.to_le_bytes());
        for (i, bits) in fields.bits.iter().enumerate() {
            text[8 + 8 * i..16 + 8 * i].copy_from_slice(&bits.to_le_bytes());
        }
        WireRecord {
            head: KIND_EXT << KIND_AT,
            metadata,
            span,
            parent: 0,
            request_word: 0,
            request_id: 0,
            start: 0,
            end: 0,
            busy: 0,
            text,
            bits: [hash, 0],
        }
    }

    /// `r` on the wire, and its extension when it needs one.
    pub(crate) fn encode(r: &Record) -> (Option<Self>, Self) {
        let (request_word, root) = request_word(r.span, r.request_span, r.descendants);
        let links = r.kind == RecordKind::Links;
        let ext = (links || needs_ext(r.fields.meta, r.text.truncated))
            .then(|| Self::ext(r.span, r.metadata, &r.fields, r.text.hash));
        // A links record's fields are its links, all in the extension: its
        // own field words are zero.
        let field_meta = if links { 0 } else { r.fields.meta };
        let mut bits = [0; WIRE_FIELDS];
        if !links {
            bits.copy_from_slice(&r.fields.bits[..WIRE_FIELDS]);
        }
        let main = WireRecord {
            head: head(r.kind, SlotFlags::of_record(r), field_meta, root),
            metadata: r.metadata,
            span: r.span,
            parent: r.parent,
            request_word,
            request_id: r.request_id,
            start: r.start,
            end: r.end,
            busy: r.busy,
            text: r.text.bytes,
            bits,
        };
        (ext, main)
    }

    fn kind(&self) -> u64 {
        (self.head & KIND_BITS) >> KIND_AT
    }
}

/// What an extension carried, kept for the record that follows it.
struct Ext {
    span: u64,
    fields: InlineFields,
    hash: u64,
}

/// Turns a ring's wire records back into [`Record`]s, joining each extension
/// to the record it extends (one decoder per ring: the two are adjacent in
/// it).
#[derive(Default)]
pub(crate) struct Decoder {
    ext: Option<Ext>,
}

impl Decoder {
    /// The record `w` completes; `None` for an extension, which the next
    /// record of the same ring takes.
    pub(crate) fn decode(&mut self, w: &WireRecord) -> Option<Record> {
        if w.kind() == KIND_EXT {
            let word = |i: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&w.text[8 * i..8 * i + 8]);
                u64::from_le_bytes(b)
            };
            let mut fields = InlineFields {
                meta: word(0),
                ..InlineFields::default()
            };
            for (i, bits) in fields.bits.iter_mut().enumerate() {
                *bits = word(i + 1);
            }
            self.ext = Some(Ext {
                span: w.span,
                fields,
                hash: w.bits[0],
            });
            return None;
        }
        let ext = self.ext.take().filter(|e| e.span == w.span);
        let root = w.head & ROOT != 0;
        let mut fields = InlineFields {
            meta: fields_meta(w.head & FIELDS_MASK),
            ..InlineFields::default()
        };
        fields.bits[..WIRE_FIELDS].copy_from_slice(&w.bits);
        let mut hash = 0;
        if let Some(ext) = ext {
            fields = ext.fields;
            hash = ext.hash;
        }
        let kind = match w.kind() {
            0 => RecordKind::Span,
            1 => RecordKind::Event,
            _ => RecordKind::Links,
        };
        let flags = SlotFlags::from_bits((w.head >> FLAGS_AT) as u32);
        Some(Record {
            kind,
            class: flags.class(),
            status: flags.status(),
            sampled: flags.sampled(),
            metadata: w.metadata,
            span: w.span,
            parent: w.parent,
            request_span: if root { w.span } else { w.request_word },
            request_id: w.request_id,
            start: w.start,
            end: w.end,
            busy: w.busy,
            descendants: if root { w.request_word as u32 } else { 0 },
            text: InlineText {
                len: flags.text_len(),
                truncated: flags.text_truncated(),
                bytes: w.text,
                hash,
            },
            fields,
        })
    }

    /// Decodes `w`, handing the record it completes to `each`; returns how
    /// many it handed (0 or 1).
    pub(crate) fn feed(&mut self, w: &WireRecord, each: &mut impl FnMut(&Record)) -> usize {
        match self.decode(w) {
            Some(r) => {
                each(&r);
                1
            }
            None => 0,
        }
    }

    /// Whether an extension waits for its record (which its ring published
    /// with it).
    pub(crate) fn pending(&self) -> bool {
        self.ext.is_some()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::{Decoder, WireRecord};
    use crate::handoff::record::{
        FieldValue, InlineFields, InlineText, Record, RecordKind, SpanClass, Status,
    };
    use crate::test_meta::META;
    use proptest::prelude::*;

    /// Every field of `r`, comparable (`Record` has no `PartialEq`: its
    /// metadata is compared by address here).
    fn parts(r: &Record) -> impl PartialEq + std::fmt::Debug {
        (
            (r.kind, r.class, r.status, r.sampled),
            std::ptr::eq(r.metadata, &META),
            (r.span, r.parent, r.request_span, r.request_id),
            (r.start, r.end, r.busy, r.descendants),
            (r.text, r.text.hash),
            r.fields,
        )
    }

    /// Encodes `r` as the hot path pushes it and decodes it as the
    /// aggregator does: the wire records it took, and what came back.
    fn round_trip(r: &Record) -> (usize, Vec<Record>) {
        let (ext, main) = WireRecord::encode(r);
        let wire: Vec<WireRecord> = ext.into_iter().chain([main]).collect();
        let mut decoder = Decoder::default();
        let back = wire.iter().filter_map(|w| decoder.decode(w)).collect();
        assert!(!decoder.pending());
        (wire.len(), back)
    }

    /// Any record the hot path could write: a root is its own request span
    /// and only a root counts descendants; a links record's fields are links.
    pub(crate) fn record() -> impl Strategy<Value = Record> {
        let kind = prop_oneof![
            Just(RecordKind::Span),
            Just(RecordKind::Event),
            Just(RecordKind::Links)
        ];
        let class = (0u32..4).prop_map(SpanClass::from_bits);
        let status = (0u8..3).prop_map(Status::from_u8);
        let text =
            prop_oneof![".{0,8}", ".{0,60}"].prop_map(|s| InlineText::from_str_truncated(&s));
        let value = prop_oneof![
            any::<u64>().prop_map(FieldValue::U64),
            any::<i64>().prop_map(FieldValue::I64),
            any::<f64>().prop_map(FieldValue::F64),
            any::<bool>().prop_map(FieldValue::Bool),
        ];
        let fields = proptest::collection::vec((0usize..5, value), 0..6).prop_map(|v| {
            let mut f = InlineFields::default();
            for (i, value) in v {
                f.push(i, value);
            }
            f
        });
        let links =
            proptest::collection::vec(1u64.., 0..5).prop_map(|l| InlineFields::of_links(&l));
        (
            (kind, class, status, any::<bool>()),
            (1u64.., any::<u64>(), any::<bool>(), any::<u64>()),
            (any::<u64>(), any::<u64>(), any::<u64>(), any::<u32>()),
            (text, fields, links),
        )
            .prop_map(
                |(
                    (kind, class, status, sampled),
                    (span, parent, root, request_id),
                    (start, end, busy, descendants),
                    (text, fields, links),
                )| Record {
                    kind,
                    class,
                    status,
                    sampled,
                    metadata: &META,
                    span,
                    parent,
                    // A root is its own request span; only a root counts
                    // descendants.
                    request_span: if root { span } else { parent },
                    request_id,
                    start,
                    end,
                    busy,
                    descendants: if root { descendants } else { 0 },
                    text,
                    fields: if kind == RecordKind::Links {
                        links
                    } else {
                        fields
                    },
                },
            )
    }

    proptest! {
        /// Whatever a record holds comes back from the wire exactly, in one
        /// wire record when it has at most two numeric fields, no truncated
        /// text and no links, in two otherwise.
        #[test]
        fn every_record_comes_back_whole(r in record()) {
            let (wire, back) = round_trip(&r);
            prop_assert_eq!(back.len(), 1);
            prop_assert_eq!(parts(&back[0]), parts(&r));
            let ext = r.kind == RecordKind::Links || r.fields.len() > 2 || r.text.is_truncated();
            prop_assert_eq!(wire, 1 + usize::from(ext));
        }
    }

    /// A model span's record (a short key, one number) is one wire record.
    #[test]
    fn a_model_span_takes_one_wire_record() {
        let mut fields = InlineFields::default();
        fields.push(1, FieldValue::U64(128));
        let r = Record {
            fields,
            ..crate::handoff::record::model_span("Causal")
        };
        let (wire, back) = round_trip(&r);
        assert_eq!(wire, 1);
        assert_eq!(parts(&back[0]), parts(&r));
        assert_eq!(back[0].text.as_str(), "Causal");
    }

    /// An extension whose record never came (not something the hot path
    /// pushes: the two are published together) is not joined to the next
    /// record of another span.
    #[test]
    fn an_extension_joins_only_its_own_span() {
        let mut fields = InlineFields::default();
        for i in 0..4 {
            fields.push(i, FieldValue::U64(i as u64));
        }
        let ext = WireRecord::ext(5, &META, &fields, 9);
        let (_, main) = WireRecord::encode(&Record {
            kind: RecordKind::Span,
            class: SpanClass::Stage,
            status: Status::Ok,
            sampled: false,
            metadata: &META,
            span: 6,
            parent: 0,
            request_span: 0,
            request_id: 0,
            start: 0,
            end: 1,
            busy: 0,
            descendants: 0,
            text: InlineText::default(),
            fields: InlineFields::default(),
        });
        let mut decoder = Decoder::default();
        assert!(decoder.decode(&ext).is_none());
        let r = decoder.decode(&main).expect("a span record");
        assert!(r.fields.is_empty());
        assert_eq!(r.text.hash, 0);
    }
}
