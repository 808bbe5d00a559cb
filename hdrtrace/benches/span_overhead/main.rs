//! One span lifecycle, ours beside the floor and the crates users would pick
//! instead, in two groups:
//!
//! - `span_lifecycle` (`scoped.rs`): each dispatcher scoped to this thread,
//!   one after another in this process;
//! - `span_lifecycle_global` (`global.rs`): each subscriber installed as the
//!   global default, as in production, one process per variant. The floor and
//!   the do-nothing subscriber are here, so ours is read against them.
//!
//! Run with `HDRTRACE_GLOBAL_VARIANT=<variant>`, the binary runs that one
//! global variant only (how it re-runs itself, and how
//! `scripts/bench_variants.sh` interleaves variants). Figures and commands:
//! docs/performance.md.

/// The `Subscriber` methods every bound subscriber of the global group
/// shares: every callsite enabled, `record`, `follows_from` and events
/// ignored, no current span. Defined before the modules below, so they can
/// use it.
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

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/drained_ring.rs"]
mod drained_ring;
#[path = "../common/event_log.rs"]
mod event_log;
#[path = "../common/floor.rs"]
mod floor;
mod global;
#[path = "../common/local_hist.rs"]
mod local_hist;
#[path = "../common/naive.rs"]
mod naive;
mod scoped;
#[path = "../common/thread_state.rs"]
mod thread_state;

use criterion::Criterion;

fn main() {
    if let Ok(variant) = std::env::var(global::VARIANT) {
        global::run(&variant);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    scoped::span_lifecycle(&mut c);
    c.final_summary();
    global::run_each_variant();
}
