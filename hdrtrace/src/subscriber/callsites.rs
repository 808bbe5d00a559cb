//! Classification, done once per callsite in `register_callsite` and cached in a
//! fixed-size lock-free map keyed by the callsite's `&'static Metadata` address,
//! so the hot path reads one word instead of scanning field names.

use crate::config::{TracingConfig, TracingLevel};
use crate::conventions::Conventions;
use crate::error::Error;
use crate::filter::TargetFilter;
use crate::record::{SpanClass, Status};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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

/// What register_callsite decided about one callsite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CallsiteInfo {
    pub(crate) class: SpanClass,
    pub(crate) is_span: bool,
    /// Within the configured `TracingLevel`.
    pub(crate) in_level: bool,
    /// Index of `model_id` in the callsite's FieldSet, or `u8::MAX`.
    pub(crate) model_field: u8,
    /// Index of `request_id`, or `u8::MAX`.
    pub(crate) request_field: u8,
    /// For request spans: index of the traceparent field, or `u8::MAX`.
    pub(crate) traceparent_field: u8,
    /// For events: the status it marks its span with.
    pub(crate) event_status: Status,
    /// For events: at or above the log level, so written as a log line.
    pub(crate) logged: bool,
    /// For events: index of the `message` field (the text an event record
    /// keeps), or `u8::MAX`.
    pub(crate) message_field: u8,
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
        let class = if is_span
            && (request_field != NONE || names.request_spans.iter().any(|n| **n == *meta.name()))
        {
            SpanClass::Request
        } else if is_span && names.batch_spans.iter().any(|n| **n == *meta.name()) {
            SpanClass::Batch
        } else if model_field != NONE {
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
        let message_field = if is_span { NONE } else { index_of("message") };
        let in_level = level.admits(is_span, class, *meta.level())
            && rules
                .filter
                .as_ref()
                .is_none_or(|f| f.admits(meta.target(), *meta.level()));
        Self {
            class,
            is_span,
            in_level,
            model_field,
            request_field,
            traceparent_field,
            event_status,
            logged,
            message_field,
        }
    }

    fn pack(self) -> u64 {
        1 << 63
            | (self.class as u64)
            | (self.is_span as u64) << 2
            | (self.in_level as u64) << 3
            | (self.event_status as u64) << 4
            | (self.model_field as u64) << 8
            | (self.request_field as u64) << 16
            | (self.traceparent_field as u64) << 24
            | (self.logged as u64) << 32
            | (self.message_field as u64) << 40
    }

    fn unpack(v: u64) -> Option<Self> {
        if v >> 63 == 0 {
            return None;
        }
        Some(Self {
            class: SpanClass::from_bits(v as u32),
            is_span: v >> 2 & 1 == 1,
            in_level: v >> 3 & 1 == 1,
            event_status: Status::from_u8((v >> 4 & 0xF) as u8),
            model_field: (v >> 8) as u8,
            request_field: (v >> 16) as u8,
            traceparent_field: (v >> 24) as u8,
            logged: v >> 32 & 1 == 1,
            message_field: (v >> 40) as u8,
        })
    }

    pub(crate) fn model_field(&self) -> Option<usize> {
        (self.model_field != NONE).then_some(self.model_field as usize)
    }

    pub(crate) fn traceparent_field(&self) -> Option<usize> {
        (self.traceparent_field != NONE).then_some(self.traceparent_field as usize)
    }

    pub(crate) fn message_field(&self) -> Option<usize> {
        (self.message_field != NONE).then_some(self.message_field as usize)
    }

    pub(crate) fn request_field(&self) -> Option<usize> {
        (self.request_field != NONE).then_some(self.request_field as usize)
    }
}

/// What a callsite is classified by: the level, the names, the filter, the
/// log level.
pub(crate) struct Rules {
    pub(crate) level: TracingLevel,
    pub(crate) conventions: Conventions,
    pub(crate) filter: Option<TargetFilter>,
    pub(crate) log_level: LevelFilter,
}

impl Rules {
    /// The rules a config sets (its filter parsed here, once).
    pub(crate) fn from_config(config: &TracingConfig) -> Result<Self, Error> {
        Ok(Self {
            level: config.level,
            conventions: config.conventions.clone(),
            filter: config
                .filter
                .as_deref()
                .map(TargetFilter::parse)
                .transpose()?,
            log_level: config.log_level,
        })
    }
}

/// An open-addressed table of `(metadata address, packed CallsiteInfo)`.
pub(crate) struct CallsiteMap {
    keys: Box<[AtomicUsize]>,
    values: Box<[AtomicU64]>,
    rules: Rules,
}

const MAP_SIZE: usize = 4096;

#[inline]
fn addr(meta: &Metadata<'_>) -> usize {
    meta as *const Metadata<'_> as usize
}

#[inline]
fn home(key: usize) -> usize {
    ((key >> 3).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) % MAP_SIZE
}

impl CallsiteMap {
    pub(crate) fn new(rules: Rules) -> Self {
        Self {
            keys: (0..MAP_SIZE).map(|_| AtomicUsize::new(0)).collect(),
            values: (0..MAP_SIZE).map(|_| AtomicU64::new(0)).collect(),
            rules,
        }
    }

    /// Classifies and caches a callsite (cold: called from `register_callsite`).
    pub(crate) fn register(&self, meta: &'static Metadata<'static>) -> CallsiteInfo {
        let info = CallsiteInfo::classify(meta, &self.rules);
        let key = addr(meta);
        let start = home(key);
        for probe in 0..MAP_SIZE {
            let i = (start + probe) % MAP_SIZE;
            // Acquire on failure: the key we see was published by a racing
            // register; either way we only compare it.
            match self.keys[i].compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    // Release: pairs with the acquire load in `get`, which then
                    // sees a complete packed value (or 0 and classifies itself).
                    self.values[i].store(info.pack(), Ordering::Release);
                    return info;
                }
                Err(k) if k == key => return info,
                Err(_) => continue,
            }
        }
        // The table is full: `get` will classify this callsite on the fly (no
        // allocation, just a field-name scan) every time.
        info
    }

    /// The cached classification (hot path); classifies on the fly if the
    /// callsite was never registered here or the table was full.
    #[inline]
    pub(crate) fn get(&self, meta: &Metadata<'_>) -> CallsiteInfo {
        let key = addr(meta);
        let i = home(key);
        // The common case: the callsite sits in its home slot. Relaxed: we
        // only compare the key; the value's acquire load orders what we read.
        if self.keys[i].load(Ordering::Relaxed) == key {
            // Acquire: pairs with the release store in `register`.
            if let Some(info) = CallsiteInfo::unpack(self.values[i].load(Ordering::Acquire)) {
                return info;
            }
        }
        self.get_probing(meta, key, i)
    }

    /// `get` past the home slot: probes on, else classifies on the fly.
    #[cold]
    #[inline(never)]
    fn get_probing(&self, meta: &Metadata<'_>, key: usize, start: usize) -> CallsiteInfo {
        for probe in 0..MAP_SIZE {
            let i = (start + probe) % MAP_SIZE;
            // Relaxed / Acquire: as in `get`.
            let k = self.keys[i].load(Ordering::Relaxed);
            if k == key {
                if let Some(info) = CallsiteInfo::unpack(self.values[i].load(Ordering::Acquire)) {
                    return info;
                }
                break;
            }
            if k == 0 {
                break;
            }
        }
        CallsiteInfo::classify(meta, &self.rules)
    }
}
