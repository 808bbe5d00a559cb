//! OpenMetrics exemplars: for each histogram bucket whose range holds a
//! captured request's span, that request's trace id, the span's value and
//! when it ended. A span belongs to the series the aggregator recorded it in
//! ([`SpanTrace::series`]) and gives its wall, busy and device time
//! ([`SpanTrace::device`]) as recorded.

use super::buckets::Buckets;
use crate::export::trace_id::TraceId;
use crate::read::requests::{SeriesKey, SpanTrace};
use crate::read::snapshot::LatencySnapshot;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

/// Which table a series belongs to: models by `model_id`, stages by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Table {
    Model,
    Stage,
}

/// Which measure of a span a histogram holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Measure {
    Wall,
    Busy,
    Gpu,
    /// No span carries it: never has exemplars.
    BatchWait,
}

/// One exemplar: a captured request's span.
#[derive(Clone, Copy, Debug)]
pub(super) struct Exemplar {
    pub(super) trace_id: TraceId,
    pub(super) value: Duration,
    /// When the span ended.
    pub(super) at: SystemTime,
}

/// One series' exemplars, one slot per bucket (`+Inf` last).
type Slots = Vec<Option<Exemplar>>;

/// The exemplars of one render: by table and measure, then by series key.
pub(super) struct Exemplars<'a> {
    by_series: HashMap<(Table, Measure), HashMap<&'a str, Slots>>,
}

impl<'a> Exemplars<'a> {
    /// Every span of every captured request in `snapshot` (its most recent
    /// and its slowest, each request once), placed in `buckets` by its exact
    /// value; where several fall in one bucket the one that ended last is
    /// kept, so a bucket's exemplar only moves forward in time.
    pub(super) fn collect(snapshot: &'a LatencySnapshot, buckets: &Buckets) -> Self {
        let mut by_series: HashMap<_, HashMap<_, Slots>> = HashMap::new();
        let mut seen = HashSet::new();
        let traces = snapshot.captured().iter().chain(snapshot.slowest());
        for trace in traces {
            if !seen.insert(std::sync::Arc::as_ptr(trace)) {
                continue;
            }
            let trace_id = trace.trace_id();
            let base = trace.started_at();
            for span in trace.spans() {
                let (table, key) = match &span.series {
                    SeriesKey::Model(key) => (Table::Model, key.as_str()),
                    SeriesKey::Stage(key) => (Table::Stage, key.as_str()),
                };
                let at = base
                    .checked_add(span.start.saturating_add(span.wall))
                    .unwrap_or(trace.closed_at());
                for (measure, value) in measures(span) {
                    let slots = by_series
                        .entry((table, measure))
                        .or_default()
                        .entry(key)
                        .or_insert_with(|| vec![None; buckets.len() + 1]);
                    let nanos = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
                    let slot = &mut slots[buckets.index_of(nanos)];
                    if slot.is_none_or(|e: Exemplar| e.at < at) {
                        *slot = Some(Exemplar {
                            trace_id,
                            value,
                            at,
                        });
                    }
                }
            }
        }
        Exemplars { by_series }
    }

    /// The exemplar slots of one series, if any captured span belongs to it.
    pub(super) fn of(
        &self,
        table: Table,
        measure: Measure,
        key: &str,
    ) -> Option<&[Option<Exemplar>]> {
        self.by_series
            .get(&(table, measure))
            .and_then(|series| series.get(key))
            .map(Vec::as_slice)
    }
}

/// The span's wall and busy time, and its device time when it reported one.
fn measures(span: &SpanTrace) -> impl Iterator<Item = (Measure, Duration)> {
    [(Measure::Wall, span.wall), (Measure::Busy, span.busy)]
        .into_iter()
        .chain(span.device.map(|d| (Measure::Gpu, d)))
}
