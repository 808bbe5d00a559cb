//! A call's timing marks on the device: CUDA events with timing enabled,
//! taken from a pool and given back once the resolver has read them.

use super::error::GpuError;
use super::guard;
use super::resolver::{DevicePhases, EventSource};
use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaContext, CudaEvent, CudaStream};
use std::sync::{Arc, Mutex, PoisonError};

/// Where on its stream a call records a mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    /// Before the inputs are copied to the device.
    Start = 0,
    /// Right before the first kernel: nothing of ours between it and the
    /// kernels.
    Launch = 1,
    /// Right after the last kernel.
    Done = 2,
    /// After the outputs are copied back.
    Copied = 3,
}

/// One call's four events, and which of them it recorded.
pub(crate) struct Marks {
    events: [CudaEvent; 4],
    recorded: u8,
}

impl Marks {
    /// Enqueues `mark` on `stream` (returns at once).
    pub(crate) fn record(&mut self, mark: Mark, stream: &CudaStream) -> Result<(), GpuError> {
        self.events[mark as usize]
            .record(stream)
            .map_err(GpuError::driver("event record"))?;
        self.recorded |= 1 << mark as u8;
        Ok(())
    }

    fn has(&self, mark: Mark) -> bool {
        self.recorded & (1 << mark as u8) != 0
    }

    /// The last mark recorded: the call is over once the device reaches it.
    fn last(&self) -> Option<&CudaEvent> {
        (0..4)
            .rev()
            .find(|&i| self.recorded & (1 << i) != 0)
            .map(|i| &self.events[i])
    }

    /// Device time from `from` to `to` (0 unless both were recorded).
    fn between(&self, from: Mark, to: Mark) -> Result<u64, GpuError> {
        if !(self.has(from) && self.has(to)) {
            return Ok(0);
        }
        elapsed_ns(&self.events[from as usize], &self.events[to as usize])
    }
}

/// Device time from event `from` to event `to` in nanoseconds (see
/// [`ms_to_ns`]); waits for the device to reach both.
pub(crate) fn elapsed_ns(from: &CudaEvent, to: &CudaEvent) -> Result<u64, GpuError> {
    let ms = from
        .elapsed_ms(to)
        .map_err(GpuError::driver("event elapsed time"))?;
    Ok(ms_to_ns(ms))
}

/// Milliseconds (as CUDA reports them) to whole nanoseconds; a negative or
/// non-finite reading (events recorded out of order) is 0.
fn ms_to_ns(ms: f32) -> u64 {
    if ms.is_finite() && ms > 0.0 {
        (f64::from(ms) * 1e6).round() as u64
    } else {
        0
    }
}

/// A CUDA event with timing enabled (what a mark or a probe records).
pub(crate) fn timing_event(ctx: &Arc<CudaContext>) -> Result<CudaEvent, GpuError> {
    ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
        .map_err(GpuError::driver("event create"))
}

/// At most this many idle sets are kept for reuse (four events each).
const KEPT: usize = 256;

/// The device's reusable marks: a call takes a set, the resolver gives it
/// back. Events are created only while the calls in flight outnumber the
/// sets kept.
pub(crate) struct MarkPool {
    ctx: Arc<CudaContext>,
    free: Mutex<Vec<Marks>>,
}

impl MarkPool {
    pub(crate) fn new(ctx: Arc<CudaContext>) -> Self {
        Self {
            ctx,
            free: Mutex::new(Vec::new()),
        }
    }

    /// A set with nothing recorded.
    pub(crate) fn take(&self) -> Result<Marks, GpuError> {
        let kept = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match kept {
            Some(mut marks) => {
                marks.recorded = 0;
                Ok(marks)
            }
            None => {
                let event = || timing_event(&self.ctx);
                Ok(Marks {
                    events: [event()?, event()?, event()?, event()?],
                    recorded: 0,
                })
            }
        }
    }
}

impl EventSource for MarkPool {
    type Marks = Marks;

    fn query(&self, marks: &Marks) -> Result<Option<DevicePhases>, GpuError> {
        guard::catch("event query", || {
            // The resolver's thread: bound once, then a check per call.
            self.ctx
                .bind_to_thread()
                .map_err(GpuError::driver("context bind"))?;
            let Some(last) = marks.last() else {
                return Ok(Some(DevicePhases::default()));
            };
            if !last
                .try_is_complete()
                .map_err(GpuError::driver("event query"))?
            {
                return Ok(None);
            }
            Ok(Some(DevicePhases {
                upload_ns: marks.between(Mark::Start, Mark::Launch)?,
                device_ns: marks.between(Mark::Launch, Mark::Done)?,
                download_ns: marks.between(Mark::Done, Mark::Copied)?,
            }))
        })
    }

    fn recycle(&self, marks: Marks) {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        if free.len() < KEPT {
            free.push(marks);
        }
    }
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
