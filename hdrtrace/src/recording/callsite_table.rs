//! The lock-free table behind the callsite map: a fixed-size, open-addressed,
//! insert-only map from a callsite's metadata address to its packed
//! classification word. `register_callsite` inserts (rarely, and possibly
//! from several threads at once); every span and event looks up. Neither
//! allocates or blocks; a full table refuses the insert and the caller
//! classifies that callsite on the fly instead.
//!
//! Every access is `Relaxed`: all a lookup needs is in one atomic word, which
//! is never torn, and no other memory is published through the table. A
//! lookup that sees a key whose word is not stored yet gets 0, as for a key
//! not there, and its caller classifies the callsite itself (the same
//! classification: it depends only on the callsite and the config).

use crate::sync::{AtomicU64, AtomicUsize, Ordering};

/// One callsite's place: its key and its word side by side, so a lookup
/// reads one cache line. Key 0 is a free place, word 0 a key whose word is
/// not stored yet.
struct Entry {
    key: AtomicUsize,
    value: AtomicU64,
}

/// `N` places (a power of two). A fixed-size array, so the hot path's index
/// (masked to the size) needs no bounds check.
pub(crate) struct CallsiteTable<const N: usize> {
    entries: Box<[Entry; N]>,
}

impl<const N: usize> CallsiteTable<N> {
    const BITS: u32 = {
        assert!(
            N.is_power_of_two() && N > 1,
            "the table's size is a power of two"
        );
        N.trailing_zeros()
    };

    pub(crate) fn new() -> Self {
        let entries: Box<[Entry]> = (0..N)
            .map(|_| Entry {
                key: AtomicUsize::new(0),
                value: AtomicU64::new(0),
            })
            .collect();
        let Ok(entries) = entries.try_into() else {
            unreachable!("collected exactly N entries")
        };
        Self { entries }
    }

    /// Where `key` is looked for first (a Fibonacci hash of the address
    /// without its alignment bits).
    #[inline(always)]
    pub(crate) fn home(key: usize) -> usize {
        ((key as u64 >> 3).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - Self::BITS)) as usize
            & (N - 1)
    }

    /// Stores `value` (not 0) for `key` (not 0); a key already present keeps
    /// the value its first insert stored (a callsite's classification never
    /// changes). False when every place holds another key.
    pub(crate) fn insert(&self, key: usize, value: u64) -> bool {
        debug_assert!(key != 0 && value != 0);
        let start = Self::home(key);
        for probe in 0..N {
            let entry = &self.entries[(start + probe) & (N - 1)];
            // Relaxed (both): see the module docs; the key is only compared.
            match entry
                .key
                .compare_exchange(0, key, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    // Relaxed: see the module docs.
                    entry.value.store(value, Ordering::Relaxed);
                    return true;
                }
                Err(k) if k == key => return true,
                Err(_) => {}
            }
        }
        false
    }

    /// The word stored for `key`, or 0 when there is none (yet). The hot
    /// path: the callsite usually sits in its home place.
    #[inline]
    pub(crate) fn get(&self, key: usize) -> u64 {
        let i = Self::home(key);
        let entry = &self.entries[i];
        // Relaxed (both): see the module docs.
        if entry.key.load(Ordering::Relaxed) == key {
            let value = entry.value.load(Ordering::Relaxed);
            if value != 0 {
                return value;
            }
        }
        self.get_probing(key, i)
    }

    /// `get` past the home place: probes until the key or a free place.
    #[cold]
    #[inline(never)]
    fn get_probing(&self, key: usize, start: usize) -> u64 {
        for probe in 0..N {
            let entry = &self.entries[(start + probe) & (N - 1)];
            // Relaxed (both): see the module docs.
            let k = entry.key.load(Ordering::Relaxed);
            if k == key {
                return entry.value.load(Ordering::Relaxed);
            }
            if k == 0 {
                break;
            }
        }
        0
    }
}
