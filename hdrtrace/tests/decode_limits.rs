//! Untrusted snapshot bytes cannot take the host's memory: a counting global
//! allocator measures the peak each decode reaches, for hostile histogram
//! headers and for thousands of damaged and random inputs.

mod peak_support;
mod snapshot_bytes;

use hdrtrace::limits::{DECODE_BUDGET, MAX_HISTOGRAM_BYTES};
use hdrtrace::{LatencySnapshot, TracingConfig};
use peak_support::{peak_of, refused, serial};
use proptest::prelude::*;
use snapshot_bytes::v2_deflate_with;
use std::sync::OnceLock;

#[global_allocator]
static GLOBAL: peak_support::Peak = peak_support::Peak;

/// The decode's result and the most it held allocated at once above what was
/// live before it.
fn decode_peak(bytes: &[u8]) -> (Result<LatencySnapshot, hdrtrace::SnapshotError>, usize) {
    peak_of(|| LatencySnapshot::from_bytes(bytes))
}

/// What one decode may reach: the budget kept, plus one histogram's inflated
/// counts and HdrHistogram's copy of them (9/8 of its counts each), plus the
/// input-sized bookkeeping.
const PEAK_BOUND: usize = (DECODE_BUDGET + 3 * MAX_HISTOGRAM_BYTES) as usize + (1 << 20);

/// A V2 deflate histogram with this header and counts payload.
fn v2(sigfigs: u32, low: u64, high: u64, payload: &[u8]) -> Vec<u8> {
    v2_deflate_with(sigfigs, low, high, payload, payload.len() as u32)
}

/// A snapshot of `models` models whose wall and busy histograms are `blob`.
fn container(models: usize, blob: &[u8]) -> Vec<u8> {
    snapshot_bytes::container(models, blob, blob)
}

#[test]
fn five_figures_over_the_whole_range_are_refused_before_allocating() {
    let _s = serial();
    // The reproduction: a 2.5 KB input took 1.98 GB in 2.9 s.
    let bytes = container(20, &v2(5, 1, u64::MAX, &[]));
    assert!(bytes.len() < 4096, "{} bytes", bytes.len());
    let (e, peak) = refused(|| LatencySnapshot::from_bytes(&bytes));
    assert!(
        e.contains("model \"m0\" wall histogram: it would take")
            && e.contains("one histogram may take at most 16777216"),
        "{e}"
    );
    assert!(peak < 1 << 20, "the refusal itself took {peak} bytes");
}

#[test]
fn many_allowed_histograms_share_one_budget() {
    let _s = serial();
    // 4 figures over 1 ns..2^44 ns: about 5.5 MB each, under the per-histogram
    // cap; 40 models of two each need 440 MB, more than the budget.
    let bytes = container(40, &v2(4, 1, 1 << 44, &[]));
    assert!(bytes.len() < 8192, "{} bytes", bytes.len());
    let (e, peak) = refused(|| LatencySnapshot::from_bytes(&bytes));
    assert!(
        e.contains("of the decode's budget of 268435456 bytes"),
        "{e}"
    );
    assert!(peak <= PEAK_BOUND, "peak {peak} bytes");
    // The same input fits a larger budget the caller chose.
    let ok = LatencySnapshot::from_bytes_with_budget(&bytes, 1 << 30).unwrap();
    assert_eq!(ok.models().count(), 40);
}

#[test]
fn malformed_headers_name_what_is_wrong() {
    let _s = serial();
    for (blob, want) in [
        (v2(3, 0, 1000, &[]), "lowest trackable value is 0"),
        (v2(3, 100, 150, &[]), "less than twice its lowest"),
        (
            v2(9, 1, 1000, &[]),
            "claims 9 significant figures (at most 5)",
        ),
        (
            v2(3, 1 << 60, u64::MAX, &[]),
            "cannot be kept above a lowest value",
        ),
        (v2(0, 1, 3, &[0; 64]), "more than its 3 counts can take"),
    ] {
        let bytes = container(1, &blob);
        let (e, _) = refused(|| LatencySnapshot::from_bytes(&bytes));
        assert!(e.contains(want), "{e} (wanted {want:?})");
    }
}

/// A real snapshot's bytes: two models, one stage, device time on one.
fn real_snapshot() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let (subscriber, guard) = hdrtrace::build(&TracingConfig::default()).unwrap();
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..200u64 {
                let root = tracing::info_span!("embed_pipeline", request_id = i);
                let _r = root.enter();
                for model in ["Semantic", "Causal"] {
                    let span =
                        tracing::info_span!("model", model_id = model, gpu_ns = i * 1000 + 7);
                    span.in_scope(|| std::hint::black_box(i));
                }
            }
        });
        guard.flushed_snapshot().to_bytes().unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5_000, ..ProptestConfig::default() })]

    #[test]
    fn damaged_snapshots_stay_within_the_budget(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let _s = serial();
        let mut b = real_snapshot().to_vec();
        for (at, v) in edits {
            let i = at.index(b.len());
            b[i] = v;
        }
        if truncate {
            b.truncate(cut.index(b.len()));
        }
        let (_, peak) = decode_peak(&b);
        prop_assert!(peak <= PEAK_BOUND, "peak {} bytes", peak);
    }

    #[test]
    fn random_bytes_stay_within_the_budget(
        tail in proptest::collection::vec(any::<u8>(), 0..512),
        framed in any::<bool>(),
    ) {
        let _s = serial();
        // Half the inputs get a valid prefix so the decoder reaches the tables.
        let mut b = if framed { real_snapshot()[..104].to_vec() } else { Vec::new() };
        b.extend(tail);
        let (r, peak) = decode_peak(&b);
        prop_assert!(peak <= PEAK_BOUND, "peak {} bytes", peak);
        if !framed {
            prop_assert!(r.is_err());
        }
    }
}
