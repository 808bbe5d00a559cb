//! The `hdrtrace-logs` thread: drains every thread's log ring and writes the
//! lines. Only this thread ever calls the writer, user code that may fail,
//! panic or block:
//!
//! - an `Err` loses the lines of that write, counted; the writer is kept;
//! - a panic loses them too, and the writer is dropped, reported once on
//!   stderr and counted (`Counters::failed_log_writers`); from then on every
//!   line is drained and counted as dropped, so rings are still freed;
//! - a block is waited out while recording goes on (full rings drop and
//!   count lines); at shutdown the wait is bounded by [`SHUTDOWN_WAIT`], then
//!   the thread is left behind and every line the writer has not confirmed is
//!   counted as dropped;
//! - a call back into a subscriber: what the writer logs is dropped and
//!   counted, never queued (each write would log more lines to write), and
//!   its spans are recorded as any thread's; dropping the guard from inside
//!   the writer gives the writer up at once instead of waiting for itself.

use super::line::Chunk;
use super::{LogHub, LogWriter};
use crate::handoff::ring::Consumer;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::cell::Cell;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the thread drains when nobody wakes it.
const TICK: Duration = Duration::from_millis(20);

/// How long dropping the guard waits for the log thread to write what is
/// queued. A writer that has not returned by then is given up on: its thread
/// is detached, and the lines it was given and those still queued are
/// counted as dropped (some may still come out, should it ever return).
pub(crate) const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

thread_local! {
    /// True on the `hdrtrace-logs` threads: only their writer runs there.
    static ON_LOG_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Whether the caller is a log thread, i.e. the log writer calling back.
pub(super) fn on_log_thread() -> bool {
    ON_LOG_THREAD.with(Cell::get)
}

/// The rings the log thread drains, and what it has handed to the writer.
/// Its lock is never held while user code runs, so shutdown can always take
/// it to settle the count.
#[derive(Default)]
pub(super) struct Queue {
    rings: Vec<Consumer<Chunk>>,
    /// Lines of the write in progress, not yet confirmed by the writer.
    in_flight: u64,
    /// Set when shutdown gave up on the writer; it then counted `in_flight`
    /// and every queued line, and the thread takes nothing more.
    abandoned: bool,
}

/// The running log thread; dropping it writes what is queued and joins, or
/// gives up after [`SHUTDOWN_WAIT`].
pub(crate) struct LogThread {
    hub: Arc<LogHub>,
    stop: Sender<()>,
    /// Disconnected once the thread has ended (its sender goes with it, on
    /// return or unwind); nothing is ever sent.
    ended: Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl LogThread {
    /// Starts the thread for `hub`'s rings, writing to `out`.
    pub(crate) fn start(
        out: LogWriter,
        handoff: Arc<crate::handoff::Handoff>,
    ) -> std::io::Result<(Arc<LogHub>, LogThread)> {
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(1);
        let (ended_tx, ended_rx) = crossbeam_channel::bounded::<()>(1);
        let hub = Arc::new(LogHub {
            new_rings: Mutex::new(Vec::new()),
            queue: Mutex::new(Queue::default()),
            wake: wake_tx,
            handoff,
        });
        let h = hub.clone();
        let thread = std::thread::Builder::new()
            .name("hdrtrace-logs".into())
            .spawn(move || {
                let _ended = ended_tx;
                ON_LOG_THREAD.with(|on| on.set(true));
                run(&h, out, &wake_rx, &stop_rx);
            })?;
        Ok((
            hub.clone(),
            LogThread {
                hub,
                stop: stop_tx,
                ended: ended_rx,
                thread: Some(thread),
            },
        ))
    }
}

impl Drop for LogThread {
    fn drop(&mut self) {
        let _ = self.stop.try_send(());
        let Some(thread) = self.thread.take() else {
            return;
        };
        // Dropped by the writer itself: it cannot finish while we wait.
        let wait = if thread.thread().id() == std::thread::current().id() {
            Duration::ZERO
        } else {
            SHUTDOWN_WAIT
        };
        match self.ended.recv_timeout(wait) {
            Err(RecvTimeoutError::Disconnected) => {
                let _ = thread.join();
            }
            // Still in the writer: leave the thread behind (dropping its
            // handle detaches it) and count what it will not write.
            Ok(()) | Err(RecvTimeoutError::Timeout) => {
                let lost = abandon(&self.hub);
                if wait > Duration::ZERO {
                    eprintln!(
                        "hdrtrace: the log writer did not return within {} s of shutdown; it is \
                         abandoned and its {lost} unwritten lines are counted in \
                         dropped_log_lines",
                        wait.as_secs()
                    );
                }
            }
        }
    }
}

/// Marks the queue abandoned and counts every line not confirmed written:
/// the write in progress and all that is queued. Returns how many.
fn abandon(hub: &LogHub) -> u64 {
    let mut q = lock(&hub.queue);
    q.abandoned = true;
    let mut lost = std::mem::take(&mut q.in_flight);
    q.rings.append(&mut lock(&hub.new_rings));
    for ring in &mut q.rings {
        while let Some(last) = ring.pop_with(|c| c.last) {
            lost += u64::from(last);
        }
    }
    q.rings.clear();
    hub.handoff.log_drops.add(lost);
    lost
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // No user code runs under these locks, so a poisoned one (a bug here)
    // still holds consistent data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn run(hub: &LogHub, out: LogWriter, wake: &Receiver<()>, stop: &Receiver<()>) {
    let mut out = Some(out);
    // The lines of one drain, written together.
    let mut batch: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        let stopping = crossbeam_channel::select! {
            recv(stop) -> _ => true,
            recv(wake) -> _ => false,
            default(TICK) => false,
        };
        let lines = {
            let mut q = lock(&hub.queue);
            if q.abandoned {
                return;
            }
            q.rings.append(&mut lock(&hub.new_rings));
            let lines = drain(&mut q.rings, &mut batch);
            if out.is_none() {
                // No writer since it panicked: drained only to be counted.
                hub.handoff.log_drops.add(lines);
                batch.clear();
                0
            } else {
                q.in_flight = lines;
                lines
            }
        };
        if lines > 0 {
            let written = write(&mut out, &batch, hub);
            batch.clear();
            let mut q = lock(&hub.queue);
            if q.abandoned {
                // Shutdown counted these lines when it gave up on us.
                return;
            }
            q.in_flight = 0;
            if !written {
                hub.handoff.log_drops.add(lines);
            }
        }
        if stopping {
            return;
        }
    }
}

/// Moves every whole line queued in `rings` into `batch`, each ended by a
/// newline, and retires the rings of ended threads. Returns how many lines.
fn drain(rings: &mut Vec<Consumer<Chunk>>, batch: &mut Vec<u8>) -> u64 {
    let mut lines = 0;
    rings.retain_mut(|ring| {
        // Asked before draining: a ring whose thread had ended then is
        // empty after it (see `Consumer::is_orphaned`).
        let orphaned = ring.is_orphaned();
        let mut line_start = batch.len();
        while let Some(last) = ring.pop_with(|c| {
            batch.extend_from_slice(&c.bytes[..c.len as usize]);
            c.last
        }) {
            if last {
                batch.push(b'\n');
                lines += 1;
                line_start = batch.len();
            }
        }
        // A line's chunks are published together (`Producer::push_all`), so
        // a ring never runs dry inside one; were it to, its part would not
        // be spliced onto the next ring's lines.
        debug_assert_eq!(line_start, batch.len(), "a log ring ran dry inside a line");
        batch.truncate(line_start);
        !orphaned
    });
    lines
}

/// Hands `batch` to the writer; false when it is lost: the writer returned
/// an error, panicked (then it is dropped, reported once and counted) or is
/// gone already.
fn write(out: &mut Option<LogWriter>, batch: &[u8], hub: &LogHub) -> bool {
    let Some(w) = out.as_mut() else {
        return false;
    };
    // The writer is dropped right after a panic, so whatever state the
    // panic left it in is never observed again.
    match catch_unwind(AssertUnwindSafe(|| {
        w.write_all(batch).and_then(|()| w.flush())
    })) {
        Ok(result) => result.is_ok(),
        Err(_) => {
            hub.handoff.failed_log_writers.add(1);
            eprintln!(
                "hdrtrace: the log writer panicked; it is dropped, and every later log line is \
                 counted in dropped_log_lines (recording goes on)"
            );
            // Its drop runs its code too, in whatever state the panic left.
            let _ = catch_unwind(AssertUnwindSafe(|| drop(out.take())));
            false
        }
    }
}
