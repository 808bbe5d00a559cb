//! The model field's value, whatever its type, is the model's key: typed ids
//! keep their type, and a model span without a key is counted, not silently
//! turned into a stage series.

use hdrtrace::TracingConfig;
use tracing::subscriber::with_default;

fn snapshot_of(spans: impl FnOnce()) -> hdrtrace::LatencySnapshot {
    let (subscriber, guard) = hdrtrace::build(&TracingConfig::default()).unwrap();
    with_default(subscriber, || {
        tracing::info_span!("embed_pipeline", request_id = 1u64).in_scope(spans)
    });
    guard.flushed_snapshot()
}

fn models(snapshot: &hdrtrace::LatencySnapshot) -> Vec<(String, u64)> {
    let mut m: Vec<(String, u64)> = snapshot
        .models()
        .map(|(name, l)| (name.to_string(), l.count()))
        .collect();
    m.sort();
    m
}

#[test]
fn typed_ids_keep_their_type() {
    let snapshot = snapshot_of(|| {
        tracing::info_span!("model", model_id = -1i64).in_scope(|| {});
        tracing::info_span!("model", model_id = u64::MAX).in_scope(|| {});
        tracing::info_span!("model", model_id = 1.5f64).in_scope(|| {});
        tracing::info_span!("model", model_id = true).in_scope(|| {});
        tracing::info_span!("model", model_id = 7u64).in_scope(|| {});
        tracing::info_span!("model", model_id = "7").in_scope(|| {});
    });
    assert_eq!(
        models(&snapshot),
        [
            ("-1".to_string(), 1),
            ("1.5".to_string(), 1),
            ("18446744073709551615".to_string(), 1),
            ("7".to_string(), 2),
            ("true".to_string(), 1),
        ]
    );
    assert!(snapshot.stage("model").is_none(), "no model became a stage");
    assert_eq!(snapshot.counters().missing_model_ids, 0);
}

#[test]
fn a_model_span_without_an_id_is_counted() {
    let snapshot = snapshot_of(|| {
        tracing::info_span!("model", model_id = "").in_scope(|| {});
        tracing::info_span!("model", model_id = tracing::field::Empty).in_scope(|| {});
        let late = tracing::info_span!("model", model_id = tracing::field::Empty);
        late.record("model_id", "Causal");
        late.in_scope(|| {});
    });
    assert_eq!(models(&snapshot), [("Causal".to_string(), 1)]);
    assert_eq!(snapshot.counters().missing_model_ids, 2);
}
