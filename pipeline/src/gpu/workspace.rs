//! A model's per-call buffers on the device and in page-locked host memory,
//! reused call after call. A call holds them from queueing its copies until
//! the device has finished its last copy (the resolver gives them back then),
//! so no later call writes a buffer the device still reads.

use super::error::GpuError;
use super::timer::DeviceTimer;
use cudarc::driver::{CudaContext, CudaSlice, CudaStream, PinnedHostSlice};
use std::sync::Arc;

/// What a call keeps reserved until the device is done with it: its model's
/// workspace (`None` for work queued through `GpuBackend::timed`, which
/// owns no buffers of ours).
pub(crate) type Held = Option<tokio::sync::OwnedMutexGuard<Workspace>>;

/// One model's buffers.
pub(crate) struct Workspace {
    /// The tokens of a call, on the device.
    pub(crate) tokens: CudaSlice<u32>,
    /// The per-row kernel's outputs.
    pub(crate) rows_out: CudaSlice<f32>,
    /// The pooled outputs.
    pub(crate) out: CudaSlice<f32>,
    /// The tokens, staged in page-locked memory so that their copy is
    /// asynchronous (a copy from pageable memory makes the host wait).
    pub(crate) upload: PinnedHostSlice<u32>,
    /// The pooled outputs, copied back into page-locked memory (likewise).
    pub(crate) download: PinnedHostSlice<f32>,
    /// Independent event pairs around the kernels, when probing.
    pub(crate) probe: Option<[DeviceTimer; 3]>,
}

impl Workspace {
    /// Buffers for `tokens` tokens and `outputs` output floats (rows `out`
    /// wide), with probe events when `probe`.
    pub(crate) fn new(
        ctx: &Arc<CudaContext>,
        stream: &Arc<CudaStream>,
        tokens: usize,
        outputs: usize,
        out: usize,
        probe: bool,
    ) -> Result<Self, GpuError> {
        Ok(Self {
            tokens: zeroed(stream, tokens)?,
            rows_out: zeroed(stream, tokens * out)?,
            out: zeroed(stream, outputs)?,
            upload: pinned(ctx, tokens, true)?,
            download: pinned(ctx, outputs, false)?,
            probe: if probe {
                Some([
                    DeviceTimer::new(ctx)?,
                    DeviceTimer::new(ctx)?,
                    DeviceTimer::new(ctx)?,
                ])
            } else {
                None
            },
        })
    }

    /// Grows the buffers to hold `tokens` tokens, their rows (`out` wide) and
    /// `outputs` output floats; a buffer already large enough is kept.
    pub(crate) fn reserve(
        &mut self,
        ctx: &Arc<CudaContext>,
        stream: &Arc<CudaStream>,
        tokens: usize,
        outputs: usize,
        out: usize,
    ) -> Result<(), GpuError> {
        if self.tokens.len() < tokens {
            self.tokens = zeroed(stream, tokens)?;
            self.upload = pinned(ctx, tokens, true)?;
        }
        if self.rows_out.len() < tokens * out {
            self.rows_out = zeroed(stream, tokens * out)?;
        }
        if self.out.len() < outputs {
            self.out = zeroed(stream, outputs)?;
            self.download = pinned(ctx, outputs, false)?;
        }
        Ok(())
    }
}

/// `len` (at least one) zeroed elements of device memory, allocated on
/// `stream`.
fn zeroed<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
    stream: &Arc<CudaStream>,
    len: usize,
) -> Result<CudaSlice<T>, GpuError> {
    stream
        .alloc_zeros::<T>(len.max(1))
        .map_err(GpuError::driver("buffer allocation"))
}

/// `len` (at least one) zeroed elements of page-locked host memory:
/// write-combined for an upload (the host only writes it), cached for a
/// download (the host reads it).
fn pinned<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
    ctx: &Arc<CudaContext>,
    len: usize,
    upload: bool,
) -> Result<PinnedHostSlice<T>, GpuError> {
    let len = len.max(1);
    let flags = if upload {
        cudarc::driver::sys::CU_MEMHOSTALLOC_WRITECOMBINED
    } else {
        0
    };
    // SAFETY: the memory is uninitialised when allocated; it is zeroed
    // through its raw pointer below before any slice of it is made.
    let mut slice = unsafe { ctx.alloc_pinned_with_flags::<T>(len, flags) }
        .map_err(GpuError::driver("page-locked allocation"))?;
    let ptr = slice
        .as_mut_ptr()
        .map_err(GpuError::driver("page-locked allocation"))?;
    // SAFETY: `ptr` points to `len` elements of `T` just allocated for this
    // slice and used by nothing else yet; all-zero bits are a valid `T`
    // (`ValidAsZeroBits`).
    unsafe { std::ptr::write_bytes(ptr, 0, len) };
    Ok(slice)
}
