//! The text tree of a deeply nested request grows linearly with its spans:
//! indentation stops at a fixed width and deeper lines state their depth.

use hdrtrace::export::render_text;
use hdrtrace::TracingConfig;

/// Spans nested one inside the other below the request's root.
const DEPTH: usize = 10_000;

/// A captured request of `DEPTH` spans, each the child of the one before.
fn nested_request() -> hdrtrace::LatencySnapshot {
    let config = TracingConfig {
        sampling_rate: 1.0,
        capture_capacity: 1,
        max_capture_spans: 2 * DEPTH,
        memory_budget: 256 << 20,
        ..TracingConfig::default()
    };
    let (subscriber, guard) = hdrtrace::build(&config).expect("config within bounds");
    tracing::subscriber::with_default(subscriber, || {
        let root = tracing::info_span!("embed_pipeline", request_id = 7u64);
        let mut open = vec![root];
        for i in 0..DEPTH {
            let span = tracing::info_span!(parent: open.last().unwrap(), "stage");
            open.push(span);
            if i % 256 == 255 {
                guard.flush(); // keep the rings from filling
            }
        }
        // Innermost first, as a nested request closes.
        while let Some(span) = open.pop() {
            drop(span);
            if open.len() % 256 == 0 {
                guard.flush();
            }
        }
    });
    guard.flushed_snapshot()
}

#[test]
fn ten_thousand_nested_spans_render_in_linear_space() {
    let snapshot = nested_request();
    let t = snapshot
        .captured()
        .first()
        .expect("the request was captured");
    assert!(t.complete(), "every record arrived");
    assert_eq!(t.spans().len(), DEPTH + 1);
    let text = render_text(t);
    // Indenting two spaces a level without end took 100 MB here.
    let per_span = text.len() / t.spans().len();
    assert!(
        per_span < 128,
        "{} bytes of text for {} spans ({per_span} a span)",
        text.len(),
        t.spans().len()
    );
    let lines: Vec<&str> = text.lines().collect();
    // Shallow lines are indented two spaces a level, as before.
    assert!(
        lines[0].starts_with("embed_pipeline{request_id=7}: "),
        "{:?}",
        lines[0]
    );
    assert!(lines[3].starts_with("      stage: "), "{:?}", lines[3]);
    // Deep ones stop at a fixed indentation and state their depth.
    let deepest = lines[DEPTH];
    assert!(
        deepest.trim_start().starts_with("(depth 10000) stage: "),
        "{deepest:?}"
    );
    let widest = lines.iter().map(|l| l.len() - l.trim_start().len()).max();
    assert!(widest <= Some(64), "indented {widest:?} spaces");
    // Every depth still reads back: one line per span, in order.
    for (depth, line) in lines.iter().enumerate().take(DEPTH + 1).skip(40) {
        assert!(
            line.trim_start()
                .starts_with(&format!("(depth {depth}) stage")),
            "{line:?}"
        );
    }
}
