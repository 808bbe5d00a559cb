//! GPU versions of the reference models (cargo feature `cuda`), launched
//! through cudarc and timed on the device.
//!
//! A kernel launch returns at once, so a host span says nothing of how long
//! the GPU worked. Each [`GpuModel`] therefore records two CUDA events with
//! timing enabled on its own stream, one before its kernels and one after;
//! on a blocking thread (`spawn_blocking`, never an async worker) it waits
//! for the second, reads the elapsed time and records it on the model span as
//! `gpu_ns`, which the subscriber puts into that model's GPU histogram
//! ([`ModelLatency::gpu`](hdrtrace::ModelLatency::gpu)) beside its host wall and
//! busy time.
//!
//! The CUDA libraries are loaded at run time (cudarc's dynamic loading), so
//! the feature builds, and its tests pass, on machines without CUDA.
//! [`GpuBackend::try_new`] checks that the driver and NVRTC libraries load
//! before any other CUDA call and otherwise returns an error saying which is
//! missing; the demo's `--backend auto` then falls back to the CPU models.
//!
//! The kernels ([`KERNEL_SOURCE`]) are CUDA C compiled by NVRTC at run time,
//! operation for operation the arithmetic of the CPU reference models, so
//! their outputs match the CPU models' to f32 rounding.
//!
//! ```no_run
//! use hdrtrace_pipeline::gpu::{gpu_reference_models, GpuBackend};
//! use hdrtrace_pipeline::EmbeddingPipeline;
//!
//! match GpuBackend::try_new() {
//!     Ok(gpu) => {
//!         let models = gpu_reference_models(42, &gpu).unwrap();
//!         let pipeline = EmbeddingPipeline::new(models).unwrap();
//!         println!("{} models on {}", pipeline.model_ids().count(), gpu.device_name());
//!     }
//!     Err(why) => println!("no GPU: {why}"),
//! }
//! ```

mod config;
mod device;
mod error;
mod guard;
mod kernels;
mod launch;
mod marks;
mod model;
mod resolver;
mod timed;
mod timer;
mod workspace;

pub use config::GpuConfig;
pub use device::GpuBackend;
pub use error::GpuError;
pub use guard::{driver_present, nvrtc_present};
pub use kernels::{compile_kernels, KERNEL_SOURCE};
pub use model::{
    gpu_reference_models, GpuBatchOutput, GpuModel, GpuModelOptions, GpuOutput, KernelProbe,
};
pub use resolver::{DevicePhases, ResolverOptions, ResolverStats};
pub use timed::DeviceTime;
