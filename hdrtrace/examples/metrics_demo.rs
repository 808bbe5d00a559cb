//! Serves a toy workload's latencies for Prometheus to scrape.
//!
//! ```text
//! cargo run --example metrics_demo --features prometheus -- --metrics 127.0.0.1:9464
//! curl -s http://127.0.0.1:9464/metrics                 # OpenMetrics, with exemplars
//! curl -s -H 'Accept: text/plain' http://127.0.0.1:9464/metrics | promtool check metrics
//! ```
//!
//! One request in ten is head-sampled, so its spans are captured and the
//! histogram buckets they fall in carry exemplars (`# {trace_id="…"} …`).
//! Two of these on two ports, both scraped, give a fleet p95 with
//! `histogram_quantile(0.95, sum by (le, model) (rate(hdrtrace_model_latency_seconds_bucket[5m])))`
//! (docs/prometheus.md).

use clap::Parser;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Record a toy three-model workload and serve it at /metrics")]
struct Args {
    /// Address to serve OpenMetrics on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:9464")]
    metrics: String,
    /// Seconds to run (0: until interrupted).
    #[arg(long, default_value_t = 0)]
    seconds: u64,
    /// Print one scrape and exit instead of serving.
    #[arg(long)]
    print: bool,
}

const MODELS: [(&str, u64); 3] = [("Tokenizer", 200), ("Encoder", 900), ("Reranker", 400)];

fn main() -> Result<(), hdrtrace::Error> {
    let args = Args::parse();
    let guard = hdrtrace::init_tracing(&hdrtrace::TracingConfig {
        sampling_rate: 0.1,
        ..hdrtrace::TracingConfig::default()
    })?;
    if args.print {
        for i in 0..50 {
            request(i);
        }
        print!(
            "{}",
            hdrtrace::export::prometheus::render(&guard.flushed_snapshot())
        );
        return Ok(());
    }
    let server = hdrtrace::export::prometheus::serve(&args.metrics, guard.snapshot_source())?;
    println!("serving {}", server.url());
    let end = (args.seconds > 0).then(|| Instant::now() + Duration::from_secs(args.seconds));
    let mut i = 0;
    while end.is_none_or(|end| Instant::now() < end) {
        request(i);
        i += 1;
    }
    Ok(())
}

/// One request: a stage, then each model for a varying number of microseconds.
fn request(i: u64) {
    let request = tracing::info_span!("embed_pipeline", request_id = i);
    let _r = request.enter();
    tracing::info_span!("preprocess").in_scope(|| std::thread::sleep(Duration::from_micros(50)));
    for (model, micros) in MODELS {
        tracing::debug_span!("model", model_id = model).in_scope(|| {
            std::thread::sleep(Duration::from_micros(micros * (1 + i % 7)));
        });
    }
}
