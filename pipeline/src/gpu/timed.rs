//! [`DeviceTime`]: the device time of work queued through
//! [`GpuBackend::timed`](super::GpuBackend::timed), resolved off the caller.

use super::error::GpuError;
use super::resolver::{DevicePhases, Pending};
use super::workspace::Held;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The device time of work you queued with
/// [`GpuBackend::timed`](super::GpuBackend::timed): a future (or
/// [`wait`](DeviceTime::wait)) that resolves once the device has finished it
/// and the time is recorded on the span.
///
/// Dropping it costs nothing and loses nothing: the backend's resolver then
/// records the time on the span when it comes (the span stays open until
/// then), so a caller that only needs its output never waits for a timer.
#[must_use = "drop it to have the time recorded when it comes, or await it to read it"]
pub struct DeviceTime {
    pub(crate) pending: Pending<Held>,
}

impl std::fmt::Debug for DeviceTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceTime").finish_non_exhaustive()
    }
}

impl DeviceTime {
    /// Blocks until the device has finished the work (outside async code).
    pub fn wait(self) -> Result<DevicePhases, GpuError> {
        self.pending.wait().map(|(_, phases)| phases)
    }
}

impl Future for DeviceTime {
    type Output = Result<DevicePhases, GpuError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.pending)
            .poll(cx)
            .map(|reply| reply.map(|(_, phases)| phases))
    }
}
