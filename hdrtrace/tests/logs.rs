//! Log lines from the hand-written subscriber: kept, whole, never blocking
//! the recording thread, every lost line counted.

mod writer_support;

use hdrtrace::{Builder, TracingConfig};
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex};
use tracing::subscriber::with_default;
use tracing_core::LevelFilter;
use writer_support::Shared;

#[test]
fn a_warning_in_a_model_span_is_one_line_with_its_request_and_model() {
    let (out, sub, guard) = writer_support::logged(&TracingConfig::default());
    with_default(sub, || {
        let root = tracing::info_span!("embed_pipeline", request_id = 42u64);
        let _r = root.enter();
        tracing::info_span!("model", model_id = "Causal").in_scope(|| {
            tracing::warn!(retries = 3u64, "slow \"backend\"");
            tracing::debug!("below the log level");
        });
        tracing::info!("outside any model");
    });
    tracing::info!("no subscriber here");
    drop(guard);
    let lines = out.lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let warn = &lines[0];
    assert!(
        warn.contains(" WARN logs: request_id=42 model=Causal slow \"backend\" retries=3"),
        "{warn}"
    );
    assert!(warn.ends_with("retries=3"), "{warn}");
    assert_eq!(&warn[4..5], "-", "an RFC 3339 time first: {warn}");
    assert!(warn[..27].ends_with('Z'), "{warn}");
    assert!(lines[1].contains(" INFO logs: request_id=42 outside any model"));
}

#[test]
fn a_long_message_comes_through_whole() {
    let (out, sub, guard) = writer_support::logged(&TracingConfig::default());
    let long: String = (0..4096)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let huge = "z".repeat(hdrtrace::limits::MAX_LINE * 2);
    with_default(sub, || {
        tracing::info!("{long}");
        tracing::info!(payload = %huge, "cut");
    });
    let c = guard.flushed_snapshot().counters();
    drop(guard);
    let lines = out.lines();
    assert_eq!(lines.len(), 2, "dropped: {}", c.dropped_log_lines);
    assert!(lines[0].ends_with(&long), "the 4 KB message is whole");
    assert!(
        lines[1].ends_with(hdrtrace::limits::CUT_MARK),
        "a line past the cap says so"
    );
    assert!(lines[1].len() <= hdrtrace::limits::MAX_LINE);
}

/// Blocks every write until released.
#[derive(Clone)]
struct Gate(Arc<(Mutex<bool>, Condvar)>, Shared);
impl Write for Gate {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let (open, cv) = &*self.0;
        let mut g = open.lock().unwrap();
        while !*g {
            g = cv.wait(g).unwrap();
        }
        self.1.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_blocked_writer_never_blocks_recording_and_every_lost_line_is_counted() {
    const LINES: u64 = 20_000;
    let gate = Gate(Arc::default(), Shared::default());
    let (sub, guard) = Builder::new(&TracingConfig::default())
        .log_writer(gate.clone())
        .build()
        .unwrap();
    // The writer is closed throughout: if logging waited for it, this loop
    // would never finish.
    with_default(sub, || {
        for i in 0..LINES {
            tracing::info!(i, "line");
        }
    });
    let dropped = guard.flushed_snapshot().counters().dropped_log_lines;
    assert!(dropped > 0, "a ring of 60 KB cannot hold 20 000 lines");
    {
        let (open, cv) = &*gate.0;
        *open.lock().unwrap() = true;
        cv.notify_all();
    }
    let source = guard.snapshot_source();
    drop(guard);
    let written = gate.1.lines().len() as u64;
    let dropped = source.snapshot().counters().dropped_log_lines;
    assert_eq!(
        written + dropped,
        LINES,
        "written {written}, dropped {dropped}"
    );
}

/// Fails every write.
struct Broken;
impl Write for Broken {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("disk full"))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failing_writer_loses_lines_counted_and_nothing_else() {
    let (sub, guard) = Builder::new(&TracingConfig::default())
        .log_writer(Broken)
        .build()
        .unwrap();
    with_default(sub, || {
        for _ in 0..100 {
            tracing::info_span!("model", model_id = "M").in_scope(|| tracing::info!("x"));
        }
    });
    let source = guard.snapshot_source();
    drop(guard);
    let snap = source.snapshot();
    assert_eq!(snap.model("M").unwrap().count(), 100);
    assert_eq!(snap.counters().dropped_log_lines, 100);
}

#[test]
fn logging_off_writes_nothing() {
    let config = TracingConfig {
        log_level: LevelFilter::OFF,
        ..TracingConfig::default()
    };
    let (out, sub, guard) = writer_support::logged(&config);
    with_default(sub, || tracing::error!("kept only as a status"));
    drop(guard);
    assert!(out.lines().is_empty());
}
