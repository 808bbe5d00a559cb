//! Log lines from the hand-written subscriber: events at or above the
//! configured level are formatted on the recording thread into its
//! preallocated line buffer (every control character escaped, so no input
//! forges a line), cut into chunks and pushed into that thread's log ring
//! (the same lock-free ring as records), all chunks of a line published at
//! once; the `hdrtrace-logs` thread drains every ring and does the writing,
//! so each line is written whole or not at all. The recording thread never
//! blocks and never allocates; a line that does not fit its ring is dropped
//! and counted ([`Counters::dropped_log_lines`](crate::Counters::dropped_log_lines)),
//! as is every line a failing, panicking or (at shutdown) blocked writer
//! does not take (see `writer.rs`).

pub(crate) mod line;
mod writer;

use crate::handoff::ring::{self, Consumer, Producer};
use crate::handoff::Handoff;
use line::{Chunk, Context, LineBuf};
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing_core::Event;

pub(crate) use writer::LogThread;

/// Chunks one thread's log ring holds (about 60 KB): a burst of fifteen
/// 4 KB lines, or hundreds of short ones, between two drains.
const RING_CHUNKS: usize = 512;

/// Where log lines go.
pub(crate) type LogWriter = Box<dyn Write + Send>;

/// The shared side of logging: ring registration, the writing thread's
/// wake-up, where drops are counted. Which events are logged is decided once
/// per callsite (`CallsiteInfo::logged`).
pub(crate) struct LogHub {
    /// Rings registered since the log thread last took them.
    new_rings: Mutex<Vec<Consumer<Chunk>>>,
    /// The rings the log thread drains (see `writer::Queue`).
    queue: Mutex<writer::Queue>,
    wake: crossbeam_channel::Sender<()>,
    /// Where lost lines are counted, beside the records' drop counts.
    pub(crate) handoff: Arc<Handoff>,
}

/// One thread's logging state, decided on its first log line.
pub(crate) enum ThreadLog {
    /// A recording thread's ring and line buffer.
    Queued {
        producer: Producer<Chunk>,
        line: LineBuf,
    },
    /// The log thread itself (its writer logging): each line is counted as
    /// lost, since queueing it would make the writer write again. It holds no
    /// ring for lines it would never send.
    Writer,
}

impl LogHub {
    /// Cold: once per thread, on its first span or event.
    pub(crate) fn thread_log(&self) -> ThreadLog {
        if writer::on_log_thread() {
            return ThreadLog::Writer;
        }
        let (producer, consumer) = ring::channel(RING_CHUNKS);
        self.new_rings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(consumer);
        ThreadLog::Queued {
            producer,
            line: LineBuf::new(),
        }
    }

    /// Formats `event` into this thread's buffer and queues it whole, or
    /// drops and counts it when the ring has no room for all of it. The
    /// chunks are pushed only once formatting has returned, all published at
    /// once: the log thread never sees part of a line, and a panic inside a
    /// `Display` or `Debug` leaves nothing of its line in the ring (the
    /// buffer is reset by the next `format`).
    pub(crate) fn log(&self, log: &mut ThreadLog, event: &Event<'_>, ctx: Context<'_>) {
        let ThreadLog::Queued { producer, line } = log else {
            self.handoff.log_drops.add(1);
            return;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        line.format(event, now, ctx);
        if !producer.push_all(line.chunks()) {
            self.handoff.log_drops.add(1);
            let _ = self.wake.try_send(());
            return;
        }
        if producer.needs_drain() {
            // Never blocks: a full channel means a wake-up is pending.
            let _ = self.wake.try_send(());
        }
    }
}
