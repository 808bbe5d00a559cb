//! Content negotiation on the metrics endpoint reads every `Accept` header a
//! request carries, as one comma-separated list (RFC 9110, section 5.3).
#![cfg(feature = "prometheus")]

mod prometheus_support;

use hdrtrace::export::prometheus::{self, CONTENT_TYPE, TEXT_CONTENT_TYPE};
use hdrtrace::TracingConfig;
use prometheus_support::scrape;

#[test]
fn every_accept_header_is_negotiated() {
    let (_subscriber, guard) = hdrtrace::build(&TracingConfig::default()).unwrap();
    let server = prometheus::serve("127.0.0.1:0", guard.snapshot_source()).unwrap();
    let addr = server.local_addr();
    for (accepts, want) in [
        (&["text/plain"][..], TEXT_CONTENT_TYPE),
        (
            &["application/json", "text/plain;version=0.0.4"][..],
            TEXT_CONTENT_TYPE,
        ),
        (
            &["text/plain", "application/openmetrics-text"][..],
            CONTENT_TYPE,
        ),
        (
            &["application/openmetrics-text;q=0", "text/plain"][..],
            TEXT_CONTENT_TYPE,
        ),
        (&["text/plain;q=0", "image/png"][..], CONTENT_TYPE),
        (&[][..], CONTENT_TYPE),
    ] {
        assert_eq!(scrape(addr, accepts).0, want, "Accept: {accepts:?}");
    }
}
