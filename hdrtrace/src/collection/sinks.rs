//! The request sinks the aggregator feeds, each call guarded: a sink that
//! panics is dropped and reported once, and aggregation goes on without it.

use crate::collection::RequestSink;
use crate::read::requests::RequestTrace;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

pub(crate) struct Sinks {
    list: Vec<Box<dyn RequestSink>>,
    /// Sinks dropped because they panicked.
    pub(crate) failed: u64,
}

impl Sinks {
    pub(crate) fn new(list: Vec<Box<dyn RequestSink>>) -> Self {
        Self { list, failed: 0 }
    }

    /// Hands a captured request to every sink.
    pub(crate) fn captured(&mut self, trace: &Arc<RequestTrace>) {
        self.each(|sink| sink.captured(trace), "captured");
    }

    /// Flushes every sink.
    pub(crate) fn flush(&mut self) {
        self.each(|sink| sink.flush(), "flush");
    }

    fn each(&mut self, mut call: impl FnMut(&mut dyn RequestSink), what: &str) {
        let before = self.list.len();
        let mut index = 0;
        self.list.retain_mut(|sink| {
            index += 1;
            // The sink is dropped right after a panic, so whatever state the
            // panic left it in is never observed again.
            let ok = catch_unwind(AssertUnwindSafe(|| call(sink.as_mut()))).is_ok();
            if !ok {
                eprintln!(
                    "hdrtrace: request sink #{index} panicked in `{what}`; it is dropped and \
                     receives no further requests (aggregation goes on)"
                );
            }
            ok
        });
        self.failed += (before - self.list.len()) as u64;
    }
}
