//! Dropping the guard while the log writer blocks: the drop waits a bounded
//! time for the writer, then gives up on it, and every line it did not
//! confirm is counted as dropped.

use hdrtrace::{Builder, TracingConfig};
use std::io::Write;
use std::time::Duration;
use tracing::subscriber::with_default;

/// A writer whose `write` never returns.
struct Stuck;
impl Write for Stuck {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        loop {
            std::thread::park();
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_writer_that_never_returns_delays_the_drop_a_bounded_time_and_its_lines_are_counted() {
    const LINES: u64 = 100;
    let (sub, guard) = Builder::new(&TracingConfig::default())
        .log_writer(Stuck)
        .build()
        .unwrap();
    with_default(sub, || {
        for i in 0..LINES {
            tracing::info!(i, "line");
            if i == 0 {
                // Let the log thread take the first line and block on it.
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    let source = guard.snapshot_source();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(guard);
        let _ = done_tx.send(());
    });
    // The bound is a few seconds; this only turns a hang into a failure.
    done_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("dropping the guard hung on a writer that never returns");
    let c = source.snapshot().counters();
    assert_eq!(
        c.dropped_log_lines, LINES,
        "the writer confirmed no line, so every one is counted"
    );
}
