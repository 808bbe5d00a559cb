//! One thread that keeps its ring full must not starve the aggregator's other
//! work: `flush()` replies and periodic snapshots stay on time, and every span
//! closed is either recorded or counted as dropped.

use hdrtrace::{TracingConfig, TracingGuard};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Far more than a flush of a few rings needs, far less than the seconds an
/// aggregator draining one saturated ring to empty took.
const FLUSH_BOUND: Duration = Duration::from_secs(1);

/// One saturating producer at a time: the two tests would otherwise share
/// the machine's cores with each other's producer and aggregator.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static ONE: Mutex<()> = Mutex::new(());
    ONE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every request captured: the aggregator's work per record (assembling,
/// judging and keeping each request) outweighs the producer's.
fn config() -> TracingConfig {
    TracingConfig {
        sampling_rate: 1.0,
        ..TracingConfig::default()
    }
}

/// A thread that closes requests of two spans in a tight loop until `stop`,
/// and child spans under a root it leaves open until then; returns how many
/// spans it closed.
fn saturate(subscriber: hdrtrace::HdrSubscriber, stop: Arc<AtomicBool>) -> JoinHandle<u64> {
    std::thread::spawn(move || {
        tracing::subscriber::with_default(subscriber, || {
            let long_lived = tracing::info_span!("embed_pipeline", request_id = 0u64);
            let mut closed = 1u64;
            let mut id = 1u64;
            // Relaxed: a stop flag; the join orders everything after it.
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    tracing::info_span!("embed_pipeline", request_id = id)
                        .in_scope(|| tracing::info_span!("tokenize").in_scope(|| {}));
                    tracing::info_span!(parent: &long_lived, "tokenize").in_scope(|| {});
                    id += 1;
                    closed += 3;
                }
            }
            closed
        })
    })
}

/// Flushes on another thread; `None` when it has not returned within `limit`.
fn timed_flush(guard: &Arc<TracingGuard>, limit: Duration) -> Option<Duration> {
    let (tx, rx) = mpsc::channel();
    let g = guard.clone();
    std::thread::spawn(move || {
        let start = Instant::now();
        g.flush();
        let _ = tx.send(start.elapsed());
    });
    rx.recv_timeout(limit).ok()
}

#[test]
fn flush_replies_on_time_while_a_thread_saturates_its_ring() {
    let _one = one_at_a_time();
    let (subscriber, guard) = hdrtrace::build(&config()).unwrap();
    let guard = Arc::new(guard);
    let stop = Arc::new(AtomicBool::new(false));
    let producer = saturate(subscriber, stop.clone());
    std::thread::sleep(Duration::from_millis(200));
    let mut slowest = Duration::ZERO;
    let mut failure = None;
    for i in 0..10 {
        match timed_flush(&guard, Duration::from_secs(10)) {
            Some(took) => slowest = slowest.max(took),
            None => {
                failure = Some(format!("flush #{i} had not returned after 10 s"));
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let closed = producer.join().unwrap();
    assert_eq!(failure, None);
    assert!(
        slowest <= FLUSH_BOUND,
        "a flush took {slowest:?} while one thread saturated its ring (bound {FLUSH_BOUND:?})"
    );
    // Exact accounting once the producer stopped: recorded + dropped == closed.
    let done = timed_flush(&guard, Duration::from_secs(10));
    assert!(done.is_some(), "the last flush hung");
    let c = guard.snapshot().counters();
    assert_eq!(
        c.spans + c.dropped_records + c.dropped_spans,
        closed,
        "{c:?}"
    );
}

#[test]
fn snapshots_keep_being_published_while_a_thread_saturates_its_ring() {
    let _one = one_at_a_time();
    let config = TracingConfig {
        flush_interval: Duration::from_millis(100),
        ..config()
    };
    let (subscriber, guard) = hdrtrace::build(&config).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let producer = saturate(subscriber, stop.clone());
    std::thread::sleep(Duration::from_millis(200));
    // Over 3 s of 100 ms intervals, 30 snapshots are due: ask for a handful.
    let watched = Duration::from_secs(3);
    let start = Instant::now();
    let first = guard.snapshot().version();
    let mut advances = 0u32;
    let mut last = first;
    while start.elapsed() < watched {
        std::thread::sleep(Duration::from_millis(50));
        let v = guard.snapshot().version();
        if v > last {
            advances += 1;
            last = v;
        }
    }
    stop.store(true, Ordering::Relaxed);
    producer.join().unwrap();
    assert!(
        advances >= 5,
        "the published snapshot advanced {advances} times in {watched:?} with a {:?} flush \
         interval (versions {first} -> {last})",
        config.flush_interval
    );
}
