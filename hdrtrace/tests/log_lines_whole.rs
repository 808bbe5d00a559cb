//! Long lines from many threads at once: each is written whole or not at
//! all, never spliced with another thread's.

mod writer_support;

use hdrtrace::TracingConfig;
use std::collections::HashSet;

const THREADS: usize = 8;
const LINES: usize = 3_000;
/// About 1.1 KB: ten ring chunks a line.
const PAYLOAD: usize = 1_100;

/// The message thread `t` logs as its line `i`: its own letter throughout,
/// framed by who wrote it.
fn message(t: usize, i: usize) -> String {
    let letter = char::from(b'a' + t as u8);
    format!(
        "<t={t} i={i}>{}</t={t} i={i}>",
        letter.to_string().repeat(PAYLOAD)
    )
}

#[test]
fn long_lines_from_eight_threads_are_never_spliced() {
    let (out, sub, guard) = writer_support::logged(&TracingConfig::default());
    let dispatch = tracing::Dispatch::new(sub);
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let d = dispatch.clone();
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&d, || {
                    for i in 0..LINES {
                        tracing::info!("{}", message(t, i));
                        if i % 8 == 7 {
                            // Paced so that the log thread drains while
                            // lines are being pushed, not only full rings.
                            std::thread::sleep(std::time::Duration::from_micros(100));
                        }
                    }
                })
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let source = guard.snapshot_source();
    drop(dispatch);
    drop(guard);
    let dropped = source.snapshot().counters().dropped_log_lines;
    let lines = out.lines();
    assert!(!lines.is_empty(), "all {dropped} lines dropped");
    let mut seen = HashSet::new();
    let mut corrupt = Vec::new();
    for line in &lines {
        let whole = line.split_once(": ").and_then(|(_, body)| {
            let (t, rest) = body.strip_prefix("<t=")?.split_once(" i=")?;
            let (i, _) = rest.split_once('>')?;
            let (t, i) = (t.parse().ok()?, i.parse().ok()?);
            (t < THREADS && i < LINES && body == message(t, i)).then_some((t, i))
        });
        match whole {
            Some(id) if seen.insert(id) => {}
            _ => corrupt.push(line.chars().take(200).collect::<String>()),
        }
    }
    assert!(
        corrupt.is_empty(),
        "{} of {} lines spliced or repeated, e.g. {:?}",
        corrupt.len(),
        lines.len(),
        &corrupt[..corrupt.len().min(3)]
    );
    assert_eq!(
        lines.len() as u64 + dropped,
        (THREADS * LINES) as u64,
        "written {}, dropped {dropped}",
        lines.len()
    );
}
