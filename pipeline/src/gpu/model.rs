//! [`GpuModel`]: a reference model whose forward pass runs as CUDA kernels on
//! its own stream, timed on the device.

use super::device::GpuBackend;
use super::error::GpuError;
use super::guard;
use super::kernels::KernelShape;
use super::resolver::DevicePhases;
use super::workspace::{Held, Workspace};
use crate::error::Error;
use crate::model::{
    BatchEmbeddings, BatchFuture, EmbeddingModel, ModelEmbedding, ModelFuture, ModelId,
    PreparedInput,
};
use crate::reference::{Profile, Weights, REFERENCE_MODELS};
use crate::span_ctx::DEVICE_TIME_FIELD;
use cudarc::driver::{CudaSlice, CudaStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use tracing::field::Empty;
use tracing::Instrument;

/// How a [`GpuModel`] launches its kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuModelOptions {
    /// Threads per block of the per-row kernel (128 by default). The device
    /// refuses blocks larger than its limit (1024 on current GPUs): every call
    /// then fails with CUDA's launch error.
    pub block_size: u32,
    /// Also time each call with independent events (see [`KernelProbe`]):
    /// for checking the recorded device time, not for production.
    pub probe: bool,
}

impl Default for GpuModelOptions {
    fn default() -> Self {
        Self {
            block_size: 128,
            probe: false,
        }
    }
}

/// One call's timings from independent events ([`GpuModelOptions::probe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelProbe {
    /// The device time the model recorded for this call.
    pub gpu_ns: u64,
    /// A second pair of events recorded just outside the model's own marks,
    /// around the same launches: the kernels' stream time, measured directly.
    pub outer_ns: u64,
    /// Each kernel's own time (`embed_rows`, `pool_finish`), from an event
    /// pair around its launch alone.
    pub kernels_ns: [u64; 2],
}

/// One model call's result on the device.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuOutput {
    /// The embedding (same as the CPU model's, to f32 rounding).
    pub vector: Vec<f32>,
    /// The call's time on the device (upload, kernels, download); `None`
    /// when no kernel ran (an empty input).
    pub device: Option<DevicePhases>,
}

/// One batched call's result on the device.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuBatchOutput {
    /// One embedding per input, in input order.
    pub vectors: Vec<Vec<f32>>,
    /// The whole batch's time on the device; `None` when no kernel ran
    /// (every input empty).
    pub device: Option<DevicePhases>,
}

/// A reference model on the GPU: the weights of [`Weights::generate`]
/// uploaded once, two kernels per call on the model's own stream between
/// two timing marks, whose device time the backend's resolver reads and the
/// model records on its span, in the backend's device-time field.
///
/// Calls to one model run one at a time (its stream and buffers are its
/// own); different models run concurrently on their own streams.
#[derive(Clone)]
pub struct GpuModel {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) weights: Weights,
    pub(crate) shape: KernelShape,
    pub(crate) options: GpuModelOptions,
    pub(crate) backend: GpuBackend,
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) table: CudaSlice<f32>,
    pub(crate) params: CudaSlice<f32>,
    /// Held by a call from queueing until the device is done with it.
    work: Arc<tokio::sync::Mutex<Workspace>>,
    pub(crate) probes: Mutex<Vec<KernelProbe>>,
}

impl std::fmt::Debug for GpuModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuModel")
            .field("model", &self.shared.weights.model)
            .field("device", &self.shared.backend.device_name())
            .field("options", &self.shared.options)
            .finish()
    }
}

impl GpuModel {
    /// The model named `model` of shape `profile`, with weights generated
    /// from `seed` (the CPU model's), uploaded to `backend`'s device on a new
    /// stream, with the default options.
    ///
    /// The pipeline's model span declares `gpu_ns` as its device-time field:
    /// a `backend` that records device time in another field
    /// ([`GpuConfig::device_time_field`](super::GpuConfig::device_time_field))
    /// is refused with [`GpuError::Invalid`], before any CUDA call.
    pub fn new(
        model: ModelId,
        profile: Profile,
        seed: u64,
        backend: &GpuBackend,
    ) -> Result<Self, GpuError> {
        Self::with_options(model, profile, seed, backend, GpuModelOptions::default())
    }

    /// As [`GpuModel::new`], with launch options.
    pub fn with_options(
        model: ModelId,
        profile: Profile,
        seed: u64,
        backend: &GpuBackend,
        options: GpuModelOptions,
    ) -> Result<Self, GpuError> {
        if options.block_size == 0 {
            return Err(GpuError::Invalid(
                "block_size must be at least 1 thread".into(),
            ));
        }
        check_field(backend.device_time_field())?;
        let shape = KernelShape::of(&model, &profile)?;
        let weights = Weights::generate(model, profile, seed);
        guard::catch("model upload", || {
            Self::upload(weights, shape, backend, options)
        })
    }

    fn upload(
        weights: Weights,
        shape: KernelShape,
        backend: &GpuBackend,
        options: GpuModelOptions,
    ) -> Result<Self, GpuError> {
        let ctx = backend.context();
        let stream = ctx
            .new_stream()
            .map_err(GpuError::driver("stream create"))?;
        let upload = GpuError::driver("weight upload");
        let table = stream.clone_htod(&weights.table).map_err(upload)?;
        let mut packed = Vec::with_capacity(
            weights
                .layers
                .iter()
                .map(|l| l.weight.len() + l.bias.len())
                .sum(),
        );
        for layer in &weights.layers {
            packed.extend_from_slice(&layer.weight);
            packed.extend_from_slice(&layer.bias);
        }
        let params = stream
            .clone_htod(&packed)
            .map_err(GpuError::driver("weight upload"))?;
        let p = &weights.profile;
        let work = Workspace::new(ctx, &stream, p.max_tokens, p.out, p.out, options.probe)?;
        // Surface a failed upload here, not in the first request.
        stream
            .synchronize()
            .map_err(GpuError::driver("weight upload"))?;
        Ok(Self {
            shared: Arc::new(Shared {
                weights,
                shape,
                options,
                backend: backend.clone(),
                stream,
                table,
                params,
                work: Arc::new(tokio::sync::Mutex::new(work)),
                probes: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Its weights (the CPU model's, for comparing outputs).
    pub fn weights(&self) -> &Weights {
        &self.shared.weights
    }

    /// Its options.
    pub fn options(&self) -> GpuModelOptions {
        self.shared.options
    }

    /// Runs the forward pass on the device and waits for it: stages and
    /// uploads the tokens (at most `max_tokens` of them), launches the
    /// kernels between the timing marks, copies the embedding back, and
    /// returns once the resolver has read the marks. Blocks the calling
    /// thread and must not be called from async code (use the model through
    /// [`EmbeddingModel::embed`], which waits without blocking).
    pub fn forward(&self, tokens: &[u32]) -> Result<GpuOutput, GpuError> {
        let mut out = self.forward_batch(&[tokens])?;
        Ok(GpuOutput {
            vector: out.vectors.pop().unwrap_or_default(),
            device: out.device,
        })
    }

    /// The forward pass of several inputs in one call (see
    /// [`EmbeddingModel::embed_batch`]): one upload, two kernels per input
    /// between one pair of timing marks, one download. Output `i` is
    /// `forward(inputs[i])`'s vector; the device time is the whole batch's.
    /// Blocks the calling thread, as [`GpuModel::forward`] does.
    pub fn forward_batch<T: AsRef<[u32]>>(&self, inputs: &[T]) -> Result<GpuBatchOutput, GpuError> {
        let inputs = self.clip(inputs.iter().map(AsRef::as_ref));
        if inputs.iter().all(|t| t.is_empty()) {
            return Ok(self.nothing_to_run(inputs.len()));
        }
        let work = self.shared.work.clone().blocking_lock_owned();
        let span = tracing::Span::none();
        let queued = guard::catch("model forward pass", || {
            self.shared.enqueue(work, &inputs, &span)
        })?;
        let (work, phases) = queued.pending.wait()?;
        self.outputs(work, &inputs, phases)
    }

    /// As [`GpuModel::forward_batch`], waiting without blocking: the time
    /// waiting for the model's previous call, queueing, and waiting for the
    /// device are the child spans `gpu_queue`, `gpu_launch` and `gpu_wait`
    /// of the current span (at `TRACE`, so recorded at hdrtrace's `Verbose`
    /// level), the last with the upload, download and collection times. The
    /// device time is recorded on `span` (by the resolver, even if this
    /// future is dropped before the device is done).
    async fn run(
        &self,
        inputs: &[&[u32]],
        span: &tracing::Span,
    ) -> Result<GpuBatchOutput, GpuError> {
        if inputs.iter().all(|t| t.is_empty()) {
            return Ok(self.nothing_to_run(inputs.len()));
        }
        let work = self
            .shared
            .work
            .clone()
            .lock_owned()
            .instrument(tracing::trace_span!("gpu_queue"))
            .await;
        let queued = {
            let launch = tracing::trace_span!("gpu_launch", lock_ns = Empty);
            let _in = launch.enter();
            let queued = guard::catch("model forward pass", || {
                self.shared.enqueue(work, inputs, span)
            })?;
            launch.record("lock_ns", queued.lock_ns);
            queued
        };
        let wait = tracing::trace_span!(
            "gpu_wait",
            upload_ns = Empty,
            download_ns = Empty,
            collect_ns = Empty
        );
        let handed = Instant::now();
        let (work, phases) = queued.pending.instrument(wait.clone()).await?;
        let waited = handed.elapsed().as_nanos() as u64;
        wait.record("upload_ns", phases.upload_ns);
        wait.record("download_ns", phases.download_ns);
        // The rest of the wait: the stream busy before the call, the
        // resolver noticing the last mark, this task being woken.
        wait.record("collect_ns", waited.saturating_sub(phases.total_ns()));
        drop(wait);
        self.outputs(work, inputs, phases)
    }

    /// A finished call's outputs, read from the buffers it got back.
    fn outputs(
        &self,
        work: Held,
        inputs: &[&[u32]],
        phases: DevicePhases,
    ) -> Result<GpuBatchOutput, GpuError> {
        let Some(work) = work else {
            return Err(GpuError::Panicked(
                "a model call came back without its buffers".into(),
            ));
        };
        let vectors = guard::catch("model output", || {
            self.shared.collect(&work, inputs, phases)
        })?;
        Ok(GpuBatchOutput {
            vectors,
            device: Some(phases),
        })
    }

    /// Each input cut to the model's `max_tokens`.
    fn clip<'a>(&self, inputs: impl IntoIterator<Item = &'a [u32]>) -> Vec<&'a [u32]> {
        let max = self.shared.weights.profile.max_tokens;
        inputs.into_iter().map(|t| &t[..t.len().min(max)]).collect()
    }

    /// Every input empty: as the CPU model, zero vectors and no kernel.
    fn nothing_to_run(&self, inputs: usize) -> GpuBatchOutput {
        GpuBatchOutput {
            vectors: vec![vec![0.0; self.shared.weights.profile.out]; inputs],
            device: None,
        }
    }

    /// A GPU failure as this model's error.
    fn failed(&self, e: GpuError) -> Error {
        Error::Model {
            model: self.model_id().clone(),
            reason: format!("on the GPU: {e}").into(),
        }
    }

    /// Takes the probes recorded so far (empty unless
    /// [`GpuModelOptions::probe`]), oldest first.
    pub fn take_probes(&self) -> Vec<KernelProbe> {
        std::mem::take(
            &mut *self
                .shared
                .probes
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

/// Whether a backend recording device time in `field` can run the
/// pipeline's models: their model span declares [`DEVICE_TIME_FIELD`] only,
/// so the resolver could record another field nowhere (each call counted in
/// `ResolverStats::undeclared`), and the batcher records that one.
fn check_field(field: &str) -> Result<(), GpuError> {
    if field == DEVICE_TIME_FIELD {
        return Ok(());
    }
    Err(GpuError::Invalid(
        format!(
            "the backend records device time in `{field}`, but the pipeline's model spans \
             declare `{DEVICE_TIME_FIELD}` only: open the backend with device_time_field \
             `{DEVICE_TIME_FIELD}` to run the pipeline's GPU models (time your own spans with \
             GpuBackend::timed)"
        )
        .into(),
    ))
}

/// All twelve reference models on `backend`'s device, each on its own
/// stream, with weights from `seed` (the same as the CPU models'). Refused,
/// as [`GpuModel::new`] is, for a backend whose device-time field is not
/// `gpu_ns`.
pub fn gpu_reference_models(
    seed: u64,
    backend: &GpuBackend,
) -> Result<Vec<Arc<dyn EmbeddingModel>>, GpuError> {
    REFERENCE_MODELS
        .iter()
        .map(|m| {
            let model = GpuModel::new(m.id(), m.profile, seed, backend)?;
            Ok(Arc::new(model) as Arc<dyn EmbeddingModel>)
        })
        .collect()
}

impl EmbeddingModel for GpuModel {
    fn model_id(&self) -> &ModelId {
        &self.shared.weights.model
    }

    /// One device call for the whole batch; its device time is the batch's,
    /// recorded by the batcher on the model span of every request it served.
    fn embed_batch<'a>(&'a self, inputs: &'a [PreparedInput]) -> BatchFuture<'a> {
        Box::pin(async move {
            let model_id = self.model_id();
            let out = self
                .run(
                    &self.clip(inputs.iter().map(PreparedInput::tokens)),
                    &tracing::Span::none(),
                )
                .await
                .map_err(|e| self.failed(e))?;
            Ok(BatchEmbeddings {
                embeddings: out
                    .vectors
                    .into_iter()
                    .map(|vector| ModelEmbedding {
                        model_id: model_id.clone(),
                        vector,
                    })
                    .collect(),
                device_ns: out.device.map(|d| d.device_ns),
            })
        })
    }

    /// One device call; the caller's task waits for it without blocking a
    /// thread, and its device time is recorded on the model span (the
    /// current span).
    fn embed<'a>(&'a self, input: &'a PreparedInput) -> ModelFuture<'a> {
        Box::pin(async move {
            let mut out = self
                .run(&self.clip([input.tokens()]), &tracing::Span::current())
                .await
                .map_err(|e| self.failed(e))?;
            Ok(ModelEmbedding {
                model_id: self.model_id().clone(),
                vector: out.vectors.pop().unwrap_or_default(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_model_spans_field_can_run_the_pipelines_models() {
        assert!(check_field("gpu_ns").is_ok());
        let err = check_field("device_ns").unwrap_err();
        assert!(matches!(err, GpuError::Invalid(_)), "{err:?}");
        let says = err.to_string();
        assert!(says.contains("`device_ns`"), "{says}");
        assert!(says.contains("`gpu_ns`"), "{says}");
    }
}
