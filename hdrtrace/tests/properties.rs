//! Property tests of the public invariants: every invalid config is rejected
//! with an error naming the field. (The ring's properties are tested beside
//! it, in `src/handoff/ring_properties.rs`.)

use hdrtrace::{limits, ConfigError, TracingConfig};
use proptest::prelude::*;
use std::time::Duration;

proptest! {
    #[test]
    fn invalid_sampling_rates_are_rejected(rate in prop_oneof![
        Just(f32::NAN), Just(f32::INFINITY), Just(f32::NEG_INFINITY),
        -1e9f32..-1e-9, 1.000_001f32..1e9,
    ]) {
        let config = TracingConfig { sampling_rate: rate, ..TracingConfig::default() };
        assert_rejected(&config, "sampling_rate")?;
    }

    #[test]
    fn valid_sampling_rates_are_accepted(rate in 0.0f32..=1.0) {
        let config = TracingConfig { sampling_rate: rate, ..TracingConfig::default() };
        prop_assert!(config.validate().is_ok());
    }

    #[test]
    fn invalid_capacities_are_rejected(which in 0usize..3, huge in prop::bool::ANY, extra in 0usize..1000) {
        let over = |max: usize| if huge { max + 1 + extra } else { 0 };
        let mut config = TracingConfig::default();
        let field = match which {
            0 => { config.slot_capacity = over(limits::MAX_SLOTS); "slot_capacity" }
            1 => { config.ring_capacity = over(limits::MAX_RING); "ring_capacity" }
            _ => { config.capture_capacity = over(limits::MAX_CAPTURES); "capture_capacity" }
        };
        assert_rejected(&config, field)?;
    }

    #[test]
    fn zero_durations_are_rejected(which in 0usize..3) {
        let mut config = TracingConfig::default();
        let field = match which {
            0 => { config.latency_target = Duration::ZERO; "latency_target" }
            1 => { config.window = Duration::ZERO; "window" }
            _ => { config.flush_interval = Duration::ZERO; "flush_interval" }
        };
        assert_rejected(&config, field)?;
    }

    #[test]
    fn malformed_endpoints_are_rejected(endpoint in prop_oneof![
        "[a-z]{0,12}",
        "ftp://[a-z]{1,8}:[0-9]{1,4}",
        Just("http://".to_string()),
        Just("http://:4317".to_string()),
        Just("http://collector:0".to_string()),
        Just("http://collector:99999".to_string()),
        Just("https://collector:port".to_string()),
    ]) {
        let config = TracingConfig { otel_endpoint: Some(endpoint), ..TracingConfig::default() };
        assert_rejected(&config, "otel_endpoint")?;
    }
}

fn assert_rejected(config: &TracingConfig, field: &str) -> Result<(), TestCaseError> {
    match config.validate() {
        Err(e @ ConfigError::Invalid { .. }) => {
            prop_assert!(e.to_string().contains(field), "{e} names {field}");
        }
        other => prop_assert!(false, "expected InvalidConfig for {field}, got {other:?}"),
    }
    prop_assert!(hdrtrace::build(config).is_err(), "build refuses it too");
    Ok(())
}

#[test]
fn good_endpoints_are_accepted() {
    for e in [
        "http://127.0.0.1:4317",
        "https://otel.example.com",
        "http://[::1]:4317",
        "http://collector:4317/v1/traces",
    ] {
        let config = TracingConfig {
            otel_endpoint: Some(e.into()),
            ..TracingConfig::default()
        };
        assert!(config.validate().is_ok(), "{e} is valid");
    }
}

#[test]
fn from_lookup_names_the_variable_at_fault() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    let err = TracingConfig::from_lookup(env(&[("HDRTRACE_SAMPLING_RATE", "1.5")])).unwrap_err();
    assert!(err.to_string().contains("HDRTRACE_SAMPLING_RATE"), "{err}");
    let err = TracingConfig::from_lookup(env(&[("HDRTRACE_SAMPLING_RATE", "lots")])).unwrap_err();
    assert!(err.to_string().contains("HDRTRACE_SAMPLING_RATE"), "{err}");
    let err = TracingConfig::from_lookup(env(&[("HDRTRACE_LEVEL", "loud")])).unwrap_err();
    assert!(err.to_string().contains("HDRTRACE_LEVEL"), "{err}");
    let err = TracingConfig::from_lookup(env(&[("HDRTRACE_RING_CAPACITY", "0")])).unwrap_err();
    assert!(err.to_string().contains("HDRTRACE_RING_CAPACITY"), "{err}");
    let err = TracingConfig::from_lookup(env(&[("HDRTRACE_ENABLED", "maybe")])).unwrap_err();
    assert!(err.to_string().contains("HDRTRACE_ENABLED"), "{err}");
    let ok = TracingConfig::from_lookup(env(&[
        ("HDRTRACE_SAMPLING_RATE", "0.25"),
        ("HDRTRACE_LEVEL", "verbose"),
        ("HDRTRACE_ENABLED", "off"),
        ("HDRTRACE_LATENCY_TARGET_MS", "150"),
    ]))
    .unwrap();
    assert_eq!(ok.sampling_rate, 0.25);
    assert_eq!(ok.level, hdrtrace::TracingLevel::Verbose);
    assert!(!ok.enabled);
    assert_eq!(ok.latency_target, Duration::from_millis(150));
}
