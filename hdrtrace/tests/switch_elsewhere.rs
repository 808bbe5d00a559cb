//! Switching the subscriber off and on from a thread where it is not the
//! default. tracing-core rebuilds its interest cache, and with one registered
//! dispatcher it asks the *calling* thread's default (tokio-rs/tracing#2874):
//! here the no-op, which would cache every callsite as "never" while the
//! switch says on. This file holds one test so that no other `Dispatch` is
//! alive in the process (a second one changes how tracing-core rebuilds).

use hdrtrace::TracingConfig;
use std::sync::mpsc;
use std::time::Duration;

fn request(i: u64) {
    let root = tracing::info_span!("embed_pipeline", request_id = i);
    let _r = root.enter();
    tracing::info_span!("model", model_id = "Toggled").in_scope(|| {});
}

#[test]
fn a_switch_from_another_thread_leaves_recording_on() {
    let (subscriber, guard) = hdrtrace::build(&TracingConfig::default()).unwrap();
    let (go_tx, go_rx) = mpsc::channel::<u64>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        tracing::subscriber::with_default(subscriber, || {
            // Each message asks for that many requests, then an answer.
            for n in go_rx {
                for i in 0..n {
                    request(i);
                }
                done_tx.send(()).unwrap();
            }
        })
    });
    let run = |n| {
        go_tx.send(n).unwrap();
        done_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    };
    run(100);
    assert_eq!(
        guard.flushed_snapshot().model("Toggled").map(|m| m.count()),
        Some(100)
    );
    // The main thread's default is the no-op: the toggles happen there.
    for _ in 0..3 {
        guard.set_enabled(false);
        guard.set_enabled(true);
    }
    assert!(guard.is_enabled());
    run(1_000);
    let snapshot = guard.flushed_snapshot();
    assert_eq!(
        snapshot.model("Toggled").map(|m| m.count()),
        Some(1_100),
        "requests after the toggle were not recorded"
    );
    // Off really is off, and on again records again.
    guard.set_enabled(false);
    run(10);
    guard.set_enabled(true);
    run(10);
    assert_eq!(
        guard.flushed_snapshot().model("Toggled").map(|m| m.count()),
        Some(1_110)
    );
    // Toggles racing on four threads, none of them the worker: whichever
    // interleaving, the switch left on means recording.
    std::thread::scope(|s| {
        for t in 0..4 {
            let guard = &guard;
            s.spawn(move || {
                for i in 0..200 {
                    guard.set_enabled((i + t) % 2 == 0);
                }
            });
        }
    });
    guard.set_enabled(true);
    run(100);
    assert_eq!(
        guard.flushed_snapshot().model("Toggled").map(|m| m.count()),
        Some(1_210)
    );
    drop(go_tx);
    worker.join().unwrap();
}
