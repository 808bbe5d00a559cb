//! The `cuda` feature. Without a GPU (CI): the backend explains why it is
//! unavailable without panicking, refuses a config that cannot work, `auto`
//! falls back to the CPU and the pipeline runs, a model span's `gpu_ns`
//! reaches that model's GPU histogram, the kernels compile with NVRTC (when
//! NVRTC is installed) and, run on the CPU under a small emulator, reproduce
//! the CPU models. With a GPU (detected at run time; otherwise these print
//! `SKIPPED: ...` and return): GPU and CPU outputs agree, the recorded device
//! time matches the kernels' own events for every model, the captured tree
//! splits each call into host and device time, a call whose caller left is
//! recorded late, and a failing kernel becomes the model's error. The
//! resolver's own logic is tested against a fake device in the crate
//! (`src/gpu/resolver/tests.rs`).
#![cfg(feature = "cuda")]

mod pipeline_support;

/// The demo's `--backend` choice, with its fallback to the CPU.
#[path = "../examples/pipeline/backend.rs"]
mod backend;

use backend::Backend;
use hdrtrace::{Conventions, TracingConfig, TracingGuard, TracingLevel};
use hdrtrace_pipeline::gpu::{
    compile_kernels, driver_present, gpu_reference_models, nvrtc_present, GpuBackend, GpuConfig,
    GpuError, GpuModel, GpuModelOptions, ResolverOptions, KERNEL_SOURCE,
};
use hdrtrace_pipeline::reference::{
    self, Attention, ComputePool, Pooling, Weights, REFERENCE_MODELS,
};
use hdrtrace_pipeline::Error;
use hdrtrace_pipeline::{
    EmbeddingModel, EmbeddingPipeline, ModelEmbedding, ModelFuture, ModelId, PreparedInput,
    Tokenizer,
};
use pipeline_support::{position, wait_for, Keep};
use std::future::Future;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

const SEED: u64 = 42;

/// The backend, or `None` after printing why the test is skipped. CUDA that
/// is present but fails is a test failure, not a skip.
fn gpu_or_skip(test: &str) -> Option<GpuBackend> {
    match GpuBackend::try_new() {
        Ok(gpu) => Some(gpu),
        Err(e) if e.is_unavailable() => {
            println!("SKIPPED: {e} [{test}]");
            None
        }
        Err(e) => panic!("CUDA is installed but the backend failed: {e}"),
    }
}

/// A current-thread runtime: the model tasks run on the thread that has the
/// test's subscriber as its default (the models read `Span::current()`);
/// they wait for the device without blocking it.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Our subscriber at `level`, every request sampled, each captured request
/// also kept in `keep` when given; not installed: the dispatcher to run
/// under, and the subscriber's guard.
fn sampled(level: TracingLevel, keep: Option<&Keep>) -> (tracing::Dispatch, TracingGuard) {
    let config = TracingConfig {
        level,
        sampling_rate: 1.0,
        ..TracingConfig::default()
    };
    let mut builder = hdrtrace::Builder::new(&config);
    if let Some(keep) = keep {
        builder = builder.sink(keep.clone());
    }
    let (subscriber, guard) = builder.build().unwrap();
    (tracing::Dispatch::new(subscriber), guard)
}

/// A pipeline of `models` and our subscriber at the default level
/// ([`sampled`]): the dispatcher to run it under, and the subscriber's guard.
fn traced(
    models: Vec<Arc<dyn EmbeddingModel>>,
) -> (EmbeddingPipeline, tracing::Dispatch, TracingGuard) {
    let (dispatch, guard) = sampled(TracingLevel::default(), None);
    (EmbeddingPipeline::new(models).unwrap(), dispatch, guard)
}

/// Runs `requests` through `models` one at a time under our subscriber (all
/// requests sampled), and returns the flushed guard.
fn run_pipeline(models: Vec<Arc<dyn EmbeddingModel>>, texts: &[String]) -> TracingGuard {
    let (pipeline, dispatch, guard) = traced(models);
    let rt = runtime();
    for text in texts {
        let fused =
            tracing::dispatcher::with_default(&dispatch, || rt.block_on(pipeline.embed(text)))
                .unwrap();
        assert_eq!(fused.models.len(), 12, "{:?}", fused.models);
    }
    guard.flush();
    guard
}

/// Several lengths, up to past every model's token limit.
fn texts() -> Vec<String> {
    vec![
        "The quick brown fox jumps over the lazy dog.".to_string(),
        "x".to_string(),
        "fn main() { println!(\"hello\"); } // code and prose ".repeat(60),
        (0..5000).map(|i| format!("w{} ", i % 977)).collect(),
    ]
}

fn relative_error(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (g, w) in got.iter().zip(want) {
        num += (f64::from(*g) - f64::from(*w)).powi(2);
        den += f64::from(*w).powi(2);
    }
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

// ---------------------------------------------------------------- no GPU needed

#[test]
fn try_new_explains_why_cuda_is_unavailable_without_panicking() {
    let result = std::panic::catch_unwind(GpuBackend::try_new)
        .expect("GpuBackend::try_new must return an error, never panic");
    match result {
        Ok(gpu) => {
            assert!(driver_present() && nvrtc_present());
            assert!(!gpu.device_name().is_empty());
            println!("CUDA device found: {gpu:?}");
        }
        Err(e) => {
            let msg = e.to_string();
            if !driver_present() {
                assert!(matches!(e, GpuError::NoDriver), "{e:?}");
                assert!(msg.starts_with("no CUDA driver ("), "{msg}");
                assert!(msg.contains("libcuda"), "{msg}");
            } else if !nvrtc_present() {
                assert!(matches!(e, GpuError::NoNvrtc), "{e:?}");
                assert!(msg.contains("libnvrtc"), "{msg}");
            } else {
                assert!(matches!(e, GpuError::NoDevice(_)), "{e:?}");
            }
            assert!(e.is_unavailable());
            // Asking again gives the same answer (and still no panic).
            assert_eq!(GpuBackend::try_new().unwrap_err().to_string(), msg);
        }
    }
}

#[test]
fn the_device_time_field_is_the_one_the_service_configured() {
    let conventions = Conventions::default().device_time_field("device_ns");
    let config = GpuConfig::for_conventions(&conventions);
    assert_eq!(config.device_time_field, "device_ns");
    assert_eq!(GpuConfig::default().device_time_field, "gpu_ns");
    // Refused before any CUDA call, GPU or not, saying what is wrong.
    let refused = |bad: GpuConfig, says: &str| {
        let err = GpuBackend::try_with(&bad).unwrap_err().to_string();
        assert!(err.contains(says), "{says}: {err}");
    };
    for (field, says) in [
        ("", "must not be empty"),
        ("gpu ns", "whitespace"),
        ("model_id", "device_time_field"),
    ] {
        refused(
            GpuConfig {
                device_time_field: field.into(),
                ..config.clone()
            },
            says,
        );
    }
    let resolver = |f: fn(&mut ResolverOptions)| {
        let mut c = config.clone();
        f(&mut c.resolver);
        c
    };
    refused(resolver(|r| r.poll = Duration::ZERO), "resolver.poll");
    refused(
        resolver(|r| r.spin = Duration::from_secs(5)),
        "resolver.spin",
    );
    refused(resolver(|r| r.give_up = Duration::ZERO), "resolver.give_up");
    assert!(config.validate().is_ok());
    if let Some(gpu) = gpu_or_skip("the_device_time_field_is_the_one_the_service_configured") {
        drop(gpu);
        let gpu = GpuBackend::try_with(&config).unwrap();
        assert_eq!(gpu.device_time_field(), "device_ns");
        // The pipeline's model span declares `gpu_ns` only: its models refuse
        // a backend that records another field, naming both.
        let err = gpu_reference_models(SEED, &gpu).err().unwrap().to_string();
        assert!(
            err.contains("`device_ns`") && err.contains("`gpu_ns`"),
            "{err}"
        );
    }
}

#[test]
fn cuda_backend_is_an_error_and_auto_falls_back_to_the_cpu() {
    let pool = ComputePool::default();
    let auto = Backend::Auto
        .reference_models(SEED, &pool, &Conventions::default())
        .unwrap();
    assert_eq!(auto.models.len(), 12);
    match GpuBackend::try_new() {
        Err(why) => {
            assert_eq!(auto.used, Backend::Cpu);
            assert_eq!(auto.device, None);
            let fallback = auto.fallback.as_deref().unwrap();
            assert!(fallback.contains(&why.to_string()), "{fallback}");
            assert!(auto.describe().starts_with("models on the CPU ("));
            let err = Backend::Cuda
                .reference_models(SEED, &pool, &Conventions::default())
                .unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.starts_with("the CUDA backend is unavailable: "),
                "{msg}"
            );
            assert!(msg.contains(&why.to_string()), "{msg}");
        }
        Ok(gpu) => {
            assert_eq!(auto.used, Backend::Cuda);
            assert_eq!(auto.device.as_deref(), Some(gpu.device_name()));
            assert_eq!(auto.fallback, None);
            let cuda = Backend::Cuda
                .reference_models(SEED, &pool, &Conventions::default())
                .unwrap();
            assert_eq!(cuda.used, Backend::Cuda);
        }
    }
    let cpu = Backend::Cpu
        .reference_models(SEED, &pool, &Conventions::default())
        .unwrap();
    assert_eq!(cpu.used, Backend::Cpu);
}

#[test]
fn the_pipeline_runs_on_the_auto_backend() {
    let auto = Backend::Auto
        .reference_models(SEED, &ComputePool::default(), &Conventions::default())
        .unwrap();
    let used = auto.used;
    let guard = run_pipeline(auto.models, &texts()[..2]);
    let snapshot = guard.snapshot();
    for m in REFERENCE_MODELS.map(|m| m.name) {
        let latency = snapshot.model(m).unwrap();
        assert_eq!(latency.count(), 2, "{m}");
        assert_eq!(latency.errors(), 0, "{m}");
        // Device time exactly when the models ran on a GPU.
        match used {
            Backend::Cuda => assert_eq!(latency.gpu().map(|g| g.count()), Some(2), "{m}"),
            _ => assert!(latency.gpu().is_none_or(|g| g.count() == 0), "{m}"),
        }
    }
}

/// Records a fixed device time on its model span, as a GPU model does.
struct ReportsDeviceTime(ModelId, u64);

impl EmbeddingModel for ReportsDeviceTime {
    fn model_id(&self) -> &ModelId {
        &self.0
    }
    fn embed<'a>(&'a self, _input: &'a PreparedInput) -> ModelFuture<'a> {
        Box::pin(async move {
            tracing::Span::current().record("gpu_ns", self.1);
            Ok(ModelEmbedding {
                model_id: self.0.clone(),
                vector: vec![1.0; 8],
            })
        })
    }
}

#[test]
fn recorded_gpu_ns_lands_in_that_models_gpu_histogram() {
    let models: Vec<Arc<dyn EmbeddingModel>> = REFERENCE_MODELS
        .iter()
        .enumerate()
        .map(|(i, m)| {
            Arc::new(ReportsDeviceTime(m.id(), 10_000 * (i as u64 + 1))) as Arc<dyn EmbeddingModel>
        })
        .collect();
    let guard = run_pipeline(models, &texts()[..3]);
    let snapshot = guard.snapshot();
    for (i, m) in REFERENCE_MODELS.map(|m| m.name).into_iter().enumerate() {
        let gpu = snapshot.model(m).unwrap().gpu().unwrap();
        let want = 10_000 * (i as u64 + 1);
        assert_eq!(gpu.count(), 3, "{m}");
        for q in [0.0, 1.0] {
            let got = gpu.quantile(q).as_nanos() as f64;
            assert!(
                (got - want as f64).abs() <= want as f64 * 1e-3,
                "{m}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn kernels_compile_with_nvrtc() {
    if !nvrtc_present() {
        println!(
            "SKIPPED: {} [kernels_compile_with_nvrtc]",
            GpuError::NoNvrtc
        );
        return;
    }
    let ptx = compile_kernels().unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(ptx.as_bytes().expect("a compiled PTX image"));
    for entry in ["embed_rows", "pool_finish", "empty_kernel"] {
        assert!(
            text.contains(&format!(".entry {entry}(")),
            "no {entry} in the PTX"
        );
    }
}

/// One case for the emulator: a model's weights, the tokens it reads, and
/// the CPU model's output.
fn write_case(dir: &Path, index: &mut String, name: &str, w: &Weights, tokens: &[u32]) -> Vec<f32> {
    let p = w.profile;
    let tokens = &tokens[..tokens.len().min(p.max_tokens)];
    let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let packed: Vec<f32> = w
        .layers
        .iter()
        .flat_map(|l| l.weight.iter().chain(&l.bias).copied())
        .collect();
    std::fs::write(dir.join(format!("{name}.table")), f32s(&w.table)).unwrap();
    std::fs::write(dir.join(format!("{name}.params")), f32s(&packed)).unwrap();
    let token_bytes: Vec<u8> = tokens.iter().flat_map(|t| t.to_le_bytes()).collect();
    std::fs::write(dir.join(format!("{name}.tokens")), token_bytes).unwrap();
    let (attention, window) = match p.attention {
        Attention::None => (0, 0),
        Attention::Window(w) => (1, w),
        Attention::Full => (2, 0),
    };
    let widths: Vec<String> = std::iter::once(p.dim)
        .chain(p.hidden.iter().copied())
        .chain([p.out])
        .map(|x| x.to_string())
        .collect();
    index.push_str(&format!(
        "{name} {} {attention} {window} {} {} {} {} {}\n",
        p.buckets,
        i32::from(p.pooling == Pooling::Max),
        p.top_k.map_or(-1, |k| k as i64),
        tokens.len(),
        widths.len() - 1,
        widths.join(" ")
    ));
    w.forward(tokens)
}

/// Compiles KERNEL_SOURCE as C++ with a shim (tests/gpu_emulator) and runs it
/// on the CPU: the CUDA C must reproduce the CPU models.
#[test]
fn kernels_reproduce_the_cpu_models_under_emulation() {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".to_string());
    if Command::new(&cxx).arg("--version").output().is_err() {
        println!("SKIPPED: no C++ compiler ({cxx} not found) [kernels_reproduce_the_cpu_models_under_emulation]");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gpu_emulator");
    std::fs::write(dir.path().join("kernels.cu"), KERNEL_SOURCE).unwrap();
    let tokenizer = Tokenizer::default();
    let mut index = String::new();
    let mut expected = Vec::new();
    for (i, text) in texts().iter().enumerate() {
        let input = tokenizer.prepare(text).unwrap();
        for m in &REFERENCE_MODELS {
            let name = format!("{i}_{}", m.name);
            let w = m.weights(SEED);
            expected.push((
                name.clone(),
                write_case(dir.path(), &mut index, &name, &w, input.tokens()),
            ));
        }
    }
    std::fs::write(dir.path().join("index.txt"), index).unwrap();
    let exe = dir.path().join("emulator");
    let out = Command::new(&cxx)
        .args(["-std=c++17", "-O1", "-ffp-contract=off", "-pthread", "-I"])
        .arg(dir.path())
        .arg(here.join("driver.cpp"))
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the kernels did not compile as C++:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).arg(dir.path()).output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut identical = 0;
    for (name, want) in &expected {
        let bytes = std::fs::read(dir.path().join(format!("{name}.gpu"))).unwrap();
        let got: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let err = relative_error(&got, want);
        assert!(err <= 1e-4, "{name}: relative error {err}");
        identical += usize::from(got == *want);
    }
    println!(
        "{} cases, {identical} bit-identical to the CPU models",
        expected.len()
    );
}

// ---------------------------------------------------------------- GPU only

#[test]
fn gpu_outputs_match_the_cpu_models() {
    let Some(gpu) = gpu_or_skip("gpu_outputs_match_the_cpu_models") else {
        return;
    };
    let tokenizer = Tokenizer::default();
    for spec in &REFERENCE_MODELS {
        let m = spec.name;
        let model = GpuModel::new(spec.id(), spec.profile, SEED, &gpu).unwrap();
        let cpu = spec.weights(SEED);
        for text in texts() {
            let input = tokenizer.prepare(&text).unwrap();
            let want = cpu.forward(input.tokens());
            let got = model.forward(input.tokens()).unwrap();
            let err = relative_error(&got.vector, &want);
            assert!(
                err <= 1e-4,
                "{m}, {} tokens: relative error {err}",
                input.token_count()
            );
            assert!(got.device.is_some_and(|d| d.device_ns > 0), "{m}");
        }
        let empty = model.forward(&[]).unwrap();
        assert_eq!(empty.device, None);
        assert!(empty.vector.iter().all(|v| *v == 0.0));
    }
}

#[test]
fn a_batched_call_gives_each_input_its_own_forward_pass() {
    let Some(gpu) = gpu_or_skip("a_batched_call_gives_each_input_its_own_forward_pass") else {
        return;
    };
    let tokenizer = Tokenizer::default();
    let mut inputs: Vec<Vec<u32>> = texts()
        .iter()
        .map(|t| tokenizer.prepare(t).unwrap().tokens().to_vec())
        .collect();
    inputs.insert(1, Vec::new());
    for spec in &REFERENCE_MODELS {
        let m = spec.name;
        let model = GpuModel::new(spec.id(), spec.profile, SEED, &gpu).unwrap();
        let cpu = spec.weights(SEED);
        let batch = model.forward_batch(&inputs).unwrap();
        assert_eq!(batch.vectors.len(), inputs.len(), "{m}");
        assert!(batch.device.is_some_and(|d| d.device_ns > 0), "{m}");
        for (got, tokens) in batch.vectors.iter().zip(&inputs) {
            let want = cpu.forward(tokens);
            let err = relative_error(got, &want);
            assert!(
                err <= 1e-4,
                "{m}, {} tokens: relative error {err}",
                tokens.len()
            );
        }
        // A second, smaller batch reuses the grown buffers.
        let again = model.forward_batch(&inputs[..2]).unwrap();
        assert_eq!(again.vectors[..], batch.vectors[..2], "{m}");
    }
}

#[test]
fn recorded_device_time_matches_events_read_directly() {
    let Some(gpu) = gpu_or_skip("recorded_device_time_matches_events_read_directly") else {
        return;
    };
    let options = GpuModelOptions {
        probe: true,
        ..GpuModelOptions::default()
    };
    let models: Vec<GpuModel> = REFERENCE_MODELS
        .iter()
        .map(|m| GpuModel::with_options(m.id(), m.profile, SEED, &gpu, options).unwrap())
        .collect();
    let dyn_models = models
        .iter()
        .map(|m| Arc::new(m.clone()) as Arc<dyn EmbeddingModel>)
        .collect();
    let texts = texts();
    let guard = run_pipeline(dyn_models, &texts);
    let snapshot = guard.snapshot();
    for model in &models {
        let m = model.model_id();
        let probes = model.take_probes();
        assert_eq!(probes.len(), texts.len(), "{m}");
        let gpu_hist = snapshot.model(m.as_str()).unwrap().gpu().unwrap();
        assert_eq!(gpu_hist.count(), probes.len() as u64, "{m}");
        // Each call: the model's marks sit inside the direct pair and around
        // the kernels' own pairs, so its time lies between theirs (to the
        // event clock's resolution, about 0.5 us per reading).
        for p in &probes {
            let kernels: u64 = p.kernels_ns.iter().sum();
            assert!(p.gpu_ns + 1_000 >= kernels, "{m}: {p:?}");
            assert!(p.gpu_ns <= p.outer_ns + 1_000, "{m}: {p:?}");
        }
        // What the subscriber holds for the model is what the marks said
        // (to the histogram's 3 significant figures).
        let histogram: f64 = gpu_hist.histogram().mean() * gpu_hist.count() as f64;
        let recorded: f64 = probes.iter().map(|p| p.gpu_ns as f64).sum();
        assert!(
            (histogram - recorded).abs() <= recorded * 0.002,
            "{m}: histogram holds {histogram} ns, the marks said {recorded} ns"
        );
        // Against the kernels' own event pairs, per call on average: within
        // 5 % or 2 us, whichever is larger, for every model, short ones
        // included.
        let calls = probes.len() as f64;
        let per_call = recorded / calls;
        let kernels = probes.iter().flat_map(|p| p.kernels_ns).sum::<u64>() as f64 / calls;
        let direct = probes.iter().map(|p| p.outer_ns as f64).sum::<f64>() / calls;
        println!(
            "{m}: {} calls, recorded {:.1} us a call, kernels alone {:.1} us ({:+.1} %), outer pair {:.1} us",
            probes.len(),
            per_call / 1e3,
            kernels / 1e3,
            (per_call - kernels) / kernels * 100.0,
            direct / 1e3
        );
        let allowed = (kernels * 0.05).max(2_000.0);
        assert!(
            (per_call - kernels).abs() <= allowed,
            "{m}: recorded {per_call:.0} ns a call, the kernels' own pairs {kernels:.0} ns"
        );
    }
    let stats = gpu.resolver_stats();
    assert_eq!(
        stats.failed + stats.expired + stats.undeclared + stats.subscriber_panics,
        0,
        "{stats:?}"
    );
}

#[test]
fn the_captured_tree_splits_each_gpu_call_into_host_and_device_time() {
    let Some(gpu) = gpu_or_skip("the_captured_tree_splits_each_gpu_call_into_host_and_device_time")
    else {
        return;
    };
    let models = gpu_reference_models(SEED, &gpu).unwrap();
    let keep = Keep::default();
    let (dispatch, guard) = sampled(TracingLevel::Verbose, Some(&keep));
    let pipeline = EmbeddingPipeline::new(models).unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        let rt = runtime();
        for text in texts() {
            rt.block_on(pipeline.embed(&text)).unwrap();
        }
    });
    guard.flush();
    let traces = keep.traces();
    assert_eq!(traces.len(), texts().len());
    for trace in &traces {
        let mut models = 0;
        for span in trace
            .spans()
            .iter()
            .filter(|s| s.class == hdrtrace::SpanClass::Model)
        {
            models += 1;
            let m = span.label();
            assert!(span.device.is_some_and(|d| d > Duration::ZERO), "{m}");
            let children: Vec<_> = trace.children(span.id).collect();
            let named = |n: &str| children.iter().find(|c| c.name == n).copied();
            let (queue, launch, wait) = (
                named("gpu_queue").unwrap_or_else(|| panic!("{m}: no gpu_queue")),
                named("gpu_launch").unwrap_or_else(|| panic!("{m}: no gpu_launch")),
                named("gpu_wait").unwrap_or_else(|| panic!("{m}: no gpu_wait")),
            );
            assert!(launch.field("lock_ns").is_some(), "{m}");
            for f in ["upload_ns", "download_ns", "collect_ns"] {
                assert!(wait.field(f).is_some(), "{m}: gpu_wait has no {f}");
            }
            // The parts are in order and inside the model span.
            assert!(
                queue.start <= launch.start && launch.start <= wait.start,
                "{m}"
            );
            assert!(wait.start + wait.wall <= span.start + span.wall, "{m}");
            // The device works while the host queues and waits: the two
            // together cover its time.
            assert!(launch.wall + wait.wall >= span.device.unwrap(), "{m}");
        }
        assert_eq!(models, 12);
    }
}

#[test]
fn a_call_whose_caller_left_is_recorded_late() {
    let Some(gpu) = gpu_or_skip("a_call_whose_caller_left_is_recorded_late") else {
        return;
    };
    let spec = reference::spec("LongContext").unwrap();
    let model = GpuModel::new(spec.id(), spec.profile, SEED, &gpu).unwrap();
    let (dispatch, guard) = sampled(TracingLevel::default(), None);
    let input = Tokenizer::default().prepare(&texts()[3]).unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        let root = tracing::info_span!("embed_pipeline", request_id = 1u64);
        let span = tracing::debug_span!(
            parent: &root,
            "model",
            model_id = "LongContext",
            gpu_ns = tracing::field::Empty
        );
        // Polled once, so the call is queued on the device, then dropped:
        // the caller left.
        let mut call = Box::pin(model.embed(&input).instrument(span));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(call.as_mut().poll(&mut cx).is_pending());
        drop(call);
    });
    assert!(
        wait_for(Duration::from_secs(10), || gpu.resolver_stats().late > 0),
        "{:?}",
        gpu.resolver_stats()
    );
    let snapshot = guard.flushed_snapshot();
    let gpu_hist = snapshot.model("LongContext").unwrap().gpu().unwrap();
    assert_eq!(gpu_hist.count(), 1);
}

#[test]
fn a_failing_kernel_becomes_the_models_error() {
    let Some(gpu) = gpu_or_skip("a_failing_kernel_becomes_the_models_error") else {
        return;
    };
    // More threads per block than any device allows: the launch fails.
    let bad = GpuModelOptions {
        block_size: 4096,
        ..GpuModelOptions::default()
    };
    let causal = reference::spec("Causal").unwrap();
    let broken = GpuModel::with_options(causal.id(), causal.profile, SEED, &gpu, bad).unwrap();
    let input = Tokenizer::default()
        .prepare("a kernel that cannot launch")
        .unwrap();
    let err = runtime().block_on(broken.embed(&input)).unwrap_err();
    let Error::Model { model, reason } = &err else {
        panic!("expected a model error, got {err:?}");
    };
    assert_eq!(*model, "Causal");
    assert!(reason.contains("CUDA kernel launch failed"), "{reason}");
    assert!(
        reason.contains("CUDA_ERROR_"),
        "CUDA's error text: {reason}"
    );

    // In the pipeline: recorded as that model's error, the others still fuse.
    let mut models = gpu_reference_models(SEED, &gpu).unwrap();
    models[position("Causal")] = Arc::new(broken);
    let (pipeline, dispatch, guard) = traced(models);
    let fused = tracing::dispatcher::with_default(&dispatch, || {
        runtime().block_on(pipeline.embed("a kernel that cannot launch"))
    })
    .unwrap();
    assert_eq!(fused.models.len(), 11);
    let snapshot = guard.flushed_snapshot();
    assert_eq!(snapshot.model("Causal").unwrap().errors(), 1);
    assert_eq!(snapshot.model("Semantic").unwrap().errors(), 0);

    // The error was not sticky: the other models on the device still work.
    let ok = GpuModel::new(causal.id(), causal.profile, SEED, &gpu).unwrap();
    assert!(ok.forward(input.tokens()).is_ok());
}
