//! Where long-lived readers (a metrics server, an exporter thread) get the
//! snapshot to report now.

use crate::read::publish::Publisher;
use crate::read::snapshot::{LatencySnapshot, SnapshotData};
use std::sync::Arc;

/// A cheap, cloneable handle on one subscriber's published snapshots, from
/// [`TracingGuard::snapshot_source`](crate::TracingGuard::snapshot_source).
/// Reading never blocks the recording threads or the aggregator.
#[derive(Clone)]
pub struct SnapshotSource(pub(crate) Arc<Publisher<SnapshotData>>);

impl SnapshotSource {
    /// The latest published snapshot (as new as the last publication, at most
    /// one `flush_interval` old while spans are recorded).
    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot(self.0.load())
    }
}

impl std::fmt::Debug for SnapshotSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotSource")
            .field("epoch", &self.0.epoch())
            .finish()
    }
}

/// Anything that yields the snapshot to report now: a [`SnapshotSource`], a
/// fixed [`LatencySnapshot`] (a merged fleet view, say), or a closure.
pub trait LatestSnapshot: Send + Sync + 'static {
    /// The snapshot to report now. Called on the reader's thread; it should
    /// not block for long.
    fn latest(&self) -> LatencySnapshot;
}

impl LatestSnapshot for SnapshotSource {
    fn latest(&self) -> LatencySnapshot {
        self.snapshot()
    }
}

impl LatestSnapshot for LatencySnapshot {
    fn latest(&self) -> LatencySnapshot {
        self.clone()
    }
}

impl<F> LatestSnapshot for F
where
    F: Fn() -> LatencySnapshot + Send + Sync + 'static,
{
    fn latest(&self) -> LatencySnapshot {
        self()
    }
}
