//! A log writer that panics is dropped like one that fails: reported once,
//! counted, and every later line counted as dropped, while the rings of
//! exited threads are still drained and freed. (Alone in its binary: it
//! measures this process's resident set.)

mod rss_support;
mod writer_support;

use hdrtrace::{Builder, TracingConfig};
use rss_support::rss;
use std::io::Write;
use writer_support::Shared;

/// Keeps what its first `good` writes are given, then panics on every write.
struct PanicsAfter {
    good: usize,
    out: Shared,
}
impl Write for PanicsAfter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.good == 0 {
            panic!("log writer bug");
        }
        self.good -= 1;
        self.out.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `n` short-lived threads, `wave` at a time, each logging one line.
fn log_from_threads(dispatch: &tracing::Dispatch, n: usize, wave: usize) {
    for _ in 0..n / wave {
        let threads: Vec<_> = (0..wave)
            .map(|_| {
                let d = dispatch.clone();
                std::thread::spawn(move || {
                    tracing::dispatcher::with_default(&d, || tracing::info!("short-lived"))
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}

#[test]
fn a_panicking_writer_is_dropped_and_every_later_line_counted_and_freed() {
    const WARM: usize = 20_000;
    const THREADS: usize = 20_000;
    const WAVE: usize = 8;
    let out = Shared::default();
    let writer = PanicsAfter {
        good: 3,
        out: out.clone(),
    };
    let (sub, guard) = Builder::new(&TracingConfig::default())
        .log_writer(writer)
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(sub);
    // The allocator's per-thread arenas grow over the first tens of
    // thousands of threads even when every ring is freed (tens of MB), then
    // settle: measured after them, freed rings leave RSS nearly flat, kept
    // ones grow it by some 300 MB.
    log_from_threads(&dispatch, WARM, WAVE);
    let before = rss();
    log_from_threads(&dispatch, THREADS, WAVE);
    let after = rss();
    let source = guard.snapshot_source();
    drop(dispatch);
    drop(guard);
    let c = source.snapshot().counters();
    let written = out.lines().len() as u64;
    let emitted = (WARM + THREADS) as u64;
    let grown = after.saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "the rings of exited threads are freed: RSS grew {} MB over {THREADS} threads",
        grown >> 20
    );
    assert!(written > 0, "the writer's first writes went through");
    assert_eq!(c.failed_log_writers, 1, "the panicking writer is counted");
    assert_eq!(
        written + c.dropped_log_lines,
        emitted,
        "written {written}, dropped {}",
        c.dropped_log_lines
    );
}
