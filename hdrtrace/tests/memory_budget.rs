//! The histograms count against `memory_budget`: many models stay within it,
//! the models past it are recorded in the overflow series and counted, and a
//! budget no host could honour is refused.

use hdrtrace::limits::OVERFLOW;
use hdrtrace::{limits, ConfigError, InstallError, TracingConfig};

const BUDGET: usize = 32 << 20;

#[test]
fn many_models_stay_within_the_budget_and_the_excess_is_counted() {
    const MODELS: u64 = 4096;
    let config = TracingConfig {
        memory_budget: BUDGET,
        max_models: limits::MAX_KEYS,
        ..TracingConfig::default()
    };
    let (subscriber, guard) = hdrtrace::build(&config).unwrap();
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..MODELS {
            // Device time from 1 ns to 100 s: histograms of the widest range.
            let gpu_ns = if i % 2 == 0 { 1u64 } else { 100_000_000_000 };
            tracing::debug_span!("model", model_id = %format!("m{i}"), gpu_ns).in_scope(|| {});
        }
    });
    let snap = guard.flushed_snapshot();
    let c = snap.counters();
    assert!(
        c.histogram_bytes as usize <= BUDGET,
        "histograms charged {} bytes, budget {BUDGET}",
        c.histogram_bytes
    );
    let own = snap.models().filter(|(name, _)| *name != OVERFLOW).count() as u64;
    assert!(own > 0 && own < MODELS, "{own} models kept a series");
    let other = snap.model(OVERFLOW).map_or(0, |m| m.count());
    assert_eq!(other, MODELS - own, "every model past the budget, counted");
    assert_eq!(c.overflow_spans, MODELS - own);
    let recorded: u64 = snap.models().map(|(_, m)| m.count()).sum();
    assert_eq!(recorded, MODELS, "no span lost");
    assert_eq!(c.spans, MODELS);
}

#[test]
fn a_budget_past_the_limit_is_refused_naming_the_field_and_the_max() {
    let config = TracingConfig {
        memory_budget: 1 << 40,
        ..TracingConfig::default()
    };
    match hdrtrace::build(&config) {
        Err(InstallError::Config(ConfigError::Invalid { field, reason })) => {
            assert_eq!(field, "memory_budget");
            assert!(
                reason.contains(&limits::MAX_BUDGET.to_string()),
                "the reason states the max: {reason}"
            );
        }
        other => panic!("a 1 TiB budget was accepted: {:?}", other.map(|_| ())),
    }
    let env = |k: &str| (k == "HDRTRACE_MEMORY_BUDGET").then(|| (1u64 << 40).to_string());
    match TracingConfig::from_lookup(env) {
        Err(ConfigError::Env { var, .. }) => assert_eq!(var, "HDRTRACE_MEMORY_BUDGET"),
        other => panic!("accepted from the environment: {other:?}"),
    }
    let largest = TracingConfig {
        memory_budget: limits::MAX_BUDGET,
        ..TracingConfig::default()
    };
    assert!(largest.validate().is_ok());
}
