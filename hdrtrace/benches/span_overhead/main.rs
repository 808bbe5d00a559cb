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

#[macro_use]
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
