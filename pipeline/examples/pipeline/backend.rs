//! Where the demo's reference models compute: [`Backend`] (`cpu`, `cuda` or
//! `auto`, the `--backend` flag), falling back to the CPU when CUDA is not
//! there.

use hdrtrace_pipeline::reference::{reference_models, ComputePool};
use hdrtrace_pipeline::EmbeddingModel;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Where the reference models compute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The CPU models ([`reference_models`]).
    Cpu,
    /// The GPU models (feature `cuda`); an error when CUDA is unavailable.
    Cuda,
    /// CUDA when it is available, else the CPU, saying why.
    #[default]
    Auto,
}

impl Backend {
    /// The name: `cpu`, `cuda` or `auto`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Cuda => "cuda",
            Backend::Auto => "auto",
        }
    }

    /// The twelve reference models (weights from `seed`) on this backend.
    ///
    /// `Cpu` always succeeds. `Cuda` fails when this build has no `cuda`
    /// feature or CUDA is unavailable (the error says which library or device
    /// is missing). `Auto` never fails: it returns the GPU models when CUDA
    /// works, else the CPU models with [`BackendModels::fallback`] saying why.
    /// `pool` is used only by the CPU models; the GPU models record device
    /// time in the field `conventions` names (the subscriber's).
    pub fn reference_models(
        self,
        seed: u64,
        pool: &ComputePool,
        conventions: &hdrtrace::Conventions,
    ) -> Result<BackendModels, BackendError> {
        let cpu = |fallback| BackendModels {
            models: reference_models(seed, pool),
            used: Backend::Cpu,
            device: None,
            fallback,
        };
        match self {
            Backend::Cpu => Ok(cpu(None)),
            Backend::Cuda => gpu_models(seed, conventions),
            Backend::Auto => {
                Ok(gpu_models(seed, conventions).unwrap_or_else(|e| cpu(Some(e.to_string()))))
            }
        }
    }
}

#[cfg(feature = "cuda")]
fn gpu_models(
    seed: u64,
    conventions: &hdrtrace::Conventions,
) -> Result<BackendModels, BackendError> {
    use hdrtrace_pipeline::gpu::{gpu_reference_models, GpuBackend, GpuConfig};
    let gpu = GpuBackend::try_with(&GpuConfig::for_conventions(conventions))
        .map_err(BackendError::Unavailable)?;
    let models = gpu_reference_models(seed, &gpu).map_err(BackendError::Unavailable)?;
    Ok(BackendModels {
        models,
        used: Backend::Cuda,
        device: Some(gpu.device_name().to_string()),
        fallback: None,
    })
}

#[cfg(not(feature = "cuda"))]
fn gpu_models(
    _seed: u64,
    _conventions: &hdrtrace::Conventions,
) -> Result<BackendModels, BackendError> {
    Err(BackendError::NotBuilt)
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not `cpu`, `cuda` or `auto`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend {given:?}: expected cuda, cpu or auto")]
pub struct UnknownBackend {
    /// What was given.
    pub given: String,
}

impl FromStr for Backend {
    type Err = UnknownBackend;

    /// `cuda`, `cpu` or `auto`, in any case (`gpu` is read as `cuda`).
    fn from_str(s: &str) -> Result<Self, UnknownBackend> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Backend::Cpu),
            "cuda" | "gpu" => Ok(Backend::Cuda),
            "auto" => Ok(Backend::Auto),
            _ => Err(UnknownBackend {
                given: s.to_string(),
            }),
        }
    }
}

/// Why the CUDA backend could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// This build has no CUDA support.
    #[cfg(not(feature = "cuda"))]
    #[error("the CUDA backend is not in this build: rebuild with `--features cuda`")]
    NotBuilt,
    /// CUDA is missing or failed on this machine.
    #[cfg(feature = "cuda")]
    #[error("the CUDA backend is unavailable: {0}")]
    Unavailable(#[source] hdrtrace_pipeline::gpu::GpuError),
}

/// The models a [`Backend`] chose, and what it ran on.
pub struct BackendModels {
    /// The twelve models, in `REFERENCE_MODELS` order.
    pub models: Vec<Arc<dyn EmbeddingModel>>,
    /// The backend they run on: [`Backend::Cpu`] or [`Backend::Cuda`].
    pub used: Backend,
    /// The GPU's name, when they run on one.
    pub device: Option<String>,
    /// Why `auto` fell back to the CPU (`None` when it did not).
    pub fallback: Option<String>,
}

impl fmt::Debug for BackendModels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendModels")
            .field("models", &self.models.len())
            .field("used", &self.used)
            .field("device", &self.device)
            .field("fallback", &self.fallback)
            .finish()
    }
}

impl BackendModels {
    /// One line for a demo to print: `models on CUDA (NVIDIA H100 ...)`, or
    /// `models on the CPU (CUDA unavailable: ...)`.
    pub fn describe(&self) -> String {
        match (&self.device, &self.fallback) {
            (Some(device), _) => format!("models on CUDA ({device})"),
            (None, Some(why)) => format!("models on the CPU ({why})"),
            (None, None) => "models on the CPU".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_values_parse_and_print() {
        for b in [Backend::Cpu, Backend::Cuda, Backend::Auto] {
            assert_eq!(b.as_str().parse::<Backend>().unwrap(), b);
            assert_eq!(b.to_string().to_uppercase().parse::<Backend>().unwrap(), b);
        }
        assert_eq!("gpu".parse::<Backend>().unwrap(), Backend::Cuda);
        assert_eq!(Backend::default(), Backend::Auto);
        let err = "tpu".parse::<Backend>().unwrap_err().to_string();
        assert!(err.contains("expected cuda, cpu or auto"), "{err}");
    }

    #[test]
    fn cpu_backend_gives_twelve_cpu_models() {
        let chosen = Backend::Cpu
            .reference_models(
                1,
                &ComputePool::default(),
                &hdrtrace::Conventions::default(),
            )
            .unwrap();
        assert_eq!(chosen.models.len(), 12);
        assert_eq!(chosen.used, Backend::Cpu);
        assert!(chosen.fallback.is_none());
        assert_eq!(chosen.describe(), "models on the CPU");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn without_the_feature_cuda_is_refused_and_auto_falls_back() {
        let (pool, conventions) = (ComputePool::default(), hdrtrace::Conventions::default());
        let err = Backend::Cuda
            .reference_models(1, &pool, &conventions)
            .unwrap_err();
        assert!(err.to_string().contains("--features cuda"), "{err}");
        let auto = Backend::Auto
            .reference_models(1, &pool, &conventions)
            .unwrap();
        assert_eq!(auto.used, Backend::Cpu);
        assert!(auto.describe().contains("--features cuda"));
    }
}
