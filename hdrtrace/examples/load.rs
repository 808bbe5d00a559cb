//! Load as a new user would make it, with the public API only
//! (`init_tracing(&TracingConfig::default())`): pipeline-shaped requests (an
//! `embed_pipeline` root with `request_id`, a `model_execution` stage and 12
//! `model` spans with `model_id = "<static str>"`, each entered and closed at
//! once: 14 spans), then `guard.flush()` and the snapshot's counts.
//!
//! Each row runs in a fresh process (this example re-runs itself with
//! `--row`), so each has its own global subscriber and its own peak RSS
//! (`VmHWM` from /proc/self/status). Per row it prints spans closed, spans
//! counted in the histograms, spans dropped (`dropped_records` +
//! `dropped_spans`), whether closed == counted + dropped, records not kept for
//! tail capture for the memory budget, spans in the overflow series, the
//! aggregator's longest gap between two drains, how long the `flush()` right
//! after the load blocked its caller, and peak RSS.
//!
//! ```text
//! cargo run --release -p hdrtrace --features bench-internals --example load              # the issue's durations
//! cargo run --release -p hdrtrace --features bench-internals --example load -- --secs 1  # every row 1 s (CI scale)
//! ```

use clap::Parser;
use hdrtrace::__bench::{pipeline_request, MODEL_NAMES, SPANS_PER_REQUEST};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Reproduce the aggregator load table (issue 9)")]
struct Args {
    /// Run every row for this many seconds instead of the issue's durations
    /// (10 s paced, 30 s back to back).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3600))]
    secs: Option<u64>,
    /// Run one row in this process (used by the parent run).
    #[arg(long)]
    row: Option<usize>,
}

/// How a row makes its load.
#[derive(Clone, Copy)]
enum Load {
    /// Threads, each paced at this many spans per second.
    Paced { threads: usize, rate: u64 },
    /// Threads recording requests back to back.
    BackToBack { threads: usize },
    /// Distinct `model_id` values (`%name`), cycled through, one span each.
    DistinctModels { ids: usize },
    /// One root kept open while this many children close under it.
    LongRoot { children: u64 },
    /// This many model keys, each with spans of 1 us, 100 us and 10 ms
    /// (histograms sized for 10 ms): what one key costs.
    PerKey { keys: usize },
}

struct Row {
    name: &'static str,
    load: Load,
    /// The issue's duration, seconds (`None`: runs until its work is done).
    secs: Option<u64>,
}

const ROWS: &[Row] = &[
    Row {
        name: "one thread, paced at 300 000 spans/s",
        load: Load::Paced {
            threads: 1,
            rate: 300_000,
        },
        secs: Some(10),
    },
    Row {
        name: "one thread, paced at 1 000 000 spans/s",
        load: Load::Paced {
            threads: 1,
            rate: 1_000_000,
        },
        secs: Some(10),
    },
    Row {
        name: "one thread, paced at 2 000 000 spans/s",
        load: Load::Paced {
            threads: 1,
            rate: 2_000_000,
        },
        secs: Some(10),
    },
    Row {
        name: "two threads, paced at 1 000 000 spans/s each",
        load: Load::Paced {
            threads: 2,
            rate: 1_000_000,
        },
        secs: Some(10),
    },
    Row {
        name: "one thread, back to back",
        load: Load::BackToBack { threads: 1 },
        secs: Some(30),
    },
    Row {
        name: "two threads, back to back",
        load: Load::BackToBack { threads: 2 },
        secs: Some(30),
    },
    Row {
        name: "10 000 distinct model_id values (%name)",
        load: Load::DistinctModels { ids: 10_000 },
        secs: Some(10),
    },
    Row {
        name: "64 model keys, spans of 1 us to 10 ms each",
        load: Load::PerKey { keys: 64 },
        secs: None,
    },
    Row {
        name: "one root open throughout, 1 000 000 children",
        load: Load::LongRoot {
            children: 1_000_000,
        },
        secs: None,
    },
];

/// Requests back to back, or paced at `rate` spans/s (in 1 ms steps, sleeping
/// between them), until `deadline`; returns the spans closed.
fn record(thread: u64, rate: Option<u64>, deadline: Instant) -> u64 {
    let start = Instant::now();
    let mut requests = 0u64;
    let mut id = thread << 48;
    while Instant::now() < deadline {
        let due = match rate {
            None => requests + 256,
            Some(rate) => {
                let elapsed = start.elapsed().as_secs_f64();
                (elapsed * rate as f64 / SPANS_PER_REQUEST as f64) as u64
            }
        };
        while requests < due {
            id += 1;
            pipeline_request(id, None);
            requests += 1;
        }
        if rate.is_some() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    requests * SPANS_PER_REQUEST
}

fn distinct_models(ids: usize, deadline: Instant) -> u64 {
    let names: Vec<String> = (0..ids).map(|i| format!("model-{i:05}")).collect();
    let mut closed = 0u64;
    'outer: loop {
        for name in &names {
            let span = tracing::debug_span!("model", model_id = %name);
            drop(span.enter());
            closed += 1;
            if closed % 1024 == 0 && Instant::now() >= deadline {
                break 'outer;
            }
        }
    }
    closed
}

fn long_root(children: u64) -> u64 {
    let root = tracing::info_span!("embed_pipeline", request_id = 1u64);
    let _r = root.enter();
    for i in 0..children {
        let span = tracing::debug_span!("model", model_id = MODEL_NAMES[(i % 12) as usize]);
        drop(span.enter());
        if i % 4096 == 0 {
            // A steady producer, not a burst: the rings drain as they go.
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    children + 1
}

/// Spans of 1 us, 100 us and 10 ms (busy waits) for each of `keys` model ids.
fn per_key(keys: usize) -> u64 {
    let names: Vec<String> = (0..keys).map(|i| format!("key-{i:03}")).collect();
    for d in [1, 100, 10_000] {
        for name in &names {
            let span = tracing::debug_span!("model", model_id = %name);
            let _e = span.enter();
            let start = Instant::now();
            while start.elapsed() < Duration::from_micros(d) {}
        }
    }
    3 * keys as u64
}

fn rss_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn peak_rss_mb() -> f64 {
    rss_mb("VmHWM:")
}

fn run_row(row: &Row, secs: u64) -> Result<String, hdrtrace::Error> {
    let guard = hdrtrace::init_tracing(&hdrtrace::TracingConfig::default())?;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    guard.flush();
    let rss_before = rss_mb("VmRSS:");
    let closed = match row.load {
        Load::Paced { threads, rate } => spread(threads, Some(rate), deadline),
        Load::BackToBack { threads } => spread(threads, None, deadline),
        Load::DistinctModels { ids } => distinct_models(ids, deadline),
        Load::LongRoot { children } => long_root(children),
        Load::PerKey { keys } => per_key(keys),
    };
    let ran = started.elapsed();
    let flush_started = Instant::now();
    guard.flush();
    let flush = flush_started.elapsed();
    if let Load::LongRoot { .. } = row.load {
        // A request that lost records to a full ring is finalized once its
        // stragglers' grace period (2 s) is over.
        std::thread::sleep(Duration::from_millis(2100));
        guard.flush();
    }
    let snap = guard.snapshot();
    let c = snap.counters();
    let counted: u64 = snap.models().map(|(_, m)| m.count()).sum::<u64>()
        + snap.stages().map(|(_, m)| m.count()).sum::<u64>();
    let dropped = c.dropped_records + c.dropped_spans;
    let mut note = String::new();
    if let Load::LongRoot { .. } = row.load {
        if let Some(t) = snap.slowest().first() {
            let omitted: u64 = t.omitted().iter().map(|(_, n)| n).sum();
            note = format!(
                "; captured: {} spans kept, {omitted} omitted, complete: {}",
                t.spans().len(),
                t.complete()
            );
        }
    }
    if let Load::DistinctModels { .. } = row.load {
        note = format!("; {} model series", snap.models().count());
    }
    if let Load::PerKey { keys } = row.load {
        // A snapshot holds each key's views: both copies are counted.
        note = format!(
            "; RSS +{:.0} KiB per key",
            (rss_mb("VmRSS:") - rss_before) * 1024.0 / keys as f64
        );
    }
    Ok(format!(
        "| {} | {:.1} s | {closed} | {counted} | {dropped} ({:.3} %) | {} | {} | {} | {:.2} ms | {:.2} ms | {:.0} MB{note} |",
        row.name,
        ran.as_secs_f64(),
        dropped as f64 * 100.0 / closed.max(1) as f64,
        if closed == counted + dropped { "yes" } else { "NO" },
        c.budget_dropped_records,
        c.overflow_spans,
        c.longest_drain_gap_ns as f64 / 1e6,
        flush.as_secs_f64() * 1e3,
        peak_rss_mb(),
    ))
}

fn spread(threads: usize, rate: Option<u64>, deadline: Instant) -> u64 {
    let handles: Vec<_> = (0..threads as u64)
        .map(|t| std::thread::spawn(move || record(t, rate, deadline)))
        .collect();
    handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if let Some(i) = args.row {
        let row = ROWS.get(i).ok_or_else(|| format!("no row {i}"))?;
        let secs = args.secs.or(row.secs).unwrap_or(0);
        println!("{}", run_row(row, secs)?);
        return Ok(());
    }
    let defaults = hdrtrace::TracingConfig::default();
    println!(
        "default config: ring_capacity {}, memory_budget {} MiB, max_models {}, max_stages {}",
        defaults.ring_capacity,
        defaults.memory_budget >> 20,
        defaults.max_models,
        defaults.max_stages
    );
    println!(
        "| load | ran | spans closed | counted | dropped | closed = counted + dropped | \
         not kept for budget | in overflow series | longest drain gap | flush() | peak RSS |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let exe = std::env::current_exe()?;
    let mut reports = Vec::new();
    for (i, row) in ROWS.iter().enumerate() {
        let mut cmd = Command::new(&exe);
        cmd.arg("--row").arg(i.to_string());
        if let Some(s) = args.secs {
            cmd.arg("--secs").arg(s.to_string());
        }
        let out = cmd.output()?;
        if !out.status.success() {
            return Err(format!(
                "row {i} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )
            .into());
        }
        print!("{}", String::from_utf8_lossy(&out.stdout));
        // What the subscriber reported (the first overflow, say).
        for line in String::from_utf8_lossy(&out.stderr).lines() {
            reports.push(format!("{}: {line}", row.name));
        }
    }
    for r in reports {
        println!("{r}");
    }
    Ok(())
}
