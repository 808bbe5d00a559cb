//! OTLP export against an in-process collector (opentelemetry-proto's
//! generated `TraceService` server on a loopback port), and against an
//! endpoint where nothing listens.
#![cfg(feature = "otel")]

mod batch_support;

use hdrtrace::export::otel::{OtlpSink, OtlpStats};
use hdrtrace::{Builder, TracingConfig, TracingLevel};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::Span;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::subscriber::NoSubscriber;

const MODELS: [&str; 3] = ["Causal", "Vision", "Audio"];
const REQUESTS: [u64; 3] = [0xA11C_E001, 0xA11C_E002, 0xA11C_E003];

/// Everything the collector received, as (service.name, span) pairs.
type Received = Arc<Mutex<Vec<(String, Span)>>>;

struct Collector {
    received: Received,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = self.received.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| string_attr(&r.attributes, "service.name"))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    received.push((service.clone(), span));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// Serves a collector on a free loopback port from its own thread (which, like
/// the exporter's, records nothing into the test's global subscriber). The
/// server stops when the returned sender is dropped.
fn start_collector() -> (SocketAddr, Received, tokio::sync::oneshot::Sender<()>) {
    let received = Received::default();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let store = received.clone();
    std::thread::spawn(move || {
        let _quiet = tracing::subscriber::set_default(NoSubscriber::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            tonic::transport::Server::builder()
                .serve_with_incoming_shutdown(
                    TraceServiceServer::new(Collector { received: store }),
                    tonic::transport::server::TcpIncoming::from(listener),
                    async {
                        let _ = stop_rx.await;
                    },
                )
                .await
                .unwrap();
        });
    });
    let addr = addr_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    (addr, received, stop_tx)
}

/// The spans called `name`; at least one.
fn named<'a>(trace: &[&'a Span], name: &str) -> Vec<&'a Span> {
    let found: Vec<&Span> = trace.iter().copied().filter(|s| s.name == name).collect();
    assert!(!found.is_empty(), "no {name} span");
    found
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn string_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    match attr(attrs, key) {
        Some(Value::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

/// Runs the requests: `embed_pipeline` → `model_execution` → one `model` span
/// per model. In the first request Vision logs an error and Audio times out.
fn run_requests() {
    for (i, &request_id) in REQUESTS.iter().enumerate() {
        let root = tracing::info_span!("embed_pipeline", request_id);
        let _r = root.enter();
        let exec = tracing::info_span!("model_execution");
        let _e = exec.enter();
        for model in MODELS {
            let span = tracing::info_span!("model", model_id = model, input_tokens = 12u64);
            span.in_scope(|| {
                std::thread::sleep(Duration::from_millis(1));
                if i == 0 && model == "Vision" {
                    tracing::error!("model failed");
                }
            });
            if i == 0 && model == "Audio" {
                tracing::warn!(parent: &span, timeout = true, "timed out");
            }
        }
    }
}

/// A collector, and a scoped subscriber exporting to it.
fn exporting_subscriber() -> (
    Received,
    tokio::sync::oneshot::Sender<()>,
    hdrtrace::HdrSubscriber,
    hdrtrace::TracingGuard,
) {
    let (addr, received, stop) = start_collector();
    let (subscriber, guard) = hdrtrace::build(&TracingConfig {
        otel_endpoint: Some(format!("http://{addr}")),
        ..config()
    })
    .unwrap();
    (received, stop, subscriber, guard)
}

fn config() -> TracingConfig {
    TracingConfig {
        sampling_rate: 1.0,
        // Verbose: the subscriber would record every tonic / h2 span that
        // reached it, so the stage check below sees any that leak.
        level: TracingLevel::Verbose,
        ..TracingConfig::default()
    }
}

#[test]
fn collector_receives_request_trees() {
    let (addr, received, stop) = start_collector();
    // The user's path: `otel_endpoint` in the config. Global, so that the
    // exporter's own spans would reach the subscriber if the export thread did
    // not silence them.
    let guard = hdrtrace::init_tracing(&TracingConfig {
        otel_endpoint: Some(format!("http://{addr}")),
        ..config()
    })
    .unwrap();
    let stats = guard
        .otel_stats()
        .expect("otel_endpoint starts the exporter")
        .clone();
    run_requests();
    guard.flush();
    let snapshot_before_export = guard.snapshot();

    let spans = received.lock().unwrap().clone();
    let per_request = MODELS.len() + 2;
    assert_eq!(spans.len(), REQUESTS.len() * per_request, "{spans:#?}");
    assert_eq!(stats.spans_exported(), spans.len() as u64);
    assert_eq!(stats.export_errors(), 0, "{stats:?}");
    assert_eq!(stats.spans_dropped(), 0, "{stats:?}");
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "hdrtrace".into());
    assert!(spans.iter().all(|(s, _)| *s == service));

    // Each request's trace id is the one its captured trace derives
    // (`RequestTrace::trace_id`): this process's instance id in the high
    // half, never the request id zero-extended.
    let captured = snapshot_before_export.captured();
    let instance = hdrtrace::__bench::instance_id().to_be_bytes();
    for (i, &request_id) in REQUESTS.iter().enumerate() {
        let captured = captured
            .iter()
            .find(|t| t.request_id() == request_id)
            .expect("every request is sampled");
        let trace_id = captured.trace_id().to_bytes().to_vec();
        assert_eq!(trace_id[..8], instance, "request {request_id:#x}");
        assert_ne!(trace_id, u128::from(request_id).to_be_bytes().to_vec());
        let trace: Vec<&Span> = spans
            .iter()
            .map(|(_, s)| s)
            .filter(|s| s.trace_id == trace_id)
            .collect();
        assert_eq!(trace.len(), per_request, "request {request_id:#x}");
        let root = named(&trace, "embed_pipeline")[0];
        assert!(root.parent_span_id.is_empty(), "the root has no parent");
        assert!(matches!(
            attr(&root.attributes, "request_id"),
            Some(Value::IntValue(v)) if *v as u64 == request_id
        ));
        let exec = named(&trace, "model_execution")[0];
        assert_eq!(exec.parent_span_id, root.span_id);

        let models: HashMap<String, &Span> = named(&trace, "model")
            .into_iter()
            .map(|s| (string_attr(&s.attributes, "model_id").unwrap(), s))
            .collect();
        assert_eq!(
            models.keys().map(String::as_str).collect::<BTreeSet<_>>(),
            MODELS.into_iter().collect::<BTreeSet<_>>()
        );
        for (model, span) in &models {
            assert_eq!(span.parent_span_id, exec.span_id, "{model}'s parent");
            assert_eq!(span.span_id.len(), 8);
            assert_ne!(span.span_id, vec![0; 8]);
            assert!(matches!(
                attr(&span.attributes, "input_tokens"),
                Some(Value::IntValue(12))
            ));
            assert!(matches!(
                attr(&span.attributes, "busy_ns"),
                Some(Value::IntValue(ns)) if *ns > 0
            ));
            assert!(span.start_time_unix_nano >= exec.start_time_unix_nano);
            assert!(span.end_time_unix_nano <= exec.end_time_unix_nano);
            assert!(span.start_time_unix_nano < span.end_time_unix_nano);

            let status = span.status.clone().unwrap_or_default();
            match (i, model.as_str()) {
                (0, "Vision") => {
                    assert_eq!(status.code, StatusCode::Error as i32);
                    assert_eq!(status.message, "error");
                    let event = span.events.iter().find(|e| e.name == "model failed");
                    assert!(matches!(
                        event.and_then(|e| attr(&e.attributes, "level")),
                        Some(Value::StringValue(l)) if l == "ERROR"
                    ));
                }
                (0, "Audio") => {
                    assert_eq!(status.code, StatusCode::Error as i32);
                    assert_eq!(status.message, "timeout");
                    let event = span.events.iter().find(|e| e.name == "timed out");
                    assert!(matches!(
                        event.and_then(|e| attr(&e.attributes, "timeout")),
                        Some(Value::BoolValue(true))
                    ));
                }
                _ => assert_eq!(status.code, StatusCode::Unset as i32, "{model}"),
            }
        }
        assert!(root.start_time_unix_nano <= exec.start_time_unix_nano);
        assert!(exec.end_time_unix_nano <= root.end_time_unix_nano);
    }

    // Nothing the exporter did (tonic, h2, hyper, tower) was recorded. It
    // exported during the first flush, after the rings were drained, so a
    // second flush collects anything its thread recorded.
    guard.flush();
    let snapshot = guard.snapshot();
    let counters = snapshot.counters();
    assert_eq!(counters.spans, spans.len() as u64, "{counters:?}");
    assert_eq!(counters.events, 2, "{counters:?}");
    let stages: BTreeSet<&str> = snapshot.stages().map(|(name, _)| name).collect();
    assert!(
        stages.is_subset(&BTreeSet::from(["embed_pipeline", "model_execution"])),
        "unexpected stages: {stages:?}"
    );
    let models: BTreeSet<&str> = snapshot.models().map(|(name, _)| name).collect();
    assert_eq!(models, MODELS.into_iter().collect::<BTreeSet<_>>());

    drop(guard);
    drop(stop);
}

#[test]
fn unreachable_collector_neither_blocks_nor_crashes() {
    // A loopback port with nothing listening: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (sink, stats) = OtlpSink::builder(&format!("http://127.0.0.1:{port}"))
        .export_timeout(Duration::from_secs(2))
        .flush_timeout(Duration::from_secs(3))
        .shutdown_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    run_flush_and_drop(sink);
    // The failure is reported.
    assert_nothing_exported(&stats);
    let error = stats.last_error().expect("an error message");
    assert!(!error.is_empty());
}

#[test]
fn collector_that_never_answers_cannot_hang_flush_or_drop() {
    // Accepts TCP connections (the kernel completes them into the backlog)
    // but never speaks HTTP/2: every export waits for its timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let (sink, stats) = OtlpSink::builder(&format!("http://{addr}"))
        .export_timeout(Duration::from_millis(500))
        .flush_timeout(Duration::from_millis(500))
        // Generous, so a loaded machine cannot make the drop give up before
        // the export thread has counted everything; the drop still returns as
        // soon as that thread ends, bounded by the export timeout.
        .shutdown_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    run_flush_and_drop(sink);
    assert_nothing_exported(&stats);
    drop(silent);
}

/// A collector that never took anything: no span exported, the failure
/// counted, and every span of every request counted as dropped.
fn assert_nothing_exported(stats: &OtlpStats) {
    assert_eq!(stats.spans_exported(), 0);
    assert!(stats.export_errors() > 0, "{stats:?}");
    assert_eq!(
        stats.spans_dropped(),
        (REQUESTS.len() * (MODELS.len() + 2)) as u64,
        "{stats:?}"
    );
}

/// Runs the requests through a subscriber feeding `sink`, then flushes and
/// drops the guard on another thread, so that a hang fails the test instead of
/// stalling it; checks the pipeline was recorded in full regardless.
fn run_flush_and_drop(sink: OtlpSink) {
    let (subscriber, guard) = Builder::new(&config()).sink(sink).build().unwrap();
    tracing::subscriber::with_default(subscriber, run_requests);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        guard.flush();
        let snapshot = guard.snapshot();
        drop(guard);
        done_tx.send(snapshot).unwrap();
    });
    let snapshot = done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("flush and drop returned");
    for model in MODELS {
        assert_eq!(
            snapshot.model(model).unwrap().count(),
            REQUESTS.len() as u64
        );
    }
}

#[test]
fn bad_settings_are_refused_with_a_reason() {
    for (endpoint, needle) in [
        ("", "http://"),
        ("127.0.0.1:4317", "http://"),
        ("http://:4317", "host"),
        ("http://127.0.0.1:99999", "port"),
        ("https://collector:4317", "https"),
    ] {
        let err = OtlpSink::new(endpoint, "svc").unwrap_err().to_string();
        assert!(err.contains(needle), "{endpoint:?}: {err}");
    }
    let err = OtlpSink::new("http://127.0.0.1:4317", " ")
        .unwrap_err()
        .to_string();
    assert!(err.contains("service name"), "{err}");
    let err = OtlpSink::builder("http://127.0.0.1:4317")
        .max_batch(0)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_batch"), "{err}");
    let err = OtlpSink::builder("http://127.0.0.1:4317")
        .flush_timeout(Duration::ZERO)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("flush_timeout"), "{err}");
}

/// A request span carrying the caller's W3C `traceparent` joins the caller's
/// trace: its spans are exported under the caller's trace id, its root a child
/// of the caller's span. A malformed one is ignored, counted, never a panic.
#[test]
fn an_incoming_traceparent_joins_the_callers_trace() {
    const CALLER: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let other_caller = String::from("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
    let (received, _stop, subscriber, guard) = exporting_subscriber();
    tracing::subscriber::with_default(subscriber, || {
        let joined = tracing::info_span!("embed_pipeline", request_id = 7u64, traceparent = CALLER);
        joined.in_scope(|| tracing::info_span!("model", model_id = "Causal").in_scope(|| {}));
        // As a `%Display` value.
        let displayed =
            tracing::info_span!("embed_pipeline", request_id = 9u64, traceparent = %other_caller);
        displayed.in_scope(|| tracing::info_span!("model", model_id = "Causal").in_scope(|| {}));
        let bad = tracing::info_span!(
            "embed_pipeline",
            request_id = 8u64,
            traceparent = "00-not-a-traceparent-01"
        );
        bad.in_scope(|| tracing::info_span!("model", model_id = "Causal").in_scope(|| {}));
    });
    guard.flush();
    let snapshot = guard.snapshot();
    assert_eq!(snapshot.counters().malformed_traceparents, 1);
    let captured = |id: u64| {
        snapshot
            .captured()
            .iter()
            .find(|t| t.request_id() == id)
            .cloned()
            .expect("sampled")
    };
    let (joined, displayed, own) = (captured(7), captured(9), captured(8));
    assert_eq!(
        joined.trace_id().to_string(),
        "0af7651916cd43dd8448eb211c80319c"
    );
    let caller = joined.remote_parent().expect("joined the caller");
    assert_eq!(caller.span_id, 0xb7ad_6b71_6920_3331);
    assert!(caller.sampled);
    assert_eq!(
        displayed.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert!(
        own.remote_parent().is_none(),
        "the malformed one is ignored"
    );
    assert_eq!(
        own.trace_id().to_bytes()[..8],
        hdrtrace::__bench::instance_id().to_be_bytes()
    );

    let spans = received.lock().unwrap().clone();
    let of = |trace: &hdrtrace::RequestTrace| -> Vec<&Span> {
        let id = trace.trace_id().to_bytes().to_vec();
        spans
            .iter()
            .map(|(_, s)| s)
            .filter(|s| s.trace_id == id)
            .collect()
    };
    let joined_spans = of(&joined);
    assert_eq!(joined_spans.len(), 2, "{joined_spans:#?}");
    let root = named(&joined_spans, "embed_pipeline")[0];
    assert_eq!(
        root.parent_span_id,
        0xb7ad_6b71_6920_3331u64.to_be_bytes().to_vec(),
        "the root is the caller's span's child"
    );
    assert_eq!(
        named(&joined_spans, "model")[0].parent_span_id,
        root.span_id
    );
    let displayed_root = named(&of(&displayed), "embed_pipeline")[0];
    assert_eq!(
        displayed_root.parent_span_id,
        0x00f0_67aa_0ba9_02b7u64.to_be_bytes().to_vec()
    );
    let own_spans = of(&own);
    assert_eq!(own_spans.len(), 2);
    assert!(named(&own_spans, "embed_pipeline")[0]
        .parent_span_id
        .is_empty());
}

/// Two requests whose model spans one batch served (linked both ways with
/// `follows_from`): each request's exported trace holds the batch span, a
/// child of the model span it served, and the receiver sees the span links
/// between them, both ways, by their exported span ids.
#[test]
fn the_collector_sees_links_between_model_spans_and_their_batch() {
    let (received, _stop, subscriber, guard) = exporting_subscriber();
    tracing::subscriber::with_default(subscriber, || {
        let (_roots, models) = batch_support::requests([21, 22]);
        let batch = batch_support::batch_for(&models, 2);
        batch.in_scope(|| std::thread::sleep(Duration::from_millis(1)));
    });
    guard.flush();
    let snapshot = guard.snapshot();
    let spans = received.lock().unwrap().clone();
    let mut batch_ids = BTreeSet::new();
    for id in [21u64, 22] {
        let trace = snapshot
            .captured()
            .iter()
            .find(|t| t.request_id() == id)
            .expect("sampled");
        let trace_id = trace.trace_id().to_bytes().to_vec();
        let exported: Vec<&Span> = spans
            .iter()
            .map(|(_, s)| s)
            .filter(|s| s.trace_id == trace_id)
            .collect();
        assert_eq!(exported.len(), 3, "root, model, batch: {exported:#?}");
        let model = named(&exported, "model")[0];
        let batch = named(&exported, "batch")[0];
        batch_ids.insert(batch.span_id.clone());
        assert_eq!(
            batch.parent_span_id, model.span_id,
            "shown under its model span"
        );
        assert!(matches!(
            attr(&batch.attributes, "hdrtrace.shared"),
            Some(Value::BoolValue(true))
        ));
        assert!(matches!(
            attr(&batch.attributes, "batch_size"),
            Some(Value::IntValue(2))
        ));
        let linked = |from: &Span, to: &Span| {
            from.links
                .iter()
                .any(|l| l.span_id == to.span_id && l.trace_id == trace_id)
        };
        assert!(linked(model, batch), "model -> batch: {:#?}", model.links);
        assert!(linked(batch, model), "batch -> model: {:#?}", batch.links);
        let root = named(&exported, "embed_pipeline")[0];
        assert_eq!(
            string_attr(&root.attributes, "hdrtrace.verdict").as_deref(),
            Some(trace.verdict())
        );
        assert_eq!(
            string_attr(&root.attributes, "hdrtrace.outcome").as_deref(),
            Some(trace.outcome().name())
        );
    }
    assert_eq!(batch_ids.len(), 1, "one batch span, in both traces");
}
