//! Every config value has an upper bound a real deployment never needs to
//! exceed, and a value past it is an `Err` naming the field (or the
//! environment variable) and the bound, never an abort at build time.

use hdrtrace::{limits, ConfigError, InstallError, TracingConfig};
use std::collections::HashMap;
use std::time::Duration;

fn rejected(config: TracingConfig, field: &str, bound: &str) {
    match hdrtrace::build(&config) {
        Err(e @ InstallError::Config(ConfigError::Invalid { .. })) => {
            let m = e.to_string();
            assert!(m.contains(field) && m.contains(bound), "{m}");
        }
        Err(other) => panic!("{field}: wrong error {other}"),
        Ok(_) => panic!("{field}: accepted"),
    }
}

#[test]
fn the_issues_reproductions_are_refused_before_allocating() {
    let d = TracingConfig::default;
    rejected(
        TracingConfig {
            capture_capacity: 1 << 40,
            ..d()
        },
        "capture_capacity",
        "from 1 to 4096",
    );
    rejected(
        TracingConfig {
            capture_capacity: usize::MAX,
            ..d()
        },
        "capture_capacity",
        "4096",
    );
    rejected(
        TracingConfig {
            flush_interval: Duration::from_nanos(1),
            ..d()
        },
        "flush_interval",
        "from 10ms to 3600s",
    );
    rejected(
        TracingConfig {
            slot_capacity: 1 << 24,
            ring_capacity: 1 << 22,
            ..d()
        },
        "slot_capacity",
        &limits::MAX_SLOTS.to_string(),
    );
    rejected(
        TracingConfig {
            ring_capacity: 1 << 22,
            ..d()
        },
        "ring_capacity",
        &limits::MAX_RING.to_string(),
    );
    rejected(
        TracingConfig {
            latency_target: Duration::from_secs(7200),
            ..d()
        },
        "latency_target",
        "3600s",
    );
    rejected(
        TracingConfig {
            window: Duration::from_millis(5),
            ..d()
        },
        "window",
        "100ms",
    );
    rejected(
        TracingConfig {
            otel_endpoint: Some(format!("http://{}:4317", "a".repeat(4000))),
            ..d()
        },
        "otel_endpoint",
        "at most 2048 bytes",
    );
}

#[test]
fn the_largest_accepted_values_build() {
    let config = TracingConfig {
        slot_capacity: limits::MAX_SLOTS,
        ring_capacity: limits::MAX_RING,
        capture_capacity: limits::MAX_CAPTURES,
        flush_interval: limits::MAX_FLUSH_INTERVAL,
        window: limits::MAX_WINDOW,
        latency_target: limits::MAX_LATENCY_TARGET,
        memory_budget: limits::MAX_BUDGET,
        max_models: limits::MAX_KEYS,
        max_stages: limits::MAX_KEYS,
        // (All captures at the most spans each would need 2 TiB: the budget
        // check refuses that combination, as it should.)
        ..TracingConfig::default()
    };
    let (_subscriber, guard) = hdrtrace::build(&config).expect("the bounds themselves are valid");
    assert_eq!(guard.slot_capacity(), limits::MAX_SLOTS);
}

fn from_env(vars: &[(&str, &str)]) -> Result<TracingConfig, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    TracingConfig::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn environment_values_past_a_bound_name_the_variable() {
    for (var, value) in [
        ("HDRTRACE_CAPTURE_CAPACITY", "1099511627776"),
        ("HDRTRACE_CAPTURE_CAPACITY", "18446744073709551615"),
        ("HDRTRACE_FLUSH_INTERVAL_MS", "0"),
        ("HDRTRACE_SLOT_CAPACITY", "16777216"),
        ("HDRTRACE_RING_CAPACITY", "4194304"),
        ("HDRTRACE_CONSOLE_ADDR", "not an address"),
        ("HDRTRACE_CONSOLE_ADDR", "127.0.0.1:99999"),
    ] {
        match from_env(&[(var, value)]) {
            Err(e @ ConfigError::Env { .. }) => {
                let m = e.to_string();
                assert!(m.contains(var) && m.contains(value), "{m}");
            }
            other => panic!("{var}={value}: {other:?}"),
        }
    }
}

#[test]
fn the_console_address_is_read_from_the_environment() {
    let c = from_env(&[("HDRTRACE_CONSOLE_ADDR", "0.0.0.0:7777")]).unwrap();
    assert_eq!(c.console_addr, "0.0.0.0:7777".parse().unwrap());
    let c = from_env(&[("HDRTRACE_CONSOLE_ADDR", " [::1]:6670 ")]).unwrap();
    assert_eq!(c.console_addr, "[::1]:6670".parse().unwrap());
}
