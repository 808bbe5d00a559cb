//! Classification, done once per callsite in `register_callsite` and cached in a
//! fixed-size lock-free map keyed by the callsite's `&'static Metadata` address,
//! so the hot path reads one word instead of scanning field names.

use crate::config::{TracingConfig, TracingLevel};
use crate::conventions::Conventions;
use crate::error::ConfigError;
use crate::filter::TargetFilter;
use crate::handoff::record::{SpanClass, Status};
use crate::recording::callsite_table::CallsiteTable;
use crate::sync::{AtomicBool, Ordering::Relaxed};
use tracing_core::{Level, LevelFilter, Metadata};

/// The default model field ([`Conventions::model_field`]).
pub const MODEL_FIELD: &str = "model_id";
/// The default request id field ([`Conventions::request_id_field`]).
pub const REQUEST_FIELD: &str = "request_id";
/// The default timeout field ([`Conventions::timeout_field`]).
pub const TIMEOUT_FIELD: &str = "timeout";
/// The default request span names ([`Conventions::request_span`]).
pub const REQUEST_SPAN_NAMES: &[&str] = &["embed_pipeline"];

const NONE: u8 = u8::MAX;

/// What register_callsite decided about one callsite, packed in one word as
/// the map keeps it, so the hot path reads it with no unpacking: each accessor
/// is a shift and a mask where it is used. Where each decision lies: the
/// `*_AT` bit positions below, which `Decided::pack` and the accessors share;
/// bit 63 is set in every packed word, so none is 0 (the table's word for a
/// callsite not classified yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CallsiteInfo(u64);

// Bit positions in a `CallsiteInfo` word: the class in 2 bits, the status in
// 4, a flag in 1, a field index in 8.
const CLASS_AT: u32 = 0;
const IN_LEVEL_AT: u32 = 3;
const STATUS_AT: u32 = 4;
const TEXT_AT: u32 = 8;
const REQUEST_AT: u32 = 16;
const TRACEPARENT_AT: u32 = 24;
const LOGGED_AT: u32 = 32;
const CLASSIFIED_AT: u32 = 63;

/// The fields of a [`CallsiteInfo`], as `classify` decides them.
struct Decided {
    class: SpanClass,
    /// Within the configured `TracingLevel`.
    in_level: bool,
    /// Index of the field whose value is the record's inline text, or
    /// `u8::MAX`: a span's model field (its model key; none for a request
    /// span), an event's `message`. Decided once here, so the visitor asks
    /// one question.
    text_field: u8,
    /// Index of `request_id`, or `u8::MAX`.
    request_field: u8,
    /// For request spans: index of the traceparent field, or `u8::MAX`.
    traceparent_field: u8,
    /// For events: the status it marks its span with.
    event_status: Status,
    /// For events: at or above the log level, so written as a log line.
    logged: bool,
}

impl Decided {
    fn pack(self) -> CallsiteInfo {
        CallsiteInfo(
            1 << CLASSIFIED_AT
                | (self.class as u64) << CLASS_AT
                | (self.in_level as u64) << IN_LEVEL_AT
                | (self.event_status as u64) << STATUS_AT
                | field_byte(self.text_field) << TEXT_AT
                | field_byte(self.request_field) << REQUEST_AT
                | field_byte(self.traceparent_field) << TRACEPARENT_AT
                | (self.logged as u64) << LOGGED_AT,
        )
    }
}

/// How a word keeps a field index: the index plus one, and 0 for none
/// (`NONE`; `classify` gives `NONE` to an index past 254 too).
fn field_byte(index: u8) -> u64 {
    if index == NONE {
        0
    } else {
        index as u64 + 1
    }
}

/// Whether the field at `index` (tracing's `Field::index`) is the one stored
/// at bit `at` of `v`: one compare, since the stored byte is the index plus
/// one, which no index matches when it is 0 (none), and which an index past
/// 254 (whose byte would not fit) never matches (`usize::MAX` would wrap to
/// 0, but no field set holds that many names).
#[inline(always)]
fn field_is(v: u64, at: u32, index: usize) -> bool {
    (v >> at) as u8 as usize == index.wrapping_add(1)
}

/// The flag at bit `at` of `v`.
#[inline(always)]
fn flag_at(v: u64, at: u32) -> bool {
    v >> at & 1 == 1
}

impl CallsiteInfo {
    pub(crate) fn classify(meta: &Metadata<'_>, rules: &Rules) -> Self {
        let (level, names) = (rules.level, &rules.conventions);
        let fields = meta.fields();
        let index_of = |name: &str| {
            fields
                .field(name)
                .map(|f| f.index())
                .filter(|&i| i < NONE as usize)
                .map_or(NONE, |i| i as u8)
        };
        let model_field = index_of(&names.model_field);
        let request_field = index_of(&names.request_id_field);
        let is_span = meta.is_span();
        let named_request = is_span && names.request_spans.iter().any(|n| **n == *meta.name());
        // The request id field makes a request; a request span's name does
        // unless the span carries the model field (see `Conventions::validate`).
        let class = if is_span && (request_field != NONE || named_request && model_field == NONE) {
            SpanClass::Request
        } else if is_span && names.batch_spans.iter().any(|n| **n == *meta.name()) {
            SpanClass::Batch
        } else if model_field != NONE {
            if named_request {
                rules.report_named_model_span(meta);
            }
            SpanClass::Model
        } else {
            SpanClass::Stage
        };
        let event_status = if is_span {
            Status::Ok
        } else if fields.field(&names.timeout_field).is_some() {
            Status::Timeout
        } else if *meta.level() == Level::ERROR {
            Status::Error
        } else {
            Status::Ok
        };
        let traceparent_field = if class == SpanClass::Request {
            index_of(&names.traceparent_field)
        } else {
            NONE
        };
        let logged = !is_span && rules.log_level >= *meta.level();
        // An event's model is its span's; a model field on it is a field. A
        // request root's text carries its caller (its traceparent), never a
        // model key, whichever order the fields come in.
        let text_field = if !is_span {
            index_of("message")
        } else if class == SpanClass::Request {
            NONE
        } else {
            model_field
        };
        let in_level = level.admits(is_span, class, *meta.level())
            && rules
                .filter
                .as_ref()
                .is_none_or(|f| f.admits(meta.target(), *meta.level()));
        Decided {
            class,
            in_level,
            text_field,
            request_field,
            traceparent_field,
            event_status,
            logged,
        }
        .pack()
    }

    /// The word the map keeps, as `from_word` takes it back.
    fn word(self) -> u64 {
        self.0
    }

    /// A word the table holds: `None` for 0 (not classified yet).
    #[inline(always)]
    fn from_word(v: u64) -> Option<Self> {
        (v != 0).then_some(Self(v))
    }

    #[inline(always)]
    pub(crate) fn class(self) -> SpanClass {
        SpanClass::from_bits((self.0 >> CLASS_AT) as u32)
    }

    /// Within the configured `TracingLevel` (and filter).
    #[inline(always)]
    pub(crate) fn in_level(self) -> bool {
        flag_at(self.0, IN_LEVEL_AT)
    }

    /// For events: the status it marks its span with.
    #[inline(always)]
    pub(crate) fn event_status(self) -> Status {
        Status::from_u8((self.0 >> STATUS_AT & 0xF) as u8)
    }

    /// For events: at or above the log level, so written as a log line.
    #[inline(always)]
    pub(crate) fn logged(self) -> bool {
        flag_at(self.0, LOGGED_AT)
    }

    /// Whether field `index` holds the record's inline text: a span's model
    /// key, an event's message.
    #[inline(always)]
    pub(crate) fn is_text_field(self, index: usize) -> bool {
        field_is(self.0, TEXT_AT, index)
    }

    /// Whether field `index` is the request id field.
    #[inline(always)]
    pub(crate) fn is_request_field(self, index: usize) -> bool {
        field_is(self.0, REQUEST_AT, index)
    }

    /// For request spans: whether field `index` is the traceparent field.
    #[inline(always)]
    pub(crate) fn is_traceparent_field(self, index: usize) -> bool {
        field_is(self.0, TRACEPARENT_AT, index)
    }
}

/// What a callsite is classified by: the level, the names, the filter, the
/// log level.
pub(crate) struct Rules {
    pub(crate) level: TracingLevel,
    pub(crate) conventions: Conventions,
    pub(crate) filter: Option<TargetFilter>,
    pub(crate) log_level: LevelFilter,
    /// A span named as a request span but carrying the model field was
    /// reported.
    named_model_span_reported: AtomicBool,
}

impl Rules {
    /// Reports, once, a span whose name makes it a request span but which
    /// carries the model field, so is classified as a model span.
    #[cold]
    fn report_named_model_span(&self, meta: &Metadata<'_>) {
        // Relaxed: a once-only flag that orders nothing else. The load first
        // keeps a callsite classified on every use (a full table) to a read.
        let reported = &self.named_model_span_reported;
        if !reported.load(Relaxed) && !reported.swap(true, Relaxed) {
            eprintln!(
                "hdrtrace: span {:?} ({}) is named as a request span but carries the model \
                 field {:?}: it is recorded as a model span (reported once)",
                meta.name(),
                meta.target().escape_debug(),
                &*self.conventions.model_field,
            );
        }
    }

    /// The rules a config sets (its filter parsed here, once).
    pub(crate) fn from_config(config: &TracingConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            level: config.level,
            conventions: config.conventions.clone(),
            filter: config
                .filter
                .as_deref()
                .map(TargetFilter::parse)
                .transpose()?,
            log_level: config.log_level,
            named_model_span_reported: AtomicBool::new(false),
        })
    }
}

/// Every callsite's classification, cached by its `&'static Metadata`
/// address in a fixed-size lock-free table.
pub(crate) struct CallsiteMap {
    table: CallsiteTable<MAP_SIZE>,
    rules: Rules,
}

/// Places in the table: more callsites than that are classified on the fly.
const MAP_SIZE: usize = 4096;

#[inline(always)]
fn addr(meta: &Metadata<'_>) -> usize {
    meta as *const Metadata<'_> as usize
}

impl CallsiteMap {
    pub(crate) fn new(rules: Rules) -> Self {
        Self {
            table: CallsiteTable::new(),
            rules,
        }
    }

    /// Classifies and caches a callsite (cold: called from `register_callsite`).
    /// When the table is full, `get` classifies this callsite on the fly (no
    /// allocation, just a field-name scan) every time.
    pub(crate) fn register(&self, meta: &'static Metadata<'static>) -> CallsiteInfo {
        let info = CallsiteInfo::classify(meta, &self.rules);
        self.table.insert(addr(meta), info.word());
        info
    }

    /// The cached classification (hot path); classifies on the fly if the
    /// callsite was never registered here or the table was full.
    #[inline]
    pub(crate) fn get(&self, meta: &Metadata<'_>) -> CallsiteInfo {
        match CallsiteInfo::from_word(self.table.get(addr(meta))) {
            Some(info) => info,
            None => self.classify_unknown(meta),
        }
    }

    #[cold]
    #[inline(never)]
    fn classify_unknown(&self, meta: &Metadata<'_>) -> CallsiteInfo {
        CallsiteInfo::classify(meta, &self.rules)
    }
}

#[cfg(test)]
mod tests {
    use super::{Decided, NONE};
    use crate::handoff::record::{SpanClass, Status};

    /// Every decision comes back out of the packed word unchanged, at the
    /// edges of each field (no field index, the largest one kept, each
    /// class and status).
    #[test]
    fn the_packed_word_gives_back_every_decision() {
        let classes = [
            SpanClass::Request,
            SpanClass::Stage,
            SpanClass::Model,
            SpanClass::Batch,
        ];
        let statuses = [Status::Ok, Status::Error, Status::Timeout];
        let indices = [0u8, 1, 7, NONE - 1, NONE];
        // What an accessor must say of field `f` for a stored index `i`.
        let holds = |i: u8, f: usize| i != NONE && i as usize == f;
        for (n, &class) in classes.iter().enumerate() {
            for (m, &event_status) in statuses.iter().enumerate() {
                for &i in &indices {
                    let j = indices[(n + m) % indices.len()];
                    let (in_level, logged) = (n % 2 == 0, m % 2 == 1);
                    let info = Decided {
                        class,
                        in_level,
                        text_field: i,
                        request_field: j,
                        traceparent_field: NONE - i,
                        event_status,
                        logged,
                    }
                    .pack();
                    assert_eq!(info.class(), class);
                    assert_eq!(info.in_level(), in_level);
                    assert_eq!(info.event_status(), event_status);
                    assert_eq!(info.logged(), logged);
                    // Every index a byte holds, and past it.
                    for f in (0..=300).chain([1 << 20]) {
                        assert_eq!(info.is_text_field(f), holds(i, f));
                        assert_eq!(info.is_request_field(f), holds(j, f));
                        assert_eq!(info.is_traceparent_field(f), holds(NONE - i, f));
                    }
                }
            }
        }
    }
}
