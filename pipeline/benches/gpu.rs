//! What wrapping one kernel in device timing costs (feature `cuda`): an empty
//! kernel launched and waited for, bare and wrapped (two timing events on the
//! stream, the elapsed time read back, and `gpu_ns` recorded on a model span
//! under our subscriber). The cost is the difference; the goal is at most
//! 5 us. Without a GPU it prints why it skipped and measures nothing.
//!
//! `cargo bench --features cuda --bench gpu`

use criterion::Criterion;
use hdrtrace::TracingConfig;
use hdrtrace_pipeline::gpu::{record_gpu_ns, DeviceTimer, GpuBackend};
use std::hint::black_box;

fn bench(c: &mut Criterion, gpu: &GpuBackend) {
    let stream = gpu.context().new_stream().expect("a CUDA stream");
    let timer = DeviceTimer::new(gpu.context()).expect("CUDA events");
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
        group.bench_function("wrapped", |b| {
            b.iter(|| {
                timer.start(&stream).expect("start event");
                gpu.launch_empty(&stream).expect("launch");
                timer.stop(&stream).expect("stop event");
                let ns = timer.wait_elapsed_ns().expect("elapsed");
                record_gpu_ns(&model, black_box(ns));
            })
        });
        group.bench_function("events_and_record_only", |b| {
            b.iter(|| {
                timer.start(&stream).expect("start event");
                timer.stop(&stream).expect("stop event");
                let ns = timer.wait_elapsed_ns().expect("elapsed");
                record_gpu_ns(&model, black_box(ns));
            })
        });
        group.finish();
    });
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
