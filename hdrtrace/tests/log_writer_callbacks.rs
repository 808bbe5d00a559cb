//! A log writer that calls back into its subscriber: what it logs is
//! dropped and counted (it would feed itself), and dropping the guard from
//! inside it returns at once.

mod writer_support;

use hdrtrace::{Builder, TracingConfig, TracingGuard};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;
use writer_support::Shared;

/// Logs one line into `dispatch` for every write, then keeps the bytes.
struct Chatty {
    dispatch: Arc<OnceLock<tracing::Dispatch>>,
    logged: Arc<AtomicU64>,
    out: Shared,
}
impl Write for Chatty {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if let Some(d) = self.dispatch.get() {
            tracing::dispatcher::with_default(d, || tracing::warn!("from inside the writer"));
            self.logged.fetch_add(1, Ordering::Relaxed);
        }
        self.out.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn what_the_writer_logs_is_counted_not_written() {
    let dispatch = Arc::new(OnceLock::new());
    let logged = Arc::new(AtomicU64::default());
    let out = Shared::default();
    let writer = Chatty {
        dispatch: dispatch.clone(),
        logged: logged.clone(),
        out: out.clone(),
    };
    let (sub, guard) = Builder::new(&TracingConfig::default())
        .log_writer(writer)
        .build()
        .unwrap();
    let _ = dispatch.set(tracing::Dispatch::new(sub));
    tracing::dispatcher::with_default(dispatch.get().unwrap(), || {
        for i in 0..5u64 {
            tracing::info!(i, "from the application");
            std::thread::sleep(Duration::from_millis(30));
        }
    });
    // Long enough for a line the writer logged to come round again.
    std::thread::sleep(Duration::from_millis(200));
    let source = guard.snapshot_source();
    drop(guard);
    let lines = out.lines();
    assert_eq!(lines.len(), 5, "{lines:#?}");
    assert!(lines.iter().all(|l| l.contains("from the application")));
    let logged = logged.load(Ordering::Relaxed);
    assert!(logged > 0);
    assert_eq!(source.snapshot().counters().dropped_log_lines, logged);
}

/// Drops the guard it is handed from inside its first write.
struct DropsTheGuard {
    guard: Arc<Mutex<Option<TracingGuard>>>,
    done: mpsc::Sender<()>,
}
impl Write for DropsTheGuard {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let guard = self.guard.lock().unwrap().take();
        if guard.is_some() {
            drop(guard);
            let _ = self.done.send(());
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn dropping_the_guard_inside_the_writer_returns() {
    let slot = Arc::new(Mutex::new(None));
    let (done_tx, done_rx) = mpsc::channel();
    let writer = DropsTheGuard {
        guard: slot.clone(),
        done: done_tx,
    };
    let (sub, guard) = Builder::new(&TracingConfig::default())
        .log_writer(writer)
        .build()
        .unwrap();
    let source = guard.snapshot_source();
    *slot.lock().unwrap() = Some(guard);
    tracing::subscriber::with_default(sub, || tracing::info!("hand over"));
    done_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("dropping the guard inside the writer returned");
    assert!(source.snapshot().aggregator_failure().is_none());
}
