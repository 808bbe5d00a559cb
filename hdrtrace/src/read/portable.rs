//! Histograms that travel: a [`LatencySnapshot`] as bytes, so that snapshots
//! from several processes can be merged into one (`merge.rs`) and a fleet's
//! percentiles come from merged histograms, never from averaged percentiles.
//!
//! The byte format is documented on [`LatencySnapshot::to_bytes`].

use crate::error::SnapshotError;
use crate::read::decode::{decode_histogram, Budget, DECODE_BUDGET};
use crate::read::requests::BlameReason;
use crate::read::snapshot::{
    Counters, Latencies, Latency, LatencySnapshot, ModelLatency, SnapshotData, SERIES,
};
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

const MAGIC: &[u8; 8] = b"HDRTSNAP";
const FORMAT: u16 = 1;
const HAS_GPU: u8 = 1;
const HAS_BATCH_SIZE: u8 = 2;
const HAS_BATCH_WAIT: u8 = 4;
const HAS_BLAME_REASONS: u8 = 8;

impl LatencySnapshot {
    /// The snapshot's cumulative latencies and counters as bytes, every
    /// histogram in HdrHistogram's V2 deflate format; read them back with
    /// [`from_bytes`](Self::from_bytes), merge them with
    /// [`merged`](Self::merged).
    ///
    /// Fails only if a histogram holds a count HdrHistogram's format cannot
    /// represent (above `i64::MAX`).
    ///
    /// # Format (version 1)
    ///
    /// A small length-prefixed binary container; every integer is little-endian,
    /// every histogram is one HdrHistogram **V2 deflate** blob (the format every
    /// HdrHistogram implementation reads: Java, C, Go, Python, Rust).
    ///
    /// ```text
    /// magic        8 bytes   "HDRTSNAP"
    /// format       u16       1
    /// reserved     u16       0
    /// version      u64       the snapshot's version
    /// taken_at     u64       nanoseconds since the Unix epoch; u64::MAX = none
    /// window       u64       the recent window's length, nanoseconds
    /// counters     8 × u64   spans, events, requests, sampled_requests,
    ///                        captured_requests, dropped_spans, dropped_records,
    ///                        late_records
    /// models       u32 count, then that many entries
    /// stages       u32 count, then that many entries
    ///
    /// entry:
    ///   name       u32 length, then that many bytes of UTF-8 (unique per table)
    ///   errors     u64
    ///   timeouts   u64
    ///   blamed     u64       requests blamed on it, over every reason
    ///   flags      u8        bit 0: a GPU histogram follows; bit 1: a batch
    ///                        size histogram; bit 2: a batch wait histogram;
    ///                        bit 3: blame by reason; other bits 0 (bytes of
    ///                        builds before batches never set bits 1 and 2,
    ///                        nor builds before blame by reason bit 3, and
    ///                        still decode: their blamed count is over target)
    ///   reasons    (flag bit 3 only) 3 × u64: blamed over target, timed
    ///                        out, failed; their sum is `blamed`
    ///   wall       u32 length, then a V2 deflate histogram (nanoseconds)
    ///   busy       u32 length, then a V2 deflate histogram (nanoseconds)
    ///   gpu        (flag bit 0 only) u32 length, then a V2 deflate histogram
    ///   batch size (flag bit 1 only) u32 length, then a V2 deflate histogram
    ///                        (batch sizes)
    ///   batch wait (flag bit 2 only) u32 length, then a V2 deflate histogram
    ///                        (nanoseconds)
    /// ```
    ///
    /// Nothing may follow the last entry. Only the cumulative latencies travel: a
    /// decoded snapshot has an empty [`recent`](LatencySnapshot::recent) window
    /// and no captured requests.
    ///
    /// Decoding checks every length against the input; prices each histogram's
    /// header (its range and significant figures) before anything is allocated
    /// for it, refusing one that would take more than
    /// [`MAX_HISTOGRAM_BYTES`](crate::read::decode::MAX_HISTOGRAM_BYTES)
    /// or more than what is left of the decode's budget
    /// ([`DECODE_BUDGET`](crate::read::decode::DECODE_BUDGET) for
    /// [`from_bytes`](Self::from_bytes)); inflates no more counts than such a
    /// histogram can hold; rejects a histogram that claims more than 2^56
    /// samples (so that sums over merged histograms cannot overflow) or that
    /// holds a value above its highest trackable value (the last bucket of a
    /// 1-figure histogram up to 2^62 ns reaches 292 years). Corrupt
    /// or oversized input is an [`SnapshotError`], never a panic.
    pub fn to_bytes(&self) -> Result<Vec<u8>, SnapshotError> {
        let d = &*self.0;
        let mut out = Vec::with_capacity(1024);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        put_u64(&mut out, d.version);
        let taken_at = d
            .taken_at
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|t| u64::try_from(t.as_nanos()).ok())
            .unwrap_or(u64::MAX);
        put_u64(&mut out, taken_at);
        put_u64(&mut out, nanos(d.window));
        for c in counter_values(&d.counters) {
            put_u64(&mut out, c);
        }
        let mut ser = V2DeflateSerializer::new();
        for table in [&d.all.models, &d.all.stages] {
            put_len(&mut out, table.len())?;
            for (name, m) in table {
                put_len(&mut out, name.len())?;
                out.extend_from_slice(name.as_bytes());
                put_u64(&mut out, m.errors);
                put_u64(&mut out, m.timeouts);
                put_u64(&mut out, m.blamed());
                let hists = SERIES.map(|(_, get)| get(m));
                // The optional histograms, in `SERIES` order after wall and busy.
                let optional = [HAS_GPU, HAS_BATCH_SIZE, HAS_BATCH_WAIT];
                let flags = optional
                    .iter()
                    .zip(&hists[2..])
                    .filter(|(_, h)| h.is_some())
                    .fold(HAS_BLAME_REASONS, |a, (f, _)| a | f);
                out.push(flags);
                for n in m.blamed {
                    put_u64(&mut out, n);
                }
                for hist in hists.into_iter().flatten() {
                    put_histogram(&mut out, &mut ser, hist, name)?;
                }
            }
        }
        Ok(out)
    }

    /// Reads bytes written by [`to_bytes`](Self::to_bytes). Truncated,
    /// corrupt or foreign input is an [`SnapshotError`] that says what and
    /// where.
    pub fn from_bytes(bytes: &[u8]) -> Result<LatencySnapshot, SnapshotError> {
        Self::from_bytes_with_budget(bytes, DECODE_BUDGET)
    }

    /// [`from_bytes`](Self::from_bytes) with another bound on what the decoded
    /// histograms may take together, in bytes: input whose histograms would
    /// need more is an [`SnapshotError`] saying so.
    pub fn from_bytes_with_budget(
        bytes: &[u8],
        budget: u64,
    ) -> Result<LatencySnapshot, SnapshotError> {
        let mut budget = Budget::new(budget, "decode");
        let mut r = Reader { bytes, pos: 0 };
        if r.take(MAGIC.len(), "the magic bytes")? != MAGIC {
            return Err(corrupt(
                "not an hdrtrace snapshot (the first 8 bytes are not \"HDRTSNAP\")".into(),
            ));
        }
        let format = u16::from_le_bytes(r.array("the format number")?);
        if format != FORMAT {
            return Err(corrupt(format!(
                "format {format} is not supported (this build reads format {FORMAT})"
            )));
        }
        if u16::from_le_bytes(r.array("the reserved field")?) != 0 {
            return Err(corrupt("the reserved field is not zero".into()));
        }
        let version = r.u64("the version")?;
        let taken_at = match r.u64("taken_at")? {
            u64::MAX => None,
            n => UNIX_EPOCH.checked_add(Duration::from_nanos(n)),
        };
        let window = Duration::from_nanos(r.u64("the window")?);
        let mut counters = [0u64; 8];
        for c in &mut counters {
            *c = r.u64("the counters")?;
        }
        let mut all = Latencies::default();
        for (kind, table) in [("model", &mut all.models), ("stage", &mut all.stages)] {
            let count = r.u32(kind)?;
            for _ in 0..count {
                let (name, latency) = read_entry(&mut r, kind, &mut budget)?;
                if table.contains_key(&name) {
                    return Err(corrupt(format!("{kind} {name:?} appears twice")));
                }
                table.insert(name, Arc::new(latency));
            }
        }
        if r.pos != bytes.len() {
            return Err(corrupt(format!(
                "{} unexpected bytes after the last entry (at byte {})",
                bytes.len() - r.pos,
                r.pos
            )));
        }
        Ok(LatencySnapshot(Arc::new(SnapshotData {
            version,
            taken_at,
            window,
            all,
            counters: counters_from(counters),
            ..SnapshotData::default()
        })))
    }
}

/// The counters in the byte format's order (the one place that lists it).
pub(super) fn counter_values(c: &Counters) -> [u64; 8] {
    [
        c.spans,
        c.events,
        c.requests,
        c.sampled_requests,
        c.captured_requests,
        c.dropped_spans,
        c.dropped_records,
        c.late_records,
    ]
}

pub(super) fn counters_from(v: [u64; 8]) -> Counters {
    Counters {
        spans: v[0],
        events: v[1],
        requests: v[2],
        sampled_requests: v[3],
        captured_requests: v[4],
        dropped_spans: v[5],
        dropped_records: v[6],
        late_records: v[7],
        // Process-local diagnostics and the bounds' counters: not carried.
        ..Counters::default()
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_len(out: &mut Vec<u8>, len: usize) -> Result<(), SnapshotError> {
    let len = u32::try_from(len).map_err(|_| SnapshotError::Encode {
        reason: format!("{len} does not fit the format's 32-bit lengths"),
    })?;
    out.extend_from_slice(&len.to_le_bytes());
    Ok(())
}

fn put_histogram(
    out: &mut Vec<u8>,
    ser: &mut V2DeflateSerializer,
    h: &Histogram<u64>,
    name: &str,
) -> Result<(), SnapshotError> {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    let len = ser.serialize(h, out).map_err(|e| SnapshotError::Encode {
        reason: format!("histogram of {name:?}: {e}"),
    })?;
    let len = u32::try_from(len).map_err(|_| SnapshotError::Encode {
        reason: format!("histogram of {name:?} is over 4 GiB"),
    })?;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

fn corrupt(reason: String) -> SnapshotError {
    SnapshotError::Decode { reason }
}

/// A cursor whose every read names what it reads, for the error message.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], SnapshotError> {
        let left = self.bytes.len() - self.pos;
        if n > left {
            return Err(corrupt(format!(
                "truncated at byte {}: {what} needs {n} bytes, {left} left",
                self.pos
            )));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], SnapshotError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u64(&mut self, what: &str) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &str) -> Result<u32, SnapshotError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    /// A u32 length, then that many bytes.
    fn blob(&mut self, what: &str) -> Result<&'a [u8], SnapshotError> {
        let len = self.u32(what)? as usize;
        self.take(len, what)
    }
}

fn read_entry(
    r: &mut Reader<'_>,
    kind: &str,
    budget: &mut Budget,
) -> Result<(String, ModelLatency), SnapshotError> {
    let at = r.pos;
    let name = std::str::from_utf8(r.blob(&format!("a {kind} name"))?)
        .map_err(|e| corrupt(format!("the {kind} name at byte {at} is not UTF-8: {e}")))?
        .to_string();
    let what = |field: &str| format!("{kind} {name:?} {field}");
    let errors = r.u64(&what("errors"))?;
    let timeouts = r.u64(&what("timeouts"))?;
    let blamed = r.u64(&what("blamed"))?;
    let [flags] = r.array(&what("flags"))?;
    if flags & !(HAS_GPU | HAS_BATCH_SIZE | HAS_BATCH_WAIT | HAS_BLAME_REASONS) != 0 {
        return Err(corrupt(format!(
            "{} {flags:#04x} are unknown",
            what("flags")
        )));
    }
    let blamed = if flags & HAS_BLAME_REASONS != 0 {
        let reasons = BlameReason::ALL.map(|r| r.name());
        let mut by_reason = [0u64; 3];
        for (n, reason) in by_reason.iter_mut().zip(reasons) {
            *n = r.u64(&what(&format!("blamed {reason}")))?;
        }
        let sum = by_reason.iter().try_fold(0u64, |t, &n| t.checked_add(n));
        if sum != Some(blamed) {
            return Err(corrupt(format!(
                "{} by reason {by_reason:?} do not add up to {blamed}",
                what("blamed")
            )));
        }
        by_reason
    } else {
        [blamed, 0, 0]
    };
    let mut hist = |field: &str| -> Result<Latency, SnapshotError> {
        let what = what(field);
        let blob = r.blob(&what)?;
        decode_histogram(blob, budget).map_err(|reason| corrupt(format!("{what}: {reason}")))
    };
    let wall = hist("wall histogram")?;
    let busy = hist("busy histogram")?;
    let mut optional = |flag: u8, field: &str| -> Result<Option<Latency>, SnapshotError> {
        (flags & flag != 0).then(|| hist(field)).transpose()
    };
    let gpu = optional(HAS_GPU, "gpu histogram")?;
    let batch_size = optional(HAS_BATCH_SIZE, "batch size histogram")?;
    let batch_wait = optional(HAS_BATCH_WAIT, "batch wait histogram")?;
    Ok((
        name,
        ModelLatency {
            wall,
            busy,
            gpu,
            batch_size: batch_size.map(|l| l.histogram().clone()),
            batch_wait,
            errors,
            timeouts,
            blamed,
        },
    ))
}
