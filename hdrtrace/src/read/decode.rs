//! Decoding untrusted HdrHistogram V2 deflate blobs, and merging snapshots,
//! with a bound on what they may cost.
//!
//! A V2 header states the histogram's lowest and highest trackable values and
//! its significant figures, and HdrHistogram allocates the counts array those
//! imply before it reads a single count: 5 significant figures over
//! `1..u64::MAX` is about 2 GB from a 40-byte header. So every header is read
//! and priced before anything is allocated for it, and one decode (one
//! [`LatencySnapshot::from_bytes`](crate::LatencySnapshot::from_bytes) call)
//! has a byte budget that all its histograms share. Merging prices the same
//! way: a merged histogram has the finest precision and the widest range of
//! its inputs, so two small histograms can merge into a large one, and one
//! [`LatencySnapshot::merged`](crate::LatencySnapshot::merged) call has a
//! budget for the histograms it builds.

use crate::read::snapshot::Latency;
use crate::read::snapshot::HIGHEST_NS;
use flate2::read::ZlibDecoder;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use std::io::Read;

/// HdrHistogram's V2 cookies (plain and deflate-compressed).
pub(crate) const V2_COOKIE: u32 = 0x1c84_9313;
pub(crate) const V2_DEFLATE_COOKIE: u32 = 0x1c84_9314;
/// cookie, payload length, normalizing offset, digits, low, high, ratio.
const V2_HEADER_LEN: usize = 40;
/// A count is a zig-zag LEB128 varint of at most 9 bytes.
const MAX_VARINT_LEN: u64 = 9;
/// Counts may sum to at most this, so sums over merged histograms cannot
/// overflow.
const MAX_SAMPLES: u64 = 1 << 56;

/// The most significant figures a decoded histogram may have (HdrHistogram's
/// own maximum).
pub const MAX_SIGFIGS: u32 = 5;
pub(crate) use crate::limits::{DECODE_BUDGET, MAX_HISTOGRAM_BYTES};

/// The bytes a decode or a merge may still spend on histograms.
pub(crate) struct Budget {
    left: u64,
    total: u64,
    /// What spends it ("decode", "merge"), for the error message.
    of: &'static str,
}

impl Budget {
    pub(crate) fn new(total: u64, of: &'static str) -> Self {
        Self {
            left: total,
            total,
            of,
        }
    }

    /// Takes what a histogram of these bounds costs ([`counts_bytes`]), or
    /// says why not: the bounds are invalid, the histogram alone would take
    /// more than [`MAX_HISTOGRAM_BYTES`], or more than is left.
    pub(crate) fn take(&mut self, low: u64, high: u64, sigfigs: u32) -> Result<u64, String> {
        let bytes = counts_bytes(low, high, sigfigs)?;
        if bytes > MAX_HISTOGRAM_BYTES {
            return Err(format!(
                "it would take {bytes} bytes ({sigfigs} significant figures from {low} to \
                 {high}); one histogram may take at most {MAX_HISTOGRAM_BYTES}"
            ));
        }
        if bytes > self.left {
            return Err(format!(
                "it would take {bytes} bytes, more than the {} left of the {}'s budget of {} \
                 bytes for histograms",
                self.left, self.of, self.total
            ));
        }
        self.left -= bytes;
        Ok(bytes)
    }
}

/// Refuses a histogram holding a value above its highest trackable value
/// (HdrHistogram records into the whole bucket that holds that value: a
/// 1-figure histogram up to 2^62 ns takes a value of 292 years).
///
/// HdrHistogram's auto-resizing histograms, hdrtrace's own among them, grow
/// by whole buckets and state the value that made them grow, so they may
/// hold values above it in the same bucket (or anywhere in the first bucket,
/// which every histogram has whole). Up to [`HIGHEST_NS`], the most hdrtrace
/// records, those are within range.
pub(crate) fn check_range(h: &Histogram<u64>) -> Result<(), String> {
    if h.is_empty() {
        return Ok(());
    }
    let top = h.lowest_equivalent(h.max());
    // A bucket holds `sub_buckets` values of the width of its sub-buckets;
    // the bucket holding `high` ends at its width times that.
    let bucket_end = sub_bucket_count(u32::from(h.sigfig()))
        .saturating_mul(h.equivalent_range(h.high()))
        .saturating_sub(1);
    if top > h.high().max(bucket_end.min(HIGHEST_NS)) {
        return Err(format!(
            "it holds a value of {top} beyond its highest trackable value {}",
            h.high()
        ));
    }
    Ok(())
}

/// The bytes HdrHistogram allocates for the counts of a `u64` histogram with
/// these bounds (mirroring `Histogram::new_with_bounds`), or why it would
/// refuse them.
pub(crate) fn counts_bytes(low: u64, high: u64, sigfigs: u32) -> Result<u64, String> {
    if low < 1 {
        return Err("its lowest trackable value is 0 (must be at least 1)".into());
    }
    if low > u64::MAX / 2 || high < 2 * low {
        return Err(format!(
            "its highest trackable value {high} is less than twice its lowest {low}"
        ));
    }
    if sigfigs > MAX_SIGFIGS {
        return Err(format!(
            "it claims {sigfigs} significant figures (at most {MAX_SIGFIGS})"
        ));
    }
    let sub_buckets = sub_bucket_count(sigfigs);
    let unit_magnitude = 63 - low.leading_zeros();
    if unit_magnitude + sub_buckets.trailing_zeros() > 63 {
        return Err(format!(
            "{sigfigs} significant figures cannot be kept above a lowest value of {low}"
        ));
    }
    Ok(counts_len(unit_magnitude, sub_buckets, high) * 8)
}

/// Sub-buckets per bucket at `sigfigs` significant figures (HDR's
/// `sub_bucket_count`): the power of two that holds `2 * 10^sigfigs`.
pub(crate) const fn sub_bucket_count(sigfigs: u32) -> u64 {
    (2 * 10u64.pow(sigfigs)).next_power_of_two()
}

/// HDR's counts length for a lowest value of `2^unit_magnitude` and
/// `sub_buckets` sub-buckets, once it covers `high` (as
/// `Histogram::new_with_bounds` and its auto-resize lay it out).
pub(crate) const fn counts_len(unit_magnitude: u32, sub_buckets: u64, high: u64) -> u64 {
    let mut smallest_untrackable = sub_buckets << unit_magnitude;
    let mut buckets = 1u64;
    while smallest_untrackable <= high {
        if smallest_untrackable > u64::MAX / 2 {
            buckets += 1;
            break;
        }
        smallest_untrackable <<= 1;
        buckets += 1;
    }
    (buckets + 1) * (sub_buckets / 2)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

/// Inflates and checks a V2 deflate blob before handing it to HdrHistogram's
/// deserializer, whose own checks trust the header: the header is inflated
/// alone and priced against `budget` first, and the counts that follow may
/// be no longer than such a histogram's counts can encode.
pub(crate) fn decode_histogram(blob: &[u8], budget: &mut Budget) -> Result<Latency, String> {
    let cookie = be32(blob, 0).ok_or("shorter than a V2 deflate header")?;
    if cookie != V2_DEFLATE_COOKIE {
        return Err(format!(
            "cookie {cookie:#010x} is not HdrHistogram's V2 deflate ({V2_DEFLATE_COOKIE:#010x})"
        ));
    }
    let len = be32(blob, 4).ok_or("shorter than a V2 deflate header")? as usize;
    if len != blob.len() - 8 {
        return Err(format!(
            "the header says {len} compressed bytes, {} follow",
            blob.len() - 8
        ));
    }
    let mut inflate = ZlibDecoder::new(&blob[8..]);
    let mut header = [0u8; V2_HEADER_LEN];
    inflate
        .read_exact(&mut header)
        .map_err(|e| format!("the inflated data is not a V2 histogram: {e}"))?;
    if be32(&header, 0) != Some(V2_COOKIE) {
        return Err("the inflated data is not a V2 histogram".into());
    }
    let payload = be32(&header, 4).unwrap_or(0) as u64;
    let sigfigs = be32(&header, 12).unwrap_or(0);
    let (low, high) = (be64(&header, 16), be64(&header, 24));
    let bytes = budget.take(low, high, sigfigs)?;
    let max_payload = bytes / 8 * MAX_VARINT_LEN;
    if payload > max_payload {
        return Err(format!(
            "the header says {payload} bytes of counts, more than its {} counts can take",
            bytes / 8
        ));
    }
    // `payload` is now at most 9/8 of a priced histogram: allocating it is
    // within the same bound.
    let mut v2 = Vec::with_capacity(V2_HEADER_LEN + payload as usize);
    v2.extend_from_slice(&header);
    inflate
        .take(payload + 1)
        .read_to_end(&mut v2)
        .map_err(|e| format!("the deflate stream is corrupt: {e}"))?;
    if v2.len() as u64 != V2_HEADER_LEN as u64 + payload {
        return Err(format!(
            "the header says {payload} bytes of counts, {} follow",
            (v2.len() - V2_HEADER_LEN).min(payload as usize + 1)
        ));
    }
    check_counts(&v2[V2_HEADER_LEN..])?;
    let hist = Deserializer::new()
        .deserialize::<u64, _>(&mut &v2[..])
        .map_err(|e| e.to_string())?;
    check_range(&hist)?;
    Ok(Latency::new(hist))
}

/// Walks the zig-zag varint counts: each must be complete, no zero run may be
/// `i64::MIN` long, and the counts must sum to at most `MAX_SAMPLES`.
fn check_counts(mut p: &[u8]) -> Result<(), String> {
    let mut total: u64 = 0;
    while !p.is_empty() {
        let (v, n) = varint(p).ok_or("a count is truncated")?;
        p = &p[n..];
        if v == u64::MAX {
            return Err("a run of zero counts is out of range".into());
        }
        // Zig-zag: even values are counts (v / 2), odd ones runs of zeros.
        if v & 1 == 0 {
            total = total
                .checked_add(v >> 1)
                .filter(|t| *t <= MAX_SAMPLES)
                .ok_or_else(|| format!("more than {MAX_SAMPLES} samples"))?;
        }
    }
    Ok(())
}

/// HdrHistogram's LEB128 variant: up to 8 bytes of 7 bits, then one of 8.
fn varint(p: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &b) in p.iter().enumerate().take(9) {
        if i == 8 {
            return Some((v | (u64::from(b) << 56), 9));
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_bytes_agrees_with_hdrhistogram() {
        for (low, high, sigfigs) in [
            (1, 120_000_000_000, 3),
            (1, 2, 0),
            (1000, 3_600_000_000_000, 2),
            (7, 1 << 40, 4),
            (1, u64::MAX, 1),
            (1 << 20, u64::MAX / 2, 5),
        ] {
            let h = Histogram::<u64>::new_with_bounds(low, high, sigfigs as u8).unwrap();
            let want = h.distinct_values() as u64 * 8;
            assert_eq!(
                counts_bytes(low, high, sigfigs),
                Ok(want),
                "{low} {high} {sigfigs}"
            );
        }
        assert!(counts_bytes(0, 10, 3).is_err());
        assert!(counts_bytes(10, 15, 3).is_err());
        assert!(counts_bytes(1, 100, 6).is_err());
        assert_eq!(counts_bytes(1, 120_000_000_000, 3), Ok(229_376));
    }

    #[test]
    fn auto_resized_histograms_are_within_their_range() {
        // Grown by an `add` to 1.1 ms, the histogram states that much and
        // still takes 2.0 ms, in the same bucket (2^20..2^21 ns).
        let mut total = crate::read::snapshot::new_histogram();
        let mut slice = crate::read::snapshot::new_histogram();
        slice.record(1_100_000).unwrap();
        total.add(&slice).unwrap();
        total.record(2_000_000).unwrap();
        assert!(total.high() < 2_000_000, "high {}", total.high());
        assert_eq!(check_range(&total), Ok(()));
        total.record(HIGHEST_NS).unwrap();
        assert_eq!(check_range(&total), Ok(()));
        // Beyond 120 s, the stated highest value is the bound.
        let mut wide = Histogram::<u64>::new_with_bounds(1, 1 << 62, 1).unwrap();
        wide.record(1 << 62).unwrap();
        assert_eq!(check_range(&wide), Ok(()));
        wide.record(u64::MAX / 2).unwrap();
        assert!(check_range(&wide).is_err());
    }
}
