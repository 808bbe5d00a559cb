//! What timing one kernel on the device costs its caller (feature `cuda`):
//! an empty kernel launched and its output waited for, bare and timed
//! through `GpuBackend::timed` (two marks on the stream, the call handed to
//! the resolver thread, the device time recorded on a model span under our
//! subscriber when the resolver reads it). The caller's cost is the
//! difference between `bare` and `timed`; the goal is at most 5 us.
//! `timed_and_read` also waits for the resolver's answer (what a caller that
//! needs the time itself pays). Without a GPU it prints why it skipped and
//! measures nothing.
//!
//! `cargo bench --features cuda --bench gpu`

use criterion::Criterion;
use hdrtrace::TracingConfig;
use hdrtrace_pipeline::gpu::GpuBackend;

fn bench(c: &mut Criterion, gpu: &GpuBackend) {
    let stream = gpu.context().new_stream().expect("a CUDA stream");
    let (subscriber, _guard) = hdrtrace::build(&TracingConfig::default()).expect("subscriber");
    tracing::subscriber::with_default(subscriber, || {
        let request = tracing::info_span!("embed_pipeline", request_id = 1u64);
        let model = tracing::debug_span!(
            parent: &request,
            "model",
            model_id = "Semantic",
            input_tokens = 1u64,
            gpu_ns = tracing::field::Empty
        );
        let mut group = c.benchmark_group("gpu_kernel");
        group.bench_function("bare", |b| {
            b.iter(|| {
                gpu.launch_empty(&stream).expect("launch");
                stream.synchronize().expect("synchronize");
            })
        });
        group.bench_function("timed", |b| {
            b.iter(|| {
                let time = gpu
                    .timed(&stream, &model, |s| gpu.launch_empty(s))
                    .expect("timed launch");
                stream.synchronize().expect("synchronize");
                // Recorded on the span when the resolver reads it.
                drop(time);
            })
        });
        group.bench_function("timed_and_read", |b| {
            b.iter(|| {
                gpu.timed(&stream, &model, |s| gpu.launch_empty(s))
                    .expect("timed launch")
                    .wait()
                    .expect("device time")
            })
        });
        group.finish();
    });
    let stats = gpu.resolver_stats();
    println!("resolver: {stats:?}");
}

fn main() {
    let gpu = match GpuBackend::try_new() {
        Ok(gpu) => gpu,
        Err(e) => {
            println!("SKIPPED: {e}: the GPU benchmark measured nothing");
            return;
        }
    };
    println!("device: {}", gpu.device_name());
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &gpu);
    c.final_summary();
}
