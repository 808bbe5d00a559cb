//! A span's links (`follows_from`), kept inline in its slot: at most
//! `MAX_LINKS` linked span IDs, each claimed by one atomic increment, so
//! linking never allocates and never blocks; a link past the last one is not
//! kept and the caller counts it as dropped.
//!
//! Every access is `Relaxed`, for the reason every other slot field is (see
//! `span.rs`): the closing thread reads the links after the refcount's acquire
//! (the span's last reference is dropped after every link made through it),
//! and a new tenant's `reset` is ordered after the previous tenant's reads by
//! the slot table's free / alloc.

use crate::sync::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// The most links a span keeps: `hdrtrace::limits::MAX_LINKS`, restated
/// because the loom crate compiles this file without the rest of the crate.
pub(crate) const MAX_LINKS: usize = 4;
#[cfg(not(loom))]
const _: () = assert!(MAX_LINKS == crate::limits::MAX_LINKS);

/// The links of one open span.
#[derive(Default)]
pub(crate) struct LinkSlots {
    /// How many links were claimed (kept or not), saturating far above
    /// `MAX_LINKS` so that it never wraps back into the kept range.
    claimed: AtomicU32,
    ids: [AtomicU64; MAX_LINKS],
}

impl LinkSlots {
    /// Forgets the previous tenant's links (the caller owns the slot).
    #[inline]
    pub(crate) fn reset(&self) {
        // Relaxed: the slot is not shared yet; its ID reaches other threads
        // through a transfer that orders this store first (module docs).
        self.claimed.store(0, Relaxed);
    }

    /// Keeps a link to span `id`; false when every place is taken (the link
    /// is dropped).
    #[inline]
    pub(crate) fn add(&self, id: u64) -> bool {
        // A span past its capacity stops claiming: the counter cannot grow
        // past `MAX_LINKS` plus the number of threads linking at that moment.
        // Relaxed (load and increment): the counter only hands out places;
        // the atomic increment alone makes each place claimed once, and the
        // closing reader is ordered after every holder by the refcount.
        if self.claimed.load(Relaxed) as usize >= MAX_LINKS {
            return false;
        }
        let at = self.claimed.fetch_add(1, Relaxed) as usize;
        match self.ids.get(at) {
            Some(place) => {
                // Relaxed: read only by the closing thread, after the
                // refcount's release decrement / acquire fence (module docs).
                place.store(id, Relaxed);
                true
            }
            None => false,
        }
    }

    /// How many links are kept.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        // Relaxed: called by the closing thread (ordered as in the module
        // docs), or by a holder that only needs an estimate.
        (self.claimed.load(Relaxed) as usize).min(MAX_LINKS)
    }

    /// The kept links, written into `out`; returns how many.
    #[inline]
    pub(crate) fn read(&self, out: &mut [u64; MAX_LINKS]) -> usize {
        let n = self.len();
        for (o, place) in out.iter_mut().zip(&self.ids).take(n) {
            // Relaxed: the closing thread's reads, ordered after every
            // holder's store by the refcount (module docs).
            *o = place.load(Relaxed);
        }
        n
    }
}
