//! GPU versions of the reference models (cargo feature `cuda`), launched
//! through cudarc and timed on the device.
//!
//! A kernel launch returns at once, so a host span says nothing of how long
//! the GPU worked. Each [`GpuModel`] call therefore records timing marks
//! (CUDA events from a reusable pool) on its own stream: before its upload,
//! right before and right after its kernels, after its download. The call
//! then waits only for its output: its task is woken by the device's
//! resolver thread, which polls the marks of every call in flight, records
//! the kernels' time on the model span (in the field
//! [`GpuConfig::device_time_field`] names, `gpu_ns` by default) and hands the
//! upload, device and download times back ([`DevicePhases`]). The subscriber
//! puts the field into that model's device-time histogram
//! ([`ModelLatency::gpu`](hdrtrace::ModelLatency::gpu)) beside its host wall
//! and busy time. No thread waits for the device per call, and a call whose
//! caller left still has its time recorded, late ([`ResolverStats::late`]).
//!
//! At hdrtrace's `Verbose` level each call also has three child spans, the
//! host side of the call: `gpu_queue` (waiting for the model's previous
//! call), `gpu_launch` (queueing the copies and kernels; `lock_ns`, the wait
//! for the device's queueing lock) and `gpu_wait` (until the device is done
//! and the task resumes; `upload_ns`, `download_ns`, and `collect_ns`, the
//! rest of the wait).
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
