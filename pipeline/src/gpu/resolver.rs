//! Device time resolved off the caller.
//!
//! A GPU call queues its work and a few timing marks on its stream, hands the
//! marks to the [`Resolver`] and waits only for its output. One resolver
//! thread per device polls the marks of every call in flight (no thread
//! parks per call), reads the device time between them once the last is
//! reached, records it on the call's span and wakes the call. A call whose
//! caller left (a request that timed out drops its model future) still has
//! its device time recorded, late: the resolver holds a handle to the span,
//! so the span closes only once its device work is known, and the
//! subscriber's grace period for a request's stragglers takes the record.
//!
//! What the resolver needs from a device is an [`EventSource`]: CUDA events
//! on a GPU ([`super::marks`]), a fake in the tests.

use super::error::GpuError;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// What a device's timing marks can say.
pub(crate) trait EventSource: Send + Sync + 'static {
    /// One call's recorded marks.
    type Marks: Send + 'static;

    /// `Ok(None)` until the call's last mark is reached on the device, then
    /// the device time between its marks. `Err`: the device reported a
    /// failure (a kernel fault surfaces here).
    fn query(&self, marks: &Self::Marks) -> Result<Option<DevicePhases>, GpuError>;

    /// Takes back a resolved call's marks, for the next call.
    fn recycle(&self, marks: Self::Marks);
}

/// One call's time on the device, between its marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DevicePhases {
    /// Copying the inputs to the device (0 when the call copies nothing).
    pub upload_ns: u64,
    /// The kernels: the device time recorded in the model's histogram.
    pub device_ns: u64,
    /// Copying the outputs back (0 when the call copies nothing).
    pub download_ns: u64,
}

impl DevicePhases {
    /// The three together.
    pub fn total_ns(&self) -> u64 {
        self.upload_ns + self.device_ns + self.download_ns
    }
}

/// How the resolver polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolverOptions {
    /// After a call is handed over or resolved, the resolver polls without
    /// sleeping for this long (a thread yielding in a loop): a short call is
    /// collected within a few microseconds of its last mark.
    pub spin: Duration,
    /// Past the spin, the longest it sleeps between polls (a new call wakes
    /// it at once): how late a long call may be collected.
    pub poll: Duration,
    /// A call whose last mark is not reached after this long is given up: its
    /// caller gets [`GpuError::Unresolved`], its device time is counted as
    /// lost. Its buffers stay reserved until the device does reach the mark.
    pub give_up: Duration,
}

impl Default for ResolverOptions {
    fn default() -> Self {
        Self {
            spin: Duration::from_micros(200),
            poll: Duration::from_micros(100),
            give_up: Duration::from_secs(10),
        }
    }
}

/// What became of the calls handed to a device's resolver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResolverStats {
    /// Calls handed over.
    pub submitted: u64,
    /// Resolved and delivered to a caller still waiting.
    pub delivered: u64,
    /// Resolved after their caller had left: recorded on the model span, late.
    pub late: u64,
    /// The device reported a failure.
    pub failed: u64,
    /// Never reached their last mark within [`ResolverOptions::give_up`].
    pub expired: u64,
    /// Device times for a span that does not declare the device-time field:
    /// they reached no histogram.
    pub undeclared: u64,
    /// Calls into a span's subscriber (recording the time, an error event,
    /// closing the span) that panicked: caught, and what they carried is
    /// lost.
    pub subscriber_panics: u64,
}

#[derive(Default)]
struct Counters {
    submitted: AtomicU64,
    delivered: AtomicU64,
    late: AtomicU64,
    failed: AtomicU64,
    expired: AtomicU64,
    undeclared: AtomicU64,
    subscriber_panics: AtomicU64,
}

// Relaxed: each counter is read on its own, as a statistic; nothing else is
// published through it.
fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What a waiting call gets back: what it handed over to be kept until its
/// device work ended (its buffers) with the device time, or why there is
/// none.
pub(crate) type Reply<P> = Result<(P, DevicePhases), GpuError>;

/// One call in flight.
struct Call<M, P> {
    marks: M,
    keep: P,
    span: tracing::Span,
    reply: oneshot::Sender<Reply<P>>,
    since: Instant,
}

struct Shared<S> {
    source: S,
    options: ResolverOptions,
    /// The model span's device-time field (`Conventions::device_time_field`).
    field: Arc<str>,
    counters: Counters,
}

/// A device's resolver: the handle calls submit through. Its thread ends once
/// every handle is gone and the calls in flight are resolved.
pub(crate) struct Resolver<S: EventSource, P: Send + 'static> {
    submit: mpsc::Sender<Call<S::Marks, P>>,
    shared: Arc<Shared<S>>,
}

impl<S: EventSource, P: Send + 'static> Resolver<S, P> {
    /// Starts the resolver thread for `source`; device time is recorded in
    /// the span field `field`.
    pub(crate) fn start(
        source: S,
        field: Arc<str>,
        options: ResolverOptions,
    ) -> Result<Self, GpuError> {
        let shared = Arc::new(Shared {
            source,
            options,
            field,
            counters: Counters::default(),
        });
        let (submit, calls) = mpsc::channel();
        let on_thread = shared.clone();
        std::thread::Builder::new()
            .name("gpu-resolver".into())
            .spawn(move || run(&on_thread, &calls))
            .map_err(|e| {
                GpuError::Invalid(format!("cannot start the resolver thread: {e}").into())
            })?;
        Ok(Self { submit, shared })
    }

    /// The event source (to take marks from its pool).
    pub(crate) fn source(&self) -> &S {
        &self.shared.source
    }

    /// The device-time field times are recorded in.
    pub(crate) fn field(&self) -> &str {
        &self.shared.field
    }

    /// Hands over a call's recorded `marks`, with what must be kept until its
    /// device work ends (`keep`) and the span its device time is recorded on
    /// (`Span::none()` for none); the answer resolves once the device reached
    /// the last mark, after the time was recorded.
    pub(crate) fn submit(&self, marks: S::Marks, keep: P, span: tracing::Span) -> Pending<P> {
        let (reply, answer) = oneshot::channel();
        bump(&self.shared.counters.submitted);
        let call = Call {
            marks,
            keep,
            span,
            reply,
            since: Instant::now(),
        };
        // The thread only ends once every sender is gone, or by a panic; a
        // call it cannot take is answered with the reason.
        if let Err(mpsc::SendError(call)) = self.submit.send(call) {
            let _ = call.reply.send(Err(stopped()));
        }
        Pending { answer }
    }

    /// What became of the calls so far.
    pub(crate) fn stats(&self) -> ResolverStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ResolverStats {
            submitted: get(&c.submitted),
            delivered: get(&c.delivered),
            late: get(&c.late),
            failed: get(&c.failed),
            expired: get(&c.expired),
            undeclared: get(&c.undeclared),
            subscriber_panics: get(&c.subscriber_panics),
        }
    }
}

fn stopped() -> GpuError {
    GpuError::Panicked("the device-time resolver thread stopped".into())
}

/// A submitted call's answer. Dropping it leaves the call to the resolver,
/// which records its device time on the model span when it comes.
pub(crate) struct Pending<P> {
    answer: oneshot::Receiver<Reply<P>>,
}

impl<P> Pending<P> {
    /// Blocks the thread until the answer comes (for callers outside async
    /// code).
    pub(crate) fn wait(self) -> Reply<P> {
        self.answer
            .blocking_recv()
            .unwrap_or_else(|_| Err(stopped()))
    }
}

impl<P> Future for Pending<P> {
    type Output = Reply<P>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.answer)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|_| Err(stopped())))
    }
}

/// The resolver thread: takes calls, polls their marks in the order they came
/// (a stream reaches its marks in that order; calls on other streams are not
/// held up behind it), answers each as it resolves.
fn run<S: EventSource, P: Send + 'static>(
    shared: &Shared<S>,
    calls: &mpsc::Receiver<Call<S::Marks, P>>,
) {
    let options = shared.options;
    let mut pending: Vec<Call<S::Marks, P>> = Vec::new();
    let mut still: Vec<Call<S::Marks, P>> = Vec::new();
    // Calls given up on: their buffers stay reserved until the device
    // reaches their last mark after all (or forever).
    let mut abandoned: Vec<(S::Marks, P)> = Vec::new();
    let mut open = true;
    let mut progress = Instant::now();
    loop {
        if pending.is_empty() && abandoned.is_empty() {
            if !open {
                return;
            }
            match calls.recv() {
                Ok(call) => pending.push(call),
                Err(_) => return,
            }
            progress = Instant::now();
        }
        while open {
            match calls.try_recv() {
                Ok(call) => pending.push(call),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => open = false,
            }
        }
        let now = Instant::now();
        for call in pending.drain(..) {
            match shared.source.query(&call.marks) {
                Ok(Some(phases)) => {
                    progress = now;
                    answer(shared, call, Ok(phases));
                }
                Ok(None) if now.duration_since(call.since) < options.give_up => still.push(call),
                Ok(None) => {
                    bump(&shared.counters.expired);
                    let err = GpuError::Unresolved(now.duration_since(call.since));
                    abandoned.push((call.marks, call.keep));
                    unanswered(&shared.counters, call.reply, call.span, err, true);
                }
                Err(err) => {
                    progress = now;
                    answer(shared, call, Err(err));
                }
            }
        }
        std::mem::swap(&mut pending, &mut still);
        abandoned.retain(|(marks, _)| matches!(shared.source.query(marks), Ok(None)));
        if pending.is_empty() && abandoned.is_empty() {
            continue;
        }
        if now.duration_since(progress) < options.spin {
            std::thread::yield_now();
            continue;
        }
        // Sleep until the next poll, or until a new call comes.
        let wait = if pending.is_empty() {
            options.poll.max(Duration::from_millis(10))
        } else {
            options.poll
        };
        if open {
            match calls.recv_timeout(wait) {
                Ok(call) => {
                    pending.push(call);
                    progress = Instant::now();
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => open = false,
            }
        } else {
            std::thread::sleep(wait);
        }
    }
}

/// Answers a resolved call: records its device time on its span (so a caller
/// that leaves after the answer loses nothing), then wakes its caller if it
/// still waits. Either way the span handle is dropped here, so a span whose
/// caller left closes now, with its device time.
fn answer<S: EventSource, P>(
    shared: &Shared<S>,
    call: Call<S::Marks, P>,
    result: Result<DevicePhases, GpuError>,
) {
    let Call {
        marks,
        keep,
        span,
        reply,
        ..
    } = call;
    let counters = &shared.counters;
    match result {
        Ok(phases) => {
            shared.source.recycle(marks);
            let recorded = guarded(counters, || {
                record_device_time(&span, &shared.field, phases.device_ns)
            });
            if recorded == Some(false) {
                bump(&counters.undeclared);
            }
            if reply.send(Ok((keep, phases))).is_ok() {
                bump(&counters.delivered);
            } else {
                bump(&counters.late);
            }
            // Closing the span may run the subscriber's code too.
            guarded(counters, || drop(span));
        }
        Err(err) => {
            // The marks of a failed call are not reused: the device may never
            // reach them.
            drop(marks);
            bump(&counters.failed);
            unanswered(counters, reply, span, err, false);
        }
    }
}

/// Ends a call that has no device time, failed or (`given_up`) given up on:
/// its caller gets `err`; a caller that left has it logged on the call's
/// span instead (at `WARN` when given up on, else at `ERROR`). The span
/// handle is dropped here, which may close the span.
fn unanswered<P>(
    counters: &Counters,
    reply: oneshot::Sender<Reply<P>>,
    span: tracing::Span,
    err: GpuError,
    given_up: bool,
) {
    if let Err(Err(err)) = reply.send(Err(err)) {
        guarded(counters, || {
            in_span(&span, |id| {
                if given_up {
                    tracing::warn!(parent: id, "{err}")
                } else {
                    tracing::error!(parent: id, "{err}")
                }
            })
        });
    }
    // Closing the span may run the subscriber's code too.
    guarded(counters, || drop(span));
}

/// Runs `f`, which calls into the span's subscriber (and whatever user code
/// it runs: layers, writers, `Debug` impls): a panic there is caught and
/// counted in [`ResolverStats::subscriber_panics`], and the resolver goes on
/// answering calls.
fn guarded<R>(counters: &Counters, f: impl FnOnce() -> R) -> Option<R> {
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    if caught.is_err() {
        bump(&counters.subscriber_panics);
    }
    caught.ok()
}

/// Records `ns` in the span's field named `field`; `false` when the span
/// does not declare that field (a disabled span declares nothing and records
/// nothing, and is not counted).
fn record_device_time(span: &tracing::Span, field: &str, ns: u64) -> bool {
    match span.metadata() {
        None => true,
        Some(meta) if meta.fields().field(field).is_some() => {
            span.record(field, ns);
            true
        }
        Some(_) => false,
    }
}

/// Runs `f` with the span's own subscriber as the thread's default, so an
/// event the resolver thread emits for a call reaches the subscriber that
/// records the call's span (the thread's default may be another).
fn in_span(span: &tracing::Span, f: impl FnOnce(&tracing::Id)) {
    span.with_subscriber(|(id, dispatch)| {
        tracing::dispatcher::with_default(dispatch, || f(id));
    });
}

#[cfg(test)]
mod tests;
