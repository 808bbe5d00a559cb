//! Loom model of snapshot publication (`src/read/publish.rs`): the
//! aggregator stores a snapshot, then advances the epoch; a reader that has
//! seen an epoch loads a snapshot at least that new.

use hdrtrace_loom_tests::{Arc, Publisher};
use loom::thread;

/// The publisher thread publishes versions 1 and 2 while a reader reads the
/// epoch then the snapshot, twice: every snapshot is at least as new as the
/// epoch read before it (no stale read) and the reader's versions never go
/// backwards.
#[test]
fn reader_never_sees_stale_or_older_snapshot() {
    loom::model(|| {
        let publisher = Arc::new(Publisher::new(0));
        let p2 = publisher.clone();
        let writer = thread::spawn(move || {
            p2.publish(1);
            p2.publish(2);
        });
        let mut last = 0;
        for _ in 0..2 {
            let epoch = publisher.epoch();
            let snapshot = publisher.load();
            assert!(
                snapshot.version >= epoch,
                "stale read: epoch {epoch}, snapshot {}",
                snapshot.version
            );
            assert!(
                snapshot.version >= last,
                "went backwards: {last} then {}",
                snapshot.version
            );
            assert!(snapshot.version <= 2);
            last = snapshot.version;
        }
        writer.join().unwrap();
        assert_eq!(publisher.epoch(), 2);
        assert_eq!(publisher.load().version, 2);
    });
}

/// Two readers at once: each sees a non-decreasing sequence, never older
/// than the epoch it read first.
#[test]
fn two_readers_each_monotonic() {
    loom::model(|| {
        let publisher = Arc::new(Publisher::new(0));
        let p2 = publisher.clone();
        let writer = thread::spawn(move || p2.publish(1));
        let p3 = publisher.clone();
        let reader = thread::spawn(move || {
            let epoch = p3.epoch();
            let a = p3.load().version;
            let b = p3.load().version;
            assert!(a >= epoch && b >= a, "epoch {epoch}, then {a}, then {b}");
        });
        let epoch = publisher.epoch();
        let a = publisher.load().version;
        assert!(a >= epoch, "stale read: epoch {epoch}, snapshot {a}");
        writer.join().unwrap();
        reader.join().unwrap();
        assert!(publisher.load().version >= a);
    });
}
