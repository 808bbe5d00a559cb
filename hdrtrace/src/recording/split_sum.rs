//! A sum that one thread, the span's owner (the thread that opened it), adds
//! to with a plain load and store, and every other thread with a locked add:
//! a span's busy time and its request's descendant count. Most spans are
//! entered and their children opened where they were made, so the common
//! case costs no locked instruction.
//!
//! Every access is `Relaxed`: the sum is read by the thread that drops the
//! span's last reference, after the reference count's acquire (see
//! `refcount.rs`), which every addition made through a handle precedes; a
//! reset is ordered before other threads' additions by the transfer that
//! gives them the span's ID.

use crate::sync::{AtomicU64, Ordering::Relaxed};

/// The two halves of one sum.
#[derive(Debug, Default)]
pub(crate) struct SplitSum {
    /// Added by the owner thread, its single writer.
    own: AtomicU64,
    /// Added by every other thread.
    shared: AtomicU64,
}

impl SplitSum {
    /// Zero, for a new tenant (the caller owns the slot exclusively).
    #[inline]
    pub(crate) fn reset(&self) {
        self.own.store(0, Relaxed);
        self.shared.store(0, Relaxed);
    }

    /// Adds `v`; `by_owner` says the caller is the owner thread. The owner's
    /// load and store lose nothing because no other thread writes `own`.
    #[inline]
    pub(crate) fn add(&self, v: u64, by_owner: bool) {
        if by_owner {
            self.own
                .store(self.own.load(Relaxed).wrapping_add(v), Relaxed);
        } else {
            self.shared.fetch_add(v, Relaxed);
        }
    }

    /// What the owner added (its half alone).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn own(&self) -> u64 {
        self.own.load(Relaxed)
    }

    /// Everything added so far, by any thread.
    #[inline]
    pub(crate) fn get(&self) -> u64 {
        self.own
            .load(Relaxed)
            .wrapping_add(self.shared.load(Relaxed))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::SplitSum;
    use std::sync::atomic::Ordering::Relaxed;

    /// The owner's additions land in its own half, everyone else's in the
    /// shared one, and the sum is both; a reset clears both halves.
    #[test]
    fn each_addition_lands_in_its_half() {
        let sum = SplitSum::default();
        sum.add(5, true);
        sum.add(7, false);
        sum.add(1, true);
        assert_eq!(sum.own.load(Relaxed), 6);
        assert_eq!(sum.shared.load(Relaxed), 7);
        assert_eq!(sum.get(), 13);
        sum.reset();
        assert_eq!(sum.get(), 0);
    }
}
