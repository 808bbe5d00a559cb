//! Why the GPU backend is unavailable, or what a CUDA call said.

use cudarc::driver::DriverError;
use std::borrow::Cow;

/// A GPU backend that cannot start, or a CUDA call that failed.
///
/// The first three variants say the backend is *unavailable* (run the CPU
/// models instead); the others are failures on a machine that has CUDA.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum GpuError {
    /// The CUDA driver library (`libcuda.so`, `nvcuda.dll`) is not installed.
    #[error("no CUDA driver (the driver library libcuda.so.1 / nvcuda.dll could not be loaded: install the NVIDIA driver, or add its folder to LD_LIBRARY_PATH, or use the CPU backend)")]
    NoDriver,
    /// The NVRTC run-time compiler library (`libnvrtc.so`) is not installed.
    #[error("no NVRTC (the CUDA run-time compiler library libnvrtc.so / libnvrtc.so.12 could not be loaded: install the CUDA toolkit's NVRTC, e.g. the nvidia-cuda-nvrtc-cu12 package, and add its folder to LD_LIBRARY_PATH, or use the CPU backend)")]
    NoNvrtc,
    /// The driver is installed but sees no usable device.
    #[error("no CUDA device ({0})")]
    NoDevice(Cow<'static, str>),
    /// A CUDA driver call failed (the text is CUDA's).
    #[error("CUDA {op} failed: {source}")]
    Driver {
        /// What was being done (`kernel launch`, `event synchronize`, ...).
        op: &'static str,
        /// CUDA's error code and text.
        source: DriverError,
    },
    /// NVRTC could not compile the kernels (the text is NVRTC's log).
    #[error("NVRTC could not compile the model kernels: {0}")]
    Compile(String),
    /// A model's shape is beyond what the kernels support.
    #[error("model {model} cannot run on the GPU kernels: {reason}")]
    Unsupported {
        /// The model's name.
        model: crate::model_id::ModelId,
        /// What is out of range.
        reason: Cow<'static, str>,
    },
    /// The host side was used wrongly (e.g. an option out of range).
    #[error("invalid GPU option: {0}")]
    Invalid(Cow<'static, str>),
    /// The device did not reach a call's last timing mark in time
    /// ([`ResolverOptions::give_up`](super::ResolverOptions::give_up)): the
    /// call's output and device time are lost (counted in
    /// [`ResolverStats::expired`](super::ResolverStats::expired)).
    #[error("the device did not finish the call within {0:?} (its device time is lost)")]
    Unresolved(std::time::Duration),
    /// A CUDA library call panicked (caught; the backend is unusable).
    #[error("a CUDA library call panicked: {0}")]
    Panicked(String),
}

impl GpuError {
    /// Whether this says the backend is unavailable on this machine (no
    /// driver, no NVRTC, no device), rather than that it failed while running.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            GpuError::NoDriver | GpuError::NoNvrtc | GpuError::NoDevice(_)
        )
    }

    /// Wraps a driver error with what was being done.
    pub(crate) fn driver(op: &'static str) -> impl FnOnce(DriverError) -> GpuError {
        move |source| GpuError::Driver { op, source }
    }
}
