//! One trace id per captured request, the same in every view: the text tree,
//! the Perfetto JSON and the Prometheus exemplars (the OTLP export is checked
//! against it in tests/otel.rs); and distinct across instances even for equal
//! request ids.

use hdrtrace::__bench::instance_id;
use hdrtrace::export::{chrome_trace_json, render_text};
use hdrtrace::{RequestTrace, TracingConfig};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// Two requests with ids 1 and 2 through a fresh subscriber (one instance);
/// its captured traces and its snapshot.
fn instance() -> (Vec<Arc<RequestTrace>>, hdrtrace::LatencySnapshot) {
    let config = TracingConfig {
        sampling_rate: 1.0,
        ..TracingConfig::default()
    };
    let (subscriber, guard) = hdrtrace::build(&config).unwrap();
    tracing::subscriber::with_default(subscriber, || {
        for request_id in [1u64, 2] {
            let root = tracing::info_span!("embed_pipeline", request_id);
            let _r = root.enter();
            tracing::info_span!("model", model_id = "Causal")
                .in_scope(|| std::thread::sleep(Duration::from_millis(1)));
        }
    });
    let snapshot = guard.flushed_snapshot();
    (snapshot.captured().to_vec(), snapshot)
}

#[test]
fn every_view_shows_the_one_trace_id() {
    // Two instances in one process, with the same request ids.
    let (a, snapshot_a) = instance();
    let (b, _) = instance();
    assert_eq!((a.len(), b.len()), (2, 2));
    let ids: BTreeSet<String> = a
        .iter()
        .chain(&b)
        .map(|t| t.trace_id().to_string())
        .collect();
    assert_eq!(ids.len(), 4, "trace ids collide: {ids:?}");
    let high = format!("{:016x}", instance_id());
    for id in &ids {
        assert_eq!(id.len(), 32);
        assert!(id
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert!(id.starts_with(&high), "{id}: the instance id first");
        assert_ne!(&id[16..], format!("{:016x}", 1), "not the request id");
    }

    for t in a.iter().chain(&b) {
        let id = t.trace_id().to_string();
        // Derived, not drawn: asking again gives the same id.
        assert_eq!(t.trace_id().to_string(), id);
        let text = render_text(t);
        assert_eq!(
            text.lines().last(),
            Some(format!("Trace: {id}").as_str()),
            "{text}"
        );
        let json = chrome_trace_json(std::slice::from_ref(t));
        let spans: Vec<&serde_json::Value> = json["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ph"] == "X")
            .collect();
        assert_eq!(spans.len(), t.spans().len());
        assert!(
            spans.iter().all(|e| e["args"]["trace_id"] == id.as_str()),
            "{json}"
        );
    }

    #[cfg(feature = "prometheus")]
    {
        let text = hdrtrace::export::prometheus::render(&snapshot_a);
        let ids_a: BTreeSet<String> = a.iter().map(|t| t.trace_id().to_string()).collect();
        let shown: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_once(" # {trace_id=\"").map(|(_, e)| &e[..32]))
            .collect();
        assert!(!shown.is_empty(), "{text}");
        assert!(
            shown.iter().all(|id| ids_a.contains(*id)),
            "{shown:?} vs {ids_a:?}"
        );
    }
    #[cfg(not(feature = "prometheus"))]
    drop(snapshot_a);
}
