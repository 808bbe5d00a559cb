//! An independent pair of timing events around some of a call's work, for
//! probing what the resolver records ([`super::GpuModelOptions::probe`]).

use super::error::GpuError;
use super::marks::{elapsed_ns, timing_event};
use cudarc::driver::{CudaContext, CudaEvent, CudaStream};
use std::sync::Arc;

/// Two timing-enabled CUDA events, reused call after call.
#[derive(Debug)]
pub(crate) struct DeviceTimer {
    start: CudaEvent,
    stop: CudaEvent,
}

impl DeviceTimer {
    /// Creates the two events (with timing enabled) in `ctx`.
    pub(crate) fn new(ctx: &Arc<CudaContext>) -> Result<Self, GpuError> {
        Ok(Self {
            start: timing_event(ctx)?,
            stop: timing_event(ctx)?,
        })
    }

    /// Enqueues the start timestamp on `stream`.
    pub(crate) fn start(&self, stream: &CudaStream) -> Result<(), GpuError> {
        self.start
            .record(stream)
            .map_err(GpuError::driver("event record"))
    }

    /// Enqueues the stop timestamp on `stream`.
    pub(crate) fn stop(&self, stream: &CudaStream) -> Result<(), GpuError> {
        self.stop
            .record(stream)
            .map_err(GpuError::driver("event record"))
    }

    /// The device time between the two events in nanoseconds; waits for the
    /// stop event if the device has not reached it (a probe is read after its
    /// call's last mark, which comes after it on the stream).
    pub(crate) fn elapsed_ns(&self) -> Result<u64, GpuError> {
        elapsed_ns(&self.start, &self.stop)
    }
}
