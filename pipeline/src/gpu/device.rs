//! [`GpuBackend`]: one CUDA device with the model kernels loaded.

use super::config::GpuConfig;
use super::error::GpuError;
use super::guard;
use super::kernels::{compile_kernels, KernelShape, EMPTY_KERNEL, POOL_KERNEL, ROWS_KERNEL};
use super::marks::{Mark, MarkPool};
use super::resolver::{Resolver, ResolverStats};
use super::timed::DeviceTime;
use super::workspace::Held;
use cudarc::driver::{CudaContext, CudaFunction, CudaStream, LaunchConfig, PushKernelArg};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A CUDA device with the model kernels compiled (NVRTC) and loaded. Cheap to
/// clone; every model made from it shares the context and the kernels, and
/// gets its own stream.
#[derive(Clone)]
pub struct GpuBackend {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Arc<CudaContext>,
    rows: CudaFunction,
    pool: CudaFunction,
    empty: CudaFunction,
    name: String,
    capability: (i32, i32),
    /// Held while a model queues its timed region (see [`GpuBackend::queueing`]).
    queue: Mutex<()>,
    /// Reads the calls' timing marks off their callers' threads.
    resolver: Resolver<MarkPool, Held>,
}

impl fmt::Debug for GpuBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuBackend")
            .field("device", &self.inner.name)
            .field("ordinal", &self.inner.ctx.ordinal())
            .field("compute_capability", &self.inner.capability)
            .finish()
    }
}

impl GpuBackend {
    /// The first CUDA device, or why there is none.
    ///
    /// Checks, in order and before any other CUDA call, that the driver
    /// library loads ([`GpuError::NoDriver`]), that NVRTC loads
    /// ([`GpuError::NoNvrtc`]) and that the driver sees a device
    /// ([`GpuError::NoDevice`]); then compiles and loads the kernels. Never
    /// panics: a panic inside the CUDA bindings becomes [`GpuError::Panicked`].
    pub fn try_new() -> Result<Self, GpuError> {
        Self::try_with_device(0)
    }

    /// The CUDA device with this ordinal (see [`GpuBackend::try_new`]).
    pub fn try_with_device(ordinal: usize) -> Result<Self, GpuError> {
        Self::try_with(&GpuConfig {
            device: ordinal,
            ..GpuConfig::default()
        })
    }

    /// The device, device-time field and polling `config` names (see
    /// [`GpuBackend::try_new`]); a config that cannot work
    /// ([`GpuConfig::validate`]) is refused before any CUDA call.
    pub fn try_with(config: &GpuConfig) -> Result<Self, GpuError> {
        config.validate()?;
        guard::require_driver()?;
        guard::require_nvrtc()?;
        guard::catch("CUDA initialisation", || Self::open(config))
    }

    fn open(config: &GpuConfig) -> Result<Self, GpuError> {
        let ordinal = config.device;
        cudarc::driver::result::init().map_err(|e| {
            GpuError::NoDevice(format!("the CUDA driver did not initialise: {e}").into())
        })?;
        let count = CudaContext::device_count()
            .map_err(|e| GpuError::NoDevice(format!("cannot count CUDA devices: {e}").into()))?;
        let count = usize::try_from(count).unwrap_or(0);
        if ordinal >= count {
            return Err(GpuError::NoDevice(
                if count == 0 {
                    "the CUDA driver sees no device".to_string()
                } else {
                    format!("device {ordinal} asked for, the driver sees {count}")
                }
                .into(),
            ));
        }
        let ctx = CudaContext::new(ordinal).map_err(GpuError::driver("context create"))?;
        // SAFETY: every device buffer the models allocate through this context
        // is allocated on, used on and freed on its own model's stream only
        // (see `GpuModel`), so stream order alone keeps each use after its
        // allocation and before its free, and no buffer is written by two
        // streams: cudarc's cross-stream event tracking has nothing to add but
        // extra event records inside the timed region.
        unsafe { ctx.disable_event_tracking() };
        let name = ctx.name().map_err(GpuError::driver("device name"))?;
        let capability = ctx
            .compute_capability()
            .map_err(GpuError::driver("compute capability"))?;
        let ptx = compile_kernels()?;
        let module = ctx.load_module(ptx).map_err(GpuError::driver(
            "module load (the driver may be older than NVRTC's PTX version)",
        ))?;
        let rows = module
            .load_function(ROWS_KERNEL)
            .map_err(GpuError::driver("kernel lookup"))?;
        let pool = module
            .load_function(POOL_KERNEL)
            .map_err(GpuError::driver("kernel lookup"))?;
        let empty = module
            .load_function(EMPTY_KERNEL)
            .map_err(GpuError::driver("kernel lookup"))?;
        warm_up(&ctx, &rows, &pool, &empty)?;
        let resolver = Resolver::start(
            MarkPool::new(ctx.clone()),
            config.device_time_field.as_str().into(),
            config.resolver,
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                ctx,
                rows,
                pool,
                empty,
                name,
                capability,
                queue: Mutex::new(()),
                resolver,
            }),
        })
    }

    /// The device's name, as the driver reports it.
    pub fn device_name(&self) -> &str {
        &self.inner.name
    }

    /// The device's compute capability (major, minor).
    pub fn compute_capability(&self) -> (i32, i32) {
        self.inner.capability
    }

    /// The CUDA context (for launching your own work beside the models, as
    /// the GPU benchmark does). Its cross-stream event tracking is off: keep
    /// each buffer you allocate on the one stream that allocated it.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.inner.ctx
    }

    /// Launches a kernel that does nothing (one thread) on `stream`: what a
    /// launch costs, for measuring the timing overhead beside it.
    pub fn launch_empty(&self, stream: &CudaStream) -> Result<(), GpuError> {
        let cfg = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (1, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut launch = stream.launch_builder(&self.inner.empty);
        // SAFETY: `empty_kernel` takes no arguments and touches no memory.
        unsafe { launch.launch(cfg) }
            .map(drop)
            .map_err(GpuError::driver("kernel launch"))
    }

    /// Times work you queue on `stream` yourself: `launch` queues it between
    /// two timing marks, and the answer is its device time, resolved by the
    /// backend's resolver thread (no thread waits for the device to read
    /// it). Await or [`wait`](DeviceTime::wait) the answer to read the time,
    /// or drop it: either way it is recorded on `span` in the configured
    /// device-time field ([`GpuConfig::device_time_field`]), which `span` must
    /// declare.
    ///
    /// ```no_run
    /// # use hdrtrace_pipeline::gpu::GpuBackend;
    /// let gpu = GpuBackend::try_new()?;
    /// let stream = gpu.context().new_stream().unwrap();
    /// let span = tracing::debug_span!("model", model_id = "Mine", gpu_ns = tracing::field::Empty);
    /// let time = gpu.timed(&stream, &span, |s| gpu.launch_empty(s))?;
    /// stream.synchronize().unwrap(); // wait for the output only
    /// drop(time); // recorded on `span` when the resolver reads it
    /// # Ok::<(), hdrtrace_pipeline::gpu::GpuError>(())
    /// ```
    pub fn timed(
        &self,
        stream: &CudaStream,
        span: &tracing::Span,
        launch: impl FnOnce(&CudaStream) -> Result<(), GpuError>,
    ) -> Result<DeviceTime, GpuError> {
        guard::catch("timed launch", || {
            let mut marks = self.inner.resolver.source().take()?;
            marks.record(Mark::Launch, stream)?;
            launch(stream)?;
            marks.record(Mark::Done, stream)?;
            Ok(DeviceTime {
                pending: self.inner.resolver.submit(marks, None, span.clone()),
            })
        })
    }

    /// What became of the calls timed on this device so far.
    pub fn resolver_stats(&self) -> ResolverStats {
        self.inner.resolver.stats()
    }

    /// The span field device time is recorded in.
    pub fn device_time_field(&self) -> &str {
        self.inner.resolver.field()
    }

    pub(crate) fn resolver(&self) -> &Resolver<MarkPool, Held> {
        &self.inner.resolver
    }

    /// Serialises the queueing of the models' calls (marks, copies, kernels:
    /// host calls that return at once, nothing that waits for the device). A
    /// mark fires when its stream reaches it, on an idle device as soon as it
    /// is queued, so a thread stalled between two of its marks (twelve
    /// models' threads contending for the driver) would have the stall timed
    /// as device work.
    pub(crate) fn queueing(&self) -> MutexGuard<'_, ()> {
        self.inner
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn rows_kernel(&self) -> &CudaFunction {
        &self.inner.rows
    }

    pub(crate) fn pool_kernel(&self) -> &CudaFunction {
        &self.inner.pool
    }
}

/// Launches each kernel once, with no rows and no width (every thread returns
/// before touching memory), and waits for them.
///
/// Since CUDA 12.2 the driver loads a kernel lazily, at its first launch, and
/// that load may synchronise the whole context. Without this, a model's first
/// call would pay for the load between its timing events (and wait for every
/// other model's work), and its `gpu_ns` would say so.
fn warm_up(
    ctx: &Arc<CudaContext>,
    rows: &CudaFunction,
    pool: &CudaFunction,
    empty: &CudaFunction,
) -> Result<(), GpuError> {
    let stream = ctx
        .new_stream()
        .map_err(GpuError::driver("stream create"))?;
    let warm = || GpuError::driver("kernel warm-up launch");
    let one = LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (32, 1, 1),
        shared_mem_bytes: 0,
    };
    let null: u64 = 0;
    let zero: i32 = 0;
    let shape = KernelShape {
        buckets: 1,
        n_layers: 0,
        attention: 0,
        window: 0,
        widths: [0; super::kernels::MAX_LAYERS + 1],
    };
    let mut launch = stream.launch_builder(rows);
    launch
        .arg(&null)
        .arg(&zero)
        .arg(&null)
        .arg(&null)
        .arg(&shape)
        .arg(&null);
    // SAFETY: the arguments match `embed_rows` (u32*, int, float*, float*,
    // ModelShape, float*); with `rows` 0 every thread returns at its first
    // line, so the null pointers are never dereferenced.
    unsafe { launch.launch(one) }.map_err(warm())?;
    let mut launch = stream.launch_builder(pool);
    launch
        .arg(&null)
        .arg(&zero)
        .arg(&zero)
        .arg(&zero)
        .arg(&zero)
        .arg(&null);
    // SAFETY: the arguments match `pool_finish` (float*, int, int, int, int,
    // float*); with `rows` and `width` 0 it reads and writes only its shared
    // memory (every global access is guarded by `c < width` or `r < rows`).
    unsafe { launch.launch(one) }.map_err(warm())?;
    let mut launch = stream.launch_builder(empty);
    // SAFETY: `empty_kernel` takes no arguments and touches no memory.
    unsafe { launch.launch(one) }.map_err(warm())?;
    stream
        .synchronize()
        .map_err(GpuError::driver("kernel warm-up"))
}
