//! The two anchors every global-dispatch comparison needs, as subscribers:
//! `Bare<false>` (`do_nothing`), enabled with every method empty, which is
//! tracing's own dispatch cost, and `Bare<true>` (`floor`), the least a
//! timing subscriber can do: enabled, it visits the span's fields, reads
//! the clock at new, enter, exit and close and adds the readings into a
//! thread-local. Every span gets the same ID. `TIMED` is a constant, so the
//! `do_nothing` build carries no branch.

use crate::common::clock;
use std::cell::Cell;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;

thread_local! {
    static READINGS: Cell<u64> = const { Cell::new(0) };
}

/// Visits every field, keeping what a timing subscriber would need.
struct Walk(u64);

impl Visit for Walk {
    fn record_u64(&mut self, _: &Field, v: u64) {
        self.0 = self.0.wrapping_add(v);
    }
    fn record_str(&mut self, _: &Field, v: &str) {
        self.0 = self.0.wrapping_add(v.len() as u64);
    }
    fn record_debug(&mut self, f: &Field, _: &dyn std::fmt::Debug) {
        self.0 = self.0.wrapping_add(f.index() as u64);
    }
}

/// See the module docs.
pub struct Bare<const TIMED: bool>;

impl<const TIMED: bool> Bare<TIMED> {
    #[inline(always)]
    fn reading(extra: u64) {
        if TIMED {
            let now = clock().now();
            READINGS.with(|r| r.set(r.get().wrapping_add(now ^ extra)));
        }
    }
}

impl<const TIMED: bool> Subscriber for Bare<TIMED> {
    bound_subscriber!();
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        if TIMED {
            let mut walk = Walk(0);
            attrs.record(&mut walk);
            Self::reading(walk.0);
        }
        Id::from_u64(1)
    }
    fn enter(&self, _: &Id) {
        Self::reading(0);
    }
    fn exit(&self, _: &Id) {
        Self::reading(0);
    }
    fn try_close(&self, _: Id) -> bool {
        Self::reading(0);
        TIMED
    }
}
