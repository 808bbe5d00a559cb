//! Histograms that travel: snapshots serialized by separate processes merge
//! into the histogram one process would have recorded from every sample.

mod snapshot_bytes;

use hdrhistogram::Histogram;
use hdrtrace::{LatencySnapshot, TracingConfig};
use proptest::prelude::*;
use snapshot_bytes::v2_deflate;
use std::process::Command;

/// Set on the re-executed test binary: `<process number>:<output path>`.
const CHILD: &str = "HDRTRACE_MERGE_TEST_CHILD";
const TEST: &str = "merged_p95_of_two_processes_matches_one_histogram_of_all_samples";
const MODEL: &str = "Embed";

/// Process 1 serves fast requests (1-3 ms of device time), process 2 fewer but
/// slower ones (5-50 ms): the fleet p95 lies in process 2's tail, far from the
/// average of the two processes' p95s.
fn samples(process: u64) -> Vec<u64> {
    let (n, low, spread) = match process {
        1 => (3000, 1_000_000, 2_000_000),
        _ => (600, 5_000_000, 45_000_000),
    };
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ process;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            low + x % spread
        })
        .collect()
}

/// Errors each process reports: one in every `n` model spans.
fn error_every(process: u64) -> usize {
    match process {
        1 => 100,
        _ => 50,
    }
}

/// Records `values` as the GPU time of `model` spans (plus a stage span per
/// request), with an error every `error_every` spans, and returns the flushed
/// snapshot.
fn record(model: &str, values: &[u64], error_every: usize) -> LatencySnapshot {
    let config = TracingConfig {
        sampling_rate: 0.0,
        ..TracingConfig::default()
    };
    let (subscriber, guard) = hdrtrace::build(&config).expect("default config is valid");
    tracing::subscriber::with_default(subscriber, || {
        for (i, &ns) in values.iter().enumerate() {
            let request = tracing::info_span!("embed_pipeline", request_id = i as u64);
            let _r = request.enter();
            tracing::info_span!("tokenize").in_scope(|| {});
            tracing::debug_span!("model", model_id = model, gpu_ns = ns).in_scope(|| {
                if (i + 1) % error_every == 0 {
                    tracing::error!("model failed");
                }
            });
            if i % 256 == 255 {
                guard.flush(); // keep the rings from filling
            }
        }
    });
    let snapshot = guard.flushed_snapshot();
    assert_eq!(snapshot.dropped_records(), 0, "records were lost");
    assert_eq!(snapshot.dropped_spans(), 0, "spans were lost");
    snapshot
}

fn gpu(s: &LatencySnapshot) -> &Histogram<u64> {
    s.model(MODEL)
        .and_then(|m| m.gpu())
        .expect("the model reported GPU time")
        .histogram()
}

/// The child's side: record this process's samples and write the snapshot.
fn child(role: &str) {
    let (process, path) = role.split_once(':').expect("role is <process>:<path>");
    let process: u64 = process.parse().expect("process number");
    let snapshot = record(MODEL, &samples(process), error_every(process));
    let bytes = snapshot.to_bytes().expect("snapshot serializes");
    std::fs::write(path, bytes).expect("write the snapshot");
}

#[test]
fn merged_p95_of_two_processes_matches_one_histogram_of_all_samples() {
    if let Ok(role) = std::env::var(CHILD) {
        return child(&role);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = std::env::current_exe().expect("the test binary's path");
    let children: Vec<_> = [1u64, 2]
        .into_iter()
        .map(|process| {
            let out = dir.path().join(format!("process-{process}.hdrsnap"));
            let child = Command::new(&exe)
                .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD, format!("{process}:{}", out.display()))
                .output();
            (process, out, child)
        })
        .collect();
    let mut parts = Vec::new();
    for (process, out, child) in children {
        let child = child.expect("re-run the test binary as a child");
        let log = format!(
            "child {process}: {}\nstdout:\n{}\nstderr:\n{}",
            child.status,
            String::from_utf8_lossy(&child.stdout),
            String::from_utf8_lossy(&child.stderr)
        );
        assert!(child.status.success(), "{log}");
        let bytes = std::fs::read(&out).unwrap_or_else(|e| panic!("{}: {e}\n{log}", out.display()));
        parts.push(LatencySnapshot::from_bytes(&bytes).expect("the child's snapshot decodes"));
    }
    let (a, b) = (&parts[0], &parts[1]);
    let merged = LatencySnapshot::merged(&parts).expect("hdrtrace's own histograms merge");

    // One histogram fed every sample, with the same bounds and precision.
    let all: Vec<u64> = samples(1).into_iter().chain(samples(2)).collect();
    let mut reference = Histogram::<u64>::new_from(gpu(a));
    // Published histograms grow to the largest sample (up to 120 s), as the
    // merge does.
    reference.auto(true);
    for &v in &all {
        reference.record(v).expect("samples are in range");
    }
    let p95 = gpu(&merged).value_at_quantile(0.95);
    assert_eq!(p95, reference.value_at_quantile(0.95));
    assert_eq!(gpu(&merged), &reference, "merged != one histogram of all");

    // ... and within HDR precision (3 significant figures) of the exact p95.
    let mut sorted = all.clone();
    sorted.sort_unstable();
    let exact = sorted[(0.95 * sorted.len() as f64).ceil() as usize - 1];
    assert!(
        p95.abs_diff(exact) <= exact / 1000,
        "p95 {p95} vs exact {exact}"
    );
    // Averaging the two processes' p95s would be far off.
    let averaged = (gpu(a).value_at_quantile(0.95) + gpu(b).value_at_quantile(0.95)) / 2;
    assert!(
        averaged.abs_diff(exact) > exact / 10,
        "the workload cannot tell"
    );

    // Counts add up.
    let (na, nb) = (samples(1).len() as u64, samples(2).len() as u64);
    let m = merged.model(MODEL).expect("merged model");
    assert_eq!(
        (
            a.model(MODEL).unwrap().count(),
            b.model(MODEL).unwrap().count()
        ),
        (na, nb)
    );
    assert_eq!(m.count(), na + nb);
    assert_eq!(m.busy().count(), na + nb);
    assert_eq!(gpu(&merged).len(), na + nb);
    assert_eq!(m.errors(), na / 100 + nb / 50);
    assert_eq!(m.timeouts(), 0);
    for stage in ["tokenize", "embed_pipeline"] {
        assert_eq!(
            merged.stage(stage).map(|s| s.count()),
            Some(na + nb),
            "{stage}"
        );
    }
    let (ca, cb, cm) = (a.counters(), b.counters(), merged.counters());
    assert_eq!(cm.spans, ca.spans + cb.spans);
    assert_eq!(cm.spans, 3 * (na + nb));
    assert_eq!(cm.events, na / 100 + nb / 50);
    assert_eq!(cm.requests, na + nb);

    // The merged snapshot travels too.
    let again = LatencySnapshot::from_bytes(&merged.to_bytes().unwrap()).unwrap();
    assert_same(&again, &merged);
}

/// Everything the byte format carries is equal.
fn assert_same(x: &LatencySnapshot, y: &LatencySnapshot) {
    // The byte format carries the first eight counters; the aggregator's
    // bounds (budget, overflow, drain gap) are per process.
    let carried = |c: hdrtrace::Counters| {
        [
            c.spans,
            c.events,
            c.requests,
            c.sampled_requests,
            c.captured_requests,
            c.dropped_spans,
            c.dropped_records,
            c.late_records,
        ]
    };
    assert_eq!(carried(x.counters()), carried(y.counters()));
    assert_eq!(x.version(), y.version());
    assert_eq!(x.taken_at(), y.taken_at());
    assert_eq!(x.window(), y.window());
    for (xs, ys) in [
        (
            x.models().collect::<Vec<_>>(),
            y.models().collect::<Vec<_>>(),
        ),
        (x.stages().collect(), y.stages().collect()),
    ] {
        assert_eq!(xs.len(), ys.len());
        for ((xn, xm), (yn, ym)) in xs.iter().zip(&ys) {
            assert_eq!(xn, yn);
            assert_eq!(xm.histogram(), ym.histogram(), "{xn} wall");
            assert_eq!(xm.busy().histogram(), ym.busy().histogram(), "{xn} busy");
            let g = |m: &hdrtrace::ModelLatency| m.gpu().map(|l| l.histogram().clone());
            assert_eq!(g(xm), g(ym), "{xn} gpu");
            assert_eq!(
                (xm.errors(), xm.timeouts(), xm.blamed()),
                (ym.errors(), ym.timeouts(), ym.blamed())
            );
        }
    }
}

#[test]
fn corrupt_bytes_are_clear_errors() {
    let bytes = record("A \"quoted\" ✓", &[1_000, 2_000, 3_000_000], 2)
        .to_bytes()
        .unwrap();
    let message = |b: &[u8]| match LatencySnapshot::from_bytes(b) {
        Ok(_) => panic!("{} corrupt bytes decoded", b.len()),
        Err(e) => e.to_string(),
    };
    assert!(
        message(&[]).contains("truncated at byte 0"),
        "{}",
        message(&[])
    );
    assert!(message(b"not a snapshot at all").contains("not an hdrtrace snapshot"));
    let mut future = bytes.clone();
    future[8] = 9;
    assert!(message(&future).contains("format 9 is not supported"));
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(message(&trailing).contains("1 unexpected bytes"));
    // Every strict prefix is refused.
    for len in 0..bytes.len() {
        let m = message(&bytes[..len]);
        assert!(m.starts_with("LatencySnapshot::from_bytes: "), "{m}");
    }
}

fn names() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z][A-Za-z0-9_-]{0,12}",
        "\\PC{1,8}",
        Just("with \"quotes\" and \\".to_string())
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever was recorded comes back identical, and merging a snapshot
    /// with nothing changes nothing.
    #[test]
    fn serialization_round_trips(
        models in proptest::collection::btree_map(
            names(),
            (proptest::collection::vec(1u64..200_000_000_000, 1..64), 1usize..5),
            1..4,
        )
    ) {
        let mut parts = Vec::new();
        for (name, (values, every)) in &models {
            parts.push(record(name, values, *every));
        }
        for s in &parts {
            let back = LatencySnapshot::from_bytes(&s.to_bytes().unwrap()).unwrap();
            assert_same(&back, s);
            assert_same(&LatencySnapshot::merged(std::slice::from_ref(s)).unwrap(), s);
        }
        let merged = LatencySnapshot::merged(&parts).unwrap();
        for (name, (values, every)) in &models {
            let m = merged.model(name).unwrap();
            prop_assert_eq!(m.gpu().unwrap().count(), values.len() as u64);
            prop_assert_eq!(m.errors(), (values.len() / every) as u64);
        }
        let back = LatencySnapshot::from_bytes(&merged.to_bytes().unwrap()).unwrap();
        assert_same(&back, &merged);
    }

    /// Damaged bytes decode to an error or to some snapshot, never a panic.
    #[test]
    fn damaged_bytes_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
    ) {
        let bytes = damaged_source();
        let mut b = bytes.to_vec();
        for (at, v) in edits {
            let i = at.index(b.len());
            b[i] = v;
        }
        let _ = LatencySnapshot::from_bytes(&b);
    }
}

/// One encoding shared by the damage cases.
fn damaged_source() -> &'static [u8] {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(|| {
        let values: Vec<u64> = (1..500).map(|i| i * 7_919).collect();
        record("M", &values, 7).to_bytes().unwrap()
    })
}

/// HdrHistogram's varint of a count (zig-zag: counts are even).
fn count_varint(count: u64) -> Vec<u8> {
    let mut v = count << 1;
    let mut out = Vec::new();
    while out.len() < 8 && v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

#[test]
fn hostile_histogram_headers_are_refused() {
    let container = |wall: &[u8]| snapshot_bytes::container(1, wall, &v2_deflate(&[], 0));
    let ok = LatencySnapshot::from_bytes(&container(&v2_deflate(&[0x02], 1))).unwrap();
    assert_eq!(ok.model("m0").map(|m| m.count()), Some(1));
    assert_eq!(ok.taken_at(), None);

    let err = |wall: Vec<u8>| match LatencySnapshot::from_bytes(&container(&wall)) {
        Ok(_) => panic!("hostile histogram decoded"),
        Err(e) => e.to_string(),
    };
    let e = err(v2_deflate(&[0xff; 9], 9));
    assert!(
        e.contains("model \"m0\" wall histogram: a run of zero counts"),
        "{e}"
    );
    let e = err(v2_deflate(&[0x02], 1 << 31));
    assert!(
        e.contains("says 2147483648 bytes of counts, more than its 28672 counts can take"),
        "{e}"
    );
    let huge = [
        count_varint(1 << 55),
        count_varint(1 << 55),
        count_varint(1),
    ]
    .concat();
    let e = err(v2_deflate(&huge, huge.len() as u32));
    assert!(e.contains("more than 72057594037927936 samples"), "{e}");
    let e = err(v2_deflate(&[0x82], 1));
    assert!(e.contains("a count is truncated"), "{e}");
    let mut bad_cookie = v2_deflate(&[], 0);
    bad_cookie[3] = 0x13;
    let e = err(bad_cookie);
    assert!(e.contains("is not HdrHistogram's V2 deflate"), "{e}");
}

/// Snapshot bytes of one model whose wall and busy histograms are `h`.
fn one_model(h: &Histogram<u64>) -> LatencySnapshot {
    let blob = snapshot_bytes::serialized(h);
    LatencySnapshot::from_bytes(&snapshot_bytes::container(1, &blob, &blob))
        .expect("a well-formed snapshot decodes")
}

#[test]
fn merging_differently_configured_snapshots_does_not_depend_on_order() {
    // Process A keeps 4 significant figures up to 17 s; process B 1 figure up
    // to 18 minutes. Both saw latencies of 1-10 ms.
    let fine = snapshot_bytes::histogram(4, 1 << 34, (0..1000).map(|i| 1_000_000 + i * 9_000));
    let coarse = snapshot_bytes::histogram(1, 1 << 40, (0..1000).map(|i| 2_000_000 + i * 8_000));
    let (a, b) = (one_model(&fine), one_model(&coarse));
    let ab = LatencySnapshot::merged(&[a.clone(), b.clone()]).unwrap();
    let ba = LatencySnapshot::merged(&[b.clone(), a.clone()]).unwrap();
    let read = |s: &LatencySnapshot| {
        let m = s.model("m0").expect("merged model");
        (
            m.quantile(0.5),
            m.quantile(0.99),
            m.max(),
            m.min(),
            m.count(),
        )
    };
    assert_eq!(read(&ab), read(&ba), "a + b differs from b + a");
    let (h_ab, h_ba) = (
        ab.model("m0").unwrap().histogram(),
        ba.model("m0").unwrap().histogram(),
    );
    assert_eq!(h_ab, h_ba);
    // The finer precision and the wider range are kept.
    assert_eq!((h_ab.sigfig(), h_ab.low()), (4, 1));
    assert!(h_ab.high() >= 1 << 40, "high {}", h_ab.high());
    assert_eq!(ab.model("m0").unwrap().count(), 2000);
    let mut by_merge = b.clone();
    by_merge.merge(&a).unwrap();
    assert_eq!(by_merge.model("m0").unwrap().histogram(), h_ab);
}

#[test]
fn values_beyond_the_stated_range_are_refused() {
    // 1 figure up to 2^62 ns: the last bucket's counts reach 2^63 ns, and
    // HdrHistogram records a 292-year value there.
    let mut h = snapshot_bytes::histogram(1, 1 << 62, [1_000]);
    h.record(u64::MAX / 2).expect("the last bucket holds it");
    let blob = snapshot_bytes::serialized(&h);
    let e = match LatencySnapshot::from_bytes(&snapshot_bytes::container(1, &blob, &blob)) {
        Ok(s) => panic!("decoded with a max of {:?}", s.model("m0").unwrap().max()),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("model \"m0\" wall histogram")
            && e.contains("beyond its highest trackable value 4611686018427387904"),
        "{e}"
    );
    // The top of the stated range itself is kept.
    let edge = one_model(&snapshot_bytes::histogram(1, 1 << 62, [1 << 62]));
    assert_eq!(
        edge.model("m0").unwrap().histogram().value_at_quantile(1.0) >> 58,
        16
    );
}
