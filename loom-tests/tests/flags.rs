//! Loom models of the run-time switches (`src/recording/sampling.rs`): the enable flag
//! and the sampling rate, set on one thread and read on another.

use hdrtrace_loom_tests::{Arc, Sampler, Switch};
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;

/// A few request ids; with rate 0.5 at least one is in and one is out.
const IDS: [u64; 4] = [1, 2, 3, 4];

/// A rate set on one thread is the rate in force after a release/acquire
/// handshake; without it a reader sees the old or the new rate, nothing else.
#[test]
fn rate_change_is_seen_after_handshake() {
    loom::model(|| {
        let sampler = Arc::new(Sampler::new(0.0));
        let ready = Arc::new(AtomicBool::new(false));
        let (s2, r2) = (sampler.clone(), ready.clone());
        let setter = thread::spawn(move || {
            s2.set_rate(1.0);
            // Release: publishes the rate change to the acquire below.
            r2.store(true, Ordering::Release);
        });
        // Acquire: pairs with the release store above.
        let seen = ready.load(Ordering::Acquire);
        let decided = sampler.decide(9);
        let rate = sampler.rate();
        if seen {
            assert!(decided, "rate 1 set before the handshake, decision was no");
            assert_eq!(rate, 1.0);
        } else {
            assert!(rate == 0.0 || rate == 1.0, "torn rate {rate}");
        }
        setter.join().unwrap();
        assert_eq!(sampler.rate(), 1.0);
        assert!(IDS.iter().all(|&id| sampler.decide(id)));
    });
}

/// Turning sampling off on one thread while another decides: after the join
/// nothing is sampled, and the concurrent decision was made at one rate or
/// the other (at rate 1 it is yes, at rate 0 no: both are allowed).
#[test]
fn rate_drop_to_zero_after_join() {
    loom::model(|| {
        let sampler = Arc::new(Sampler::new(1.0));
        let s2 = sampler.clone();
        let setter = thread::spawn(move || s2.set_rate(0.0));
        let rate = sampler.rate();
        assert!(rate == 0.0 || rate == 1.0, "torn rate {rate}");
        setter.join().unwrap();
        assert_eq!(sampler.rate(), 0.0);
        assert!(!IDS.iter().any(|&id| sampler.decide(id)), "rate 0 sampled");
    });
}

/// The same id gets the same decision on every thread at a given rate, rate
/// 0 never samples and rate 1 always does.
#[test]
fn decisions_are_deterministic_per_id() {
    loom::model(|| {
        let sampler = Arc::new(Sampler::new(0.5));
        let s2 = sampler.clone();
        let other = thread::spawn(move || IDS.map(|id| s2.decide(id)));
        let mine = IDS.map(|id| sampler.decide(id));
        let theirs = other.join().unwrap();
        assert_eq!(mine, theirs, "one id, two decisions");
        assert!(
            mine.contains(&true) && mine.contains(&false),
            "rate 0.5 gave {mine:?}"
        );

        let never = Sampler::new(0.0);
        let always = Sampler::new(1.0);
        for id in [0, 1, u64::MAX / 2, u64::MAX] {
            assert!(!never.decide(id), "rate 0 sampled {id}");
            assert!(always.decide(id), "rate 1 skipped {id}");
        }
    });
}

/// Two threads switch the flag on at once: the swap gives exactly one of them
/// `false` as the previous value (the one that must rebuild the interest
/// cache), and the flag is on afterwards.
#[test]
fn switch_previous_value_is_exclusive() {
    loom::model(|| {
        let switch = Arc::new(Switch::new(false));
        assert!(!switch.is_on());
        let s2 = switch.clone();
        let other = thread::spawn(move || s2.set(true));
        let mine = switch.set(true);
        let theirs = other.join().unwrap();
        assert!(mine != theirs, "previous values {mine} and {theirs}");
        assert!(switch.is_on());
        assert!(switch.set(false), "set returns the previous value");
        assert!(!switch.is_on());
    });
}

/// The flag switched off on one thread is seen off after a release/acquire
/// handshake, and on or off (never anything else) before it.
#[test]
fn switch_off_is_seen_after_handshake() {
    loom::model(|| {
        let switch = Arc::new(Switch::new(true));
        let ready = Arc::new(AtomicBool::new(false));
        let (s2, r2) = (switch.clone(), ready.clone());
        let setter = thread::spawn(move || {
            let was = s2.set(false);
            // Release: publishes the switch to the acquire below.
            r2.store(true, Ordering::Release);
            was
        });
        // Acquire: pairs with the release store above.
        if ready.load(Ordering::Acquire) {
            assert!(
                !switch.is_on(),
                "switched off before the handshake, seen on"
            );
        }
        assert!(setter.join().unwrap(), "the flag started on");
        assert!(!switch.is_on());
    });
}
