//! The `hdrtrace-logs` thread: drains every thread's log ring and writes the
//! lines. Only this thread ever waits on the writer.

use super::line::Chunk;
use super::{LogHub, LogWriter};
use crate::handoff::Handoff;
use crate::ring::Consumer;
use crossbeam_channel::{Receiver, Sender};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the thread drains when nobody wakes it.
const TICK: Duration = Duration::from_millis(20);

/// The running log thread; dropping it writes what is queued and joins.
pub(crate) struct LogThread {
    stop: Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl LogThread {
    /// Starts the thread for `hub`'s rings, writing to `out`.
    pub(crate) fn start(
        out: LogWriter,
        handoff: Arc<Handoff>,
    ) -> std::io::Result<(Arc<LogHub>, LogThread)> {
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(1);
        let hub = Arc::new(LogHub {
            new_rings: Mutex::new(Vec::new()),
            wake: wake_tx,
            handoff,
        });
        let h = hub.clone();
        let thread = std::thread::Builder::new()
            .name("hdrtrace-logs".into())
            .spawn(move || run(&h, out, &wake_rx, &stop_rx))?;
        Ok((
            hub,
            LogThread {
                stop: stop_tx,
                thread: Some(thread),
            },
        ))
    }
}

impl Drop for LogThread {
    fn drop(&mut self) {
        let _ = self.stop.try_send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(hub: &LogHub, mut out: LogWriter, wake: &Receiver<()>, stop: &Receiver<()>) {
    let mut rings: Vec<Consumer<Chunk>> = Vec::new();
    // The lines of one drain, written together; a line in progress when a
    // ring runs dry stays in `line` until its last chunk comes.
    let mut batch: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut line: Vec<u8> = Vec::with_capacity(super::line::MAX_LINE);
    loop {
        let stopping = crossbeam_channel::select! {
            recv(stop) -> _ => true,
            recv(wake) -> _ => false,
            default(TICK) => false,
        };
        rings.append(&mut hub.new_rings.lock().unwrap_or_else(|p| p.into_inner()));
        let mut lines = 0u64;
        rings.retain_mut(|ring| {
            // Asked before draining: a ring whose thread had ended then is
            // empty after it (see `Consumer::is_orphaned`).
            let orphaned = ring.is_orphaned();
            while let Some(last) = ring.pop_with(|c| {
                line.extend_from_slice(&c.bytes[..c.len as usize]);
                c.last
            }) {
                if last {
                    batch.extend_from_slice(&line);
                    batch.push(b'\n');
                    line.clear();
                    lines += 1;
                }
            }
            !orphaned
        });
        if !batch.is_empty() && out.write_all(&batch).and_then(|()| out.flush()).is_err() {
            // The writer failed: these lines are lost, and counted.
            hub.handoff.count_log_drops(lines);
        }
        batch.clear();
        if stopping {
            return;
        }
    }
}
