//! Two instances behind one real Prometheus (started with exemplar storage):
//! the fleet's p95 that Prometheus computes from the summed histogram buckets
//! agrees with the p95 of the two instances' HDR histograms merged, the
//! summed buckets equal the merged histogram's exactly, and the exemplars
//! Prometheus stored name captured requests of those instances.
//!
//! Needs the `prometheus` binary (Debian's package): under `CI=true` its
//! absence fails the test, elsewhere the test says loudly that it skipped.
#![cfg(feature = "prometheus")]

mod prometheus_support;

use hdrtrace::export::prometheus::Buckets;
use hdrtrace::{LatencySnapshot, TracingConfig};
use prometheus_support::{assert_summed_buckets, binary_or_skip, les, Instance, Prometheus};
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const POLL_FOR: Duration = Duration::from_secs(90);
const MODEL: &str = "Alpha";
/// Requests recorded before Prometheus has seen each instance once (so that
/// `rate` sees the rest as an increase), and after.
const WARM_UP: u64 = 2;

/// An instance that captures every request, so each has an exemplar to
/// offer.
fn capturing_instance() -> Instance {
    Instance::start(&TracingConfig {
        sampling_rate: 1.0,
        latency_target: Duration::from_millis(10),
        capture_capacity: 256,
        max_capture_spans: 64,
        window: Duration::from_secs(600),
        ..TracingConfig::default()
    })
}

/// Records requests `ids` on `instance`, `Alpha` sleeping `sleep` in each,
/// then flushes.
fn record(instance: &Instance, sleep: Duration, ids: std::ops::Range<u64>) {
    instance.record(|| {
        for i in ids {
            let request = tracing::info_span!("embed_pipeline", request_id = i);
            let _r = request.enter();
            tracing::debug_span!("model", model_id = MODEL).in_scope(|| {
                std::thread::sleep(sleep);
            });
        }
    });
}

fn count_of(prom: &Prometheus, instance: &str) -> Result<Option<f64>, String> {
    prom.query_one(&format!(
        "hdrtrace_model_latency_seconds_count{{model=\"{MODEL}\",instance=\"{instance}\"}}"
    ))
}

#[test]
fn fleet_p95_from_prometheus_matches_merged_hdr() {
    let Some(binary) = binary_or_skip("prometheus", "fleet_p95_from_prometheus_matches_merged_hdr")
    else {
        return;
    };
    let start = SystemTime::now();
    // Two latency profiles: 60 fast requests (1 ms) and 40 slow ones (35 ms).
    // The merged p95 is rank 95 of 100, inside the slow instance's values,
    // all in the (25 ms, 50 ms] bucket with room on both sides.
    let fleet = [
        (capturing_instance(), Duration::from_millis(1), 60),
        (capturing_instance(), Duration::from_millis(35), 40),
    ];
    let targets: Vec<String> = fleet.iter().map(|(i, ..)| i.target()).collect();
    let mut prom = Prometheus::start(&binary, &targets, &["exemplar-storage"]);

    for (instance, sleep, _) in &fleet {
        record(instance, *sleep, 0..WARM_UP);
    }
    for target in &targets {
        prom.wait_for("the warm-up scraped", POLL_FOR, |p| {
            Ok(count_of(p, target)?.filter(|&c| c == WARM_UP as f64))
        });
    }
    std::thread::scope(|s| {
        for (instance, sleep, n) in &fleet {
            s.spawn(move || record(instance, *sleep, WARM_UP..*n));
        }
    });
    for ((_, _, n), target) in fleet.iter().zip(&targets) {
        let n = *n as f64;
        prom.wait_for("every request scraped", POLL_FOR, |p| {
            Ok(count_of(p, target)?.filter(|&c| c == n))
        });
    }

    let snapshots: Vec<LatencySnapshot> = fleet.iter().map(|(i, ..)| i.guard.snapshot()).collect();
    let merged = LatencySnapshot::merged(&snapshots).unwrap();
    let merged_alpha = merged.model(MODEL).expect("recorded");
    assert_eq!(merged_alpha.count(), 100);

    // The summed buckets are the merged HDR histogram's, exactly.
    let buckets = Buckets::default();
    assert_summed_buckets(&prom, &buckets, MODEL, merged_alpha.histogram());

    // The fleet p95 from Prometheus agrees with the merged histogram's within
    // the width of the bucket that holds it.
    let promql = format!(
        "histogram_quantile(0.95, sum by (le, model) \
         (rate(hdrtrace_model_latency_seconds_bucket{{model=\"{MODEL}\"}}[5m])))"
    );
    let fleet_p95 = prom.query_one(&promql).unwrap().expect("a fleet p95");
    let hdr_p95 = merged_alpha.quantile(0.95);
    let bounds: Vec<Duration> = buckets.bounds().collect();
    let i = buckets.index_of(hdr_p95.as_nanos() as u64);
    assert!(
        i > 0 && i < bounds.len(),
        "p95 {hdr_p95:?} in an inner bucket"
    );
    let width = (bounds[i] - bounds[i - 1]).as_secs_f64();
    assert!(
        (fleet_p95 - hdr_p95.as_secs_f64()).abs() <= width,
        "Prometheus fleet p95 {fleet_p95} s, merged HDR p95 {hdr_p95:?}, bucket width {width} s"
    );
    eprintln!(
        "fleet p95: Prometheus {fleet_p95} s, merged HDR {hdr_p95:?} (bucket {:?}..={:?})",
        bounds[i - 1],
        bounds[i]
    );
    // Neither instance alone has that p95: the fast one is far below it.
    let fast_p95 = snapshots[0].model(MODEL).unwrap().quantile(0.95);
    assert!(fast_p95 < bounds[i - 1], "fast instance p95 {fast_p95:?}");

    // Exemplars: trace ids of captured requests of these two instances, from
    // both of them, each in the bucket its value belongs in.
    let captured: BTreeSet<String> = snapshots
        .iter()
        .flat_map(|s| s.captured().iter().chain(s.slowest()))
        .map(|t| t.trace_id().to_string())
        .collect();
    let from = start.duration_since(UNIX_EPOCH).unwrap().as_secs() - 60;
    let to = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 60;
    let query = format!("hdrtrace_model_latency_seconds_bucket{{model=\"{MODEL}\"}}");
    let exemplars = prom.wait_for("exemplars from both instances", POLL_FOR, |p| {
        let json = p.get(
            "/api/v1/query_exemplars",
            &[
                ("query", query.as_str()),
                ("start", &from.to_string()),
                ("end", &to.to_string()),
            ],
        )?;
        let series = json["data"].as_array().cloned().unwrap_or_default();
        let instances: BTreeSet<String> = series
            .iter()
            .filter(|s| s["exemplars"].as_array().is_some_and(|e| !e.is_empty()))
            .filter_map(|s| s["seriesLabels"]["instance"].as_str().map(String::from))
            .collect();
        Ok((instances.len() == 2).then_some(series))
    });
    let les = les(&buckets);
    let mut seen = 0;
    for series in &exemplars {
        let le = series["seriesLabels"]["le"].as_str().unwrap();
        let upper = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse::<f64>().unwrap()
        };
        let k = les.iter().position(|l| l == le).expect("a known le");
        let lower = if k == 0 {
            0.0
        } else {
            les[k - 1].parse::<f64>().unwrap()
        };
        for e in series["exemplars"].as_array().unwrap() {
            let id = e["labels"]["trace_id"].as_str().unwrap();
            assert_eq!(id.len(), 32, "{e}");
            assert!(
                captured.contains(id),
                "exemplar {id} is no captured request"
            );
            let v: f64 = e["value"].as_str().unwrap().parse().unwrap();
            assert!(lower < v && v <= upper, "exemplar {v} s in le={le}");
            seen += 1;
        }
    }
    assert!(seen >= 2, "{exemplars:?}");
    eprintln!("{seen} exemplars, all captured requests of the two instances");
}
