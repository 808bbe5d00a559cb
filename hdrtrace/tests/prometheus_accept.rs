//! Content negotiation on the metrics endpoint reads every `Accept` header a
//! request carries, as one comma-separated list (RFC 9110, section 5.3).
#![cfg(feature = "prometheus")]

use hdrtrace::export::prometheus::{self, CONTENT_TYPE, TEXT_CONTENT_TYPE};
use hdrtrace::TracingConfig;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long any socket read or write may block the test.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The `Content-Type` of the answer to a scrape with these `Accept` headers,
/// each on its own line.
fn content_type(addr: SocketAddr, accepts: &[&str]) -> String {
    let mut request = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_string();
    for a in accepts {
        request.push_str(&format!("Accept: {a}\r\n"));
    }
    request.push_str("\r\n");
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("the whole answer in time");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    answer
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no Content-Type in {answer}"))
}

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
        assert_eq!(content_type(addr, accepts), want, "Accept: {accepts:?}");
    }
}
