//! Runs requests through the 12-model embedding pipeline with the `hdrtrace`
//! subscriber installed, then names the model behind the slow requests.
//!
//! ```text
//! cargo run --release --example pipeline
//! cargo run --release --example pipeline -- --slow Causal=180ms --target-ms 200
//! cargo run --release --example pipeline -- --hang Semantic --fail Code --panic Sparse
//! cargo run --release --example pipeline -- --batch-size 32 --batch-wait 5ms
//! cargo run --release --example pipeline -- --no-batching
//! cargo run --release --example pipeline -- --report target/report.html
//! cargo run --release --example pipeline -- --batch Causal=32/250ms --concurrency 1 --requests 20 --deadline-ms 400
//! ```
//!
//! Batching is on by default for every model but LongContext (each model's
//! inputs from concurrent requests run together, up to `--batch-size` of them
//! or after `--batch-wait`; `--batch MODEL=SIZE/WAIT` or `MODEL=off` per
//! model); `--no-batching` runs each model once per request. With batching,
//! every CPU model call also pays `--launch-cost` (1 ms), the fixed part of a
//! model's cost that a batch pays once; `--no-batching` leaves it at 0 unless
//! given, so to compare the two on equal terms give both the same
//! `--launch-cost`.
//!
//! Prints how many requests failed or came back degraded (a model missing)
//! and the model most often to blame, a per-model latency table (count, p50,
//! p95, p99, max, busy p95 (a batched model's share of its batches' work),
//! timeouts, errors, requests blamed on it and why (over the target, timed
//! out, failed), whether it ran batched, and for batched models the median
//! batch size and the 95th percentile of the wait for a batch), the stages,
//! the slowest captured request as a tree with its bottleneck (and the batch
//! that served it), and writes the captured requests as Chrome trace /
//! Perfetto JSON (open it in ui.perfetto.dev); `--report FILE.html` also
//! writes a self-contained HTML report (each model's latency by percentile,
//! blame by reason, the slowest requests as waterfalls).

mod backend;
mod cli;
mod faults;

use backend::Backend;
use clap::Parser;
use faults::{quiet_injected_panics, Fault, FaultPlan};
use hdrtrace::export::{render_html, render_text, write_chrome_trace, HtmlOptions};
use hdrtrace::{
    BlameReason, Conventions, LatencySnapshot, ModelLatency, RequestTrace, TracingConfig,
    TracingLevel,
};
use hdrtrace_pipeline::reference::{self, ComputePool, REFERENCE_MODELS};
use hdrtrace_pipeline::{BatchConfig, BatchPlan, EmbeddingPipeline, ModelId, PipelineConfig};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Run requests through the 12-model embedding pipeline and name the model
/// that broke the latency budget.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// How many requests to run.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    requests: u64,
    /// How many requests are in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=4096))]
    concurrency: u64,
    /// Fraction of requests whose full trace is kept (slow and failed requests
    /// are kept whatever the rate).
    #[arg(long, default_value_t = 0.01, value_parser = parse_rate)]
    sampling_rate: f32,
    /// minimal, standard or verbose.
    #[arg(long, default_value = "standard")]
    level: TracingLevel,
    /// Make a model slower, e.g. `--slow Causal=180ms` (repeatable).
    #[arg(long, value_name = "MODEL=DURATION", value_parser = cli::slow)]
    slow: Vec<(ModelId, Duration)>,
    /// Make a model return an error (repeatable).
    #[arg(long, value_name = "MODEL", value_parser = cli::model)]
    fail: Vec<ModelId>,
    /// Make a model panic (repeatable).
    #[arg(long, value_name = "MODEL", value_parser = cli::model)]
    panic: Vec<ModelId>,
    /// Make a model never answer (repeatable).
    #[arg(long, value_name = "MODEL", value_parser = cli::model)]
    hang: Vec<ModelId>,
    /// Per-request deadline for the models, in milliseconds.
    #[arg(long, default_value_t = 150, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    deadline_ms: u64,
    /// Per-request latency target, in milliseconds.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    target_ms: u64,
    /// Where to write the captured requests as Perfetto / Chrome trace JSON.
    #[arg(long, default_value = "target/pipeline.perfetto.json")]
    out: PathBuf,
    /// Also write a self-contained HTML report (each model's latency by
    /// percentile, blame, the slowest requests as waterfalls) to this file.
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
    /// Where the models run: cuda, cpu, or auto (CUDA when a GPU and the `cuda`
    /// feature are there, else the CPU, saying why).
    #[arg(long, default_value = "auto")]
    backend: Backend,
    /// Fixed cost of every CPU model call, batched or not, modelling an
    /// accelerator's launch and weight reads (what batching saves), e.g.
    /// `1ms`; `0ms` for the bare compute. Default: 1ms with batching, 0ms
    /// with `--no-batching`.
    #[arg(long, value_parser = |s: &str| cli::duration_at_most(s, ComputePool::MAX_LAUNCH_COST))]
    launch_cost: Option<Duration>,
    /// Run each model once per request, as without a batcher.
    #[arg(long)]
    no_batching: bool,
    /// Largest batch of a batched model.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=BatchConfig::MAX_SIZE as u64))]
    batch_size: u64,
    /// Longest the oldest input of a batch waits for the batch to fill, e.g.
    /// `2ms`, `500us`.
    #[arg(long, default_value = "2ms", value_parser = |s: &str| cli::duration_at_most(s, BatchConfig::MAX_WAIT))]
    batch_wait: Duration,
    /// One model's batching, over the defaults: `Causal=32/250ms` (size and
    /// wait) or `Code=off`; LongContext too (e.g. `LongContext=4/1ms`).
    /// Repeatable.
    #[arg(long, value_name = "MODEL=SIZE/WAIT|off", value_parser = cli::batch)]
    batch: Vec<(ModelId, Option<BatchConfig>)>,
    /// Seed for the model weights and the generated documents.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Serve Prometheus / OpenMetrics text at http://ADDR/metrics, and the
    /// live HTML report at http://ADDR/, while the run lasts (needs
    /// `--features prometheus`), e.g. `--metrics 127.0.0.1:9464`.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Keep serving `--metrics` this many seconds after the run, so a scraper
    /// sees the final figures.
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    linger: u64,
    /// Serve tokio-console on 127.0.0.1:6669 (needs `--features tokio-console`).
    #[arg(long)]
    tokio_console: bool,
    /// Export sampled and captured requests over OTLP/gRPC to this collector,
    /// e.g. http://127.0.0.1:4317 (needs `--features otel`).
    #[arg(long, value_name = "URL")]
    otel_endpoint: Option<String>,
}

fn parse_rate(s: &str) -> Result<f32, String> {
    let r: f32 = s
        .trim()
        .parse()
        .map_err(|_| format!("expected a number from 0.0 to 1.0, got {s:?}"))?;
    if r.is_finite() && (0.0..=1.0).contains(&r) {
        Ok(r)
    } else {
        Err(format!("expected a number from 0.0 to 1.0, got {s:?}"))
    }
}

impl Args {
    /// `--launch-cost`, else 1 ms with batching and 0 without.
    fn launch_cost(&self) -> Duration {
        self.launch_cost.unwrap_or(if self.no_batching {
            Duration::ZERO
        } else {
            Duration::from_millis(1)
        })
    }

    /// The batching `--no-batching`, `--batch-size`, `--batch-wait` and
    /// `--batch` ask for.
    fn batching(&self) -> Result<BatchPlan, String> {
        if self.no_batching {
            if !self.batch.is_empty() {
                return Err("--batch and --no-batching contradict each other".into());
            }
            return Ok(BatchPlan::new());
        }
        let size = usize::try_from(self.batch_size).unwrap_or(usize::MAX);
        let config = BatchConfig::new(size, self.batch_wait).map_err(|e| e.to_string())?;
        let mut plan = reference::batch_plan(config);
        for (model, config) in &self.batch {
            plan.set(model.clone(), *config);
        }
        Ok(plan)
    }

    fn faults(&self) -> FaultPlan {
        let mut plan = FaultPlan::new();
        for (m, d) in &self.slow {
            plan.set(m.clone(), Fault::Delay(*d));
        }
        for m in &self.fail {
            plan.set(m.clone(), Fault::Error);
        }
        for m in &self.panic {
            plan.set(m.clone(), Fault::Panic);
        }
        for m in &self.hang {
            plan.set(m.clone(), Fault::Hang);
        }
        plan
    }
}

/// Starts the Prometheus endpoint when `--metrics` asks for it.
#[cfg(feature = "prometheus")]
fn serve_metrics(
    args: &Args,
    guard: &hdrtrace::TracingGuard,
) -> Result<Option<hdrtrace::export::prometheus::MetricsServer>, Box<dyn std::error::Error>> {
    let Some(addr) = &args.metrics else {
        return Ok(None);
    };
    let server = hdrtrace::export::prometheus::serve(addr.as_str(), guard.snapshot_source())?;
    println!("metrics: {}", server.url());
    println!("live report: http://{}/", server.local_addr());
    Ok(Some(server))
}

#[cfg(not(feature = "prometheus"))]
fn serve_metrics(
    args: &Args,
    _guard: &hdrtrace::TracingGuard,
) -> Result<Option<()>, Box<dyn std::error::Error>> {
    match &args.metrics {
        Some(_) => Err("--metrics needs the `prometheus` feature: \
             cargo run --release --features prometheus --example pipeline -- --metrics ADDR"
            .into()),
        None => Ok(None),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let target = Duration::from_millis(args.target_ms);
    let config = TracingConfig {
        sampling_rate: args.sampling_rate,
        level: args.level,
        latency_target: target,
        tokio_console: args.tokio_console,
        otel_endpoint: args.otel_endpoint.clone(),
        ..TracingConfig::default()
    };
    let guard = hdrtrace::init_tracing(&config)?;
    let metrics = serve_metrics(args, &guard)?;
    quiet_injected_panics();

    let faults = args.faults();
    let pool = ComputePool::default().with_launch_cost(args.launch_cost())?;
    let chosen = args
        .backend
        .reference_models(args.seed, &pool, &config.conventions)?;
    println!("{}", chosen.describe());
    let models = faults.apply(chosen.models);
    let batching = args.batching()?;
    let pipeline = Arc::new(EmbeddingPipeline::with_config(
        models,
        PipelineConfig {
            deadline: Duration::from_millis(args.deadline_ms),
            batching: batching.clone(),
            ..PipelineConfig::default()
        },
    )?);

    println!(
        "{} requests, {} in flight, 12 reference CPU models on {} compute threads ({:?} launch cost per call); deadline {} ms, target {} ms, sampling {}",
        args.requests,
        args.concurrency,
        pool.size(),
        pool.launch_cost(),
        args.deadline_ms,
        args.target_ms,
        args.sampling_rate
    );
    if batching.is_empty() {
        println!("batching off: each model runs once per request");
    } else {
        // In E1..E12 order.
        let configs: Vec<String> = REFERENCE_MODELS
            .iter()
            .filter_map(|m| Some((m.name, batching.get(m.name)?)))
            .map(|(m, c)| format!("{m} {}/{:?}", c.max_size(), c.max_wait()))
            .collect();
        let unbatched: Vec<&str> = REFERENCE_MODELS
            .iter()
            .filter(|m| batching.get(m.name).is_none())
            .map(|m| m.name)
            .collect();
        println!(
            "batching (size/wait): {}; not batched: {}",
            configs.join(", "),
            if unbatched.is_empty() {
                "none".to_string()
            } else {
                unbatched.join(", ")
            }
        );
    }
    if faults.is_empty() {
        println!("no injected faults: the models' own cost profiles decide");
    } else {
        // In E1..E12 order.
        let mut faulty: Vec<_> = faults.iter().collect();
        faulty.sort_by_key(|(m, _)| REFERENCE_MODELS.iter().position(|r| r.name == m.as_str()));
        let list: Vec<String> = faulty
            .into_iter()
            .map(|(m, f)| match f {
                Fault::Delay(d) => format!("{m} +{d:?}"),
                Fault::Error => format!("{m} errors"),
                Fault::Panic => format!("{m} panics"),
                Fault::Hang => format!("{m} hangs"),
            })
            .collect();
        println!("injected: {}", list.join(", "));
    }

    let (elapsed, failures) = drive(args, &pipeline)?;
    // The runtime is gone: every model computation, including those that ran
    // past the deadline, has finished and closed its span.
    let snap = guard.flushed_snapshot();
    report(args, &snap, elapsed, failures, target);

    let mut traces: BTreeMap<u64, Arc<RequestTrace>> = BTreeMap::new();
    for t in snap.slowest().iter().chain(snap.captured()) {
        traces.insert(t.request_id(), t.clone());
    }
    if let Some(slowest) = snap.slowest().first() {
        println!("\nSlowest captured request ({} kept):", traces.len());
        print!("{}", render_text(slowest));
    } else {
        println!("\nNo request was captured (none sampled, slow or failed).");
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let traces: Vec<_> = traces.into_values().collect();
    write_chrome_trace(&args.out, &traces)?;
    println!(
        "\nWrote {} captured requests to {} (open in https://ui.perfetto.dev or chrome://tracing)",
        traces.len(),
        args.out.display()
    );
    if let Some(path) = &args.report {
        let options = HtmlOptions {
            target: Some(target),
            ..HtmlOptions::default()
        };
        std::fs::write(path, render_html(&snap, &options))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("Wrote the HTML report to {}", path.display());
    }
    if metrics.is_some() && args.linger > 0 {
        println!("Serving metrics for {} more seconds", args.linger);
        std::thread::sleep(Duration::from_secs(args.linger));
    }
    // The metrics server (if any) stops when `metrics` goes out of scope.
    Ok(())
}

/// Runs every request; returns the wall time and how many requests failed.
fn drive(args: &Args, pipeline: &Arc<EmbeddingPipeline>) -> std::io::Result<(Duration, u64)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let bar = ProgressBar::new(args.requests);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} requests ({per_sec}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..args.concurrency.min(args.requests) {
            let (pipeline, bar, next, failed) =
                (pipeline.clone(), bar.clone(), next.clone(), failed.clone());
            let (total, seed) = (args.requests, args.seed);
            set.spawn(async move {
                // Relaxed: a work counter; each index is taken exactly once.
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    if pipeline.embed(&document(seed, i)).await.is_err() {
                        // Relaxed: a statistic read after the join.
                        let n = failed.fetch_add(1, Ordering::Relaxed) + 1;
                        bar.set_message(format!("{n} failed"));
                    }
                    bar.inc(1);
                }
            });
        }
        set.join_all().await;
    });
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    drop(rt);
    Ok((elapsed, failed.load(Ordering::Relaxed)))
}

const WORDS: &[&str] = &[
    "model",
    "latency",
    "request",
    "budget",
    "cache",
    "vector",
    "token",
    "attention",
    "layer",
    "deadline",
    "because",
    "therefore",
    "after",
    "before",
    "function",
    "return",
    "struct",
    "graph",
    "node",
    "edge",
    "Paris",
    "Tokyo",
    "Ada",
    "Lovelace",
    "happy",
    "slow",
    "quick",
    "report",
    "table",
    "section",
    "the",
    "a",
    "of",
    "and",
    "in",
    "to",
    "was",
    "is",
    "when",
    "2024",
    "Monday",
    "error",
    "timeout",
    "span",
    "trace",
    "fusion",
    "sparse",
    "dense",
];

/// A deterministic document: mostly short, some medium, a few long ones that
/// make the long-context model work hard.
fn document(seed: u64, i: u64) -> String {
    let mut rng = seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = move || {
        rng = rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let words = match next() % 100 {
        0..=2 => 1500 + next() % 1500,
        3..=14 => 200 + next() % 300,
        _ => 20 + next() % 130,
    };
    let mut doc = String::with_capacity(words as usize * 7);
    for w in 0..words {
        if w > 0 {
            doc.push(if next() % 12 == 0 { '.' } else { ' ' });
            if doc.ends_with('.') {
                doc.push(' ');
            }
        }
        doc.push_str(WORDS[(next() % WORDS.len() as u64) as usize]);
    }
    doc
}

/// A table row's first columns: name, count, wall p50, p95, p99, max.
fn wall_cells(name: &str, l: &hdrtrace::ModelLatency) -> String {
    format!(
        "{:<16} {:>6} {:>8} {:>8} {:>8} {:>8}",
        name,
        l.count(),
        ms(l.quantile(0.5)),
        ms(l.quantile(0.95)),
        ms(l.quantile(0.99)),
        ms(l.max())
    )
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn report(args: &Args, snap: &LatencySnapshot, elapsed: Duration, failed: u64, target: Duration) {
    let c = snap.counters();
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!(
        "\n{} requests in {:.2} s ({:.0}/s), {} failed, {} degraded (returned without a model that timed out or failed); {} traces head-sampled, {} captured",
        args.requests,
        secs,
        args.requests as f64 / secs,
        failed,
        c.degraded_requests,
        c.sampled_requests,
        c.captured_requests
    );
    // The model most often to blame, over every reason (ties: the first by
    // name).
    let most = snap
        .models()
        .filter(|(_, m)| m.blamed() > 0)
        .max_by_key(|(name, m)| (m.blamed(), std::cmp::Reverse(*name)));
    match most {
        Some((name, m)) => println!(
            "most often to blame: {} for {} requests ({})",
            name.escape_debug(),
            m.blamed(),
            blame_reasons(m)
        ),
        None => println!("no model was blamed: every request met its target with every model"),
    }
    if let Some(r) = snap.stage("embed_pipeline") {
        let h = r.histogram();
        let target_ns = target.as_nanos() as u64;
        let over = if h.max() > target_ns {
            h.count_between(target_ns + 1, h.max())
        } else {
            0
        };
        println!(
            "request latency: p50 {} ms, p95 {} ms, p99 {} ms, max {} ms; {} over the {} ms target",
            ms(r.quantile(0.5)),
            ms(r.quantile(0.95)),
            ms(r.quantile(0.99)),
            ms(r.max()),
            over,
            target.as_millis()
        );
    }
    if c.dropped_spans + c.dropped_records > 0 {
        println!(
            "lost: {} spans (slot table full), {} records (rings full)",
            c.dropped_spans, c.dropped_records
        );
    }

    let mut models: Vec<(&str, &ModelLatency)> = snap.models().collect();
    if models.is_empty() {
        println!("\nNo model spans were recorded (level {:?}).", args.level);
    } else {
        models.sort_by_key(|m| std::cmp::Reverse(m.1.quantile(0.95)));
        println!(
            "\n{:<16} {:>6} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>7} {:>7} {:>8} {:>6} {:>9}  blamed for",
            "model (ms)",
            "count",
            "p50",
            "p95",
            "p99",
            "max",
            "busy p95",
            "timeouts",
            "errors",
            "blamed",
            "ran",
            "batch",
            "bwait p95",
        );
        let on_gpu = models.iter().any(|(_, m)| m.gpu().is_some());
        for (name, m) in &models {
            // Batched models: the median batch size, and the 95th percentile
            // of a request's wait for its batch to start.
            let size = m
                .batch_size()
                .map_or("-".to_string(), |h| h.value_at_quantile(0.5).to_string());
            let wait = m
                .batch_wait()
                .map_or("-".to_string(), |w| ms(w.quantile(0.95)));
            // A batched model's busy time is its share of its batches' work.
            let ran = if m.batch_size().is_some() {
                "batched"
            } else {
                "alone"
            };
            print!(
                "{} {:>9} {:>8} {:>7} {:>7} {:>8} {:>6} {:>9}  {}",
                wall_cells(name, m),
                ms(m.busy().quantile(0.95)),
                m.timeouts(),
                m.errors(),
                m.blamed(),
                ran,
                size,
                wait,
                blame_reasons(m)
            );
            // Device time beside host time, when the models ran on a GPU.
            match m.gpu() {
                Some(g) => println!(
                    "  gpu p50 {} p95 {}",
                    ms(g.quantile(0.5)),
                    ms(g.quantile(0.95))
                ),
                None if on_gpu => println!("  gpu -"),
                None => println!(),
            }
        }
    }
    println!(
        "\n{:<16} {:>6} {:>8} {:>8} {:>8} {:>8}",
        "stage (ms)", "count", "p50", "p95", "p99", "max"
    );
    // Batches are the models' work, not a stage of the pipeline: their sizes
    // and waits are in the model table.
    let conventions = Conventions::default();
    let batches: Vec<&str> = conventions.batch_span_names().collect();
    for (name, s) in snap.stages().filter(|(n, _)| !batches.contains(n)) {
        println!("{}", wall_cells(name, s));
    }
}

/// A model's blame by reason, the reasons it has: `timed out 120`,
/// `over target 3, failed 2`; `-` when none.
fn blame_reasons(m: &ModelLatency) -> String {
    let parts: Vec<String> = BlameReason::ALL
        .into_iter()
        .filter(|&r| m.blamed_for(r) > 0)
        .map(|r| format!("{} {}", r.name().replace('_', " "), m.blamed_for(r)))
        .collect();
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_cost_and_batch_wait_are_bounded() {
        let args =
            Args::try_parse_from(["pipeline", "--launch-cost", "3ms", "--batch-wait", "1ms"]);
        let args = args.unwrap();
        assert_eq!(args.launch_cost(), Duration::from_millis(3));
        assert_eq!(args.batch_wait, Duration::from_millis(1));
        for (flag, max) in [
            ("--launch-cost", ComputePool::MAX_LAUNCH_COST),
            ("--batch-wait", BatchConfig::MAX_WAIT),
        ] {
            let over = format!("{}ms", max.as_millis() + 1);
            let err = Args::try_parse_from(["pipeline", flag, over.as_str()]).unwrap_err();
            let says = err.to_string();
            assert!(
                says.contains(&format!("expected at most {max:?}")),
                "{flag}: {says}"
            );
        }
    }
}
