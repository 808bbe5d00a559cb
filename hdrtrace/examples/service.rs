//! A service that names things its own way, traced by hdrtrace: `#[instrument]`
//! spans, its own request span and fields set through `Conventions`, a filter
//! that silences a noisy dependency, its logs on stderr, and the per-model p95
//! printed at the end.
//!
//! ```sh
//! cargo run --release --example service
//! ```

use hdrtrace::{Conventions, TracingConfig};
use std::time::Duration;
use tracing::instrument;

/// The service's request handler: two models in parallel, then some I/O.
#[instrument(name = "handle_request", skip(text), fields(req = id))]
async fn handle(id: u64, text: String) -> usize {
    let slow = id % 50 == 7;
    let (a, b) = tokio::join!(
        infer("bert-base", &text, 2),
        infer("reranker", &text, if slow { 30 } else { 4 })
    );
    read_socket().await;
    a + b
}

/// One model call; the model's name is the `model` field.
#[instrument(name = "infer", skip(text), fields(model = name))]
async fn infer(name: &'static str, text: &str, ms: u64) -> usize {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    if ms > 20 {
        tracing::warn!(deadline = true, after_ms = ms, "model missed its deadline");
    }
    text.len()
}

/// What a dependency's instrumentation looks like: many tiny spans under its
/// own target, which the filter turns off.
#[instrument(target = "hyper::proto", name = "poll_read")]
async fn read_socket() {
    tokio::task::yield_now().await;
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = TracingConfig {
        conventions: Conventions::default()
            .request_span("handle_request")
            .request_id_field("req")
            .model_field("model")
            .timeout_field("deadline"),
        filter: Some("hyper=off,info".into()),
        latency_target: Duration::from_millis(20),
        sampling_rate: 0.0,
        ..TracingConfig::from_env()?
    };
    let guard = hdrtrace::init_tracing(&config)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for id in 0..200u64 {
            set.spawn(handle(id, format!("request number {id}")));
        }
        while set.join_next().await.is_some() {}
    });
    let snap = guard.flushed_snapshot();
    println!(
        "\n{:<10} {:>6} {:>9} {:>9} {:>8}",
        "model", "count", "p50", "p95", "blamed"
    );
    for (name, m) in snap.models() {
        println!(
            "{name:<10} {:>6} {:>9.1?} {:>9.1?} {:>8}",
            m.count(),
            m.quantile(0.5),
            m.quantile(0.95),
            m.blamed()
        );
    }
    let c = snap.counters();
    println!(
        "\n{} requests, {} captured (over {:?} or timed out); stages: {}",
        c.requests,
        c.captured_requests,
        config.latency_target,
        snap.stages().map(|(n, _)| n).collect::<Vec<_>>().join(", ")
    );
    if let Some(t) = snap.slowest().first() {
        if let Some(a) = &t.attribution() {
            println!(
                "slowest: request {} took {:?}; {} held it up ({:?})",
                t.request_id(),
                t.total(),
                a.model,
                a.wall
            );
        }
    }
    Ok(())
}
