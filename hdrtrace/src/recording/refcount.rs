//! A span's reference count: how many `Span` handles (and clones of its ID)
//! are alive, so that only the last `try_close` records the span and frees its
//! slot. The protocol is `Arc`'s, with one shortcut for the common case of a
//! span with a single handle.

use crate::sync::{fence, AtomicUsize, Ordering};

/// The handles alive for one open span.
#[derive(Debug, Default)]
pub(crate) struct RefCount(AtomicUsize);

impl RefCount {
    /// A new tenant's count: the one handle `new_span` returns. The caller
    /// owns the slot exclusively.
    #[inline]
    pub(crate) fn reset(&self) {
        // Relaxed: the slot is not shared yet; its ID reaches other threads
        // through a transfer that orders this store first (see `span.rs`).
        self.0.store(1, Ordering::Relaxed);
    }

    /// One more handle (`clone_span`), made from a live one.
    #[inline]
    pub(crate) fn add(&self) {
        // Relaxed: as `Arc::clone`: a new reference is made from an existing
        // one, which keeps the span alive meanwhile.
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Drops one handle; true when it was the last, and then every write
    /// other holders made to the span before dropping theirs happens before
    /// this call returns (so the caller may read the slot and free it).
    ///
    /// A count of 1 seen by a holder means it is the only one (a new handle
    /// is only ever made from a live one, and this holder is dropping its
    /// own), so the last holder needs no decrement: the slot is freed and
    /// `reset` sets the count for its next tenant.
    #[inline(always)]
    pub(crate) fn release(&self) -> bool {
        // Acquire: as the fence below: reading 1 written by another holder's
        // release decrement (or by any decrement of the release sequence
        // after it) orders that holder's writes before ours.
        if self.0.load(Ordering::Acquire) != 1 {
            // Release: as `Arc::drop`: this holder's writes to the span (busy
            // time, status, fields, links) happen before the last holder
            // reads them.
            if self.0.fetch_sub(1, Ordering::Release) != 1 {
                return false;
            }
            // Acquire: pairs with every other holder's release decrement.
            fence(Ordering::Acquire);
        }
        true
    }
}
