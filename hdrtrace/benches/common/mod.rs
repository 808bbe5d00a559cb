//! Pieces every bench shares: the measured span lifecycle, a scoped dispatcher
//! that leaves tracing's interest cache clean, and the batched timing loop.
//! Each bench uses a subset of them.
#![allow(dead_code)]

/// The `Subscriber` methods every bound and anchor subscriber shares: every
/// callsite enabled, `record`, `follows_from` and events ignored, no current
/// span. A bench that declares this module first with `#[macro_use]` can use
/// it in the modules after it.
#[allow(unused_macros)]
macro_rules! bound_subscriber {
    () => {
        fn register_callsite(
            &self,
            _: &'static tracing::Metadata<'static>,
        ) -> tracing::subscriber::Interest {
            tracing::subscriber::Interest::always()
        }
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
            Some(tracing::level_filters::LevelFilter::TRACE)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, _: &tracing::Event<'_>) {}
        fn current_span(&self) -> tracing_core::span::Current {
            tracing_core::span::Current::none()
        }
    };
}

use hdrtrace::__bench::Clock;
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tracing::dispatcher::{self, Dispatch};
use tracing_core::callsite::rebuild_interest_cache;

/// The model key every lifecycle bench records under.
pub const MODEL: &str = "Causal";
/// Its `input_tokens` field.
pub const TOKENS: u64 = 128;

/// The measured unit, identical for every variant: one model span from
/// creation to close, entered once (called with `MODEL` and `TOKENS`, each
/// through `black_box`).
#[inline(never)]
pub fn lifecycle(model: &str, tokens: u64) {
    let span = tracing::info_span!("model", model_id = model, input_tokens = tokens);
    let entered = span.enter();
    black_box(&entered);
    drop(entered);
    drop(span);
}

/// Runs `f` with `dispatch` as this thread's default, the interest cache
/// rebuilt on the way in and again once the dispatcher is dropped.
pub fn scoped<R>(dispatch: Dispatch, f: impl FnOnce(&Dispatch) -> R) -> R {
    let default = dispatcher::set_default(&dispatch);
    // Inside the scope: with one registered dispatcher tracing rebuilds from
    // this thread's current default.
    rebuild_interest_cache();
    let out = f(&dispatch);
    drop(default);
    drop(dispatch);
    rebuild_interest_cache();
    out
}

/// Times `iters` runs of `unit` in batches of `batch`, flushing `guard`
/// (untimed) between batches so every record is pushed and none dropped.
pub fn timed_batches(
    iters: u64,
    batch: u64,
    guard: &hdrtrace::TracingGuard,
    mut unit: impl FnMut(),
) -> Duration {
    let mut measured = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(batch);
        let start = Instant::now();
        for _ in 0..n {
            unit();
        }
        measured += start.elapsed();
        guard.flush();
        left -= n;
    }
    measured
}

/// The clock the floor and the bound subscribers read (the one the hot path
/// reads: `hdrtrace::Clock`, an inlined `rdtsc` where quanta reads the TSC),
/// made once.
pub fn clock() -> &'static Clock {
    static CLOCK: OnceLock<Clock> = OnceLock::new();
    CLOCK.get_or_init(Clock::new)
}

/// Re-runs this bench binary once per value, with `var` set to it and the
/// same arguments: how a bench gives each global dispatcher a process of its
/// own (a global default cannot be replaced).
pub fn rerun_each(var: &str, values: &[&str]) {
    let me = std::env::current_exe().expect("the bench binary's path");
    for value in values {
        let status = std::process::Command::new(&me)
            .args(std::env::args_os().skip(1))
            .env(var, value)
            .status()
            .expect("re-run the bench");
        assert!(status.success(), "{var}={value} failed: {status}");
    }
}
