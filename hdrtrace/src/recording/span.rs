//! What a slot holds while its span is open, and the field visitor that fills it.
//!
//! Every field is an atomic written with `Relaxed`: a span's ID reaches another
//! thread only through whatever moved its `Span` handle there (a task queue, a
//! join, a channel), and that transfer already orders the creator's writes before
//! the other thread's reads. Atomics (rather than plain cells) keep concurrent
//! `Span::record` calls on clones of one span free of data races.

use crate::handoff::record::{
    fnv, FieldValue, InlineFields, InlineText, RecordKind, SpanClass, Status, FNV_OFFSET,
    INLINE_TEXT,
};
use crate::handoff::slot_flags::SlotFlags;
use crate::handoff::wire::{self, WireRecord, WIRE_FIELDS};
use crate::recording::callsites::CallsiteInfo;
use crate::recording::links::LinkSlots;
use crate::recording::refcount::RefCount;
use crate::recording::sampling::mix;
use crate::recording::split_sum::SplitSum;
use crate::recording::trace_context::{self, RemoteParent};
use crate::sync::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::fmt::Write as _;
use std::mem::MaybeUninit;
use std::ptr::addr_of_mut;
use tracing_core::field::{Field, Visit};
use tracing_core::Metadata;

const TEXT_WORDS: usize = INLINE_TEXT / 8;
const _: () = assert!(INLINE_TEXT % 8 == 0);

#[derive(Default)]
pub(crate) struct SpanSlot {
    pub(crate) refs: RefCount,
    meta: AtomicUsize,
    /// Its `SlotFlags` word.
    flags: AtomicU32,
    /// The thread that opened the span (`Local::thread`): the owner of its
    /// split sums.
    owner: AtomicU64,
    /// Spans opened in the request so far (a request root's, counted on it).
    descendants: SplitSum,
    parent: AtomicU64,
    request_span: AtomicU64,
    request_id: AtomicU64,
    start: AtomicU64,
    /// Ticks spent entered, from every thread.
    busy: SplitSum,
    text: [AtomicU64; TEXT_WORDS],
    /// The whole text's hash when it was truncated (`InlineText::hash`).
    text_hash: AtomicU64,
    field_meta: AtomicU64,
    field_bits: [AtomicU64; 4],
    /// Its `follows_from` links.
    pub(crate) links: LinkSlots,
}

/// What a new span inherits from its request.
#[derive(Clone, Copy, Default)]
pub(crate) struct RequestCtx {
    pub(crate) request_span: u64,
    pub(crate) request_id: u64,
    pub(crate) sampled: bool,
}

impl SpanSlot {
    /// Fills a freshly allocated slot (the caller owns it exclusively);
    /// `owner` is the opening thread's `Local::thread`.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn open(
        &self,
        owner: u64,
        meta: &'static Metadata<'static>,
        class: SpanClass,
        parent: u64,
        ctx: RequestCtx,
        start: u64,
        text: &InlineText,
        fields: &InlineFields,
    ) {
        self.refs.reset();
        self.meta
            .store(meta as *const Metadata<'static> as usize, Relaxed);
        self.flags
            .store(SlotFlags::new(class, ctx.sampled, text).bits(), Relaxed);
        self.descendants.reset();
        self.owner.store(owner, Relaxed);
        self.parent.store(parent, Relaxed);
        self.request_span.store(ctx.request_span, Relaxed);
        self.request_id.store(ctx.request_id, Relaxed);
        self.start.store(start, Relaxed);
        self.busy.reset();
        self.store_text(text);
        self.store_fields(fields);
        self.links.reset();
    }

    fn store_text(&self, text: &InlineText) {
        for (i, w) in self.text.iter().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&text.bytes[i * 8..i * 8 + 8]);
            w.store(u64::from_le_bytes(b), Relaxed);
        }
        self.text_hash.store(text.hash, Relaxed);
    }

    /// The model key (or other inline text) as it stands, as `close_into`
    /// writes it into the record: length and truncation from `flags`, the
    /// bytes, the whole text's hash.
    pub(crate) fn text(&self) -> InlineText {
        let flags = self.flags();
        let mut t = InlineText {
            len: flags.text_len(),
            truncated: flags.text_truncated(),
            hash: self.text_hash.load(Relaxed),
            ..InlineText::default()
        };
        for (i, w) in self.text.iter().enumerate() {
            t.bytes[i * 8..i * 8 + 8].copy_from_slice(&w.load(Relaxed).to_le_bytes());
        }
        t
    }

    fn store_fields(&self, f: &InlineFields) {
        self.field_meta.store(f.meta, Relaxed);
        for (w, &bits) in self.field_bits.iter().zip(&f.bits) {
            w.store(bits, Relaxed);
        }
    }

    fn load_fields(&self) -> InlineFields {
        let mut f = InlineFields {
            meta: self.field_meta.load(Relaxed),
            ..Default::default()
        };
        for (bits, w) in f.bits.iter_mut().zip(&self.field_bits) {
            *bits = w.load(Relaxed);
        }
        f
    }

    /// Adds one enter-to-exit interval, from thread `thread`.
    #[inline]
    pub(crate) fn add_busy(&self, ticks: u64, thread: u64) {
        // Relaxed: `owner` is written once by `open`, ordered before any
        // other thread's use of the span as every field is (module docs).
        self.busy.add(ticks, self.owner.load(Relaxed) == thread);
    }

    /// Counts a descendant opened by thread `thread`.
    #[inline]
    pub(crate) fn add_descendant(&self, thread: u64) {
        // Relaxed: as `add_busy`. A child made concurrently with the root's
        // close arrives as a late record.
        self.descendants.add(1, self.owner.load(Relaxed) == thread);
    }

    /// Descendants opened so far, by any thread (a record keeps 32 bits).
    #[inline]
    pub(crate) fn descendants(&self) -> u32 {
        self.descendants.get() as u32
    }

    #[inline]
    pub(crate) fn metadata(&self) -> Option<&'static Metadata<'static>> {
        let p = self.meta.load(Relaxed) as *const Metadata<'static>;
        // SAFETY: `meta` only ever holds 0 or the address of a `&'static
        // Metadata<'static>` stored by `open`, so a non-null value is valid for
        // the program's whole life.
        unsafe { p.as_ref() }
    }

    #[inline]
    pub(crate) fn ctx(&self) -> RequestCtx {
        RequestCtx {
            request_span: self.request_span.load(Relaxed),
            request_id: self.request_id.load(Relaxed),
            sampled: self.flags().sampled(),
        }
    }

    #[inline]
    pub(crate) fn class(&self) -> SpanClass {
        self.flags().class()
    }

    #[inline(always)]
    fn flags(&self) -> SlotFlags {
        SlotFlags::from_bits(self.flags.load(Relaxed))
    }

    /// Raises the span's status (an error never downgrades a timeout).
    #[inline]
    pub(crate) fn mark(&self, status: Status) {
        if status != Status::Ok {
            // Relaxed: a self-contained flag read at close by the thread that
            // drops the last reference (ordered by the refcount's AcqRel).
            self.flags.fetch_or(SlotFlags::status_mark(status), Relaxed);
        }
    }

    /// A request id recorded after creation (`Span::record`) replaces the one
    /// the root was opened with; `sampled`, when given, replaces the sampling
    /// decision (the caller gives one only while nothing has inherited it).
    pub(crate) fn set_request_id(&self, request_id: u64, sampled: Option<bool>) {
        self.request_id.store(request_id, Relaxed);
        // Relaxed (both): as every field here, read by threads that got the
        // span through a transfer that orders this write before their reads.
        match sampled {
            Some(true) => {
                self.flags.fetch_or(SlotFlags::SAMPLED, Relaxed);
            }
            Some(false) => {
                self.flags.fetch_and(!SlotFlags::SAMPLED, Relaxed);
            }
            None => {}
        }
    }

    /// Merges fields recorded after creation (`Span::record`).
    pub(crate) fn update(&self, text: &InlineText, fields: &InlineFields) {
        if !text.is_empty() {
            self.store_text(text);
            // One atomic update of the length bits, so that a status marked
            // meanwhile by an event on another thread (`mark`) is kept.
            // Relaxed: as every flag here (see `mark`).
            let _ = self.flags.fetch_update(Relaxed, Relaxed, |flags| {
                Some(SlotFlags::from_bits(flags).with_text(text).bits())
            });
        }
        if !fields.is_empty() {
            let mut merged = self.load_fields();
            for (idx, v) in fields.iter() {
                merged.push(idx, v);
            }
            self.store_fields(&merged);
        }
    }

    /// Writes the record this span closes with (`kind`: its span record, or
    /// its links record) straight into `dst` (a ring slot), field by field, so
    /// it is never assembled elsewhere and copied. Every field of the record
    /// is written, each byte as [`WireRecord::encode`] writes it for the same
    /// record (the test `close_into_writes_what_encode_writes` holds the two
    /// equal). A span that [`SpanSlot::needs_ext`] (and a links record) goes
    /// with the extension `ext_into` writes, pushed before it.
    #[inline(always)]
    pub(crate) fn close_into(
        &self,
        id: u64,
        meta: &'static Metadata<'static>,
        end: u64,
        kind: RecordKind,
        dst: &mut MaybeUninit<WireRecord>,
    ) {
        let flags = self.flags();
        let (request_word, root) =
            wire::request_word(id, self.request_span.load(Relaxed), self.descendants());
        // A links record's fields are its links, all in its extension: its
        // own field words are zero (as `WireRecord::encode` writes them).
        let links = kind == RecordKind::Links;
        let field_meta = if links {
            0
        } else {
            self.field_meta.load(Relaxed)
        };
        let r = dst.as_mut_ptr();
        // SAFETY: `r` comes from a `&mut MaybeUninit<WireRecord>`, so it is
        // valid and aligned for writes of a `WireRecord`; `addr_of_mut!` takes
        // each field's address without making a reference to uninitialized
        // memory, and each write stores a value of that field's type. Every
        // field (text and field values word by word) is written below, so the
        // record is fully initialized when this returns.
        unsafe {
            addr_of_mut!((*r).head).write(wire::head(kind, flags, field_meta, root));
            addr_of_mut!((*r).metadata).write(meta);
            addr_of_mut!((*r).span).write(id);
            addr_of_mut!((*r).parent).write(self.parent.load(Relaxed));
            addr_of_mut!((*r).request_word).write(request_word);
            addr_of_mut!((*r).request_id).write(self.request_id.load(Relaxed));
            addr_of_mut!((*r).start).write(self.start.load(Relaxed));
            addr_of_mut!((*r).end).write(end);
            addr_of_mut!((*r).busy).write(self.busy.get());
            let bytes = addr_of_mut!((*r).text).cast::<[u8; 8]>();
            for (i, w) in self.text.iter().enumerate() {
                bytes.add(i).write(w.load(Relaxed).to_le_bytes());
            }
            let bits = addr_of_mut!((*r).bits).cast::<u64>();
            for (i, w) in self.field_bits[..WIRE_FIELDS].iter().enumerate() {
                bits.add(i).write(if links { 0 } else { w.load(Relaxed) });
            }
        }
    }

    /// Whether this span's close record needs an extension: more numeric
    /// fields than a wire record carries, or a truncated text's hash.
    #[inline(always)]
    pub(crate) fn needs_ext(&self) -> bool {
        wire::needs_ext(self.field_meta.load(Relaxed), self.flags().text_truncated())
    }

    /// The extension of this span's close record (`links`: of its links
    /// record, which carries them as its fields).
    #[cold]
    pub(crate) fn ext_into(
        &self,
        id: u64,
        meta: &'static Metadata<'static>,
        links: Option<&[u64]>,
        dst: &mut MaybeUninit<WireRecord>,
    ) {
        let fields = match links {
            Some(links) => InlineFields::of_links(links),
            None => self.load_fields(),
        };
        dst.write(WireRecord::ext(
            id,
            meta,
            &fields,
            self.text_hash.load(Relaxed),
        ));
    }
}

/// Collects a span's (or event's) fields without allocating: the model key and
/// the message go into inline text, numbers into inline fields, a request id of
/// any type into a number. A model key keeps its type's text (`-1`,
/// `18446744073709551615`, `1.5`, `true`), so ids of different types never
/// share a key; an empty one leaves the text empty, which the aggregator
/// counts as a missing model id.
pub(crate) struct FieldVisitor {
    info: CallsiteInfo,
    pub(crate) text: InlineText,
    pub(crate) fields: InlineFields,
    pub(crate) request_id: Option<u64>,
    /// A traceparent field was there but not a valid W3C one.
    pub(crate) malformed_traceparent: bool,
}

impl FieldVisitor {
    /// A visitor for a callsite classified as `info` (an event's `message`
    /// goes into `text`, found by the index the callsite keeps).
    pub(crate) fn new(info: CallsiteInfo) -> Self {
        Self {
            info,
            text: InlineText::default(),
            fields: InlineFields::default(),
            request_id: None,
            malformed_traceparent: false,
        }
    }

    /// The field kept as the inline text: a span's model key, an event's
    /// message (a request root has none: its text carries its caller).
    #[inline]
    fn is_text(&self, f: &Field) -> bool {
        self.info.is_text_field(f.index())
    }

    #[inline]
    fn is_traceparent(&self, f: &Field) -> bool {
        self.info.is_traceparent_field(f.index())
    }

    /// A request root's traceparent: its caller, kept in the inline text.
    #[cold]
    fn traceparent(&mut self, parsed: Option<RemoteParent>) {
        match parsed {
            Some(p) => self.text = trace_context::encode(p),
            None => self.malformed_traceparent = true,
        }
    }

    #[inline]
    fn is_request(&self, f: &Field) -> bool {
        self.info.is_request_field(f.index())
    }

    /// A numeric or boolean field (`as_u64`: its value as a request id).
    #[inline(always)]
    fn number(&mut self, field: &Field, v: FieldValue, as_u64: u64) {
        if self.is_text(field) {
            self.typed_text(v);
        } else if self.is_request(field) {
            self.request_id = Some(as_u64);
        } else {
            self.fields.push(field.index(), v);
        }
    }

    /// The text field given as a number or a bool (a typed model key),
    /// written as its type writes it.
    #[cold]
    fn typed_text(&mut self, key: FieldValue) {
        self.text.clear();
        let _ = write!(self.text, "{key}");
    }
}

/// FNV-1a over the bytes a Display/Debug value formats to: a numeric request id
/// for ids given as strings or UUIDs, computed without allocating.
struct HashWriter(u64);

impl std::fmt::Write for HashWriter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 = fnv(self.0, s.as_bytes());
        Ok(())
    }
}

impl Visit for FieldVisitor {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.number(field, FieldValue::U64(value), value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.number(field, FieldValue::I64(value), value as u64);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.is_text(field) {
            self.typed_text(FieldValue::F64(value));
        } else if !self.is_request(field) {
            self.fields.push(field.index(), FieldValue::F64(value));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.is_text(field) {
            self.typed_text(FieldValue::Bool(value));
        } else if !self.is_request(field) {
            self.fields.push(field.index(), FieldValue::Bool(value));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        // The text first: the one string most spans and events carry.
        if self.is_text(field) {
            self.text.set(value);
        } else if self.is_traceparent(field) {
            self.traceparent(trace_context::parse(value));
        } else if self.is_request(field) {
            let mut h = HashWriter(FNV_OFFSET);
            let _ = h.write_str(value);
            self.request_id = Some(mix(h.0));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if self.is_text(field) {
            // `%x` fields arrive here as DisplayValue, whose Debug is Display.
            self.text.clear();
            let _ = write!(self.text, "{value:?}");
        } else if self.is_traceparent(field) {
            self.traceparent(trace_context::parse_debug(value));
        } else if self.is_request(field) {
            let mut h = HashWriter(FNV_OFFSET);
            let _ = write!(h, "{value:?}");
            self.request_id = Some(mix(h.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{RequestCtx, SpanSlot};
    use crate::handoff::record::model_span;
    use crate::handoff::record::{
        FieldValue, InlineFields, InlineText, Record, RecordKind, SpanClass, Status,
    };
    use crate::handoff::wire::tests::record;
    use crate::handoff::wire::WireRecord;
    use crate::sync::Ordering::Relaxed;
    use proptest::prelude::*;
    use std::mem::MaybeUninit;

    /// A model key recorded late (`update`) on one thread never erases an
    /// error status an event marks on another at the same moment.
    #[test]
    fn a_late_model_key_keeps_a_status_marked_meanwhile() {
        let slot = SpanSlot::default();
        let text = InlineText::from_str_truncated("Causal");
        for _ in 0..5_000 {
            slot.flags.store(0, Relaxed);
            let go = std::sync::Barrier::new(2);
            std::thread::scope(|s| {
                s.spawn(|| {
                    go.wait();
                    for _ in 0..200 {
                        slot.update(&text, &InlineFields::default());
                    }
                });
                go.wait();
                for _ in 0..50 {
                    std::hint::spin_loop();
                }
                slot.mark(Status::Error);
            });
            assert_eq!(slot.flags().status(), Status::Error);
        }
    }

    /// A slot, with the table's generation and free-list words, is the size
    /// `limits::MAX_SLOTS` and docs/design.md give for the memory
    /// `slot_capacity` bounds (change them with it).
    #[test]
    fn a_slot_is_the_size_the_docs_give() {
        use crate::recording::slots::Entry;
        assert_eq!(std::mem::size_of::<Entry<SpanSlot>>(), 232);
    }

    /// The owner's plain load and store lose nothing while other threads
    /// add concurrently: every tick and every descendant is counted once.
    #[test]
    fn owner_and_shared_additions_all_count() {
        const OWNER: u64 = 1;
        const N: u64 = 200_000;
        let slot = SpanSlot::default();
        slot.owner.store(OWNER, Relaxed);
        std::thread::scope(|s| {
            for thread in 2..5 {
                let slot = &slot;
                s.spawn(move || {
                    for _ in 0..N {
                        slot.add_busy(1, thread);
                        slot.add_descendant(thread);
                    }
                });
            }
            for _ in 0..N {
                slot.add_busy(2, OWNER);
                slot.add_descendant(OWNER);
            }
        });
        assert_eq!(slot.busy.get(), 2 * N + 3 * N);
        assert_eq!(slot.busy.own(), 2 * N, "the owner's share");
        assert_eq!(u64::from(slot.descendants()), 4 * N);
    }

    /// A slot holding what `r` says, as `open`, `mark`, the busy and
    /// descendant sums and `links.add` leave it. A links record's span keeps
    /// fields of its own, which must not reach the links record.
    fn slot_of(r: &Record) -> SpanSlot {
        let slot = SpanSlot::default();
        let mut own_fields = InlineFields::default();
        own_fields.push(0, FieldValue::U64(u64::MAX));
        own_fields.push(1, FieldValue::I64(-1));
        let fields = match r.kind {
            RecordKind::Links => own_fields,
            _ => r.fields,
        };
        let ctx = RequestCtx {
            request_span: r.request_span,
            request_id: r.request_id,
            sampled: r.sampled,
        };
        slot.open(
            1, r.metadata, r.class, r.parent, ctx, r.start, &r.text, &fields,
        );
        slot.mark(r.status);
        slot.busy.add(r.busy, true);
        slot.descendants.add(u64::from(r.descendants), false);
        for &link in r.links() {
            assert!(slot.links.add(link));
        }
        slot
    }

    /// A wire record's bytes.
    fn bytes(w: &WireRecord) -> [u8; 128] {
        // SAFETY: `WireRecord` is `repr(C)` with no padding (its fields add
        // up to its asserted 128 bytes), so every byte of an initialized one
        // is initialized; reading them as bytes has no validity requirement.
        unsafe { std::mem::transmute_copy(w) }
    }

    /// `close_into` (with `ext_into` where an extension goes first), as the
    /// hot path writes a span's close record, and `WireRecord::encode` of the
    /// same record.
    fn both_writers(r: &Record) -> (Vec<[u8; 128]>, Vec<[u8; 128]>) {
        let slot = slot_of(r);
        let links = r.kind == RecordKind::Links;
        let mut written = Vec::new();
        if links || slot.needs_ext() {
            let mut ext = MaybeUninit::uninit();
            slot.ext_into(r.span, r.metadata, links.then(|| r.links()), &mut ext);
            // SAFETY: `ext_into` writes the whole record.
            written.push(bytes(&unsafe { ext.assume_init() }));
        }
        let mut main = MaybeUninit::uninit();
        slot.close_into(r.span, r.metadata, r.end, r.kind, &mut main);
        // SAFETY: `close_into` writes every field of the record.
        written.push(bytes(&unsafe { main.assume_init() }));
        let (ext, main) = WireRecord::encode(r);
        let encoded = ext.iter().chain([&main]).map(bytes).collect();
        (written, encoded)
    }

    proptest! {
        /// The fast writer and the encoder of the wire format agree byte for
        /// byte on every span and links record a slot can close with.
        #[test]
        fn close_into_writes_what_encode_writes(
            r in record().prop_map(|mut r| {
                // `close_into` writes spans' and links records, never events.
                if r.kind == RecordKind::Event {
                    r.kind = RecordKind::Span;
                }
                r
            })
        ) {
            let (written, encoded) = both_writers(&r);
            prop_assert_eq!(written, encoded);
        }
    }

    /// A model span with one field, a root with a truncated text and more
    /// fields than the wire record carries, and a links record: each as
    /// both writers write it.
    #[test]
    fn close_into_and_encode_agree_on_each_shape() {
        let mut one = InlineFields::default();
        one.push(1, FieldValue::F64(0.5));
        let mut fields = InlineFields::default();
        for i in 0..3 {
            fields.push(i, FieldValue::U64(10 + i as u64));
        }
        let model = Record {
            status: Status::Error,
            fields: one,
            ..model_span("Causal")
        };
        let root = Record {
            class: SpanClass::Request,
            span: 1,
            parent: 0,
            request_span: 1,
            descendants: 9,
            text: InlineText::from_str_truncated(&"x".repeat(100)),
            fields,
            ..model
        };
        let links = Record {
            kind: RecordKind::Links,
            fields: InlineFields::of_links(&[4, 5]),
            ..model
        };
        for (r, wire_records) in [(model, 1), (root, 2), (links, 2)] {
            let (written, encoded) = both_writers(&r);
            assert_eq!(written.len(), wire_records, "{r:?}");
            assert_eq!(written, encoded, "{r:?}");
        }
    }
}
