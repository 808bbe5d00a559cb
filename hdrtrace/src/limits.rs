//! The bounds every field is checked against; each is far above what a real
//! deployment needs, and low enough that the value cannot take the host (see
//! docs/design.md, "Limits").

use std::time::Duration;

/// `slot_capacity`: a million spans open at once (about 243 MB of slots:
/// 232 bytes each, 40 of them the inline links).
pub const MAX_SLOTS: usize = 1 << 20;
/// `ring_capacity`: 65 536 records per thread (8 MiB each: 128-byte wire
/// records).
pub const MAX_RING: usize = 1 << 16;
/// `capture_capacity`: the most recent and slowest captured requests kept.
pub const MAX_CAPTURES: usize = 4096;
/// `flush_interval`: at least 10 ms (an idle aggregator then wakes at most
/// 200 times a second), at most an hour.
pub const MIN_FLUSH_INTERVAL: Duration = Duration::from_millis(10);
/// See [`MIN_FLUSH_INTERVAL`].
pub const MAX_FLUSH_INTERVAL: Duration = Duration::from_secs(3600);
/// `window`: from 100 ms (ten slices of 10 ms) to a day.
pub const MIN_WINDOW: Duration = Duration::from_millis(100);
/// See [`MIN_WINDOW`].
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// `latency_target`: above zero, at most an hour.
pub const MAX_LATENCY_TARGET: Duration = Duration::from_secs(3600);
/// `otel_endpoint`: the longest URL accepted.
pub const MAX_ENDPOINT_LEN: usize = 2048;
/// `max_models`, `max_stages`: distinct keys with a series of their own.
pub const MAX_KEYS: usize = 1 << 16;
/// `follows_from` links one span keeps; more are counted in
/// `Counters::dropped_links`.
pub const MAX_LINKS: usize = 4;
/// Request ids a captured request's `BatchShare::requests` lists at most.
pub const MAX_BATCH_REQUESTS: usize = 64;
/// `max_capture_spans`: spans one captured request keeps.
pub const MAX_CAPTURE_SPANS: usize = 1 << 20;
/// `memory_budget`: at least 64 KiB, at most 2 GiB (a budget, not an
/// allocation: memory is taken only as requests need it). Rings, pending
/// requests and histograms each stay within it, so the most the
/// aggregator side can take is about three times it.
pub const MIN_BUDGET: usize = 1 << 16;
/// See [`MIN_BUDGET`].
pub const MAX_BUDGET: usize = 1 << 31;
/// The histograms may take `memory_budget` bytes, but never fewer than
/// this (enough for about 80 series of short spans).
pub const MIN_HISTOGRAM_BUDGET: usize = 16 << 20;
/// The key of the series that spans of models and stages past
/// `max_models` / `max_stages` (or past the histogram budget) share.
pub const OVERFLOW: &str = "<other>";
/// The longest log line kept whole; a longer one is cut there and ends
/// with [`CUT_MARK`].
pub const MAX_LINE: usize = 16 * 1024;
/// Ends a log line longer than [`MAX_LINE`].
pub const CUT_MARK: &str = " [line cut at 16 KiB]";
/// What all the histograms of one decoded snapshot may take together, and
/// what the histograms one merge builds may take together: about 1 100 of
/// hdrtrace's own histograms (some 370 models or stages with wall, busy and
/// device time).
/// [`from_bytes_with_budget`](crate::LatencySnapshot::from_bytes_with_budget)
/// and [`merged_with_budget`](crate::LatencySnapshot::merged_with_budget)
/// take another.
pub const DECODE_BUDGET: u64 = 256 << 20;
/// The most one decoded histogram's counts array may take: 16 MiB holds 4
/// significant figures over 1 ns to more than a day (about 3.3 MB) with room
/// to spare; hdrtrace's own histograms (3 figures, 1 ns to 120 s) take 229 KB.
pub const MAX_HISTOGRAM_BYTES: u64 = 16 << 20;
/// The longest name accepted (a field or span name longer than this is a
/// mistake, not a convention).
pub const MAX_NAME_LEN: usize = 128;
/// The most request span names (and, apart, batch span names).
pub const MAX_REQUEST_SPANS: usize = 64;
