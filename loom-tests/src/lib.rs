//! Loom model checks of hdrtrace's concurrent core, on the real source.
//!
//! The files below are the main crate's own (`#[path]` includes, not copies);
//! `build.rs` compiles this crate with `--cfg loom`, so `sync.rs` hands them
//! loom's atomics, `Arc`, `UnsafeCell` and a loom-mutex `ArcCell`. The models
//! live in `tests/` (one file per structure).
//!
//! The included items other than the ring are `pub(crate)` in the main crate,
//! so integration tests cannot name them; the thin wrappers at the end of this
//! file forward every call unchanged (no logic of their own) to make them
//! reachable from `tests/`.

#[path = "../../hdrtrace/src/sync.rs"]
mod sync;

#[path = "../../hdrtrace/src/handoff/ring.rs"]
pub mod ring;

#[path = "../../hdrtrace/src/recording/slots.rs"]
pub mod slots;

#[path = "../../hdrtrace/src/recording/links.rs"]
pub mod links;

#[path = "../../hdrtrace/src/recording/callsite_table.rs"]
pub mod callsite_table;

#[path = "../../hdrtrace/src/recording/refcount.rs"]
pub mod refcount;

#[path = "../../hdrtrace/src/recording/split_sum.rs"]
pub mod split_sum;

#[path = "../../hdrtrace/src/recording/sampling.rs"]
pub mod sampling;

#[path = "../../hdrtrace/src/read/publish.rs"]
pub mod publish;

pub use loom::sync::Arc;

/// The span slot table (`src/recording/slots.rs`), forwarded.
pub struct SlotTable<S>(slots::SlotTable<S>);

impl<S> SlotTable<S> {
    /// `slots::SlotTable::new`.
    pub fn new(capacity: usize, shards: usize, init: impl FnMut() -> S) -> Self {
        Self(slots::SlotTable::new(capacity, shards, init))
    }

    /// `slots::SlotTable::alloc`.
    pub fn alloc(&self, home: usize) -> Option<(u64, &S)> {
        self.0.alloc(home)
    }

    /// `slots::SlotTable::get`.
    pub fn get(&self, id: u64) -> Option<&S> {
        self.0.get(id)
    }

    /// `slots::SlotTable::free`.
    pub fn free(&self, id: u64) {
        self.0.free(id)
    }

    /// `slots::SlotTable::capacity`.
    pub fn capacity(&self) -> usize {
        self.0.capacity()
    }

    /// `slots::SlotTable::slot_count`.
    pub fn slot_count(&self) -> usize {
        self.0.slot_count()
    }

    /// `slots::SlotTable::new_cache`.
    pub fn new_cache(&self) -> SlotCache {
        SlotCache(self.0.new_cache())
    }

    /// `slots::SlotTable::shard_count`.
    pub fn shard_count(&self) -> usize {
        self.0.shard_count()
    }

    /// `slots::SlotTable::alloc_cached`.
    pub fn alloc_cached(&self, cache: &mut SlotCache, home: usize) -> Option<(u64, &S)> {
        self.0.alloc_cached(&mut cache.0, home)
    }

    /// `slots::SlotTable::free_cached`.
    pub fn free_cached(&self, id: u64, cache: &mut SlotCache) {
        self.0.free_cached(id, &mut cache.0)
    }

    /// `slots::SlotTable::release`.
    pub fn release(&self, cache: &mut SlotCache) {
        self.0.release(&mut cache.0)
    }
}

/// A thread's private free-slot cache (`slots::SlotCache`), forwarded.
pub struct SlotCache(slots::SlotCache);

impl SlotCache {
    /// `slots::SlotCache::limit`.
    pub fn limit(&self) -> usize {
        self.0.limit()
    }
}

/// Splits an ID into (slot index, generation): `slots::unpack_id`.
pub fn unpack_id(id: u64) -> (usize, u32) {
    slots::unpack_id(id)
}

/// How many links a span keeps: `links::MAX_LINKS`.
pub const MAX_LINKS: usize = links::MAX_LINKS;

/// A span's inline links (`src/recording/links.rs`), forwarded.
#[derive(Default)]
pub struct LinkSlots(links::LinkSlots);

impl LinkSlots {
    /// `links::LinkSlots::add`.
    pub fn add(&self, id: u64) -> bool {
        self.0.add(id)
    }

    /// `links::LinkSlots::read`.
    pub fn read(&self, out: &mut [u64; MAX_LINKS]) -> usize {
        self.0.read(out)
    }

    /// `links::LinkSlots::len`: how many links are kept.
    pub fn kept(&self) -> usize {
        self.0.len()
    }

    /// `links::LinkSlots::reset`.
    pub fn reset(&self) {
        self.0.reset()
    }
}

/// Places in the callsite table the models use (the crate's has 4 096).
pub const TABLE_SIZE: usize = 4;

/// The callsite table (`src/recording/callsite_table.rs`) with
/// `TABLE_SIZE` places, forwarded.
pub struct CallsiteTable(callsite_table::CallsiteTable<TABLE_SIZE>);

impl Default for CallsiteTable {
    fn default() -> Self {
        Self(callsite_table::CallsiteTable::new())
    }
}

impl CallsiteTable {
    /// `callsite_table::CallsiteTable::home`: where `key` is looked for first.
    pub fn home(key: usize) -> usize {
        callsite_table::CallsiteTable::<TABLE_SIZE>::home(key)
    }

    /// `callsite_table::CallsiteTable::insert`.
    pub fn insert(&self, key: usize, value: u64) -> bool {
        self.0.insert(key, value)
    }

    /// `callsite_table::CallsiteTable::get`.
    pub fn get(&self, key: usize) -> u64 {
        self.0.get(key)
    }
}

/// A span's reference count (`src/recording/refcount.rs`), forwarded.
#[derive(Default)]
pub struct RefCount(refcount::RefCount);

impl RefCount {
    /// `refcount::RefCount::reset`: one handle.
    pub fn reset(&self) {
        self.0.reset()
    }

    /// `refcount::RefCount::add`.
    pub fn add(&self) {
        self.0.add()
    }

    /// `refcount::RefCount::release`: true for the last handle.
    pub fn release(&self) -> bool {
        self.0.release()
    }
}

/// A span's busy time or descendant count (`src/recording/split_sum.rs`),
/// forwarded.
#[derive(Default)]
pub struct SplitSum(split_sum::SplitSum);

impl SplitSum {
    /// `split_sum::SplitSum::reset`.
    pub fn reset(&self) {
        self.0.reset()
    }

    /// `split_sum::SplitSum::add`.
    pub fn add(&self, v: u64, by_owner: bool) {
        self.0.add(v, by_owner)
    }

    /// `split_sum::SplitSum::get`.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// The enable flag (`src/recording/sampling.rs`), forwarded.
pub struct Switch(sampling::Switch);

impl Switch {
    /// `sampling::Switch::new`.
    pub fn new(on: bool) -> Self {
        Self(sampling::Switch::new(on))
    }

    /// `sampling::Switch::is_on`.
    pub fn is_on(&self) -> bool {
        self.0.is_on()
    }

    /// `sampling::Switch::set`: returns the previous value.
    pub fn set(&self, on: bool) -> bool {
        self.0.set(on)
    }
}

/// The head sampler (`src/recording/sampling.rs`), forwarded.
pub struct Sampler(sampling::Sampler);

impl Sampler {
    /// `sampling::Sampler::new`.
    pub fn new(rate: f32) -> Self {
        Self(sampling::Sampler::new(rate))
    }

    /// `sampling::Sampler::set_rate`.
    pub fn set_rate(&self, rate: f32) {
        self.0.set_rate(rate)
    }

    /// `sampling::Sampler::rate`.
    pub fn rate(&self) -> f32 {
        self.0.rate()
    }

    /// `sampling::Sampler::decide`.
    pub fn decide(&self, request_id: u64) -> bool {
        self.0.decide(request_id)
    }
}

/// A stand-in snapshot: only its version matters to the publication protocol.
#[derive(Debug)]
pub struct Snapshot {
    /// The version the aggregator gave it.
    pub version: u64,
}

impl publish::Versioned for Snapshot {
    fn version(&self) -> u64 {
        self.version
    }
}

/// The snapshot publisher (`src/read/publish.rs`), forwarded.
pub struct Publisher(publish::Publisher<Snapshot>);

impl Publisher {
    /// `publish::Publisher::new` with the snapshot of version `initial`.
    pub fn new(initial: u64) -> Self {
        Self(publish::Publisher::new(Snapshot { version: initial }))
    }

    /// `publish::Publisher::publish` of the snapshot of version `version`.
    pub fn publish(&self, version: u64) {
        self.0.publish(Snapshot { version })
    }

    /// `publish::Publisher::epoch`.
    pub fn epoch(&self) -> u64 {
        self.0.epoch()
    }

    /// `publish::Publisher::load`.
    pub fn load(&self) -> Arc<Snapshot> {
        self.0.load()
    }
}
