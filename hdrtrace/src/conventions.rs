//! The span and field names that give spans their meaning: which spans are
//! requests, which field carries the request id, the model key, a timeout,
//! device time. `Default` is the names the embedding pipeline uses; a service
//! with its own names sets them here, and they are applied once per callsite
//! (in `register_callsite`), so the hot path costs nothing more.

use crate::error::ConfigError;
use crate::limits::{MAX_NAME_LEN, MAX_REQUEST_SPANS};
use std::sync::Arc;

/// The names hdrtrace classifies spans and events by.
///
/// ```
/// let conventions = hdrtrace::Conventions::default()
///     .request_span("handle_request")
///     .request_id_field("req")
///     .model_field("model")
///     .timeout_field("deadline_exceeded")
///     .device_time_field("device_ns");
/// let config = hdrtrace::TracingConfig { conventions, ..Default::default() };
/// config.validate().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conventions {
    pub(crate) request_spans: Vec<Arc<str>>,
    pub(crate) request_id_field: Arc<str>,
    pub(crate) model_field: Arc<str>,
    pub(crate) timeout_field: Arc<str>,
    pub(crate) device_time_field: Arc<str>,
    pub(crate) traceparent_field: Arc<str>,
    pub(crate) batch_spans: Vec<Arc<str>>,
    pub(crate) batch_size_field: Arc<str>,
}

/// Whether tracing gives fields of this name to events of its own accord:
/// an event's formatted `message`, and the `log.*` fields of records from
/// the `log` crate. As a convention such a name would match every event (a
/// timeout field named `message` marks every span timed out).
fn reserved(name: &str) -> bool {
    name == "message" || name.starts_with("log.")
}

impl Default for Conventions {
    fn default() -> Self {
        Self {
            request_spans: vec!["embed_pipeline".into()],
            request_id_field: "request_id".into(),
            model_field: "model_id".into(),
            timeout_field: "timeout".into(),
            device_time_field: "gpu_ns".into(),
            traceparent_field: "traceparent".into(),
            batch_spans: vec!["batch".into()],
            batch_size_field: "batch_size".into(),
        }
    }
}

impl Conventions {
    /// Adds a span name that makes a request (a root whose tree is assembled,
    /// sampled and judged), besides any span with the request id field.
    pub fn request_span(mut self, name: impl Into<String>) -> Self {
        self.request_spans.push(name.into().into());
        self
    }

    /// Replaces the request span names (none: only spans with the request id
    /// field are requests).
    pub fn request_spans<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        self.request_spans = names.into_iter().map(|n| n.into().into()).collect();
        self
    }

    /// The field that carries a request's id (a number, or any string or
    /// `Display` value, hashed); a span with it is a request.
    pub fn request_id_field(mut self, name: impl Into<String>) -> Self {
        self.request_id_field = name.into().into();
        self
    }

    /// The field that makes a span a model span, keyed by its value.
    pub fn model_field(mut self, name: impl Into<String>) -> Self {
        self.model_field = name.into().into();
        self
    }

    /// An event with this field marks the span it fires in as timed out.
    pub fn timeout_field(mut self, name: impl Into<String>) -> Self {
        self.timeout_field = name.into().into();
        self
    }

    /// The span field a model reports its device time in, in nanoseconds.
    pub fn device_time_field(mut self, name: impl Into<String>) -> Self {
        self.device_time_field = name.into().into();
        self
    }

    /// A request span field carrying a W3C `traceparent`
    /// (`00-<trace id>-<parent span id>-<flags>`; a later version is read by
    /// those four fields, as W3C Trace Context says), given as a string,
    /// `%value` or `?value` (the quotes `Debug` adds are not part of it): the
    /// request then joins the caller's distributed trace (its exports carry
    /// the caller's trace id, the root's parent is the caller's span). A
    /// malformed value is ignored and counted
    /// (`Counters::malformed_traceparents`).
    pub fn traceparent_field(mut self, name: impl Into<String>) -> Self {
        self.traceparent_field = name.into().into();
        self
    }

    /// Adds a span name that makes a batch ([`SpanClass::Batch`](crate::SpanClass::Batch)):
    /// one run serving several requests' model spans, linked to them with
    /// `follows_from`, keyed by its model field.
    pub fn batch_span(mut self, name: impl Into<String>) -> Self {
        self.batch_spans.push(name.into().into());
        self
    }

    /// Replaces the batch span names (none: no span is a batch).
    pub fn batch_spans<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        self.batch_spans = names.into_iter().map(|n| n.into().into()).collect();
        self
    }

    /// The batch span field that carries how many inputs the batch ran.
    pub fn batch_size_field(mut self, name: impl Into<String>) -> Self {
        self.batch_size_field = name.into().into();
        self
    }

    /// The span names that make a batch.
    pub fn batch_span_names(&self) -> impl Iterator<Item = &str> {
        self.batch_spans.iter().map(|n| &**n)
    }

    /// The batch size field's name.
    pub fn batch_size_name(&self) -> &str {
        &self.batch_size_field
    }

    /// The span names that make a request.
    pub fn request_span_names(&self) -> impl Iterator<Item = &str> {
        self.request_spans.iter().map(|n| &**n)
    }

    /// The request id field's name.
    pub fn request_id_name(&self) -> &str {
        &self.request_id_field
    }

    /// The model field's name.
    pub fn model_name(&self) -> &str {
        &self.model_field
    }

    /// The timeout field's name.
    pub fn timeout_name(&self) -> &str {
        &self.timeout_field
    }

    /// The device time field's name.
    pub fn device_time_name(&self) -> &str {
        &self.device_time_field
    }

    /// The traceparent field's name.
    pub fn traceparent_name(&self) -> &str {
        &self.traceparent_field
    }

    /// Every name must be a plausible identifier: not empty, at most
    /// [`MAX_NAME_LEN`](crate::limits::MAX_NAME_LEN) bytes, no whitespace; no field may be a name tracing
    /// gives fields itself (`message`, `log.*`); the fields must differ, and
    /// no span name may be both a request and a batch span.
    ///
    /// A span that carries the model field is a model span even when its
    /// name is listed as a request span (the model field says more than a
    /// name), unless it carries the request id field too; such a conflict
    /// shows only once the callsite registers, so it is reported once on
    /// stderr then.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let check = |what: &'static str, name: &str| -> Result<(), ConfigError> {
            if name.is_empty() {
                return Err(ConfigError::invalid(what, "must not be empty"));
            }
            if name.len() > MAX_NAME_LEN {
                return Err(ConfigError::invalid(
                    what,
                    format!("must be at most {MAX_NAME_LEN} bytes, got {}", name.len()),
                ));
            }
            if name.contains(char::is_whitespace) {
                return Err(ConfigError::invalid(
                    what,
                    format!("must not contain whitespace, got {name:?}"),
                ));
            }
            Ok(())
        };
        for (what, names) in [
            ("conventions.request_spans", &self.request_spans),
            ("conventions.batch_spans", &self.batch_spans),
        ] {
            if names.len() > MAX_REQUEST_SPANS {
                return Err(ConfigError::invalid(
                    what,
                    format!(
                        "may name at most {MAX_REQUEST_SPANS} spans, got {}",
                        names.len()
                    ),
                ));
            }
            for name in names {
                check(what, name)?;
            }
        }
        if let Some(name) = self
            .batch_spans
            .iter()
            .find(|n| self.request_spans.contains(n))
        {
            return Err(ConfigError::invalid(
                "conventions.batch_spans",
                format!("{name:?} is also a request span name"),
            ));
        }
        let fields = [
            ("conventions.request_id_field", &self.request_id_field),
            ("conventions.model_field", &self.model_field),
            ("conventions.timeout_field", &self.timeout_field),
            ("conventions.device_time_field", &self.device_time_field),
            ("conventions.traceparent_field", &self.traceparent_field),
            ("conventions.batch_size_field", &self.batch_size_field),
        ];
        for (what, name) in fields {
            check(what, name)?;
            if reserved(name) {
                return Err(ConfigError::invalid(
                    what,
                    format!(
                        "is {name:?}, a field tracing gives events itself (`message`, `log.*`): \
                         it would match every event"
                    ),
                ));
            }
        }
        for (i, (what, name)) in fields.iter().enumerate() {
            if let Some((other, _)) = fields[i + 1..].iter().find(|(_, n)| n == name) {
                return Err(ConfigError::invalid(
                    what,
                    format!("is {name:?}, the same name as {other}"),
                ));
            }
        }
        Ok(())
    }
}

/// How a span's classification was decided at its callsite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum SpanClass {
    /// The root of a request (`embed_pipeline` in the spec, or any span with a
    /// `request_id` field).
    Request = 0,
    /// A pipeline stage, keyed by span name.
    Stage = 1,
    /// A model span (it has a `model_id` field), keyed by that field's value.
    Model = 2,
    /// A batch: one run that serves several requests' model spans, linked
    /// to them with `follows_from` (`Conventions::batch_span`). It belongs to
    /// no request; its model is its `model_id` field's value.
    Batch = 3,
}

impl SpanClass {
    /// From the two bits a slot and a callsite keep it in.
    #[inline]
    pub(crate) fn from_bits(bits: u32) -> Self {
        match bits & 3 {
            0 => SpanClass::Request,
            1 => SpanClass::Stage,
            2 => SpanClass::Model,
            _ => SpanClass::Batch,
        }
    }

    /// The lower-case name exports use.
    pub fn name(self) -> &'static str {
        match self {
            SpanClass::Request => "request",
            SpanClass::Stage => "stage",
            SpanClass::Model => "model",
            SpanClass::Batch => "batch",
        }
    }
}
