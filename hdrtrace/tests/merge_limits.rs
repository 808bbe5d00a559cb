//! Merging snapshots cannot take the host's memory: a counting global
//! allocator measures the peak a merge reaches for two small hostile inputs
//! that each decode within the decode budget.

mod peak_support;
mod snapshot_bytes;

use hdrtrace::LatencySnapshot;
use peak_support::{peak_of, refused, serial};
use snapshot_bytes::{container, histogram, serialized};

#[global_allocator]
static GLOBAL: peak_support::Peak = peak_support::Peak;

/// Models per snapshot in the reproduction.
const ENTRIES: usize = 25;

/// The pair: 25 models whose wall and busy histograms have 5
/// significant figures over 1..2^20 (5.2 MB of counts each, 262 MB in all,
/// within the 256 MiB decode budget), and 25 whose histograms have 1 figure
/// reaching 2^62 (7.7 KB each). Merged at the finer precision over the wider
/// range, each would take 49 MB: 2.5 GB from 6 KB of input.
fn hostile_pair() -> (LatencySnapshot, LatencySnapshot) {
    let fine = serialized(&histogram(5, 1 << 20, [4_980, 10_000]));
    let wide = serialized(&histogram(1, 1 << 62, [5_240, 10_490, 1 << 62]));
    let (a, b) = (
        container(ENTRIES, &fine, &fine),
        container(ENTRIES, &wide, &wide),
    );
    assert!(a.len() + b.len() < 8192, "{} + {} bytes", a.len(), b.len());
    (
        LatencySnapshot::from_bytes(&a).expect("the fine snapshot decodes within the budget"),
        LatencySnapshot::from_bytes(&b).expect("the wide snapshot decodes within the budget"),
    )
}

#[test]
fn hostile_pair_merge_is_refused_before_allocating() {
    let _s = serial();
    let (fine, wide) = hostile_pair();
    for inputs in [[fine.clone(), wide.clone()], [wide.clone(), fine.clone()]] {
        let (e, peak) = refused(|| LatencySnapshot::merged(&inputs));
        assert!(
            e.starts_with("LatencySnapshot::merged: model \"m0\" wall histogram: merged, it would take 49283072 bytes (5 significant figures from 1 to ")
                && e.ends_with("one histogram may take at most 16777216"),
            "{e}"
        );
        assert!(peak < 1 << 20, "the refusal took {peak} bytes");
    }
    // `merge` refuses the same and leaves the snapshot as it was.
    let mut into = fine.clone();
    let (r, peak) = peak_of(|| into.merge(&wide));
    assert!(r.is_err() && peak < 1 << 20, "{r:?}, {peak} bytes");
    assert_eq!(into.model("m0").unwrap().histogram().sigfig(), 5);
    assert_eq!(into.model("m0").unwrap().count(), 2);
}

#[test]
fn merged_histograms_share_one_budget() {
    let _s = serial();
    // Each merged histogram (5 figures from 1 to 2^24: 9.4 MB) is under the
    // per-histogram cap, but 50 of them need 472 MB.
    let (fine, _) = hostile_pair();
    let wide = serialized(&histogram(1, 1 << 24, [1 << 24]));
    let wide = LatencySnapshot::from_bytes(&container(ENTRIES, &wide, &wide)).unwrap();
    let inputs = [fine.clone(), wide.clone()];
    let (e, peak) = refused(|| LatencySnapshot::merged(&inputs));
    assert!(
        e.contains("of the merge's budget of 268435456 bytes"),
        "{e}"
    );
    assert!(peak < 1 << 20, "the refusal took {peak} bytes");
    // A budget the caller chose holds them: what the merge builds stays
    // within it.
    let budget = 500 << 20;
    let (merged, peak) = peak_of(|| LatencySnapshot::merged_with_budget(&[fine, wide], budget));
    let merged = merged.expect("within the larger budget");
    assert!(peak as u64 <= budget, "peak {peak} bytes");
    let m = merged.model("m24").unwrap().histogram();
    assert_eq!((m.sigfig(), m.len(), m.max() >> 23), (5, 3, 2));
}
