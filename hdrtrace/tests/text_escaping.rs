//! The text tree is printed on terminals: a model id or an event message
//! with control characters (an escape sequence, a newline) is shown escaped,
//! never obeyed.

use hdrtrace::export::render_text;
use hdrtrace::TracingConfig;
use std::time::Duration;

#[test]
fn control_characters_in_ids_and_messages_are_escaped() {
    let hostile = "Evil\u{1b}[2J\nBottleneck: fake";
    let cfg = TracingConfig {
        sampling_rate: 1.0,
        latency_target: Duration::from_nanos(1),
        ..TracingConfig::default()
    };
    let (subscriber, guard) = hdrtrace::build(&cfg).expect("valid config");
    tracing::subscriber::with_default(subscriber, || {
        let root = tracing::info_span!("embed_pipeline", request_id = 1u64);
        let _r = root.enter();
        let model = tracing::info_span!("model", model_id = hostile);
        let _m = model.enter();
        tracing::warn!(timeout = true, "gave up \u{1b}[31mred\nnext line");
    });
    let snap = guard.flushed_snapshot();
    let t = snap.captured().first().expect("captured");
    assert!(
        t.verdict().contains('\u{1b}'),
        "the model keeps the id as is"
    );
    let text = render_text(t);
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(
        text.contains("model_id=Evil\\x1b[2J\\nBottleneck: fake"),
        "{text}"
    );
    assert!(text.contains("gave up \\x1b[31mred\\nnext line"), "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("Bottleneck: "))
            .count(),
        1,
        "{text}"
    );
}
