//! What one metrics server grants its clients: connections, bytes and time.

use crate::error::ExportError;
use std::time::Duration;

/// The bounds a metrics server enforces on every client, so that one hostile
/// or broken client cannot take the process's memory, its descriptors, or
/// the scrapes of everyone else. [`ServerLimits::default`] suits a scrape
/// endpoint; [`serve_with`](super::serve_with) takes others.
///
/// ```
/// use hdrtrace::export::prometheus::ServerLimits;
/// let mut limits = ServerLimits::default();
/// limits.max_connections = 8;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerLimits {
    /// Connections served at once. One more is answered `503` at once and
    /// closed, without reading from it. Default 32: Prometheus holds one
    /// connection per target, so this leaves room for an HA pair, a few
    /// humans with curl and a federation, while bounding descriptors and
    /// buffers (each connection costs at most about twice
    /// `max_header_bytes` plus one rendered response).
    pub max_connections: usize,
    /// Bytes a request line and its headers may take; past it the client gets
    /// `431` and the connection is closed. This is also the read buffer's cap
    /// (hyper's `max_buf_size`). Default 16 KiB: a Prometheus scrape request
    /// is under 1 KiB. At least 8 KiB (hyper's minimum), at most 1 MiB.
    pub max_header_bytes: usize,
    /// Time a client has to send a whole request head, counted from when the
    /// server starts waiting for it, so it also closes a kept-alive
    /// connection idle this long. Default 5 s: a scraper sends its head in
    /// one packet, and reconnecting for the next scrape costs one handshake.
    pub header_read_timeout: Duration,
    /// Time a response write may make no progress (the client stopped
    /// reading) before the connection is closed. Default 10 s, Prometheus's
    /// default scrape timeout: a scraper that has not read for that long has
    /// given up.
    pub write_timeout: Duration,
    /// Age at which a connection is told to close: it finishes the response
    /// in flight (still under `write_timeout`) and takes no more requests.
    /// Bounds a client that trickles valid requests and reads just fast
    /// enough. Default 60 s.
    pub max_connection_age: Duration,
}

impl ServerLimits {
    /// The defaults, as documented on each field.
    pub const DEFAULT: ServerLimits = ServerLimits {
        max_connections: 32,
        max_header_bytes: 16 * 1024,
        header_read_timeout: Duration::from_secs(5),
        write_timeout: Duration::from_secs(10),
        max_connection_age: Duration::from_secs(60),
    };

    /// Most connections a server may be allowed at once.
    pub const MAX_CONNECTIONS_BOUND: usize = 4096;
    /// Fewest header bytes hyper accepts as a read buffer cap.
    pub const MIN_HEADER_BYTES: usize = 8 * 1024;
    /// Most header bytes a server may be allowed.
    pub const MAX_HEADER_BYTES_BOUND: usize = 1024 * 1024;
    /// Longest any of the timeouts may be.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

    /// `Ok` when every limit is within its bound, else an [`ExportError::Exporter`]
    /// naming the field, its value and the accepted range.
    pub fn validate(&self) -> Result<(), ExportError> {
        let refuse = |field: &str, value: String, range: String| ExportError::Exporter {
            what: "prometheus server",
            reason: format!("ServerLimits::{field} is {value}; accepted: {range}"),
        };
        if !(1..=Self::MAX_CONNECTIONS_BOUND).contains(&self.max_connections) {
            return Err(refuse(
                "max_connections",
                self.max_connections.to_string(),
                format!("1..={}", Self::MAX_CONNECTIONS_BOUND),
            ));
        }
        if !(Self::MIN_HEADER_BYTES..=Self::MAX_HEADER_BYTES_BOUND).contains(&self.max_header_bytes)
        {
            return Err(refuse(
                "max_header_bytes",
                self.max_header_bytes.to_string(),
                format!(
                    "{}..={} bytes",
                    Self::MIN_HEADER_BYTES,
                    Self::MAX_HEADER_BYTES_BOUND
                ),
            ));
        }
        let timeouts = [
            ("header_read_timeout", self.header_read_timeout),
            ("write_timeout", self.write_timeout),
            ("max_connection_age", self.max_connection_age),
        ];
        for (field, value) in timeouts {
            if value.is_zero() || value > Self::MAX_TIMEOUT {
                return Err(refuse(
                    field,
                    format!("{value:?}"),
                    format!("more than 0 s, at most {:?}", Self::MAX_TIMEOUT),
                ));
            }
        }
        Ok(())
    }
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
