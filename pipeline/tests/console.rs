//! tokio-console sees the pipeline: with `tokio_console: true` the recording core
//! runs as a Layer beside console-subscriber on a Registry, the pipeline runs, and
//! a console-api gRPC client finds the twelve model tasks, each named after its
//! model. The histograms are still recorded.
#![cfg(feature = "tokio-console")]

use console_api::instrument::instrument_client::InstrumentClient;
use console_api::instrument::InstrumentRequest;
use hdrtrace::TracingConfig;
use hdrtrace_pipeline::reference::REFERENCE_MODELS;
use hdrtrace_pipeline::EmbeddingPipeline;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn value_text(v: &console_api::field::Value) -> Option<String> {
    use console_api::field::Value;
    match v {
        Value::StrVal(s) => Some(s.clone()),
        Value::DebugVal(s) => Some(s.trim_matches('"').to_string()),
        _ => None,
    }
}

#[test]
fn console_lists_the_twelve_named_model_tasks() {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let guard = hdrtrace::init_tracing(&TracingConfig {
        tokio_console: true,
        console_addr: addr,
        sampling_rate: 1.0,
        ..TracingConfig::default()
    })
    .expect("install with tokio-console");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let found: HashSet<String> = rt.block_on(async move {
        let mut client = {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match InstrumentClient::connect(format!("http://{addr}")).await {
                    Ok(c) => break c,
                    Err(e) if Instant::now() < deadline => {
                        let _ = e;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("console server at {addr} never answered: {e}"),
                }
            }
        };
        let mut updates = client
            .watch_updates(InstrumentRequest {})
            .await
            .expect("watch_updates")
            .into_inner();

        let pipeline = EmbeddingPipeline::reference(7);
        let runner = tokio::spawn(async move {
            for i in 0..5 {
                pipeline
                    .embed(&format!("console request {i} with some words"))
                    .await
                    .expect("embed");
            }
        });

        // Field names arrive either inline or as indexes into their metadata.
        let mut field_names: HashMap<u64, Vec<String>> = HashMap::new();
        let mut found = HashSet::new();
        let wanted: HashSet<String> = REFERENCE_MODELS
            .iter()
            .map(|m| m.name.to_string())
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        while found.len() < wanted.len() && Instant::now() < deadline {
            let update = match tokio::time::timeout(Duration::from_secs(5), updates.message()).await
            {
                Ok(Ok(Some(u))) => u,
                Ok(Ok(None)) => break,
                Ok(Err(e)) => panic!("console stream failed: {e}"),
                Err(_) => continue,
            };
            if let Some(meta) = update.new_metadata {
                for m in meta.metadata {
                    if let (Some(id), Some(md)) = (m.id, m.metadata) {
                        field_names.insert(id.id, md.field_names);
                    }
                }
            }
            for task in update.task_update.map(|t| t.new_tasks).unwrap_or_default() {
                let meta_id = task.metadata.map(|m| m.id);
                for f in task.fields {
                    use console_api::field::Name;
                    let name = match &f.name {
                        Some(Name::StrName(s)) => Some(s.clone()),
                        Some(Name::NameIdx(i)) => meta_id
                            .and_then(|m| field_names.get(&m))
                            .and_then(|names| names.get(*i as usize).cloned()),
                        None => None,
                    };
                    let value = f.value.as_ref().and_then(value_text);
                    if let (Some(name), Some(value)) = (name, value) {
                        if name == "task.name" && wanted.contains(&value) {
                            found.insert(value);
                        }
                    }
                }
            }
        }
        runner.await.unwrap();
        found
    });
    let mut missing: Vec<&str> = REFERENCE_MODELS
        .iter()
        .map(|m| m.name)
        .filter(|m| !found.contains(*m))
        .collect();
    missing.sort_unstable();
    assert!(
        missing.is_empty(),
        "console never showed tasks named {missing:?}"
    );

    // The core kept recording beside the console layer.
    let snap = guard.flushed_snapshot();
    for m in &REFERENCE_MODELS {
        assert!(
            snap.model(m.name).is_some_and(|l| l.count() >= 5),
            "{} recorded",
            m.name
        );
    }
    assert!(snap.stage("embed_pipeline").is_some_and(|s| s.count() == 5));
}
