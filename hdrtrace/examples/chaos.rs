//! A bounded soak of everything a careless or hostile user can do to an
//! always-on subscriber at once, checked at the end against what the
//! subscriber promises: it keeps recording, it tells the truth about what it
//! lost, and it never takes its host down.
//!
//! Recording threads (each with the subscriber as its scoped default) run
//! requests back to back while, at random: other threads switch recording off
//! and on (threads where the subscriber is not the default); recording threads
//! panic inside `Display` impls of events, log lines and model ids (caught, as
//! tokio catches a task's panic), log control characters and 1 MB messages,
//! and leave request roots open; the log writer is swapped between writing,
//! failing and blocking (and, for odd seeds, panics once); a thread decodes
//! and merges hostile snapshot bytes; a request sink calls back into the
//! subscriber (flush, and a request span per captured request); a thread
//! flushes every 50 ms. At the end every recording thread records one canary
//! request, the log writer blocks for good, and the guard is dropped.
//!
//! It prints its figures and exits non-zero when a check fails:
//! - every recording thread's canary is in the final snapshot;
//! - spans closed while tracked == spans aggregated + records dropped (counted);
//! - peak RSS <= memory_budget + `RSS_ALLOWANCE`;
//! - every flush returned within `FLUSH_BOUND`;
//! - the guard dropped within `DROP_BOUND`, with the writer blocked;
//! - no written log line carries a raw control character or is spliced.
//!
//! ```text
//! cargo run --release -p hdrtrace --example chaos               # 20 s, seed 1
//! cargo run --release -p hdrtrace --example chaos -- --secs 60 --seed 2
//! ```

#[path = "../tests/rss_support/mod.rs"]
mod rss_support;

use clap::Parser;
use hdrtrace::{Builder, LatencySnapshot, RequestSink, RequestTrace, TracingConfig, TracingGuard};
use rss_support::rss;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Soak the subscriber with hostile use, then check its promises")]
struct Args {
    /// How long the chaos lasts, seconds.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=60))]
    secs: u64,
    /// Recording threads.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    threads: u64,
    /// Seeds every random choice; an odd seed makes the log writer panic once.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// The aggregator's memory budget in this run.
const MEMORY_BUDGET: usize = 64 << 20;
/// What the process may hold beside the budget: the binary and its heap,
/// thread stacks, every thread's record and log rings (rings grow up to
/// 16 x under bursts), the histograms (`max_models` x stages x their
/// precision), the slot table and the allocator's slack.
const RSS_ALLOWANCE: u64 = 256 << 20;
/// The longest a `flush()` may take while all this goes on.
const FLUSH_BOUND: Duration = Duration::from_secs(1);
/// The longest dropping the guard may take with the log writer blocked.
const DROP_BOUND: Duration = Duration::from_secs(5);
/// Roots a recording thread leaves open, at most.
const OPEN_ROOTS_PER_THREAD: u64 = 64;

const MODELS: [&str; 6] = ["Dense", "Sparse", "Colbert", "Causal", "Rerank", "Vision"];

/// xorshift64*: enough randomness for choosing, reproducible from a seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// True once in `n`.
    fn one_in(&mut self, n: u64) -> bool {
        self.next() % n == 0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A `Display` that panics.
struct Bomb;

impl std::fmt::Display for Bomb {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("a Display that panics (chaos)")
    }
}

/// What the log writer does with the next write.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Mode {
    Write = 0,
    Fail = 1,
    /// Blocks 50-300 ms, then writes.
    Stall = 2,
    Panic = 3,
    /// Never returns.
    BlockForever = 4,
}

/// The log writer, steered by `mode`; keeps what it wrote.
struct ChaosWriter {
    mode: Arc<AtomicU8>,
    out: Arc<Mutex<Vec<u8>>>,
    stall_ms: Arc<AtomicU64>,
}

impl Write for ChaosWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self.mode.load(Relaxed) {
            1 => return Err(std::io::Error::other("a failing writer (chaos)")),
            2 => std::thread::sleep(Duration::from_millis(self.stall_ms.load(Relaxed))),
            3 => panic!("a log writer that panics (chaos)"),
            4 => loop {
                std::thread::park();
            },
            _ => {}
        }
        self.out.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A sink that calls back into its own subscriber for every captured request.
struct CallbackSink {
    guard: Arc<OnceLock<Weak<TracingGuard>>>,
    refused_flushes: Arc<AtomicU64>,
    accepted_flushes: Arc<AtomicU64>,
}

impl RequestSink for CallbackSink {
    fn captured(&mut self, trace: &Arc<RequestTrace>) {
        if let Some(guard) = self.guard.get().and_then(Weak::upgrade) {
            match guard.try_flush() {
                Ok(()) => self.accepted_flushes.fetch_add(1, Relaxed),
                Err(_) => self.refused_flushes.fetch_add(1, Relaxed),
            };
        }
        // Feeds itself, were it not refused: a request per captured request.
        let root = tracing::info_span!("embed_pipeline", request_id = trace.request_id());
        let _r = root.enter();
        tracing::info_span!("model", model_id = "FromSink").in_scope(|| {});
    }
}

/// What one recording thread did.
#[derive(Default)]
struct Tally {
    requests: u64,
    /// Spans the subscriber tracked (a real ID) and that were closed.
    tracked_closed: u64,
    panics_caught: u64,
    open_roots: u64,
}

fn tracked(span: &tracing::Span) -> bool {
    span.id().is_some_and(|id| id.into_u64() != u64::MAX)
}

/// One request: a root, a stage, two or three model spans; sometimes chaos.
fn request(rng: &mut Rng, id: u64, big: &str, tally: &mut Tally) {
    let root = tracing::info_span!("embed_pipeline", request_id = id);
    let root_tracked = tracked(&root);
    {
        let _r = root.enter();
        let stage = tracing::info_span!("model_execution");
        let stage_tracked = tracked(&stage);
        {
            let _s = stage.enter();
            for m in 0..2 + rng.below(2) {
                let model = MODELS[rng.below(MODELS.len() as u64) as usize];
                let span = tracing::info_span!("model", model_id = model);
                let t = tracked(&span);
                span.in_scope(|| std::hint::black_box(m));
                drop(span);
                tally.tracked_closed += t as u64;
            }
            match rng.below(2_000) {
                0..=9 => {
                    let caught = catch_unwind(AssertUnwindSafe(|| match rng.below(3) {
                        0 => tracing::warn!("{}", Bomb),
                        1 => tracing::warn!(detail = %Bomb, "a field that panics"),
                        _ => drop(tracing::info_span!("model", model_id = %Bomb)),
                    }));
                    tally.panics_caught += caught.is_err() as u64;
                }
                10..=29 => tracing::warn!(
                    "forged?\n2030-01-01T00:00:00.000000Z ERROR auth: admin login \x1b[31m\x07\r\0"
                ),
                30 => tracing::warn!("{}", big),
                31..=60 => tracing::info!(model = "Dense", "an ordinary line"),
                _ => {}
            }
        }
        drop(stage);
        tally.tracked_closed += stage_tracked as u64;
    }
    if tally.open_roots < OPEN_ROOTS_PER_THREAD && rng.one_in(5_000) {
        // A root never closed: its slot stays taken, its request pending.
        std::mem::forget(root);
        tally.open_roots += 1;
    } else {
        drop(root);
        tally.tracked_closed += root_tracked as u64;
    }
    tally.requests += 1;
}

/// Bytes shaped like a snapshot but hostile: a real snapshot's bytes with
/// some flipped, cut or repeated.
fn hostile(rng: &mut Rng, real: &[u8]) -> Vec<u8> {
    let mut b = real.to_vec();
    match rng.below(4) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                if !b.is_empty() {
                    let i = rng.below(b.len() as u64) as usize;
                    b[i] ^= 1 << rng.below(8);
                }
            }
        }
        1 => b.truncate(rng.below(b.len() as u64 + 1) as usize),
        2 => {
            let tail = b.clone();
            b.extend_from_slice(&tail);
        }
        _ => {
            if b.len() > 8 {
                let i = rng.below(b.len() as u64 - 8) as usize;
                b[i..i + 8].copy_from_slice(&u64::MAX.to_le_bytes());
            }
        }
    }
    b
}

/// Keeps the panics this run causes on purpose (their messages say
/// "(chaos)") off stderr; any other panic is reported as usual.
fn quiet_chaos_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let text = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("");
        if !text.contains("(chaos)") {
            default(info);
        }
    }));
}

fn main() {
    let args = Args::parse();
    quiet_chaos_panics();
    let mut failures: Vec<String> = Vec::new();
    let mode = Arc::new(AtomicU8::new(Mode::Write as u8));
    let written = Arc::new(Mutex::new(Vec::new()));
    let stall_ms = Arc::new(AtomicU64::new(50));
    let guard_slot = Arc::new(OnceLock::new());
    let refused_flushes = Arc::new(AtomicU64::new(0));
    let accepted_flushes = Arc::new(AtomicU64::new(0));
    let config = TracingConfig {
        sampling_rate: 0.0,
        latency_target: Duration::from_millis(50),
        memory_budget: MEMORY_BUDGET,
        ..TracingConfig::default()
    };
    let (subscriber, guard) = Builder::new(&config)
        .log_writer(ChaosWriter {
            mode: mode.clone(),
            out: written.clone(),
            stall_ms: stall_ms.clone(),
        })
        .sink(CallbackSink {
            guard: guard_slot.clone(),
            refused_flushes: refused_flushes.clone(),
            accepted_flushes: accepted_flushes.clone(),
        })
        .build()
        .expect("a valid config");
    let guard = Arc::new(guard);
    guard_slot.set(Arc::downgrade(&guard)).ok();
    let dispatch = tracing::Dispatch::new(subscriber);
    let stop = AtomicBool::new(false);
    let max_flush_ns = AtomicU64::new(0);
    let flushes = AtomicU64::new(0);
    let peak_rss = AtomicU64::new(rss());
    let toggles = AtomicU64::new(0);
    let merges = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let big = "x".repeat(1 << 20);
    let started = Instant::now();
    let run_for = Duration::from_secs(args.secs);
    let mut tallies: Vec<Tally> = Vec::new();
    eprintln!(
        "chaos: {} recording threads for {} s, seed {} (the log writer {} panic)",
        args.threads,
        args.secs,
        args.seed,
        if args.seed % 2 == 1 {
            "will"
        } else {
            "will not"
        }
    );
    std::thread::scope(|s| {
        let recorders: Vec<_> = (0..args.threads)
            .map(|t| {
                let (dispatch, stop, big) = (&dispatch, &stop, &big);
                s.spawn(move || {
                    let mut rng = Rng::new(args.seed * 1_000 + t);
                    let mut tally = Tally::default();
                    tracing::dispatcher::with_default(dispatch, || {
                        let mut id = (t + 1) << 40;
                        while !stop.load(Relaxed) {
                            id += 1;
                            request(&mut rng, id, big, &mut tally);
                        }
                    });
                    tally
                })
            })
            .collect();
        // A paced thread whose requests go over the target: captured (its
        // ring is never full, so its requests arrive whole), so the sink runs
        // throughout.
        let captured = {
            let (dispatch, stop) = (&dispatch, &stop);
            s.spawn(move || {
                let mut tally = Tally::default();
                tracing::dispatcher::with_default(dispatch, || {
                    let mut id = 1u64 << 50;
                    while !stop.load(Relaxed) {
                        id += 1;
                        let root = tracing::info_span!("embed_pipeline", request_id = id);
                        let model = tracing::info_span!(parent: &root, "model", model_id = "Slow");
                        // Over the 50 ms target: captured.
                        model.in_scope(|| std::thread::sleep(Duration::from_millis(60)));
                        tally.tracked_closed += tracked(&model) as u64 + tracked(&root) as u64;
                        tally.requests += 1;
                    }
                });
                tally
            })
        };
        // Switches from threads where the subscriber is not the default.
        for k in 0..2 {
            let (guard, stop, toggles) = (&guard, &stop, &toggles);
            s.spawn(move || {
                let mut rng = Rng::new(args.seed * 7 + k);
                while !stop.load(Relaxed) {
                    std::thread::sleep(Duration::from_millis(1 + rng.below(40)));
                    guard.set_enabled(false);
                    std::thread::sleep(Duration::from_millis(rng.below(5)));
                    guard.set_enabled(true);
                    toggles.fetch_add(1, Relaxed);
                }
            });
        }
        // The log writer's moods.
        {
            let (mode, stall_ms, stop) = (&mode, &stall_ms, &stop);
            s.spawn(move || {
                let mut rng = Rng::new(args.seed * 11);
                let panic_at = started + run_for / 2;
                let mut panicked = false;
                while !stop.load(Relaxed) {
                    std::thread::sleep(Duration::from_millis(50 + rng.below(200)));
                    if args.seed % 2 == 1 && !panicked && Instant::now() >= panic_at {
                        mode.store(Mode::Panic as u8, Relaxed);
                        panicked = true;
                        continue;
                    }
                    let next = match rng.below(10) {
                        0..=5 => Mode::Write,
                        6..=7 => Mode::Fail,
                        _ => Mode::Stall,
                    };
                    stall_ms.store(50 + rng.below(250), Relaxed);
                    if mode.load(Relaxed) != Mode::Panic as u8 {
                        mode.store(next as u8, Relaxed);
                    }
                }
            });
        }
        // Hostile snapshot bytes, decoded and merged.
        {
            let (guard, stop, merges) = (&guard, &stop, &merges);
            s.spawn(move || {
                let mut rng = Rng::new(args.seed * 13);
                while !stop.load(Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                    let Ok(real) = guard.snapshot().to_bytes() else {
                        continue;
                    };
                    let bytes = hostile(&mut rng, &real);
                    let outcome = catch_unwind(|| {
                        let a = LatencySnapshot::from_bytes(&bytes)?;
                        let b = LatencySnapshot::from_bytes(&real)?;
                        LatencySnapshot::merged(&[a, b])
                    });
                    let counter = match outcome {
                        Ok(Ok(_)) => &merges.0,
                        Ok(Err(_)) => &merges.1,
                        Err(_) => &merges.2,
                    };
                    counter.fetch_add(1, Relaxed);
                }
            });
        }
        // Flushes, timed; the resident set, sampled.
        {
            let (guard, stop, max_flush_ns, flushes, peak_rss) =
                (&guard, &stop, &max_flush_ns, &flushes, &peak_rss);
            s.spawn(move || {
                while !stop.load(Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                    let t = Instant::now();
                    let _ = guard.try_flush();
                    max_flush_ns.fetch_max(t.elapsed().as_nanos() as u64, Relaxed);
                    flushes.fetch_add(1, Relaxed);
                    peak_rss.fetch_max(rss(), Relaxed);
                }
            });
        }
        while started.elapsed() < run_for {
            std::thread::sleep(Duration::from_millis(100));
            peak_rss.fetch_max(rss(), Relaxed);
        }
        stop.store(true, Relaxed);
        tallies = recorders.into_iter().map(|h| h.join().unwrap()).collect();
        tallies.push(captured.join().unwrap());
    });
    // Every recording thread records once more: a canary each.
    guard.set_enabled(true);
    std::thread::scope(|s| {
        for (t, tally) in tallies.iter_mut().enumerate() {
            let dispatch = &dispatch;
            s.spawn(move || {
                tracing::dispatcher::with_default(dispatch, || {
                    let root = tracing::info_span!("embed_pipeline", request_id = 1u64 << 60 | t as u64);
                    let model = tracing::info_span!(parent: &root, "model", model_id = %format!("canary-{t}"));
                    tally.tracked_closed += tracked(&model) as u64 + tracked(&root) as u64;
                });
            });
        }
    });
    let t = Instant::now();
    let flushed = guard.try_flush();
    max_flush_ns.fetch_max(t.elapsed().as_nanos() as u64, Relaxed);
    let snapshot = guard.snapshot();
    peak_rss.fetch_max(rss(), Relaxed);
    let c = snapshot.counters();

    // The checks.
    if let Err(e) = flushed {
        failures.push(format!("the final flush failed: {e}"));
    }
    for t in 0..tallies.len() {
        let name = format!("canary-{t}");
        if snapshot.model(&name).map(|m| m.count()) != Some(1) {
            failures.push(format!(
                "thread {t} no longer records: no {name} in the snapshot"
            ));
        }
    }
    let closed: u64 = tallies.iter().map(|t| t.tracked_closed).sum();
    let accounted = c.spans + c.dropped_records;
    if closed != accounted {
        failures.push(format!(
            "spans closed while tracked {closed} != aggregated {} + dropped {}",
            c.spans, c.dropped_records
        ));
    }
    let peak = peak_rss.load(Relaxed);
    if peak > MEMORY_BUDGET as u64 + RSS_ALLOWANCE {
        failures.push(format!(
            "peak RSS {} MiB over the budget {} MiB + {} MiB",
            peak >> 20,
            MEMORY_BUDGET >> 20,
            RSS_ALLOWANCE >> 20
        ));
    }
    let max_flush = Duration::from_nanos(max_flush_ns.load(Relaxed));
    if max_flush > FLUSH_BOUND {
        failures.push(format!(
            "a flush took {max_flush:?} (bound {FLUSH_BOUND:?})"
        ));
    }
    if merges.2.load(Relaxed) > 0 {
        failures.push(format!(
            "{} hostile merges panicked",
            merges.2.load(Relaxed)
        ));
    }
    if refused_flushes.load(Relaxed) == 0 {
        failures.push(format!(
            "the sink never ran ({} requests captured): its callbacks were not exercised",
            c.captured_requests
        ));
    }
    if accepted_flushes.load(Relaxed) > 0 {
        failures.push(format!(
            "{} flushes from inside a sink were accepted (they must be refused)",
            accepted_flushes.load(Relaxed)
        ));
    }
    if snapshot.model("FromSink").is_some() {
        failures.push("spans opened inside a sink were recorded (they must be refused)".into());
    }
    // The writer blocks for good, then the guard goes.
    mode.store(Mode::BlockForever as u8, Relaxed);
    tracing::dispatcher::with_default(&dispatch, || tracing::warn!("a last line, never written"));
    drop(dispatch);
    // The sink may hold the guard for a moment (it upgrades its handle).
    let mut shared = guard;
    let guard = loop {
        match Arc::try_unwrap(shared) {
            Ok(g) => break g,
            Err(g) => {
                shared = g;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    };
    let t = Instant::now();
    drop(guard);
    let drop_took = t.elapsed();
    if drop_took > DROP_BOUND {
        failures.push(format!(
            "dropping the guard took {drop_took:?} (bound {DROP_BOUND:?})"
        ));
    }
    let text = String::from_utf8_lossy(&written.lock().unwrap()).into_owned();
    let mut bad_lines = 0;
    let mut lines = 0;
    for line in text.lines() {
        lines += 1;
        let control = line.chars().any(|ch| ch.is_control());
        let shaped = line.len() > 28 && line.as_bytes()[4] == b'-' && line.as_bytes()[26] == b'Z';
        if control || !shaped {
            bad_lines += 1;
        }
    }
    if bad_lines > 0 {
        failures.push(format!(
            "{bad_lines} of {lines} written log lines were forged, spliced or raw"
        ));
    }
    if !text.is_empty() && !text.ends_with('\n') {
        failures.push("the log output ends in the middle of a line".into());
    }

    let requests: u64 = tallies.iter().map(|t| t.requests).sum();
    let panics: u64 = tallies.iter().map(|t| t.panics_caught).sum();
    let open_roots: u64 = tallies.iter().map(|t| t.open_roots).sum();
    println!("chaos: seed {} for {} s", args.seed, args.secs);
    println!("  requests run            {requests}");
    println!("  spans closed, tracked   {closed}");
    println!("  spans aggregated        {}", c.spans);
    println!("  records dropped         {}", c.dropped_records);
    println!("  spans untracked (full)  {}", c.dropped_spans);
    println!("  roots left open         {open_roots}");
    println!("  requests captured       {}", c.captured_requests);
    println!("  switch toggles          {}", toggles.load(Relaxed));
    println!(
        "  Display panics caught   {panics} (counted: {})",
        c.format_panics
    );
    println!(
        "  log lines written       {lines} (dropped, counted: {})",
        c.dropped_log_lines
    );
    println!(
        "  hostile merges          {} ok, {} refused, {} panicked",
        merges.0.load(Relaxed),
        merges.1.load(Relaxed),
        merges.2.load(Relaxed)
    );
    println!(
        "  sink callbacks          {} flushes refused, {} accepted",
        refused_flushes.load(Relaxed),
        accepted_flushes.load(Relaxed)
    );
    println!(
        "  flushes                 {}, longest {max_flush:?} (bound {FLUSH_BOUND:?})",
        flushes.load(Relaxed)
    );
    println!(
        "  peak RSS                {} MiB (bound {} MiB budget + {} MiB)",
        peak >> 20,
        MEMORY_BUDGET >> 20,
        RSS_ALLOWANCE >> 20
    );
    println!("  guard dropped in        {drop_took:?} (bound {DROP_BOUND:?})");
    if failures.is_empty() {
        println!("chaos: every check passed");
    } else {
        for f in &failures {
            println!("FAILED: {f}");
        }
        std::process::exit(1);
    }
}
