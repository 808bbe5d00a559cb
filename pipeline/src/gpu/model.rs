//! [`GpuModel`]: a reference model whose forward pass runs as CUDA kernels on
//! its own stream, timed on the device.

use super::device::GpuBackend;
use super::error::GpuError;
use super::guard;
use super::kernels::KernelShape;
use super::timer::{record_gpu_ns, DeviceTimer};
use crate::error::{EmbeddingResult, Error};
use crate::model::{
    BatchEmbeddings, BatchFuture, EmbeddingModel, ModelEmbedding, ModelFuture, ModelId,
    PreparedInput,
};
use crate::reference::{Pooling, Profile, Weights, REFERENCE_MODELS};
use cudarc::driver::{CudaSlice, CudaStream, LaunchConfig, PushKernelArg};
use std::sync::{Arc, Mutex, PoisonError};

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
    /// The device time the model recorded as `gpu_ns` for this call.
    pub gpu_ns: u64,
    /// A second pair of events recorded just outside the model's own, around
    /// the same launches: the kernels' stream time, measured directly.
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
    /// Device time between the events around the kernels; `None` when no
    /// kernel ran (an empty input).
    pub gpu_ns: Option<u64>,
}

/// One batched call's result on the device.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuBatchOutput {
    /// One embedding per input, in input order.
    pub vectors: Vec<Vec<f32>>,
    /// Device time of the whole batch; `None` when no kernel ran (every
    /// input empty).
    pub gpu_ns: Option<u64>,
}

/// A reference model on the GPU: the weights of [`Weights::generate`]
/// uploaded once, two kernels per call on the model's own stream, and CUDA
/// events around them whose elapsed time becomes the model span's `gpu_ns`.
///
/// Calls to one model run one at a time (its stream and scratch buffers are
/// its own); different models run concurrently on their own streams.
#[derive(Clone)]
pub struct GpuModel {
    shared: Arc<Shared>,
}

struct Shared {
    weights: Weights,
    shape: KernelShape,
    options: GpuModelOptions,
    backend: GpuBackend,
    stream: Arc<CudaStream>,
    table: CudaSlice<f32>,
    params: CudaSlice<f32>,
    work: Mutex<Workspace>,
    probes: Mutex<Vec<KernelProbe>>,
}

/// Per-call device buffers and events, reused call after call.
struct Workspace {
    tokens: CudaSlice<u32>,
    rows_out: CudaSlice<f32>,
    out: CudaSlice<f32>,
    timer: DeviceTimer,
    probe: Option<[DeviceTimer; 3]>,
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
        let alloc = GpuError::driver("buffer allocation");
        let work = Workspace {
            tokens: stream.alloc_zeros::<u32>(p.max_tokens).map_err(alloc)?,
            rows_out: stream
                .alloc_zeros::<f32>(p.max_tokens * p.out)
                .map_err(GpuError::driver("buffer allocation"))?,
            out: stream
                .alloc_zeros::<f32>(p.out)
                .map_err(GpuError::driver("buffer allocation"))?,
            timer: DeviceTimer::new(ctx)?,
            probe: if options.probe {
                Some([
                    DeviceTimer::new(ctx)?,
                    DeviceTimer::new(ctx)?,
                    DeviceTimer::new(ctx)?,
                ])
            } else {
                None
            },
        };
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
                work: Mutex::new(work),
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

    /// Runs the forward pass on the device and waits for it: uploads the
    /// tokens (at most `max_tokens` of them), launches the kernels between the
    /// timing events, copies the embedding back, then reads the device time.
    /// Blocks the calling thread: from async code, call it in
    /// `tokio::task::spawn_blocking` (as the pipeline's `embed` does).
    pub fn forward(&self, tokens: &[u32]) -> Result<GpuOutput, GpuError> {
        let mut out = self.forward_batch(&[tokens])?;
        Ok(GpuOutput {
            vector: out.vectors.pop().unwrap_or_default(),
            gpu_ns: out.gpu_ns,
        })
    }

    /// The forward pass of several inputs in one call (see
    /// [`EmbeddingModel::embed_batch`]): one upload, two kernels per input
    /// between one pair of timing events, one download. Output `i` is
    /// `forward(inputs[i])`'s vector; the device time is the whole batch's.
    /// Blocks the calling thread, as [`GpuModel::forward`] does.
    pub fn forward_batch<T: AsRef<[u32]>>(&self, inputs: &[T]) -> Result<GpuBatchOutput, GpuError> {
        guard::catch("model forward pass", || self.shared.forward_batch(inputs))
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

impl Shared {
    /// The forward pass of a batch: one token upload, the row kernel for
    /// every input then the pool kernel for every input, all between one pair
    /// of timing events on the model's stream, one download, one
    /// synchronisation. The fixed part (lock, events, upload, download,
    /// synchronisation) is paid once per call; each input adds its two
    /// kernel launches and its rows of work.
    fn forward_batch<T: AsRef<[u32]>>(&self, inputs: &[T]) -> Result<GpuBatchOutput, GpuError> {
        let p = &self.weights.profile;
        let inputs: Vec<&[u32]> = inputs
            .iter()
            .map(|t| {
                let t = t.as_ref();
                &t[..t.len().min(p.max_tokens)]
            })
            .collect();
        let total: usize = inputs.iter().map(|t| t.len()).sum();
        let mut vectors = vec![vec![0.0f32; p.out]; inputs.len()];
        if total == 0 {
            // As the CPU model: nothing to pool, zero vectors, no kernel.
            return Ok(GpuBatchOutput {
                vectors,
                gpu_ns: None,
            });
        }
        // A panic while holding the lock leaves nothing half-updated that a
        // later call relies on (it rewrites every buffer it reads, and a
        // buffer it grows is replaced whole).
        let mut guard = self.work.lock().unwrap_or_else(PoisonError::into_inner);
        let work = &mut *guard;
        let stream = &self.stream;
        work.reserve(stream, total, inputs.len() * p.out, p.out)?;
        let packed: Vec<u32> = inputs.concat();
        stream
            .memcpy_htod(&packed, &mut work.tokens.slice_mut(..total))
            .map_err(GpuError::driver("token upload"))?;

        let width = p.out as i32;
        let pool_max = i32::from(p.pooling == Pooling::Max);
        let top_k = p.top_k.map_or(-1, |k| i32::try_from(k).unwrap_or(i32::MAX));
        let bs = self.options.block_size;
        let pool_cfg = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: ((p.out as u32).next_multiple_of(32), 1, 1),
            shared_mem_bytes: 0,
        };

        let queueing = self.backend.queueing();
        if let Some([outer, _, _]) = &work.probe {
            outer.start(stream)?;
        }
        work.timer.start(stream)?;
        if let Some([_, k1, _]) = &work.probe {
            k1.start(stream)?;
        }
        let mut first = 0;
        for tokens in &inputs {
            let rows = tokens.len();
            if rows > 0 {
                let rows_i32 = rows as i32; // rows <= max_tokens, far below i32::MAX
                let rows_cfg = LaunchConfig {
                    grid_dim: ((rows as u32).div_ceil(bs), 1, 1),
                    block_dim: (bs, 1, 1),
                    shared_mem_bytes: 0,
                };
                let own_tokens = work.tokens.slice(first..first + rows);
                let mut own_rows = work
                    .rows_out
                    .slice_mut(first * p.out..(first + rows) * p.out);
                let mut rows_launch = stream.launch_builder(self.backend.rows_kernel());
                rows_launch
                    .arg(&own_tokens)
                    .arg(&rows_i32)
                    .arg(&self.table)
                    .arg(&self.params)
                    .arg(&self.shape)
                    .arg(&mut own_rows);
                // SAFETY: the arguments match `embed_rows` in kernels.cu in
                // order and type (u32*, int, float*, float*, ModelShape by
                // value, float*). The kernel reads this input's `rows` tokens
                // (its part of the upload above: `tokens` holds `total`),
                // table rows below `buckets` (the hash is taken modulo
                // `buckets`, and the table is buckets x dim), the packed
                // layers whose widths `shape` gives (uploaded from the same
                // weights), and writes rows x out floats into its own part of
                // `rows_out` (which holds total x out).
                unsafe { rows_launch.launch(rows_cfg) }
                    .map_err(GpuError::driver("kernel launch"))?;
            }
            first += rows;
        }
        if let Some([_, k1, k2]) = &work.probe {
            k1.stop(stream)?;
            k2.start(stream)?;
        }
        let mut first = 0;
        for (i, tokens) in inputs.iter().enumerate() {
            let rows = tokens.len();
            if rows > 0 {
                let rows_i32 = rows as i32;
                let own_rows = work.rows_out.slice(first * p.out..(first + rows) * p.out);
                let mut own_out = work.out.slice_mut(i * p.out..(i + 1) * p.out);
                let mut pool_launch = stream.launch_builder(self.backend.pool_kernel());
                pool_launch
                    .arg(&own_rows)
                    .arg(&rows_i32)
                    .arg(&width)
                    .arg(&pool_max)
                    .arg(&top_k)
                    .arg(&mut own_out);
                // SAFETY: the arguments match `pool_finish` (float*, int,
                // int, int, int, float*); it reads this input's rows x out
                // floats of `rows_out`, written by its row kernel before it
                // on the same stream, and writes `out` floats into this
                // input's part of `out` (which holds inputs x out); the block
                // has at least `out` threads and `out` <= MAX_WIDTH (checked
                // by `KernelShape::of`).
                unsafe { pool_launch.launch(pool_cfg) }
                    .map_err(GpuError::driver("kernel launch"))?;
            }
            first += rows;
        }
        if let Some([_, _, k2]) = &work.probe {
            k2.stop(stream)?;
        }
        work.timer.stop(stream)?;
        if let Some([outer, _, _]) = &work.probe {
            outer.stop(stream)?;
        }
        drop(queueing);

        let mut host = vec![0.0f32; inputs.len() * p.out];
        stream
            .memcpy_dtoh(&work.out.slice(..host.len()), &mut host)
            .map_err(GpuError::driver("result download"))?;
        stream
            .synchronize()
            .map_err(GpuError::driver("stream synchronize"))?;
        let gpu_ns = work.timer.wait_elapsed_ns()?;
        if let Some([outer, k1, k2]) = &work.probe {
            let probe = KernelProbe {
                gpu_ns,
                outer_ns: outer.wait_elapsed_ns()?,
                kernels_ns: [k1.wait_elapsed_ns()?, k2.wait_elapsed_ns()?],
            };
            self.probes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(probe);
        }
        // Empty inputs ran no kernel: their slot keeps the zero vector.
        for ((v, tokens), out) in vectors.iter_mut().zip(&inputs).zip(host.chunks(p.out)) {
            if !tokens.is_empty() {
                v.copy_from_slice(out);
            }
        }
        Ok(GpuBatchOutput {
            vectors,
            gpu_ns: Some(gpu_ns),
        })
    }
}

impl Workspace {
    /// Grows the buffers to hold `tokens` tokens, their rows (`out` wide) and
    /// `outputs` output floats; a buffer already large enough is kept.
    fn reserve(
        &mut self,
        stream: &Arc<CudaStream>,
        tokens: usize,
        outputs: usize,
        out: usize,
    ) -> Result<(), GpuError> {
        let alloc = GpuError::driver("buffer allocation");
        if self.tokens.len() < tokens {
            self.tokens = stream.alloc_zeros::<u32>(tokens).map_err(alloc)?;
        }
        if self.rows_out.len() < tokens * out {
            self.rows_out = stream
                .alloc_zeros::<f32>(tokens * out)
                .map_err(GpuError::driver("buffer allocation"))?;
        }
        if self.out.len() < outputs {
            self.out = stream
                .alloc_zeros::<f32>(outputs)
                .map_err(GpuError::driver("buffer allocation"))?;
        }
        Ok(())
    }
}

/// All twelve reference models on `backend`'s device, each on its own
/// stream, with weights from `seed` (the same as the CPU models').
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

impl GpuModel {
    /// Runs `work` on this model on tokio's blocking pool (waiting for the
    /// device counts as the current span's busy time), mapping its failure
    /// to the model's error.
    async fn on_device<R: Send + 'static>(
        &self,
        work: impl FnOnce(&GpuModel) -> Result<R, GpuError> + Send + 'static,
    ) -> EmbeddingResult<R> {
        let model = self.model_id();
        let me = self.clone();
        let span = tracing::Span::current();
        let done = tokio::task::spawn_blocking(move || span.in_scope(|| work(&me)));
        match done.await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => Err(Error::Model {
                model: model.clone(),
                reason: format!("on the GPU: {e}").into(),
            }),
            Err(e) => Err(Error::Model {
                model: model.clone(),
                reason: if e.is_panic() {
                    "its GPU computation panicked".into()
                } else {
                    "its GPU computation was cancelled".into()
                },
            }),
        }
    }
}

impl EmbeddingModel for GpuModel {
    fn model_id(&self) -> &ModelId {
        &self.shared.weights.model
    }

    /// One device call for the whole batch ([`GpuModel::forward_batch`]); its
    /// device time is the batch's, recorded by the batcher on the model span
    /// of every request it served.
    fn embed_batch<'a>(&'a self, inputs: &'a [PreparedInput]) -> BatchFuture<'a> {
        Box::pin(async move {
            let model_id = self.model_id();
            let tokens: Vec<Arc<[u32]>> = inputs.iter().map(PreparedInput::shared_tokens).collect();
            let out = self.on_device(move |me| me.forward_batch(&tokens)).await?;
            Ok(BatchEmbeddings {
                embeddings: out
                    .vectors
                    .into_iter()
                    .map(|vector| ModelEmbedding {
                        model_id: model_id.clone(),
                        vector,
                    })
                    .collect(),
                device_ns: out.gpu_ns,
            })
        })
    }

    fn embed<'a>(&'a self, input: &'a PreparedInput) -> ModelFuture<'a> {
        Box::pin(async move {
            let tokens = input.shared_tokens();
            // The blocking thread enters the model span (when this runs
            // instrumented, as the pipeline does), so waiting for the device
            // counts as the model's busy time, and records the device time
            // on it before the span can close.
            let vector = self
                .on_device(move |me| {
                    let out = me.forward(&tokens)?;
                    if let Some(ns) = out.gpu_ns {
                        record_gpu_ns(&tracing::Span::current(), ns);
                    }
                    Ok(out.vector)
                })
                .await?;
            Ok(ModelEmbedding {
                model_id: self.model_id().clone(),
                vector,
            })
        })
    }
}
