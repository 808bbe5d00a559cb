//! The `Layer` front end's map from the Registry's span IDs to ours: a fixed
//! direct-mapped table allocated once, so a span costs no allocation here. A
//! span whose entry is taken by another live span (a hash collision) is kept
//! in the span's extensions instead.

use crate::sync::{AtomicU64, Ordering::Relaxed};

pub(crate) struct IdMap {
    /// Registry span IDs (never 0), or 0 for a free entry.
    keys: Box<[AtomicU64]>,
    /// Our ID for the key beside it.
    values: Box<[AtomicU64]>,
    mask: usize,
}

// Every access is `Relaxed`: a span's Registry ID reaches a thread only
// through whatever moved its `Span` there (as for our slots, see span.rs),
// which orders the `insert` made when it was created before any `get` of it,
// and the `remove` at its close after every other access to it. Racing
// inserts of different spans into one entry are settled by the CAS alone.
impl IdMap {
    /// A table for about `open_spans` spans open at once (twice as many
    /// entries, so collisions stay rare).
    pub(crate) fn new(open_spans: usize) -> Self {
        let len = (open_spans.max(1) * 2).next_power_of_two();
        Self {
            keys: (0..len).map(|_| AtomicU64::new(0)).collect(),
            values: (0..len).map(|_| AtomicU64::new(0)).collect(),
            mask: len - 1,
        }
    }

    #[inline]
    fn index(&self, registry_id: u64) -> usize {
        (registry_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & self.mask
    }

    /// Maps `registry_id` to `ours`; false when its entry is taken.
    #[inline]
    pub(crate) fn insert(&self, registry_id: u64, ours: u64) -> bool {
        let i = self.index(registry_id);
        if self.keys[i]
            .compare_exchange(0, registry_id, Relaxed, Relaxed)
            .is_err()
        {
            return false;
        }
        self.values[i].store(ours, Relaxed);
        true
    }

    /// Our ID for a span this table holds.
    #[inline]
    pub(crate) fn get(&self, registry_id: u64) -> Option<u64> {
        let i = self.index(registry_id);
        (self.keys[i].load(Relaxed) == registry_id).then(|| self.values[i].load(Relaxed))
    }

    /// Our ID for a span this table holds, freeing its entry (at its close).
    #[inline]
    pub(crate) fn remove(&self, registry_id: u64) -> Option<u64> {
        let i = self.index(registry_id);
        if self.keys[i].load(Relaxed) != registry_id {
            return None;
        }
        let ours = self.values[i].load(Relaxed);
        self.keys[i].store(0, Relaxed);
        Some(ours)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_spans_are_refused_not_overwritten() {
        let m = IdMap::new(1);
        assert!(m.insert(7, 70));
        let taken = (8..1000).find(|&id| !m.insert(id, id * 10)).unwrap();
        assert_eq!(m.get(7), Some(70));
        assert_eq!(m.get(taken), None);
        assert_eq!(m.remove(7), Some(70));
        assert_eq!(m.get(7), None);
    }
}
