//! A service that names its device-time field its own way (`device_ns`):
//! every view of a captured request reads the device time the aggregator
//! read into the device-time histogram (the histogram, the text tree, the
//! Perfetto JSON and the OpenMetrics exemplars), and the raw field is shown
//! nowhere.
#![cfg(feature = "prometheus")]

use hdrtrace::export::{chrome_trace_json, prometheus, render_text};
use hdrtrace::{Conventions, TracingConfig};
use std::time::Duration;
use tracing::subscriber::with_default;

/// The device time the model span reports: 1.5 ms.
const DEVICE_NS: u64 = 1_500_000;

#[test]
fn a_renamed_device_time_field_reaches_every_view() {
    let config = TracingConfig {
        conventions: Conventions::default().device_time_field("device_ns"),
        sampling_rate: 1.0,
        ..TracingConfig::default()
    };
    let (subscriber, guard) = hdrtrace::build(&config).unwrap();
    with_default(subscriber, || {
        let request = tracing::info_span!("embed_pipeline", request_id = 7u64);
        let _r = request.enter();
        tracing::debug_span!(
            "model",
            model_id = "Causal",
            input_tokens = 12u64,
            device_ns = DEVICE_NS
        )
        .in_scope(|| {});
        // The default name is an ordinary field for this service.
        tracing::debug_span!("model", model_id = "Sparse", gpu_ns = 9u64).in_scope(|| {});
    });
    let snapshot = guard.flushed_snapshot();

    // The histogram.
    let causal = snapshot.model("Causal").expect("Causal recorded");
    let device = causal.gpu().expect("a device-time histogram");
    assert_eq!(device.count(), 1);
    let recorded = device.max().as_nanos() as f64;
    assert!(
        (recorded - DEVICE_NS as f64).abs() / (DEVICE_NS as f64) < 1e-3,
        "{recorded}"
    );
    let sparse = snapshot.model("Sparse").expect("Sparse recorded");
    assert!(sparse.gpu().is_none(), "gpu_ns is not this service's field");

    // The captured request: typed device time, the raw field gone.
    let trace = snapshot.captured().first().expect("sampled, so captured");
    let span = trace
        .models()
        .find(|s| s.label() == "Causal")
        .expect("its model span");
    assert_eq!(span.device, Some(Duration::from_nanos(DEVICE_NS)));
    assert!(span.field("device_ns").is_none(), "{:?}", span.fields);
    assert!(span.field("input_tokens").is_some(), "{:?}", span.fields);
    let other = trace.models().find(|s| s.label() == "Sparse").unwrap();
    assert_eq!(other.device, None);
    assert!(other.field("gpu_ns").is_some());

    // The text tree shows the device time, never the raw field.
    let text = render_text(trace);
    let line = text
        .lines()
        .find(|l| l.contains("model_id=Causal"))
        .expect("the model's line");
    assert!(line.contains(", device 1.50ms)"), "{text}");
    assert!(!text.contains("device_ns="), "{text}");
    assert!(text.contains("gpu_ns=9"), "{text}");

    // The Perfetto JSON carries it as a measure, not among the fields.
    let json = chrome_trace_json(std::slice::from_ref(trace));
    let event = json["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["ph"] == "X" && e["name"] == "Causal")
        .expect("the model's slice");
    assert_eq!(event["args"]["device_ms"], 1.5, "{event}");
    assert!(
        event["args"]["fields"].get("device_ns").is_none(),
        "{event}"
    );

    // The exemplars: the device-time histogram's bucket that holds 1.5 ms
    // names this request with that value.
    let metrics = prometheus::render(&snapshot);
    let prefix = "hdrtrace_model_gpu_seconds_bucket{model=\"Causal\",";
    let exemplars: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.split_once(" # ").map(|(_, e)| e))
        .collect();
    assert_eq!(exemplars.len(), 1, "{metrics}");
    let exemplar = exemplars[0];
    let trace_id = format!("{{trace_id=\"{}\"}} ", trace.trace_id());
    let rest = exemplar.strip_prefix(&trace_id).expect(exemplar);
    let value: f64 = rest.split(' ').next().unwrap().parse().unwrap();
    assert!((value - 0.0015).abs() < 1e-9, "{exemplar}");
}
