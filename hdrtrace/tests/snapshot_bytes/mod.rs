//! Hand-made snapshot bytes for the decoding tests: HdrHistogram V2 deflate
//! blobs with any header and counts, in the container `to_bytes` documents.
//! Each test file uses a subset of them.
#![allow(dead_code)]

use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use std::io::Write;

/// `h` as the V2 deflate blob `to_bytes` writes (HdrHistogram's own encoder).
pub fn serialized(h: &Histogram<u64>) -> Vec<u8> {
    let mut blob = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut blob)
        .expect("a histogram with counts below i64::MAX serializes");
    blob
}

/// A histogram of `sigfigs` significant figures from 1 to `high` holding
/// `values`.
pub fn histogram(sigfigs: u8, high: u64, values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, high, sigfigs).expect("valid bounds");
    for v in values {
        h.record(v)
            .expect("the value is within the histogram's buckets");
    }
    h
}

/// A V2 deflate histogram with this header (significant figures, lowest and
/// highest trackable value), counts payload and claimed payload length.
pub fn v2_deflate_with(sigfigs: u32, low: u64, high: u64, payload: &[u8], claimed: u32) -> Vec<u8> {
    let mut v2 = Vec::new();
    v2.extend(0x1c84_9313u32.to_be_bytes());
    v2.extend(claimed.to_be_bytes());
    v2.extend(0u32.to_be_bytes());
    v2.extend(sigfigs.to_be_bytes());
    v2.extend(low.to_be_bytes());
    v2.extend(high.to_be_bytes());
    v2.extend(1.0f64.to_be_bytes());
    v2.extend(payload);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&v2).unwrap();
    let z = z.finish().unwrap();
    let mut blob = 0x1c84_9314u32.to_be_bytes().to_vec();
    blob.extend((z.len() as u32).to_be_bytes());
    blob.extend(z);
    blob
}

/// hdrtrace's own header (3 figures, 1 ns to 120 s) with a hand-made payload.
pub fn v2_deflate(payload: &[u8], claimed: u32) -> Vec<u8> {
    v2_deflate_with(3, 1, 120_000_000_000, payload, claimed)
}

/// A snapshot of `models` models named `m0`, `m1`, ..., each with these wall
/// and busy histograms, and no stages.
pub fn container(models: usize, wall: &[u8], busy: &[u8]) -> Vec<u8> {
    let mut b = b"HDRTSNAP".to_vec();
    b.extend(1u16.to_le_bytes());
    b.extend(0u16.to_le_bytes());
    for v in [1, u64::MAX, 10_000_000_000, 0, 0, 0, 0, 0, 0, 0, 0] {
        b.extend(u64::to_le_bytes(v));
    }
    b.extend((models as u32).to_le_bytes());
    for m in 0..models {
        let name = format!("m{m}");
        b.extend((name.len() as u32).to_le_bytes());
        b.extend(name.as_bytes());
        b.extend([0u8; 24]);
        b.push(0);
        for blob in [wall, busy] {
            b.extend((blob.len() as u32).to_le_bytes());
            b.extend(blob);
        }
    }
    b.extend(0u32.to_le_bytes());
    b
}
