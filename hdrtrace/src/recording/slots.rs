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

use crate::sync::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

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
    /// The spans that can always be open at once, whatever the caches hold.
    capacity: usize,
    /// How many free slots one thread may keep in its [`SlotCache`].
    cache_limit: usize,
    /// Slots not yet promised to any thread's cache. The table holds this
    /// many slots beyond `capacity`, so slots idle in caches never eat into
    /// what the other threads can open.
    cache_reserve: AtomicUsize,
}

/// The most free slots a thread keeps for itself.
pub(crate) const CACHE_MAX: usize = 32;

/// A thread's private stack of free slot indices. A thread that opens and
/// closes its own spans allocates and frees from here without touching any
/// shared cache line; it refills from (and spills to) the shard stacks in
/// batches. The owner must give its slots back with [`SlotTable::release`]
/// before dropping it.
pub(crate) struct SlotCache {
    len: usize,
    /// What this cache may hold: reserved from the table's `cache_reserve`
    /// by [`SlotTable::new_cache`], 0 when the reserve ran out (the thread
    /// then allocates from the shards directly).
    limit: usize,
    index: [u32; CACHE_MAX],
}

impl SlotCache {
    /// Whether a freed slot stays in the cache (`SlotTable::free_cached`
    /// spills it to its shard otherwise).
    // Called by the subscriber's close, which the loom models do not compile.
    #[cfg_attr(loom, allow(dead_code))]
    #[inline(always)]
    pub(crate) fn has_room(&self) -> bool {
        self.len < self.limit
    }

    /// What this cache may hold (0: the thread allocates from the shards).
    // Read by the loom models only.
    #[cfg_attr(not(loom), allow(dead_code))]
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }
}

/// What all threads' caches may hold together: a quarter of the capacity, at
/// most 64 full caches (rounded down to whole caches).
pub(crate) fn cache_reserve(capacity: usize) -> usize {
    (capacity / 4).min(64 * CACHE_MAX)
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
    /// A table in which `capacity` spans can be open at once, split into
    /// `shards` shards (both at least 1). It holds [`cache_reserve`] more
    /// slots, for the threads' caches.
    pub(crate) fn new(capacity: usize, shards: usize, mut init: impl FnMut() -> S) -> Self {
        let open = capacity.clamp(1, MAX_SLOTS);
        let shards = shards.clamp(1, open);
        // Caches hold at most a quarter of each shard's share, so tiny tables
        // (tests, or a deliberately small capacity) keep every slot shared,
        // and hold no reserve.
        let cache_limit = (open / (4 * shards)).min(CACHE_MAX);
        let reserve = match cache_limit {
            0 => 0,
            n => cache_reserve(open) / n * n,
        };
        let capacity = (open + reserve).min(MAX_SLOTS);
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
        let shards: Box<[Shard]> = (0..shards)
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
            capacity: open,
            cache_limit,
            cache_reserve: AtomicUsize::new(capacity - open),
        }
    }

    /// A thread's cache, with as much of the reserve as one cache may hold
    /// (none once the reserve is spent). Cold: once per thread.
    pub(crate) fn new_cache(&self) -> SlotCache {
        // Relaxed: the reserve is a counter only; no memory is published
        // through it (the slots themselves move through the shard stacks).
        let limit = self
            .cache_reserve
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                (left >= self.cache_limit && self.cache_limit > 0).then(|| left - self.cache_limit)
            })
            .map_or(0, |_| self.cache_limit);
        SlotCache {
            len: 0,
            limit,
            index: [0; CACHE_MAX],
        }
    }

    /// `alloc` through this thread's cache: pops a cached index, refilling half
    /// the cache from the shards (home first) when it is empty.
    #[inline(always)]
    pub(crate) fn alloc_cached(&self, cache: &mut SlotCache, home: usize) -> Option<(u64, &S)> {
        // `get` of `len - 1`, wrapped: one comparison says both that the
        // cache is not empty and that the index is in bounds.
        let Some(&index) = cache.index.get(cache.len.wrapping_sub(1)) else {
            return self.refill_and_alloc(cache, home);
        };
        cache.len -= 1;
        let index = index as usize;
        let entry = &self.entries[index];
        // Relaxed: this thread bumped the generation itself (`free_cached`) or
        // took the slot with an acquiring pop.
        let gen = entry.generation.load(Ordering::Relaxed);
        Some((pack_id(index, gen), &entry.value))
    }

    /// `alloc_cached` with an empty cache: refills half of it from the shards
    /// (home first), then takes one; `alloc` when the shards had none to give.
    #[cold]
    #[inline(never)]
    fn refill_and_alloc(&self, cache: &mut SlotCache, home: usize) -> Option<(u64, &S)> {
        let want = cache.limit.div_ceil(2);
        let n = self.shards.len();
        'refill: for k in 0..n {
            let shard = &self.shards[(home + k) % n];
            while cache.len < want {
                match self.pop(shard) {
                    Some(index) => {
                        cache.index[cache.len] = index as u32;
                        cache.len += 1;
                    }
                    None => continue 'refill,
                }
            }
            break;
        }
        if cache.len == 0 {
            return self.alloc(home);
        }
        self.alloc_cached(cache, home)
    }

    /// `free` into this thread's cache (or, when it is full, onto the shard).
    #[inline(always)]
    pub(crate) fn free_cached(&self, id: u64, cache: &mut SlotCache) {
        let (index, gen) = unpack_id(id);
        let Some(entry) = self.entries.get(index) else {
            return;
        };
        // The caller holds the span's last reference (its count just reached
        // zero), so nobody else can free this ID: unlike `free`, a plain store
        // of the next generation suffices. Release: the tenant's last writes
        // happen before any reader that acquires the new generation.
        entry
            .generation
            .store(gen.wrapping_add(1), Ordering::Release);
        if cache.len < cache.limit {
            cache.index[cache.len] = index as u32;
            cache.len += 1;
        } else {
            self.spill(index);
        }
    }

    /// `free_cached` with a full cache: the slot goes back to its shard.
    #[cold]
    #[inline(never)]
    fn spill(&self, index: usize) {
        self.push(index);
    }

    /// Gives every cached slot back to its shard and the cache's share back
    /// to the reserve (a thread is ending, or its subscriber shut down).
    pub(crate) fn release(&self, cache: &mut SlotCache) {
        while cache.len > 0 {
            cache.len -= 1;
            self.push(cache.index[cache.len] as usize);
        }
        // Relaxed: a counter, as in `new_cache`.
        self.cache_reserve.fetch_add(cache.limit, Ordering::Relaxed);
        cache.limit = 0;
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Every slot, the caches' reserve included.
    // Read by the loom models only.
    #[cfg_attr(not(loom), allow(dead_code))]
    pub(crate) fn slot_count(&self) -> usize {
        self.entries.len()
    }

    /// The spans that can always be open at once (the table holds the
    /// caches' reserve beyond it).
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
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
        self.push(index);
    }

    /// Pushes a free slot (its generation already bumped) onto its shard.
    #[inline]
    fn push(&self, index: usize) {
        let entry = &self.entries[index];
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
