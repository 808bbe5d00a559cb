//! The one trace identity of a captured request, shared by every view: the
//! text tree, the Perfetto JSON, the Prometheus exemplars and the OTLP spans
//! all call [`RequestTrace::trace_id`], so they always show the same id.
//!
//! A trace id is a 128-bit W3C trace id (`traceparent`'s second field, 32
//! lowercase hex digits):
//!
//! - the high 64 bits are this process's [`instance_id`], drawn at random the
//!   first time any trace id is asked for, so two processes (two instances
//!   behind one Prometheus, two replicas exporting to one collector) never
//!   share an id, even for equal request ids;
//! - the low 64 bits mix the request id, the root span's id and the time the
//!   root closed (nanoseconds since the Unix epoch), so two subscribers in one
//!   process, or a request id used twice, still get distinct ids.
//!
//! A request whose root carried a valid W3C `traceparent` takes the caller's
//! trace id instead, so its spans join the caller's distributed trace.
//!
//! The id is a pure function of the [`RequestTrace`] and the process: every
//! renderer in this process derives the same one, and it is never zero.

use crate::read::requests::RequestTrace;
use crate::recording::sampling::mix;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::time::UNIX_EPOCH;

/// A 128-bit W3C trace id; `Display` writes it as 32 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(u128);

impl TraceId {
    /// The id as one big-endian number (its hex digits read left to right).
    pub fn to_u128(self) -> u128 {
        self.0
    }

    /// The id's 16 bytes, big-endian, as OTLP and `traceparent` carry them.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
}

impl From<u128> for TraceId {
    fn from(v: u128) -> Self {
        TraceId(v)
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// This process's instance id: 64 random bits, never zero, fixed for the
/// life of the process. The high half of every [`TraceId`] it derives.
pub fn instance_id() -> u64 {
    static INSTANCE: OnceLock<u64> = OnceLock::new();
    *INSTANCE.get_or_init(|| {
        // `RandomState` is seeded from the operating system's random source;
        // the pid and the clock only separate processes further.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let now = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        h.write_u128(now.as_nanos());
        h.finish() | 1
    })
}

impl RequestTrace {
    /// This request's trace id, the one every view shows: the caller's when
    /// the request joined a distributed trace through its `traceparent`;
    /// otherwise this process's random instance id in the high 64 bits and a
    /// mix of the request id, the root span's id and the time the root closed
    /// in the low 64 bits (never zero).
    pub fn trace_id(&self) -> TraceId {
        if let Some(caller) = self.remote_parent() {
            return TraceId(caller.trace_id);
        }
        let closed = self
            .closed_at()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let root = self.root().map_or(0, |s| s.id);
        let low = mix(mix(mix(self.request_id()) ^ root) ^ closed);
        TraceId(u128::from(instance_id()) << 64 | u128::from(low))
    }
}

/// A span's id as exported: the subscriber's own ids (slot index and
/// generation) repeat across processes, so on the wire each is mixed with
/// this process's instance id; `mix` is a bijection, so two spans of one
/// process never share one, and spans of two processes that join one trace
/// collide only by chance (2^-64). Never zero (an invalid span id).
#[cfg(feature = "otel")]
pub(crate) fn wire_span_id(id: u64) -> u64 {
    mix(id ^ instance_id()).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_32_lowercase_hex_digits() {
        let id = TraceId::from(0x0AF7_6519_16CD_43DD_8448_EB21_1C80_319Cu128);
        assert_eq!(id.to_string(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(TraceId::from(1).to_string(), format!("{:032}", 1));
        assert_eq!(id.to_bytes()[0], 0x0A);
    }

    #[test]
    fn instance_id_is_stable_and_non_zero() {
        assert_eq!(instance_id(), instance_id());
        assert_ne!(instance_id(), 0);
    }

    #[test]
    fn mix_separates_neighbours() {
        assert_ne!(mix(0), mix(1));
        assert_ne!(mix(1) ^ 2, mix(2) ^ 1);
    }
}
