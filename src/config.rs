//! `TracingConfig`, `TracingLevel`, their validation and `from_env`.

use crate::error::Error;
use crate::record::SpanClass;
use std::time::Duration;
use tracing_core::Level;

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

    // The aggregator's bounds.
    /// Bytes the aggregator may hold for requests: those waiting for their
    /// records and the captured ones. The capture store's worst case
    /// (`capture_capacity` × 2 × `max_capture_spans` spans) is set aside from
    /// it; the rest holds pending records, and a record that does not fit
    /// drops the oldest pending request (counted in
    /// `Counters::budget_dropped_records`; the request is then incomplete).
    /// Histograms are bounded by `max_models` and `max_stages` instead. The
    /// rings of threads whose bursts outrun the aggregator grow past
    /// `ring_capacity` (up to 16 x) while all rings together stay within this
    /// many bytes of records too.
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
            memory_budget: 64 << 20,
            max_models: 64,
            max_stages: 32,
            max_capture_spans: 512,
        }
    }
}

/// Upper bounds that keep preallocation sane.
const MAX_SLOTS: usize = 1 << 24;
const MAX_RING: usize = 1 << 22;

/// The aggregator's bounds' limits.
const MAX_KEYS: usize = 1 << 16;
const MAX_CAPTURE_SPANS: usize = 1 << 20;
const MIN_BUDGET: usize = 1 << 16;
const MAX_BUDGET: usize = 1 << 40;
/// What one captured span (with its share of events and fields) is counted
/// as against `memory_budget`.
const CAPTURED_SPAN_BYTES: usize = 256;

impl TracingConfig {
    /// Checks every value; the error names the field and what it accepts.
    pub fn validate(&self) -> Result<(), Error> {
        let r = self.sampling_rate;
        if !r.is_finite() || !(0.0..=1.0).contains(&r) {
            return Err(Error::config(
                "sampling_rate",
                format!("must be a number from 0.0 to 1.0, got {r}"),
            ));
        }
        if self.slot_capacity == 0 || self.slot_capacity > MAX_SLOTS {
            return Err(Error::config(
                "slot_capacity",
                format!("must be from 1 to {MAX_SLOTS}, got {}", self.slot_capacity),
            ));
        }
        if self.ring_capacity == 0 || self.ring_capacity > MAX_RING {
            return Err(Error::config(
                "ring_capacity",
                format!("must be from 1 to {MAX_RING}, got {}", self.ring_capacity),
            ));
        }
        if self.capture_capacity == 0 {
            return Err(Error::config("capture_capacity", "must be at least 1"));
        }
        for (field, d) in [
            ("latency_target", self.latency_target),
            ("window", self.window),
            ("flush_interval", self.flush_interval),
        ] {
            if d.is_zero() {
                return Err(Error::config(field, "must be longer than zero"));
            }
        }
        if self.window > Duration::from_secs(24 * 3600) {
            return Err(Error::config("window", "must be at most 24 hours"));
        }
        if let Some(endpoint) = &self.otel_endpoint {
            validate_endpoint(endpoint).map_err(|reason| Error::config("otel_endpoint", reason))?;
        }
        self.validate_bounds()
    }

    /// The aggregator's bounds (`memory_budget` and the caps).
    fn validate_bounds(&self) -> Result<(), Error> {
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
                return Err(Error::config(
                    field,
                    format!("must be from 1 to {max}, got {v}"),
                ));
            }
        }
        let b = self.memory_budget;
        if !(MIN_BUDGET..=MAX_BUDGET).contains(&b) {
            return Err(Error::config(
                "memory_budget",
                format!("must be from {MIN_BUDGET} to {MAX_BUDGET} bytes, got {b}"),
            ));
        }
        let captures = self.capture_reserve();
        if captures > b / 2 {
            return Err(Error::config(
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
    /// `HDRTRACE_MAX_STAGES`, `HDRTRACE_MAX_CAPTURE_SPANS`.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// `from_env` over any key lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let mut c = Self::default();
        let bad = |var: &'static str, value: &str, reason: String| Error::InvalidEnv {
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
        macro_rules! var {
            ($name:literal, $parse:expr, |$v:ident| $set:expr) => {
                if let Some(raw) = get($name) {
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
        var!("HDRTRACE_MEMORY_BUDGET", parse::<usize>, |v| c
            .memory_budget =
            v);
        var!("HDRTRACE_MAX_MODELS", parse::<usize>, |v| c.max_models = v);
        var!("HDRTRACE_MAX_STAGES", parse::<usize>, |v| c.max_stages = v);
        var!("HDRTRACE_MAX_CAPTURE_SPANS", parse::<usize>, |v| c
            .max_capture_spans =
            v);
        c.validate().map_err(|e| match e {
            Error::InvalidConfig { field, reason } => {
                let var = env_name(field);
                Error::InvalidEnv {
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
