//! The CUDA C source of the model kernels, its NVRTC compilation, and the
//! shape struct the kernels take by value.

use super::error::GpuError;
use super::guard;
use crate::model::ModelId;
use crate::reference::{Attention, Profile};
use cudarc::driver::DeviceRepr;
use cudarc::nvrtc::{CompileOptions, Ptx};
use std::sync::OnceLock;

/// The kernels' CUDA C source (`kernels.cu`), compiled at run time by NVRTC.
pub const KERNEL_SOURCE: &str = include_str!("kernels.cu");

/// The per-row kernel: lookup, attention, dense layers.
pub(crate) const ROWS_KERNEL: &str = "embed_rows";
/// The pooling kernel: pooling, top-k, L2 normalisation.
pub(crate) const POOL_KERNEL: &str = "pool_finish";
/// A kernel that does nothing (for measuring launch and timing overhead).
pub(crate) const EMPTY_KERNEL: &str = "empty_kernel";

/// Layers the kernels support (`MAX_LAYERS` in `kernels.cu`).
pub(crate) const MAX_LAYERS: usize = 4;
/// Widest embedding or layer the kernels support (`MAX_WIDTH` in `kernels.cu`).
pub(crate) const MAX_WIDTH: usize = 256;

/// `struct ModelShape` in `kernels.cu`, passed to `embed_rows` by value.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KernelShape {
    pub buckets: i32,
    pub n_layers: i32,
    pub attention: i32,
    pub window: i32,
    pub widths: [i32; MAX_LAYERS + 1],
}

// SAFETY: `KernelShape` is `#[repr(C)]`, made only of `i32`s, with the same
// field order, types and so layout (36 bytes, align 4) as `struct ModelShape`
// in kernels.cu; it holds no pointers, so the device may copy it as bytes.
unsafe impl DeviceRepr for KernelShape {}

impl KernelShape {
    /// The shape of `model`, or why the kernels cannot run it.
    pub(crate) fn of(model: &ModelId, profile: &Profile) -> Result<Self, GpuError> {
        let unsupported = |reason: String| GpuError::Unsupported {
            model: model.clone(),
            reason: reason.into(),
        };
        let n_layers = profile.hidden.len() + 1;
        if n_layers > MAX_LAYERS {
            return Err(unsupported(format!(
                "{n_layers} dense layers, the kernels take at most {MAX_LAYERS}"
            )));
        }
        let mut widths = [0i32; MAX_LAYERS + 1];
        let all = std::iter::once(profile.dim)
            .chain(profile.hidden.iter().copied())
            .chain(std::iter::once(profile.out));
        for (slot, w) in widths.iter_mut().zip(all) {
            if w == 0 || w > MAX_WIDTH {
                return Err(unsupported(format!(
                    "a width of {w}, the kernels take 1 to {MAX_WIDTH}"
                )));
            }
            *slot = w as i32;
        }
        let (attention, window) = match profile.attention {
            Attention::None => (0, 0),
            Attention::Window(w) => (1, i32::try_from(w).unwrap_or(i32::MAX)),
            Attention::Full => (2, 0),
        };
        let buckets = i32::try_from(profile.buckets)
            .ok()
            .filter(|b| *b > 0)
            .ok_or_else(|| {
                unsupported(format!(
                    "{} table rows, the kernels take 1 to {}",
                    profile.buckets,
                    i32::MAX
                ))
            })?;
        Ok(Self {
            buckets,
            n_layers: n_layers as i32,
            attention,
            window,
            widths,
        })
    }
}

/// The options the kernels are compiled with: no fused multiply-add, IEEE
/// division and square root, no flush to zero, so that the arithmetic rounds
/// as the CPU's does.
fn options() -> CompileOptions {
    CompileOptions {
        fmad: Some(false),
        prec_div: Some(true),
        prec_sqrt: Some(true),
        ftz: Some(false),
        name: Some("hdrtrace_kernels.cu".into()),
        ..Default::default()
    }
}

/// Compiles [`KERNEL_SOURCE`] to PTX with NVRTC, once per process (later calls
/// return the same PTX or the same error). Needs only NVRTC, not a GPU or a
/// driver: it checks that `libnvrtc` can be loaded before calling into it.
pub fn compile_kernels() -> Result<Ptx, GpuError> {
    static PTX: OnceLock<Result<Ptx, GpuError>> = OnceLock::new();
    PTX.get_or_init(|| {
        guard::require_nvrtc()?;
        guard::catch("NVRTC compilation", || {
            cudarc::nvrtc::compile_ptx_with_opts(KERNEL_SOURCE, options()).map_err(|e| match e {
                cudarc::nvrtc::CompileError::CompileError { nvrtc, log, .. } => {
                    GpuError::Compile(format!("{nvrtc:?}: {}", log.to_string_lossy()))
                }
                other => GpuError::Compile(format!("{other:?}")),
            })
        })
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::REFERENCE_MODELS;

    #[test]
    fn every_reference_model_fits_the_kernels() {
        for m in &REFERENCE_MODELS {
            let shape = KernelShape::of(&m.id(), &m.profile).unwrap();
            let p = m.profile;
            assert_eq!(shape.widths[0] as usize, p.dim);
            assert_eq!(shape.widths[shape.n_layers as usize] as usize, p.out);
        }
    }

    #[test]
    fn shapes_beyond_the_kernels_are_refused() {
        let semantic = ModelId::new("Semantic");
        let mut p = REFERENCE_MODELS[0].profile;
        p.out = MAX_WIDTH + 1;
        let err = KernelShape::of(&semantic, &p).unwrap_err();
        assert!(err.to_string().contains("a width of 257"), "{err}");
        let mut p = REFERENCE_MODELS[0].profile;
        p.hidden = &[8, 8, 8, 8];
        let err = KernelShape::of(&semantic, &p).unwrap_err();
        assert!(err.to_string().contains("5 dense layers"), "{err}");
    }

    #[test]
    fn source_names_the_kernels_and_limits() {
        for needle in [
            ROWS_KERNEL,
            POOL_KERNEL,
            EMPTY_KERNEL,
            "#define MAX_LAYERS 4",
            "#define MAX_WIDTH 256",
        ] {
            assert!(KERNEL_SOURCE.contains(needle), "{needle}");
        }
        assert_eq!(std::mem::size_of::<KernelShape>(), 4 * (4 + MAX_LAYERS + 1));
    }
}
