//! Guards in front of every cudarc entry point. With dynamic loading, cudarc
//! panics on the first call into a library it cannot load, so each entry point
//! here first checks that the library is present (once per process), and the
//! calls that could still panic run under `catch_unwind`.

use super::error::GpuError;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

/// Whether the CUDA driver library can be loaded (checked once).
pub fn driver_present() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: `is_culib_present` only tries `dlopen` on the driver library's
    // names and drops what it opened; it is `unsafe` because loading a library
    // runs its initialisers, which for the NVIDIA driver are sound to run.
    *PRESENT.get_or_init(|| unsafe { cudarc::driver::sys::is_culib_present() })
}

/// Whether the NVRTC library can be loaded (checked once).
pub fn nvrtc_present() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: as for `driver_present`, for NVRTC's library.
    *PRESENT.get_or_init(|| unsafe { cudarc::nvrtc::sys::is_culib_present() })
}

/// `Err(NoDriver)` unless the driver library loads.
pub(crate) fn require_driver() -> Result<(), GpuError> {
    if driver_present() {
        Ok(())
    } else {
        Err(GpuError::NoDriver)
    }
}

/// `Err(NoNvrtc)` unless the NVRTC library loads.
pub(crate) fn require_nvrtc() -> Result<(), GpuError> {
    if nvrtc_present() {
        Ok(())
    } else {
        Err(GpuError::NoNvrtc)
    }
}

/// Runs `f`, turning a panic inside cudarc (a missing symbol, a poisoned
/// lock) into `Err(Panicked)` instead of unwinding into the caller.
pub(crate) fn catch<T>(what: &str, f: impl FnOnce() -> Result<T, GpuError>) -> Result<T, GpuError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&'static str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("a non-string panic payload");
            Err(GpuError::Panicked(format!("{what}: {msg}")))
        }
    }
}
