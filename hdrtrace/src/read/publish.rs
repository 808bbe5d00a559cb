//! Snapshot publication: the aggregator stores a new immutable snapshot, then
//! advances an epoch; a reader that has seen epoch `n` loads a snapshot at least
//! as new as `n`. Loom checks this protocol (loom-tests/tests/publish.rs).

use crate::sync::{Arc, ArcCell, AtomicU64, Ordering};

/// Something with a version number.
pub(crate) trait Versioned {
    fn version(&self) -> u64;
}

pub(crate) struct Publisher<T> {
    cell: ArcCell<T>,
    epoch: AtomicU64,
}

impl<T: Versioned> Publisher<T> {
    pub(crate) fn new(initial: T) -> Self {
        let epoch = initial.version();
        Self {
            cell: ArcCell::new(Arc::new(initial)),
            epoch: AtomicU64::new(epoch),
        }
    }

    /// Called by the one aggregator thread, with strictly increasing versions.
    pub(crate) fn publish(&self, value: T) {
        let v = value.version();
        self.cell.store(Arc::new(value));
        // Release: the store above happens before any reader's acquire load
        // that observes `v`.
        self.epoch.store(v, Ordering::Release);
    }

    /// The newest published epoch.
    pub(crate) fn epoch(&self) -> u64 {
        // Acquire: pairs with the release store in `publish`.
        self.epoch.load(Ordering::Acquire)
    }

    /// The newest snapshot; never older than any epoch this thread has seen.
    pub(crate) fn load(&self) -> Arc<T> {
        self.cell.load_full()
    }
}
