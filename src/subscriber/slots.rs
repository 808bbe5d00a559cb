//! The fixed-capacity slot table that gives spans their IDs.
//!
//! Every slot is allocated up front. A span ID packs the slot's index (plus one,
//! so an ID is never zero) in its low 32 bits and the slot's generation in its
//! high 32 bits; freeing a slot bumps its generation, so a stale ID never
//! aliases the slot's next tenant.
//!
//! Free slots sit on lock-free Treiber stacks, one per shard. A shard is a
//! contiguous range of slots, and each thread allocates from its own home shard
//! first, so two threads creating spans do not fight over one cache line. A freed
//! slot goes back to the shard it belongs to. Each stack head carries a tag that
//! every successful CAS increments, which rules out ABA.

use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// The value behind a table entry: anything with interior mutability.
pub(crate) struct Entry<S> {
    generation: AtomicU32,
    /// Index + 1 of the next free slot on this slot's shard stack (0 = end).
    next_free: AtomicU32,
    pub(crate) value: S,
}

/// A stack head: tag in the high 32 bits, index + 1 of the top slot in the low
/// 32 bits (0 = empty).
#[repr(align(128))]
struct Shard {
    head: AtomicU64,
}

pub(crate) struct SlotTable<S> {
    entries: Box<[Entry<S>]>,
    shards: Box<[Shard]>,
    shard_len: usize,
}

/// The most slots a table may have (IDs keep index + 1 in 32 bits).
pub(crate) const MAX_SLOTS: usize = (u32::MAX >> 1) as usize;

#[inline]
pub(crate) fn pack_id(index: usize, generation: u32) -> u64 {
    ((generation as u64) << 32) | (index as u64 + 1)
}

#[inline]
pub(crate) fn unpack_id(id: u64) -> (usize, u32) {
    (((id as u32) as usize).wrapping_sub(1), (id >> 32) as u32)
}

impl<S> SlotTable<S> {
    /// A table of `capacity` slots split into `shards` shards (both at least 1).
    pub(crate) fn new(capacity: usize, shards: usize, mut init: impl FnMut() -> S) -> Self {
        let capacity = capacity.clamp(1, MAX_SLOTS);
        let shards = shards.clamp(1, capacity);
        let shard_len = capacity.div_ceil(shards);
        let entries: Box<[Entry<S>]> = (0..capacity)
            .map(|i| {
                let next_in_shard = i + 1;
                let same_shard =
                    next_in_shard < capacity && next_in_shard / shard_len == i / shard_len;
                Entry {
                    generation: AtomicU32::new(0),
                    next_free: AtomicU32::new(if same_shard {
                        next_in_shard as u32 + 1
                    } else {
                        0
                    }),
                    value: init(),
                }
            })
            .collect();
        let shards = (0..shards)
            .map(|s| {
                let first = s * shard_len;
                Shard {
                    head: AtomicU64::new(if first < capacity {
                        first as u64 + 1
                    } else {
                        0
                    }),
                }
            })
            .collect();
        Self {
            entries,
            shards,
            shard_len,
        }
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Takes a free slot, trying `home` first and then every other shard.
    /// Returns the slot's ID and entry, or `None` when every slot is in use.
    #[inline]
    pub(crate) fn alloc(&self, home: usize) -> Option<(u64, &S)> {
        let n = self.shards.len();
        let home = home % n;
        for k in 0..n {
            let mut s = home + k;
            if s >= n {
                s -= n;
            }
            if let Some(index) = self.pop(&self.shards[s]) {
                let entry = &self.entries[index];
                // Relaxed: the generation was last changed by `free` before the
                // release CAS that pushed this slot, which our acquire pop saw.
                let gen = entry.generation.load(Ordering::Relaxed);
                return Some((pack_id(index, gen), &entry.value));
            }
        }
        None
    }

    #[inline]
    fn pop(&self, shard: &Shard) -> Option<usize> {
        // Acquire: pairs with the release CAS in `push` (and with other pops'
        // AcqRel CAS), so the `next_free` written before the push is visible.
        let mut head = shard.head.load(Ordering::Acquire);
        loop {
            let top = head as u32;
            if top == 0 {
                return None;
            }
            let index = top as usize - 1;
            // Relaxed: if `head` still holds this exact (tag, index) at the CAS,
            // nobody pushed or popped in between, so this is the value written
            // before the push we acquired; any other value makes the CAS fail.
            let next = self.entries[index].next_free.load(Ordering::Relaxed);
            let new = (((head >> 32) + 1) << 32) | next as u64;
            // AcqRel on success: acquire as above, release so the next popper
            // sees a consistent chain. Acquire on failure: we re-read `next`.
            match shard
                .head
                .compare_exchange_weak(head, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(index),
                Err(actual) => head = actual,
            }
        }
    }

    /// Looks up a live slot by ID; `None` for an ID that was never issued by this
    /// table or whose slot has been freed since.
    #[inline]
    pub(crate) fn get(&self, id: u64) -> Option<&S> {
        let (index, gen) = unpack_id(id);
        let entry = self.entries.get(index)?;
        // Acquire: pairs with the release increment in `free`, so a freed slot
        // is seen as freed by anyone who learned of the free.
        (entry.generation.load(Ordering::Acquire) == gen).then_some(&entry.value)
    }

    /// Returns a slot to its shard. The caller must hold the only reference to the
    /// span (its reference count just reached zero) and must not use `id` again.
    #[inline]
    pub(crate) fn free(&self, id: u64) {
        let (index, gen) = unpack_id(id);
        let Some(entry) = self.entries.get(index) else {
            return;
        };
        // Release: the tenant's last writes happen before any later reader who
        // acquires the new generation. A CAS (not a store) so a double free of a
        // stale ID cannot push the slot twice.
        if entry
            .generation
            .compare_exchange(
                gen,
                gen.wrapping_add(1),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return;
        }
        let shard = &self.shards[index / self.shard_len];
        // Relaxed: the CAS below re-validates `head`.
        let mut head = shard.head.load(Ordering::Relaxed);
        loop {
            // Relaxed: published by the release CAS below.
            entry.next_free.store(head as u32, Ordering::Relaxed);
            let new = (((head >> 32) + 1) << 32) | (index as u64 + 1);
            // Release: publishes `next_free` and the generation bump to the
            // acquiring pop that takes this slot next.
            match shard
                .head
                .compare_exchange_weak(head, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => head = actual,
            }
        }
    }
}
