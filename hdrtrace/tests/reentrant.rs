//! Recording from inside the subscriber: a log line's field whose `Debug`
//! opens a span and fires an event. Under a *global* default tracing-core
//! passes such re-entrant calls on (a scoped default drops them itself), so
//! they reach the subscriber while this thread's state is lent to the outer
//! line: they must be refused and counted, never alias that state.

mod writer_support;

use hdrtrace::TracingConfig;

/// A field whose `Debug` records.
struct Chatty;

impl std::fmt::Debug for Chatty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        tracing::info_span!("model", model_id = "Inner")
            .in_scope(|| tracing::warn!("from inside Debug"));
        f.write_str("chatty")
    }
}

#[test]
fn recording_from_a_fields_debug_is_refused_and_counted() {
    let (out, sub, guard) = writer_support::logged(&TracingConfig::default());
    tracing::subscriber::set_global_default(sub).expect("the first global default");
    {
        let root = tracing::info_span!("embed_pipeline", request_id = 7u64);
        let _r = root.enter();
        tracing::warn!(detail = ?Chatty, "outer");
        // The thread records as before once the line is written.
        tracing::info_span!("model", model_id = "After").in_scope(|| {});
    }
    let snapshot = guard.flushed_snapshot();
    drop(guard);
    let lines = out.lines();
    assert!(
        lines.iter().any(|l| l.contains("outer detail=chatty")),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("from inside Debug")),
        "{lines:#?}"
    );
    // The span opened inside `Debug` found the state lent out: not tracked,
    // and counted.
    assert_eq!(snapshot.counters().dropped_spans, 1);
    assert!(snapshot.model("Inner").is_none());
    assert_eq!(snapshot.model("After").map(|m| m.count()), Some(1));
}
