//! A request span's W3C `traceparent` as services give it: a later version
//! of the header, a value formatted with `?` (its `Debug` adds quotes), and
//! other fields of the root recorded after it.

use hdrtrace::{RemoteParent, TracingConfig};
use tracing::subscriber::with_default;

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const SPAN: &str = "b7ad6b7169203331";

fn caller() -> RemoteParent {
    RemoteParent {
        trace_id: u128::from_str_radix(TRACE, 16).unwrap(),
        span_id: u64::from_str_radix(SPAN, 16).unwrap(),
        sampled: true,
    }
}

/// Runs `requests` (each opens one request root with request id 1, 2, ...)
/// through a fresh subscriber that keeps every request; the remote parent of
/// each captured request by id, and the malformed traceparents counted.
fn remote_parents(requests: &[&dyn Fn(u64)]) -> (Vec<Option<RemoteParent>>, u64) {
    let config = TracingConfig {
        sampling_rate: 1.0,
        ..TracingConfig::default()
    };
    let (subscriber, guard) = hdrtrace::build(&config).unwrap();
    with_default(subscriber, || {
        for (i, request) in requests.iter().enumerate() {
            request(i as u64 + 1);
        }
    });
    let snapshot = guard.flushed_snapshot();
    let mut captured: Vec<_> = snapshot
        .captured()
        .iter()
        .map(|t| (t.request_id(), t.remote_parent()))
        .collect();
    captured.sort_by_key(|c| c.0);
    assert_eq!(
        captured.iter().map(|c| c.0).collect::<Vec<_>>(),
        (1..=requests.len() as u64).collect::<Vec<_>>(),
        "every request captured"
    );
    (
        captured.into_iter().map(|c| c.1).collect(),
        snapshot.counters().malformed_traceparents,
    )
}

fn model() {
    tracing::info_span!("model", model_id = "Causal").in_scope(|| {});
}

/// W3C Trace Context: a version above `00` is parsed by its first four
/// fields, with anything after them behind a `-`; version `ff` is invalid.
#[test]
fn a_later_version_joins_the_callers_trace() {
    let v01 = format!("01-{TRACE}-{SPAN}-01");
    let v7f = format!("7f-{TRACE}-{SPAN}-01-what-the-future-adds");
    let vff = format!("ff-{TRACE}-{SPAN}-01");
    let (parents, malformed) = remote_parents(&[
        &|request_id| {
            tracing::info_span!("embed_pipeline", request_id, traceparent = v01.as_str())
                .in_scope(model)
        },
        &|request_id| {
            tracing::info_span!("embed_pipeline", request_id, traceparent = %v7f).in_scope(model)
        },
        &|request_id| {
            tracing::info_span!("embed_pipeline", request_id, traceparent = vff.as_str())
                .in_scope(model)
        },
    ]);
    assert_eq!(parents, [Some(caller()), Some(caller()), None]);
    assert_eq!(malformed, 1, "version ff is refused and counted");
}

/// `traceparent = ?value` formats the value with `Debug`, which quotes a
/// string: the quotes are not part of the header.
#[test]
fn a_debug_formatted_traceparent_is_read() {
    let header = format!("00-{TRACE}-{SPAN}-01");
    let later = format!("02-{TRACE}-{SPAN}-01-{}", "x".repeat(80));
    let (parents, malformed) = remote_parents(&[
        &|request_id| {
            tracing::info_span!("embed_pipeline", request_id, traceparent = ?header).in_scope(model)
        },
        &|request_id| {
            tracing::info_span!("embed_pipeline", request_id, traceparent = ?later).in_scope(model)
        },
    ]);
    assert_eq!(parents, [Some(caller()), Some(caller())]);
    assert_eq!(malformed, 0);
}

/// A request root that also carries the model field, given after the
/// traceparent (at creation or recorded later), keeps its caller.
#[test]
fn fields_after_the_traceparent_keep_the_remote_parent() {
    let header = format!("00-{TRACE}-{SPAN}-01");
    let (parents, malformed) = remote_parents(&[
        &|request_id| {
            tracing::info_span!(
                "embed_pipeline",
                request_id,
                traceparent = header.as_str(),
                model_id = "Causal"
            )
            .in_scope(model)
        },
        &|request_id| {
            let root = tracing::info_span!(
                "embed_pipeline",
                request_id,
                traceparent = header.as_str(),
                model_id = tracing::field::Empty
            );
            root.record("model_id", "Causal");
            root.in_scope(model)
        },
        &|request_id| {
            tracing::info_span!(
                "embed_pipeline",
                model_id = 7u64,
                traceparent = header.as_str(),
                request_id
            )
            .in_scope(model)
        },
    ]);
    assert_eq!(parents, [Some(caller()); 3]);
    assert_eq!(malformed, 0);
}
