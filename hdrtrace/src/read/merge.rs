//! Snapshots from several processes merged into one, within a memory budget.
//!
//! A merged histogram has the finest precision and the widest range of the
//! histograms it adds up, so that the result does not depend on the order of
//! the inputs; it is priced before anything is allocated for it, since two
//! small histograms (5 significant figures up to 1 ms, 1 figure up to 146
//! years) can merge into a large one.

use crate::error::SnapshotError;
use crate::read::decode::{check_range, Budget, DECODE_BUDGET};
use crate::read::portable::{counter_values, counters_from};
use crate::read::requests::BlameReason;
use crate::read::snapshot::{Latency, LatencySnapshot, ModelLatency, Series, SnapshotData, SERIES};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One table of latencies: models or stages, cumulative or recent.
type Table = BTreeMap<String, Arc<ModelLatency>>;

/// How each table is named (in errors) and found.
type TableOf = (&'static str, fn(&SnapshotData) -> &Table);

/// Every table a snapshot holds.
const TABLES: [TableOf; 4] = [
    ("model", |d| &d.all.models),
    ("stage", |d| &d.all.stages),
    ("recent model", |d| &d.recent.models),
    ("recent stage", |d| &d.recent.stages),
];

/// Each name of a table, with its entries in the inputs, in input order.
type Groups<'a> = BTreeMap<&'a str, Vec<&'a Arc<ModelLatency>>>;

impl LatencySnapshot {
    /// One snapshot holding everything in `snapshots`: each model's and
    /// stage's histograms added bucket by bucket (cumulative and recent),
    /// counts and counters summed, captured requests interleaved (newest first
    /// and slowest first, as many as the largest input kept). Percentiles read
    /// from the result are the fleet's, to within HDR precision. Version, time
    /// taken and window are the latest of the inputs.
    ///
    /// Histograms of the same model or stage that differ in precision or
    /// range are added into one with the most significant figures, the
    /// lowest lowest-trackable value and the highest highest-trackable value
    /// among them, so the result is the same whatever the order of
    /// `snapshots`. A model or stage found in one input only is shared with
    /// it, not copied.
    ///
    /// The histograms the merge builds may take at most
    /// [`DECODE_BUDGET`](crate::limits::DECODE_BUDGET) bytes
    /// together, and each at most
    /// [`MAX_HISTOGRAM_BYTES`](crate::limits::MAX_HISTOGRAM_BYTES)
    /// (so that the result's bytes decode again). Each is priced before
    /// anything is allocated: beyond either bound, or given a histogram
    /// holding a value above its highest trackable value, the merge is an
    /// [`SnapshotError::Merge`] naming the model or stage and the histogram.
    ///
    /// ```
    /// use hdrtrace::{LatencySnapshot, TracingConfig};
    ///
    /// // Two instances' snapshots, as bytes (what each would ship).
    /// let bytes = |model: &'static str, n: u64| {
    ///     let (subscriber, guard) = hdrtrace::build(&TracingConfig::default()).unwrap();
    ///     tracing::subscriber::with_default(subscriber, || {
    ///         for id in 0..n {
    ///             let _r = tracing::info_span!("embed_pipeline", request_id = id).entered();
    ///             tracing::info_span!("model", model_id = model).in_scope(|| {});
    ///         }
    ///     });
    ///     guard.flushed_snapshot().to_bytes().unwrap()
    /// };
    /// let (a, b) = (bytes("Causal", 3), bytes("Causal", 5));
    /// let fleet = LatencySnapshot::merged(&[
    ///     LatencySnapshot::from_bytes(&a)?,
    ///     LatencySnapshot::from_bytes(&b)?,
    /// ])?;
    /// assert_eq!(fleet.model("Causal").unwrap().count(), 8);
    /// # Ok::<(), hdrtrace::SnapshotError>(())
    /// ```
    pub fn merged(snapshots: &[LatencySnapshot]) -> Result<LatencySnapshot, SnapshotError> {
        Self::merged_with_budget(snapshots, DECODE_BUDGET)
    }

    /// [`merged`](Self::merged) with another bound, in bytes, on what the
    /// histograms it builds may take together.
    pub fn merged_with_budget(
        snapshots: &[LatencySnapshot],
        budget: u64,
    ) -> Result<LatencySnapshot, SnapshotError> {
        let groups = TABLES.map(|(kind, table)| (kind, group(snapshots, table)));
        // Every histogram is checked and priced before any is built.
        let mut budget = Budget::new(budget, "merge");
        for (kind, groups) in &groups {
            for (name, entries) in groups {
                price(entries, &mut budget)
                    .map_err(|(field, reason)| refused(kind, name, field, reason))?;
            }
        }
        let [models, stages, recent_models, recent_stages] = groups.map(|(kind, groups)| {
            groups
                .into_iter()
                .map(|(name, entries)| {
                    let m = build(&entries).map_err(|(f, r)| refused(kind, name, f, r))?;
                    Ok((name.to_string(), m))
                })
                .collect::<Result<Table, SnapshotError>>()
        });
        let mut d = SnapshotData::default();
        (d.all.models, d.all.stages) = (models?, stages?);
        (d.recent.models, d.recent.stages) = (recent_models?, recent_stages?);
        let mut keep = 0;
        for s in snapshots {
            let s = &*s.0;
            d.version = d.version.max(s.version);
            d.taken_at = d.taken_at.max(s.taken_at);
            d.window = d.window.max(s.window);
            let (a, b) = (counter_values(&d.counters), counter_values(&s.counters));
            d.counters = counters_from(std::array::from_fn(|i| a[i].saturating_add(b[i])));
            d.captured.extend(s.captured.iter().cloned());
            d.slowest.extend(s.slowest.iter().cloned());
            keep = keep.max(s.captured.len()).max(s.slowest.len());
        }
        d.captured.sort_by_key(|t| std::cmp::Reverse(t.closed_at()));
        d.captured.truncate(keep);
        d.slowest.sort_by_key(|t| std::cmp::Reverse(t.total()));
        d.slowest.truncate(keep);
        Ok(LatencySnapshot(Arc::new(d)))
    }

    /// Adds `other` into this snapshot (see [`merged`](Self::merged)); on an
    /// error this snapshot is unchanged.
    pub fn merge(&mut self, other: &LatencySnapshot) -> Result<(), SnapshotError> {
        *self = Self::merged(&[self.clone(), other.clone()])?;
        Ok(())
    }
}

/// The entries of one table in every snapshot, grouped by name.
fn group<'a>(snapshots: &'a [LatencySnapshot], table: fn(&SnapshotData) -> &Table) -> Groups<'a> {
    let mut groups = Groups::new();
    for s in snapshots {
        for (name, m) in table(&s.0) {
            groups.entry(name.as_str()).or_default().push(m);
        }
    }
    groups
}

/// Why a merge failed: which histogram (`"wall histogram"`), and what is wrong.
type Refusal = (&'static str, String);

/// The merge's error for one histogram of one model or stage.
fn refused(kind: &str, name: &str, field: &str, reason: String) -> SnapshotError {
    SnapshotError::Merge {
        reason: format!("{kind} {name:?} {field}: {reason}"),
    }
}

/// The histograms `get` finds in `entries`.
fn found<'a>(entries: &[&'a Arc<ModelLatency>], get: Series) -> Vec<&'a Histogram<u64>> {
    entries.iter().filter_map(|m| (get.1)(m)).collect()
}

/// The finest precision and the widest range of `hists` (at least one):
/// lowest trackable value, highest trackable value, significant figures.
fn bounds(hists: &[&Histogram<u64>]) -> (u64, u64, u32) {
    hists
        .iter()
        .fold((u64::MAX, 0, 0), |(low, high, sigfigs), h| {
            (
                low.min(h.low()),
                // `max` is the top of the sub-bucket holding the largest
                // value: what `add` checks the sum's range against.
                high.max(h.high()).max(h.max()),
                sigfigs.max(u32::from(h.sigfig())),
            )
        })
}

/// Checks every histogram of `entries` and, where the merge builds them
/// (a name in several inputs), takes their cost from `budget`.
fn price(entries: &[&Arc<ModelLatency>], budget: &mut Budget) -> Result<(), Refusal> {
    for series in SERIES {
        let hists = found(entries, series);
        for h in &hists {
            check_range(h).map_err(|e| (series.0, e))?;
        }
        if entries.len() > 1 && !hists.is_empty() {
            let (low, high, sigfigs) = bounds(&hists);
            budget
                .take(low, high, sigfigs)
                .map_err(|e| (series.0, format!("merged, {e}")))?;
        }
    }
    Ok(())
}

/// The entries of one name added up; shared when there is only one.
fn build(entries: &[&Arc<ModelLatency>]) -> Result<Arc<ModelLatency>, Refusal> {
    if let [one] = entries {
        return Ok(Arc::clone(one));
    }
    let [wall, busy, gpu, batch_size, batch_wait] = SERIES.map(|series| {
        let hists = found(entries, series);
        let sum = (!hists.is_empty()).then(|| sum(&hists));
        sum.transpose().map_err(|e| (series.0, e))
    });
    // Wall and busy are found in every entry; `sum` of none would be an error.
    let required = |h: Option<Histogram<u64>>| {
        h.map(Latency::new)
            .ok_or_else(|| ("wall or busy histogram", "missing".to_string()))
    };
    let total =
        |f: fn(&ModelLatency) -> u64| entries.iter().fold(0u64, |t, m| t.saturating_add(f(m)));
    Ok(Arc::new(ModelLatency {
        wall: required(wall?)?,
        busy: required(busy?)?,
        gpu: gpu?.map(Latency::new),
        batch_size: batch_size?,
        batch_wait: batch_wait?.map(Latency::new),
        errors: total(|m| m.errors),
        timeouts: total(|m| m.timeouts),
        blamed: BlameReason::ALL.map(|r| {
            entries
                .iter()
                .fold(0u64, |t, m| t.saturating_add(m.blamed_for(r)))
        }),
    }))
}

/// `hists` added into one histogram of their [`bounds`].
fn sum(hists: &[&Histogram<u64>]) -> Result<Histogram<u64>, String> {
    let (low, high, sigfigs) = bounds(hists);
    // `sigfigs` is at most 5: `price` accepted these bounds.
    let mut sum = Histogram::new_with_bounds(low, high, sigfigs as u8)
        .map_err(|e| format!("merged, its bounds are refused: {e:?}"))?;
    for h in hists {
        sum.add(*h)
            .map_err(|e| format!("merged, a value is out of range: {e:?}"))?;
    }
    Ok(sum)
}
