//! `TracingConfig`, `TracingLevel`, their validation and `from_env`.

use crate::conventions::Conventions;
use crate::conventions::SpanClass;
use crate::error::ConfigError;
use crate::filter::TargetFilter;
use std::time::Duration;
use tracing_core::{Level, LevelFilter};

/// How much of the pipeline is traced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TracingLevel {
    /// Only pipeline-level spans: requests and stages (not `TRACE`); `WARN`+ events.
    Minimal,
    /// Pipeline + model-level spans (not `TRACE`); `INFO`+ events.
    #[default]
    Standard,
    /// All spans, including `TRACE`-level batch internals; all events.
    Verbose,
}

impl TracingLevel {
    /// Whether a callsite of this kind and level is recorded at this tracing level.
    pub fn admits(self, is_span: bool, class: SpanClass, level: Level) -> bool {
        if !is_span {
            return match self {
                TracingLevel::Minimal => level <= Level::WARN,
                TracingLevel::Standard => level <= Level::INFO,
                TracingLevel::Verbose => true,
            };
        }
        match self {
            TracingLevel::Minimal => class != SpanClass::Model && level != Level::TRACE,
            TracingLevel::Standard => level != Level::TRACE,
            TracingLevel::Verbose => true,
        }
    }

    /// The most verbose level any admitted callsite can have.
    pub fn max_level(self) -> tracing_core::LevelFilter {
        match self {
            TracingLevel::Verbose => tracing_core::LevelFilter::TRACE,
            _ => tracing_core::LevelFilter::DEBUG,
        }
    }
}

impl std::str::FromStr for TracingLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "minimal" => Ok(TracingLevel::Minimal),
            "standard" => Ok(TracingLevel::Standard),
            "verbose" => Ok(TracingLevel::Verbose),
            _ => Err(format!("expected minimal, standard or verbose, got {s:?}")),
        }
    }
}

/// Tracing configuration for the embedding pipeline (the spec's fields first).
#[derive(Debug, Clone)]
pub struct TracingConfig {
    /// Record anything at all. `false` installs the subscriber switched off: every
    /// instrumented site then costs one relaxed atomic load (see `set_enabled`).
    pub enabled: bool,
    /// Which callsites are recorded.
    pub level: TracingLevel,
    /// Also serve tokio-console (cargo feature `tokio-console`).
    pub tokio_console: bool,
    /// Export sampled and tail-captured requests over OTLP/gRPC to this endpoint
    /// (cargo feature `otel`), e.g. `http://127.0.0.1:4317`.
    pub otel_endpoint: Option<String>,
    /// Fraction of requests whose full trace is kept, 0.0 to 1.0. Histograms count
    /// every request whatever the rate.
    pub sampling_rate: f32,
    /// How many spans may be open at once; beyond it new spans go untracked and
    /// are counted as dropped.
    pub slot_capacity: usize,
    /// Records each thread's ring holds before the aggregator drains it (rounded
    /// up to a power of two); a full ring drops and counts.
    pub ring_capacity: usize,
    /// The per-request latency budget (the spec's 200 ms P95 target).
    pub latency_target: Duration,
    /// The span of the "recent" histograms (`LatencySnapshot::recent`).
    pub window: Duration,
    /// How often the aggregator drains the rings and publishes a snapshot.
    pub flush_interval: Duration,
    /// Captured requests kept: the N most recent and the N slowest.
    pub capture_capacity: usize,
    /// Where the tokio-console server listens when `tokio_console` is on.
    pub console_addr: std::net::SocketAddr,
    /// The span and field names that make requests, models, timeouts and
    /// device time (default: the embedding pipeline's).
    pub conventions: Conventions,
    /// Which targets are recorded, in the `RUST_LOG` shape
    /// (`my_service=debug,hyper=off,info`), evaluated once per callsite and
    /// on top of `level`; `None` records every target.
    pub filter: Option<String>,
    /// Events at or above this level are written as log lines (to stderr, or
    /// to `Builder::log_writer`) by the hand-written subscriber; `OFF` writes
    /// none. Default `INFO`. Decided once per callsite, and only among the
    /// events `level` and `filter` let through (`Standard` admits `INFO`
    /// and above).
    pub log_level: LevelFilter,

    // The aggregator's bounds.
    /// Bytes the aggregator may hold for requests: those waiting for their
    /// records and the captured ones. The capture store's worst case
    /// (`capture_capacity` × 2 × `max_capture_spans` spans) is set aside from
    /// it; the rest holds pending records, and a record that does not fit
    /// drops the oldest pending request (counted in
    /// `Counters::budget_dropped_records`; the request is then incomplete).
    /// The rings of threads whose bursts outrun the aggregator grow past
    /// `ring_capacity` (up to 16 x) while all rings together stay within this
    /// many bytes of records too. And the histograms take at most this many
    /// bytes (or `limits::MIN_HISTOGRAM_BUDGET`, if more): a new model or stage
    /// key past it is recorded in the `"<other>"` series (counted in
    /// `Counters::overflow_spans`), and a histogram that would grow past it
    /// records at the top of its range (`Counters::budget_clamped_samples`);
    /// `Counters::histogram_bytes` says what they take. At most
    /// `limits::MAX_BUDGET`.
    pub memory_budget: usize,
    /// Distinct model keys with a series of their own; spans of later keys
    /// are recorded in one `"<other>"` series (counted in
    /// `Counters::overflow_spans`).
    pub max_models: usize,
    /// Distinct stage (and request root) names with a series of their own;
    /// later ones share one `"<other>"` stage series.
    pub max_stages: usize,
    /// Spans (and, separately, events) a captured request keeps; the rest
    /// are counted per name in `RequestTrace::omitted`.
    pub max_capture_spans: usize,
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            level: TracingLevel::Standard,
            tokio_console: false,
            otel_endpoint: None,
            sampling_rate: 0.01,
            slot_capacity: 16 * 1024,
            ring_capacity: 4 * 1024,
            latency_target: Duration::from_millis(200),
            window: Duration::from_secs(10),
            flush_interval: Duration::from_millis(100),
            capture_capacity: 64,
            console_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 6669)),
            conventions: Conventions::default(),
            filter: None,
            log_level: LevelFilter::INFO,
            memory_budget: 64 << 20,
            max_models: 64,
            max_stages: 32,
            max_capture_spans: 512,
        }
    }
}

use crate::limits::*;
/// What one captured span (with its share of events and fields) is counted
/// as against `memory_budget`.
const CAPTURED_SPAN_BYTES: usize = 256;

impl TracingConfig {
    /// Checks every value against its bound (see [`limits`](crate::limits)); the error names
    /// the field, the value and what it accepts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let r = self.sampling_rate;
        if !r.is_finite() || !(0.0..=1.0).contains(&r) {
            return Err(ConfigError::invalid(
                "sampling_rate",
                format!("must be a number from 0.0 to 1.0, got {r}"),
            ));
        }
        for (field, value, max) in [
            ("slot_capacity", self.slot_capacity, MAX_SLOTS),
            ("ring_capacity", self.ring_capacity, MAX_RING),
            ("capture_capacity", self.capture_capacity, MAX_CAPTURES),
        ] {
            if value == 0 || value > max {
                return Err(ConfigError::invalid(
                    field,
                    format!("must be from 1 to {max}, got {value}"),
                ));
            }
        }
        for (field, value, min, max) in [
            (
                "latency_target",
                self.latency_target,
                Duration::from_nanos(1),
                MAX_LATENCY_TARGET,
            ),
            ("window", self.window, MIN_WINDOW, MAX_WINDOW),
            (
                "flush_interval",
                self.flush_interval,
                MIN_FLUSH_INTERVAL,
                MAX_FLUSH_INTERVAL,
            ),
        ] {
            if value < min || value > max {
                return Err(ConfigError::invalid(
                    field,
                    format!("must be from {min:?} to {max:?}, got {value:?}"),
                ));
            }
        }
        self.conventions.validate()?;
        if let Some(filter) = &self.filter {
            TargetFilter::parse(filter)?;
        }
        if let Some(endpoint) = &self.otel_endpoint {
            if endpoint.len() > MAX_ENDPOINT_LEN {
                return Err(ConfigError::invalid(
                    "otel_endpoint",
                    format!(
                        "must be at most {MAX_ENDPOINT_LEN} bytes, got {}",
                        endpoint.len()
                    ),
                ));
            }
            validate_endpoint(endpoint)
                .map_err(|reason| ConfigError::invalid("otel_endpoint", reason))?;
        }
        self.validate_bounds()
    }

    /// The aggregator's bounds (`memory_budget` and the caps).
    fn validate_bounds(&self) -> Result<(), ConfigError> {
        for (field, v, max) in [
            ("max_models", self.max_models, MAX_KEYS),
            ("max_stages", self.max_stages, MAX_KEYS),
            (
                "max_capture_spans",
                self.max_capture_spans,
                MAX_CAPTURE_SPANS,
            ),
        ] {
            if v == 0 || v > max {
                return Err(ConfigError::invalid(
                    field,
                    format!("must be from 1 to {max}, got {v}"),
                ));
            }
        }
        let b = self.memory_budget;
        if !(MIN_BUDGET..=MAX_BUDGET).contains(&b) {
            return Err(ConfigError::invalid(
                "memory_budget",
                format!("must be from {MIN_BUDGET} to {MAX_BUDGET} bytes, got {b}"),
            ));
        }
        let captures = self.capture_reserve();
        if captures > b / 2 {
            return Err(ConfigError::invalid(
                "memory_budget",
                format!(
                    "{b} bytes cannot hold the capture store: capture_capacity ({}) x 2 x \
                     max_capture_spans ({}) x {CAPTURED_SPAN_BYTES} bytes = {captures} bytes \
                     must be at most half of it; raise memory_budget or lower the others",
                    self.capture_capacity, self.max_capture_spans
                ),
            ));
        }
        Ok(())
    }

    /// The capture store's worst case, set aside from `memory_budget`.
    fn capture_reserve(&self) -> usize {
        self.capture_capacity
            .saturating_mul(2)
            .saturating_mul(self.max_capture_spans)
            .saturating_mul(CAPTURED_SPAN_BYTES)
    }

    /// Bytes the histograms may take.
    pub(crate) fn histogram_budget(&self) -> usize {
        self.memory_budget.max(MIN_HISTOGRAM_BUDGET)
    }

    /// Bytes of `memory_budget` left for pending requests.
    pub(crate) fn pending_budget(&self) -> usize {
        self.memory_budget.saturating_sub(self.capture_reserve())
    }

    /// Reads `HDRTRACE_*` variables over the defaults, with the same validation;
    /// an error names the variable at fault.
    ///
    /// `HDRTRACE_ENABLED`, `HDRTRACE_LEVEL`, `HDRTRACE_TOKIO_CONSOLE`,
    /// `HDRTRACE_OTEL_ENDPOINT`, `HDRTRACE_SAMPLING_RATE`, `HDRTRACE_SLOT_CAPACITY`,
    /// `HDRTRACE_RING_CAPACITY`, `HDRTRACE_LATENCY_TARGET_MS`,
    /// `HDRTRACE_WINDOW_SECS`, `HDRTRACE_FLUSH_INTERVAL_MS`,
    /// `HDRTRACE_CAPTURE_CAPACITY`, `HDRTRACE_CONSOLE_ADDR`,
    /// `HDRTRACE_MEMORY_BUDGET` (bytes), `HDRTRACE_MAX_MODELS`,
    /// `HDRTRACE_MAX_STAGES`, `HDRTRACE_MAX_CAPTURE_SPANS`; the conventions'
    /// `HDRTRACE_REQUEST_SPANS`, `HDRTRACE_BATCH_SPANS` (comma-separated),
    /// `HDRTRACE_REQUEST_ID_FIELD`, `HDRTRACE_MODEL_FIELD`,
    /// `HDRTRACE_TIMEOUT_FIELD`, `HDRTRACE_DEVICE_TIME_FIELD`,
    /// `HDRTRACE_TRACEPARENT_FIELD`, `HDRTRACE_BATCH_SIZE_FIELD`.
    ///
    /// A variable set to nothing (or only whitespace) is an error, except
    /// `HDRTRACE_OTEL_ENDPOINT` and `HDRTRACE_FILTER`, where empty means
    /// what unset means (no export; every target). A list that names no span
    /// (`HDRTRACE_REQUEST_SPANS=","`) is an error too; no request (or batch)
    /// span by name at all is set with `Conventions::request_spans([])`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// `from_env` over any key lookup (tests pass a map).
    ///
    /// ```
    /// use hdrtrace::{ConfigError, TracingConfig};
    ///
    /// let env = |k: &str| (k == "HDRTRACE_SAMPLING_RATE").then(|| "0.25".to_string());
    /// assert_eq!(TracingConfig::from_lookup(env)?.sampling_rate, 0.25);
    ///
    /// let bad = |k: &str| (k == "HDRTRACE_SAMPLING_RATE").then(|| "lots".to_string());
    /// assert!(matches!(
    ///     TracingConfig::from_lookup(bad),
    ///     Err(ConfigError::Env { var: "HDRTRACE_SAMPLING_RATE", .. })
    /// ));
    /// # Ok::<(), ConfigError>(())
    /// ```
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut c = Self::default();
        let bad = |var: &'static str, value: &str, reason: String| ConfigError::Env {
            var,
            value: value.to_string(),
            reason,
        };
        fn parse<T: std::str::FromStr>(v: &str) -> Result<T, String>
        where
            T::Err: std::fmt::Display,
        {
            v.trim().parse::<T>().map_err(|e| e.to_string())
        }
        fn parse_bool(v: &str) -> Result<bool, String> {
            match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err("expected true/false, 1/0, yes/no or on/off".into()),
            }
        }
        // Set to nothing: an error where that would not mean what unset means.
        let empty_means_unset = ["HDRTRACE_OTEL_ENDPOINT", "HDRTRACE_FILTER"];
        macro_rules! var {
            ($name:literal, $parse:expr, |$v:ident| $set:expr) => {
                if let Some(raw) = get($name) {
                    if raw.trim().is_empty() && !empty_means_unset.contains(&$name) {
                        return Err(bad(
                            $name,
                            &raw,
                            "is set but empty (unset it for the default)".into(),
                        ));
                    }
                    let $v = $parse(&raw).map_err(|e| bad($name, &raw, e))?;
                    $set;
                }
            };
        }
        var!("HDRTRACE_ENABLED", parse_bool, |v| c.enabled = v);
        var!(
            "HDRTRACE_LEVEL",
            |s: &str| s.trim().parse::<TracingLevel>(),
            |v| c.level = v
        );
        var!("HDRTRACE_TOKIO_CONSOLE", parse_bool, |v| c.tokio_console =
            v);
        var!(
            "HDRTRACE_OTEL_ENDPOINT",
            |s: &str| Ok::<_, String>(s.trim().to_string()),
            |v| { c.otel_endpoint = (!v.is_empty()).then_some(v) }
        );
        var!("HDRTRACE_SAMPLING_RATE", parse::<f32>, |v| c
            .sampling_rate =
            v);
        var!("HDRTRACE_SLOT_CAPACITY", parse::<usize>, |v| c
            .slot_capacity =
            v);
        var!("HDRTRACE_RING_CAPACITY", parse::<usize>, |v| c
            .ring_capacity =
            v);
        var!("HDRTRACE_LATENCY_TARGET_MS", parse::<u64>, |v| {
            c.latency_target = Duration::from_millis(v)
        });
        var!("HDRTRACE_WINDOW_SECS", parse::<u64>, |v| c.window =
            Duration::from_secs(v));
        var!("HDRTRACE_FLUSH_INTERVAL_MS", parse::<u64>, |v| {
            c.flush_interval = Duration::from_millis(v)
        });
        var!("HDRTRACE_CAPTURE_CAPACITY", parse::<usize>, |v| c
            .capture_capacity =
            v);
        let text = |s: &str| Ok::<_, String>(s.trim().to_string());
        // Comma-separated names; empty ones between commas are ignored.
        let names = |v: &str| {
            let names: Vec<String> = v
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect();
            if names.is_empty() {
                Err("names no span (expected e.g. `handle_request,grpc_call`)".to_string())
            } else {
                Ok(names)
            }
        };
        var!("HDRTRACE_REQUEST_SPANS", names, |v| {
            c.conventions = c.conventions.request_spans(v)
        });
        var!("HDRTRACE_BATCH_SPANS", names, |v| {
            c.conventions = c.conventions.batch_spans(v)
        });
        var!("HDRTRACE_BATCH_SIZE_FIELD", text, |v| {
            c.conventions = c.conventions.batch_size_field(v)
        });
        var!("HDRTRACE_REQUEST_ID_FIELD", text, |v| {
            c.conventions = c.conventions.request_id_field(v)
        });
        var!("HDRTRACE_MODEL_FIELD", text, |v| c.conventions =
            c.conventions.model_field(v));
        var!("HDRTRACE_TIMEOUT_FIELD", text, |v| c.conventions =
            c.conventions.timeout_field(v));
        var!("HDRTRACE_DEVICE_TIME_FIELD", text, |v| {
            c.conventions = c.conventions.device_time_field(v)
        });
        var!("HDRTRACE_TRACEPARENT_FIELD", text, |v| {
            c.conventions = c.conventions.traceparent_field(v)
        });
        var!("HDRTRACE_FILTER", text, |v| c.filter = Some(v));
        var!(
            "HDRTRACE_LOG_LEVEL",
            |s: &str| s
                .trim()
                .parse::<LevelFilter>()
                .map_err(|_| "expected off, error, warn, info, debug or trace".to_string()),
            |v| c.log_level = v
        );
        var!(
            "HDRTRACE_CONSOLE_ADDR",
            parse::<std::net::SocketAddr>,
            |v| c.console_addr = v
        );
        var!("HDRTRACE_MEMORY_BUDGET", parse::<usize>, |v| c
            .memory_budget =
            v);
        var!("HDRTRACE_MAX_MODELS", parse::<usize>, |v| c.max_models = v);
        var!("HDRTRACE_MAX_STAGES", parse::<usize>, |v| c.max_stages = v);
        var!("HDRTRACE_MAX_CAPTURE_SPANS", parse::<usize>, |v| c
            .max_capture_spans =
            v);
        c.validate().map_err(|e| match e {
            ConfigError::Invalid { field, reason } => {
                let var = env_name(field);
                ConfigError::Env {
                    var,
                    value: get(var).unwrap_or_default(),
                    reason: reason.into_owned(),
                }
            }
            other => other,
        })?;
        Ok(c)
    }
}

fn env_name(field: &str) -> &'static str {
    match field {
        "sampling_rate" => "HDRTRACE_SAMPLING_RATE",
        "slot_capacity" => "HDRTRACE_SLOT_CAPACITY",
        "ring_capacity" => "HDRTRACE_RING_CAPACITY",
        "latency_target" => "HDRTRACE_LATENCY_TARGET_MS",
        "window" => "HDRTRACE_WINDOW_SECS",
        "flush_interval" => "HDRTRACE_FLUSH_INTERVAL_MS",
        "capture_capacity" => "HDRTRACE_CAPTURE_CAPACITY",
        "otel_endpoint" => "HDRTRACE_OTEL_ENDPOINT",
        "filter" => "HDRTRACE_FILTER",
        "conventions.request_spans" => "HDRTRACE_REQUEST_SPANS",
        "conventions.batch_spans" => "HDRTRACE_BATCH_SPANS",
        "conventions.batch_size_field" => "HDRTRACE_BATCH_SIZE_FIELD",
        "conventions.request_id_field" => "HDRTRACE_REQUEST_ID_FIELD",
        "conventions.model_field" => "HDRTRACE_MODEL_FIELD",
        "conventions.timeout_field" => "HDRTRACE_TIMEOUT_FIELD",
        "conventions.device_time_field" => "HDRTRACE_DEVICE_TIME_FIELD",
        "conventions.traceparent_field" => "HDRTRACE_TRACEPARENT_FIELD",
        "memory_budget" => "HDRTRACE_MEMORY_BUDGET",
        "max_models" => "HDRTRACE_MAX_MODELS",
        "max_stages" => "HDRTRACE_MAX_STAGES",
        "max_capture_spans" => "HDRTRACE_MAX_CAPTURE_SPANS",
        _ => "HDRTRACE_*",
    }
}

/// Accepts `http://host:port` or `https://host:port` (an optional path after).
pub(crate) fn validate_endpoint(endpoint: &str) -> Result<(), String> {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .ok_or_else(|| format!("must start with http:// or https://, got {endpoint:?}"))?;
    let authority = rest.split('/').next().unwrap_or("");
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (h, Some(p)),
        _ => (authority, None),
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!(
            "has no host: {endpoint:?} (expected e.g. http://127.0.0.1:4317)"
        ));
    }
    if let Some(p) = port {
        match p.parse::<u16>() {
            Ok(0) | Err(_) => {
                return Err(format!("has an invalid port {p:?}: expected 1 to 65535"));
            }
            Ok(_) => {}
        }
    }
    Ok(())
}
