//! Loom models of the callsite table (`src/recording/callsite_table.rs`):
//! callsites registered from several threads at once while spans look them
//! up. A lookup gets the right callsite's word or 0 (its caller then
//! classifies the callsite itself), never another callsite's; each key takes
//! one place however many threads insert it; a full table refuses.

use hdrtrace_loom_tests::{Arc, CallsiteTable, TABLE_SIZE};
use loom::thread;

/// `n` distinct keys (aligned addresses, as metadata's are) that share one
/// home place, so they collide and probe.
fn colliding_keys(n: usize) -> Vec<usize> {
    let home = CallsiteTable::home(8);
    let keys: Vec<usize> = (1..10_000)
        .map(|i| i * 8)
        .filter(|&k| CallsiteTable::home(k) == home)
        .take(n)
        .collect();
    assert_eq!(keys.len(), n, "found {n} keys with one home");
    keys
}

/// The word a key is stored with in these models.
fn word(key: usize) -> u64 {
    1 << 63 | key as u64
}

/// Two callsites with one home place are registered on two threads while a
/// third looks both up: every lookup gets its own key's word or 0, and once
/// both registrations are done both are found.
#[test]
fn racing_registrations_never_hand_out_another_callsite_s_word() {
    let keys = colliding_keys(2);
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(move || {
        let table = Arc::new(CallsiteTable::default());
        let writers: Vec<_> = keys
            .iter()
            .map(|&key| {
                let table = table.clone();
                thread::spawn(move || assert!(table.insert(key, word(key))))
            })
            .collect();
        for &key in &keys {
            let got = table.get(key);
            assert!(got == 0 || got == word(key), "{key}: got {got:#x}");
        }
        for w in writers {
            w.join().unwrap();
        }
        for &key in &keys {
            assert_eq!(table.get(key), word(key));
        }
    });
}

/// One callsite registered from two threads at once takes one place: the
/// table still has room for `TABLE_SIZE - 1` other callsites, and refuses the
/// next one.
#[test]
fn a_callsite_registered_twice_at_once_takes_one_place() {
    let keys = colliding_keys(TABLE_SIZE + 1);
    loom::model(move || {
        let table = Arc::new(CallsiteTable::default());
        let first = keys[0];
        let t = {
            let table = table.clone();
            thread::spawn(move || table.insert(first, word(first)))
        };
        assert!(table.insert(first, word(first)));
        assert!(t.join().unwrap());
        assert_eq!(table.get(first), word(first));
        for &key in &keys[1..TABLE_SIZE] {
            assert!(table.insert(key, word(key)), "no room for {key}");
        }
        let extra = keys[TABLE_SIZE];
        assert!(
            !table.insert(extra, word(extra)),
            "a full table took {extra}"
        );
        assert_eq!(table.get(extra), 0);
        for &key in &keys[..TABLE_SIZE] {
            assert_eq!(table.get(key), word(key));
        }
    });
}
