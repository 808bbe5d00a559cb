//! Device time from CUDA events: a pair of timing events recorded on a stream
//! around the kernels, resolved after the fact, and put on the model span as
//! `gpu_ns`.

use super::error::GpuError;
use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaContext, CudaEvent, CudaStream};
use std::sync::Arc;

/// Two timing-enabled CUDA events, reused call after call.
///
/// [`start`](Self::start) and [`stop`](Self::stop) only enqueue a timestamp on
/// the stream (they return at once); [`wait_elapsed_ns`](Self::wait_elapsed_ns)
/// blocks until the stop event has happened, so call it from a blocking thread
/// (`tokio::task::spawn_blocking`), never from an async worker.
#[derive(Debug)]
pub struct DeviceTimer {
    start: CudaEvent,
    stop: CudaEvent,
}

impl DeviceTimer {
    /// Creates the two events (with timing enabled) in `ctx`.
    pub fn new(ctx: &Arc<CudaContext>) -> Result<Self, GpuError> {
        let event = || {
            ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
                .map_err(GpuError::driver("event create"))
        };
        Ok(Self {
            start: event()?,
            stop: event()?,
        })
    }

    /// Enqueues the start timestamp on `stream` (before the kernels).
    #[inline]
    pub fn start(&self, stream: &CudaStream) -> Result<(), GpuError> {
        self.start
            .record(stream)
            .map_err(GpuError::driver("event record"))
    }

    /// Enqueues the stop timestamp on `stream` (after the kernels).
    #[inline]
    pub fn stop(&self, stream: &CudaStream) -> Result<(), GpuError> {
        self.stop
            .record(stream)
            .map_err(GpuError::driver("event record"))
    }

    /// Waits for the stop event, then returns the device time between the two
    /// events in nanoseconds (CUDA resolves it to about half a microsecond).
    /// An error from a kernel launched before the stop event surfaces here.
    pub fn wait_elapsed_ns(&self) -> Result<u64, GpuError> {
        self.stop
            .synchronize()
            .map_err(GpuError::driver("event synchronize"))?;
        let ms = self
            .start
            .elapsed_ms(&self.stop)
            .map_err(GpuError::driver("event elapsed time"))?;
        Ok(ms_to_ns(ms))
    }
}

/// Milliseconds (as CUDA reports them) to whole nanoseconds; a negative or
/// non-finite reading (events recorded out of order) is 0.
pub(crate) fn ms_to_ns(ms: f32) -> u64 {
    if ms.is_finite() && ms > 0.0 {
        (f64::from(ms) * 1e6).round() as u64
    } else {
        0
    }
}

/// Records device time on a model span as its `gpu_ns` field, which the
/// subscriber routes into that model's GPU histogram. The span must declare
/// the field (the pipeline's model span does: `gpu_ns = Empty`).
#[inline]
pub fn record_gpu_ns(span: &tracing::Span, ns: u64) {
    span.record(crate::span_ctx::DEVICE_TIME_FIELD, ns);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_become_nanoseconds() {
        assert_eq!(ms_to_ns(1.5), 1_500_000);
        assert_eq!(ms_to_ns(0.0005), 500);
        assert_eq!(ms_to_ns(0.0), 0);
        assert_eq!(ms_to_ns(-1.0), 0);
        assert_eq!(ms_to_ns(f32::NAN), 0);
        assert_eq!(ms_to_ns(f32::INFINITY), 0);
    }
}
