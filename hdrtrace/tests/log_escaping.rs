//! Control characters in anything a log line carries (message, field names
//! and values, target, model id) are escaped: no input forges a line or
//! reaches the terminal raw.

mod writer_support;

use hdrtrace::TracingConfig;
use std::fmt;
use tracing::subscriber::with_default;

/// Writes raw control characters from its `Debug`.
struct RawDebug;
impl fmt::Debug for RawDebug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dbg\n\x1b[31mred\r\x07\0\x7f\u{9b}2J")
    }
}

/// Every C0 control, DEL and every C1 control, as `Display`.
struct AllControls;
impl fmt::Display for AllControls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in (0u32..0x20).chain(0x7f..0xa0) {
            f.write_str(char::from_u32(c).unwrap().encode_utf8(&mut [0; 4]))?;
        }
        Ok(())
    }
}

const FORGED: &str = "2030-01-01T00:00:00.000000Z ERROR auth: request_id=1 FORGED admin login";

#[test]
fn no_input_forges_a_line_or_reaches_the_terminal_raw() {
    let (out, sub, guard) = writer_support::logged(&TracingConfig::default());
    let mut events = 0;
    with_default(sub, || {
        tracing::info!("x\n{FORGED}");
        tracing::info!(user = %format!("bob\n{FORGED}"), "display field");
        tracing::info!(v = ?RawDebug, "debug field");
        tracing::info!(s = "str\nfield\x1b", "str field");
        tracing::info!("{}", AllControls);
        tracing::info!(target: "evil\ntarget\x1b", "target");
        tracing::info!("evil\nname\x1b" = 1u64, "field name");
        let root = tracing::info_span!("embed_pipeline", request_id = 7u64);
        let _r = root.enter();
        tracing::info_span!("model", model_id = "M\nFORGED\x1b[2J").in_scope(|| {
            tracing::warn!("in a forged model");
        });
        events = 8;
    });
    drop(guard);
    let bytes = out.0.lock().unwrap().clone();
    let lines = out.lines();
    assert_eq!(lines.len(), events, "one line per event: {lines:#?}");
    assert_eq!(bytes.last(), Some(&b'\n'));
    for (i, b) in bytes.iter().enumerate() {
        let raw = (*b < 0x20 && *b != b'\n') || *b == 0x7f;
        assert!(!raw, "raw control byte {b:#04x} at {i} in {lines:#?}");
    }
    for line in &lines {
        assert!(
            !line.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c)),
            "a raw C1 control in {line:?}"
        );
        assert!(!line.starts_with("2030"), "a forged line: {line:?}");
    }
    assert!(
        lines[0].ends_with(&format!("x\\n{FORGED}")),
        "{:?}",
        lines[0]
    );
    assert!(
        lines[2].contains("\\x1b[31mred\\r\\x07\\x00\\x7f\\u{9b}2J"),
        "{:?}",
        lines[2]
    );
    assert!(
        lines[7].contains("model=M\\nFORGED\\x1b[2J"),
        "{:?}",
        lines[7]
    );
}
