//! The hot path allocates nothing: a counting global allocator counts the
//! allocations made by measured threads while they run span lifecycles, after
//! each thread's warm-up (its first span creates its ring), on plain threads and
//! in tokio JoinSet tasks, with the subscriber enabled and disabled; batched
//! requests add `follows_from` links, kept and dropped past `MAX_LINKS`.

mod alloc_support;

use alloc_support::{allocs_of, ALLOCS};
use hdrtrace::{TracingConfig, TracingLevel};
use std::sync::atomic::{AtomicU64, Ordering};

#[global_allocator]
static GLOBAL: alloc_support::Counting = alloc_support::Counting;

/// Counts the log lines written to it.
#[derive(Clone, Default)]
struct LineCount(std::sync::Arc<AtomicU64>);
impl std::io::Write for LineCount {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = b.iter().filter(|&&c| c == b'\n').count() as u64;
        // Relaxed: read by the test after the log thread wrote.
        self.0.fetch_add(n, Ordering::Relaxed);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
impl LineCount {
    fn get(&self) -> u64 {
        // Relaxed: see `write`.
        self.0.load(Ordering::Relaxed)
    }
}

struct Name(&'static str);
impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

static EVENTS: AtomicU64 = AtomicU64::new(0);
/// Log lines written outside any span (one per measured thread's warm-up).
static WARM_UP_LINES: AtomicU64 = AtomicU64::new(0);

const MODELS: [&str; 4] = ["Semantic", "Causal", "Code", "Sparse"];

/// One request: root, tokenize, model_execution and four model spans (7 span
/// lifecycles),
/// with numeric, &str and Display fields, and one event.
fn request(i: u64) {
    let root = tracing::info_span!("embed_pipeline", request_id = i, content_len = 64u64);
    let _r = root.enter();
    tracing::debug_span!("tokenize", tokens = 12u64).in_scope(|| std::hint::black_box(i));
    let exec = tracing::info_span!("model_execution", model_count = 4u64);
    let _e = exec.enter();
    for (k, m) in MODELS.iter().enumerate() {
        let span = if k % 2 == 0 {
            tracing::debug_span!(parent: &exec, "model", model_id = *m, input_tokens = 12u64)
        } else {
            tracing::debug_span!(parent: &exec, "model", model_id = %Name(m), input_tokens = 12u64)
        };
        span.in_scope(|| {
            if i % 1000 == 0 && k == 1 {
                // Relaxed: a counter read after the threads are joined.
                EVENTS.fetch_add(1, Ordering::Relaxed);
                tracing::error!(code = 7u64, "model failed");
            }
        });
    }
}

/// Batched requests made (each 4 spans, one link dropped).
static BATCHED: AtomicU64 = AtomicU64::new(0);

/// A request of two model spans served by one batch (a span of no request),
/// linked both ways with `follows_from`, and the batch linked past
/// `MAX_LINKS` (one link dropped and counted).
fn batched_request(i: u64) {
    // Relaxed: a counter read after the threads are joined.
    BATCHED.fetch_add(1, Ordering::Relaxed);
    let root = tracing::info_span!("embed_pipeline", request_id = i);
    let batch = tracing::info_span!(parent: None, "batch", model_id = "Causal", batch_size = 2u64);
    let models = [
        tracing::debug_span!(parent: &root, "model", model_id = "Causal"),
        tracing::debug_span!(parent: &root, "model", model_id = "Causal"),
    ];
    for m in &models {
        m.follows_from(batch.id());
        batch.follows_from(m.id());
    }
    for _ in 0..hdrtrace::limits::MAX_LINKS - models.len() + 1 {
        batch.follows_from(root.id());
    }
    batch.in_scope(|| std::hint::black_box(i));
}

/// Runs `n` requests on this thread with allocation counting on, after one
/// request of warm-up (every hundredth also a batched one); returns the
/// allocations counted.
fn measure(n: u64, base: u64) -> u64 {
    request(base);
    // A thread's first log line brings its log ring (warm-up, like its
    // first span's record ring).
    // Relaxed: a counter read after the measured threads are joined.
    WARM_UP_LINES.fetch_add(1, Ordering::Relaxed);
    tracing::warn!("warm-up: this thread's first log line");
    let ((), allocs) = allocs_of(|| {
        for i in 1..=n {
            request(base + i);
            if i % 100 == 0 {
                batched_request(base + i);
            }
        }
    });
    allocs
}

/// Over 100 000 span lifecycles per phase: 2 threads x 10 000 requests x 7 spans,
/// and 24 JoinSet tasks x 1 000 requests x 7 spans (168 000).
fn run_phase(rt: &tokio::runtime::Runtime, label: &str) {
    ALLOCS.store(0, Ordering::Relaxed);
    let threads: Vec<_> = (0..2u64)
        .map(|t| std::thread::spawn(move || measure(10_000, t << 32)))
        .collect();
    let thread_allocs: u64 = threads.into_iter().map(|h| h.join().unwrap()).sum();
    let task_allocs: u64 = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for t in 0..24u64 {
            set.spawn(async move { measure(1_000, (t + 8) << 32) });
        }
        let mut total = 0;
        while let Some(r) = set.join_next().await {
            total += r.unwrap();
        }
        total
    });
    assert_eq!(
        thread_allocs, 0,
        "{label}: threads allocated on the hot path"
    );
    assert_eq!(
        task_allocs, 0,
        "{label}: JoinSet tasks allocated on the hot path"
    );
}

#[test]
fn hot_path_allocates_nothing_enabled_and_disabled() {
    let config = TracingConfig {
        // Standard, not Verbose: with tokio's `tracing` feature (on under
        // `--all-features`) tokio opens TRACE-level task spans of its own,
        // which would be counted beside ours.
        level: TracingLevel::Standard,
        sampling_rate: 0.5,
        ring_capacity: 1 << 16,
        // Logging on: every error event is also formatted as a log line.
        log_level: tracing_core::LevelFilter::INFO,
        ..TracingConfig::default()
    };
    let lines = LineCount::default();
    let guard = hdrtrace::init_with(hdrtrace::Builder::new(&config).log_writer(lines.clone()))
        .expect("first init");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();

    run_phase(&rt, "enabled");
    guard.flush();
    let snap = guard.snapshot();
    let recorded = snap.model("Causal").map_or(0, |m| m.count());
    let c = snap.counters();
    // 2 x 10 001 + 24 x 1 001 requests (warm-up included), 7 spans each, plus
    // the error events emitted: every one recorded or counted as dropped.
    let requests = 2 * 10_001 + 24 * 1_001;
    let batched = BATCHED.load(Ordering::Relaxed);
    // A full ring also drops links records (3 per batched request: both
    // model spans' and the batch's), counted in `dropped_records` too.
    let accounted = c.spans + c.events + c.dropped_records + c.dropped_spans;
    let made = requests * 7 + batched * 4 + EVENTS.load(Ordering::Relaxed);
    assert!(
        (made..=made + batched * 3).contains(&accounted),
        "every span and event was recorded or counted as dropped: {accounted} for {made} \
         made: {c:?}"
    );
    assert_eq!(c.dropped_links, batched, "one link past MAX_LINKS each");
    assert!(recorded > 0);
    assert!(
        snap.model("Causal").unwrap().errors() > 0,
        "error events marked spans"
    );
    // Every error event became a log line, written or counted as dropped
    // (the log thread drains asynchronously: wait for what is still queued).
    let logged = |c: hdrtrace::Counters| LineCount::get(&lines) + c.dropped_log_lines;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let expected = EVENTS.load(Ordering::Relaxed) + WARM_UP_LINES.load(Ordering::Relaxed);
    while logged(guard.flushed_snapshot().counters()) < expected
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(logged(guard.flushed_snapshot().counters()), expected);

    guard.set_enabled(false);
    run_phase(&rt, "disabled");
    guard.flush();
    let after = guard.snapshot();
    assert_eq!(
        after.model("Causal").map_or(0, |m| m.count()),
        recorded,
        "nothing is recorded while disabled"
    );
}

/// The aggregator's side: after warm-up (keys interned, the request arena and
/// index grown, every histogram sized by one long span of each key), draining
/// the records of common requests (fast, successful, unsampled) into the
/// histograms and the request assembler allocates nothing. The rings are
/// drained on this thread (`IngestBench`: no aggregator thread), so only that
/// work is counted.
#[cfg(feature = "bench-internals")]
#[test]
fn the_aggregator_ingests_common_requests_without_allocating() {
    use hdrtrace::__bench::IngestBench;
    let (subscriber, mut bench) = IngestBench::new(&TracingConfig {
        sampling_rate: 0.0,
        ring_capacity: 1 << 16,
        // One slice for the whole test: no slice closes while measuring.
        window: std::time::Duration::from_secs(24 * 3600),
        ..TracingConfig::default()
    })
    .expect("a valid config");
    tracing::subscriber::with_default(subscriber, || {
        // Sizes every key's histograms past any span the measured part makes
        // (each span of this request lasts at least 200 ms).
        let root = tracing::info_span!("embed_pipeline", request_id = 0u64, content_len = 1u64);
        root.in_scope(|| {
            tracing::debug_span!("tokenize", tokens = 1u64)
                .in_scope(|| std::thread::sleep(std::time::Duration::from_millis(200)));
            let exec = tracing::info_span!("model_execution", model_count = 4u64);
            exec.in_scope(|| {
                for m in MODELS {
                    tracing::debug_span!("model", model_id = m, input_tokens = 1u64)
                        .in_scope(|| std::thread::sleep(std::time::Duration::from_millis(200)));
                }
            });
        });
        drop(root);
        // Warm-up of the arena and the index at the measured size.
        for i in 1..1_000 {
            request(i);
        }
        bench.drain();
        let mut allocs = 0;
        let mut drained = 0;
        for round in 1..=5u64 {
            // Never a multiple of 1 000: no error event, so no request is kept.
            for i in 1..1_000 {
                request(round * 1_000 + i);
            }
            let (n, a) = allocs_of(|| bench.drain());
            drained += n;
            allocs += a;
        }
        assert_eq!(drained, 5 * 999 * 7, "every record was drained");
        assert_eq!(allocs, 0, "the aggregator allocated for common requests");
    });
    let c = bench.counters();
    assert_eq!(
        c.captured_requests, 1,
        "only the warm-up (over the target) was kept"
    );
    assert_eq!(c.dropped_records + c.budget_dropped_records, 0);
}
