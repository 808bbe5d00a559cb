//! The metrics endpoint against hostile and broken clients: each test talks
//! raw bytes over loopback TCP, every socket has timeouts (no test can hang),
//! and each ends with a normal scrape that must still succeed.
#![cfg(feature = "prometheus")]

use hdrtrace::export::prometheus::{self, MetricsServer, ServerLimits};
use hdrtrace::{TracingConfig, TracingGuard};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long any single socket read or write may block a test.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const SCRAPE: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// The default limits with `change` applied.
fn with(change: impl FnOnce(&mut ServerLimits)) -> ServerLimits {
    let mut limits = ServerLimits::default();
    change(&mut limits);
    limits
}

/// A server over an empty subscriber's snapshots; the guard keeps the
/// subscriber (and so the source) alive.
fn start(limits: ServerLimits) -> (MetricsServer, TracingGuard) {
    let (_subscriber, guard) = hdrtrace::build(&TracingConfig::default()).unwrap();
    let server = prometheus::serve_with("127.0.0.1:0", guard.snapshot_source(), limits).unwrap();
    (server, guard)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// What the server sent until it closed, or the error that ended the read
/// (a time-out among them) with what had arrived before it.
fn read_all(stream: &mut TcpStream) -> (Vec<u8>, Option<std::io::Error>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (got, None),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return (got, Some(e)),
        }
    }
}

/// The status code of the first response in `bytes`.
fn status(bytes: &[u8]) -> Option<u16> {
    let line = bytes.split(|&b| b == b'\n').next()?;
    let code = std::str::from_utf8(line).ok()?.split(' ').nth(1)?;
    code.parse().ok()
}

fn timed_out(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Sends `request` on a fresh connection; the status and the whole answer.
fn exchange(addr: SocketAddr, request: &[u8]) -> (Option<u16>, Vec<u8>) {
    let mut stream = connect(addr);
    stream.write_all(request).expect("send the request");
    let (got, err) = read_all(&mut stream);
    if let Some(e) = err {
        assert!(!timed_out(&e), "no answer within {IO_TIMEOUT:?}: {e}");
    }
    (status(&got), got)
}

/// A normal scrape: 200 and the whole exposition.
fn scrape(addr: SocketAddr) -> Result<String, String> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.write_all(SCRAPE).map_err(|e| e.to_string())?;
    let (got, err) = read_all(&mut stream);
    let text = String::from_utf8_lossy(&got).into_owned();
    if let Some(e) = err {
        return Err(format!("{e} after {text:?}"));
    }
    if status(&got) != Some(200) || !text.ends_with("# EOF\n") {
        return Err(format!("not a whole scrape: {text:?}"));
    }
    Ok(text)
}

/// A request declaring `length` body bytes (and sending none) is refused,
/// and the server keeps serving.
fn refuses_declared_length(length: &str) {
    let (server, _guard) = start(ServerLimits::default());
    let addr = server.local_addr();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n");
    let (code, got) = exchange(addr, request.as_bytes());
    assert!(
        matches!(code, Some(400 | 413 | 431)),
        "Content-Length {length}: {:?}",
        String::from_utf8_lossy(&got)
    );
    scrape(addr).unwrap_or_else(|e| panic!("scrape after Content-Length {length}: {e}"));
}

#[test]
fn a_content_length_too_big_to_allocate_is_refused() {
    refuses_declared_length("99999999999");
}

#[test]
fn a_content_length_of_u64_max_is_refused() {
    refuses_declared_length("18446744073709551615");
}

#[test]
fn a_pipelining_client_that_never_reads_blocks_no_one_and_is_cut_off() {
    let limits = with(|l| l.write_timeout = Duration::from_secs(2));
    let (server, _guard) = start(limits);
    let addr = server.local_addr();
    let mut hostile = connect(addr);
    hostile
        .set_write_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    let batch = request.repeat(64);
    let (mut sent, cap) = (0usize, 64 << 20);
    // Until the server stops taking requests because we read no answers.
    while sent < cap {
        match hostile.write(&batch) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    assert!(
        sent < cap,
        "the server read {sent} bytes of requests without being read from"
    );

    // Meanwhile a normal scraper is served.
    scrape(addr).unwrap_or_else(|e| panic!("scrape while a client stalls: {e}"));

    // The stalled client is disconnected: once it reads, it finds the end of
    // the stream (or a reset) before the answers to everything it asked.
    std::thread::sleep(limits.write_timeout * 2);
    hostile.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let (got, err) = read_all(&mut hostile);
    if let Some(e) = &err {
        assert!(!timed_out(e), "the stalled client is still connected: {e}");
    }
    let answered = got.windows(12).filter(|w| w == b"HTTP/1.1 200").count();
    let asked = sent / request.len();
    assert!(
        answered < asked,
        "{answered} answers to {asked} requests: the client was not cut off"
    );
    scrape(addr).unwrap_or_else(|e| panic!("scrape after the stalled client: {e}"));
}

#[test]
fn an_endless_request_line_is_refused_once_past_the_cap() {
    let (server, _guard) = start(ServerLimits::default());
    let addr = server.local_addr();
    let mut stream = connect(addr);
    // 256 MiB of request line would be declared; 16 MiB is far past the cap
    // and past what the kernel's socket buffers hold between us and it.
    let (mut sent, cap) = (0usize, 16 << 20);
    stream.write_all(b"GET /").unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    let refused = loop {
        if sent >= cap {
            break None;
        }
        match stream.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) => break Some(e),
        }
    };
    match refused {
        None => panic!("the server took {sent} bytes of one request line"),
        Some(e) => assert!(
            !timed_out(&e),
            "the server stopped reading after {sent} bytes but kept the connection: {e}"
        ),
    }
    scrape(addr).unwrap_or_else(|e| panic!("scrape after the endless line: {e}"));
}

#[test]
fn a_slowloris_client_is_cut_off_by_the_header_timeout() {
    let limits = with(|l| l.header_read_timeout = Duration::from_secs(2));
    let (server, _guard) = start(limits);
    let addr = server.local_addr();
    let mut stream = connect(addr);
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let patience = limits.header_read_timeout * 5;
    let started = Instant::now();
    let ended = loop {
        assert!(
            started.elapsed() < patience,
            "a header byte a second kept the connection for {patience:?}"
        );
        if let Err(e) = stream.write_all(b"a") {
            break format!("write failed: {e}");
        }
        // Doubles as the one-second pause between bytes.
        let mut buf = [0u8; 512];
        match stream.read(&mut buf) {
            Ok(0) => break "closed".into(),
            Ok(n) => break format!("answered {:?}", String::from_utf8_lossy(&buf[..n])),
            Err(e) if timed_out(&e) => continue,
            Err(e) => break format!("read failed: {e}"),
        }
    };
    assert!(
        !ended.starts_with("answered") || ended.contains(" 408 "),
        "{ended}"
    );
    scrape(addr).unwrap_or_else(|e| panic!("scrape after the slowloris: {e}"));
}

#[test]
fn a_client_that_keeps_asking_is_closed_at_the_connection_age() {
    let limits = with(|l| l.max_connection_age = Duration::from_secs(1));
    let (server, _guard) = start(limits);
    let addr = server.local_addr();
    let mut stream = connect(addr);
    let patience = limits.max_connection_age * 10;
    let started = Instant::now();
    let mut answered = 0;
    // Valid kept-alive requests, each well within every other time-out.
    'asking: loop {
        assert!(
            started.elapsed() < patience,
            "{answered} requests kept the connection for {patience:?}"
        );
        if stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .is_err()
        {
            break;
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        while !got.ends_with(b"# EOF\n") {
            match stream.read(&mut buf) {
                Ok(0) => break 'asking,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => {
                    assert!(!timed_out(&e), "no answer: {e}");
                    break 'asking;
                }
            }
        }
        assert_eq!(
            status(&got),
            Some(200),
            "{:?}",
            String::from_utf8_lossy(&got)
        );
        answered += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(answered > 0, "closed before answering anything");
    scrape(addr).unwrap_or_else(|e| panic!("scrape after the aged connection: {e}"));
}

#[test]
fn connections_past_the_limit_are_refused_at_once_and_scrapes_resume_when_they_go() {
    let limits = with(|l| {
        l.max_connections = 4;
        l.header_read_timeout = Duration::from_secs(60);
    });
    let (server, _guard) = start(limits);
    let addr = server.local_addr();
    // Each holds a connection with half a request head.
    let mut holders: Vec<TcpStream> = (0..limits.max_connections)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();

    // One more is answered 503 (or just closed) without sending anything.
    let mut excess = connect(addr);
    let (got, err) = read_all(&mut excess);
    if let Some(e) = &err {
        assert!(
            !timed_out(e),
            "a connection past the limit was kept waiting: {e}"
        );
    }
    assert!(
        got.is_empty() || status(&got) == Some(503),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    // And a scrape then is refused the same way, not queued.
    assert!(scrape(addr).is_err(), "served past the connection limit");

    // The holders go; scrapes are served again.
    holders.clear();
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        match scrape(addr) {
            Ok(_) => break,
            Err(e) if Instant::now() > deadline => {
                panic!("no scrape served after the holders left: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Sends each request on its own connection and checks the status (and, for
/// `405`, the `Allow` header; for `HEAD`, that no body came).
fn expect_statuses(addr: SocketAddr, cases: &[(&[u8], u16)]) {
    for &(request, expected) in cases {
        let (code, got) = exchange(addr, request);
        let text = String::from_utf8_lossy(&got);
        let shown = String::from_utf8_lossy(request);
        assert_eq!(code, Some(expected), "{shown:?} got {text:?}");
        if expected == 405 {
            assert!(
                text.to_ascii_lowercase().contains("allow: get, head"),
                "{text}"
            );
        }
        if request.starts_with(b"HEAD") {
            assert!(!text.contains("# EOF"), "HEAD got a body: {text}");
        }
    }
}

#[test]
fn a_request_with_a_body_is_refused_unread() {
    let (server, _guard) = start(ServerLimits::default());
    let addr = server.local_addr();
    expect_statuses(
        addr,
        &[
            (
                b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                413,
            ),
            (
                b"POST /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                413,
            ),
        ],
    );
    scrape(addr).unwrap_or_else(|e| panic!("scrape after the bodies: {e}"));
}

#[test]
fn only_get_and_head_of_metrics_and_the_report_are_served() {
    let (server, _guard) = start(ServerLimits::default());
    let addr = server.local_addr();
    expect_statuses(
        addr,
        &[
            (b"GET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
            (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200),
            (b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200),
            (b"DELETE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405),
            (b"DELETE /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405),
            (
                b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                405,
            ),
            (b"GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200),
            (b"GET http://x/metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200),
            (b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200),
        ],
    );
    scrape(addr).unwrap_or_else(|e| panic!("scrape after the refusals: {e}"));
}

#[test]
fn malformed_requests_get_an_error_or_a_close_and_the_server_keeps_serving() {
    let (server, _guard) = start(ServerLimits::default());
    let addr = server.local_addr();
    let many_headers: Vec<u8> = [
        b"GET /metrics HTTP/1.1\r\n".to_vec(),
        b"X-A: b\r\n".repeat(500),
        b"\r\n".to_vec(),
    ]
    .concat();
    let long_header: Vec<u8> = [
        b"GET /metrics HTTP/1.1\r\nX-Long: ".to_vec(),
        vec![b'a'; 64 * 1024],
        b"\r\n\r\n".to_vec(),
    ]
    .concat();
    let cases: [&[u8]; 7] = [
        b"\0\0\0\0\r\n\r\n",
        b"GET /metrics HTTP/9.9\r\n\r\n",
        b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
        &many_headers,
        &long_header,
    ];
    for request in cases {
        let mut stream = connect(addr);
        // The server may close before taking all of it; that is an answer.
        let _ = stream.write_all(request);
        let (got, err) = read_all(&mut stream);
        if let Some(e) = &err {
            assert!(!timed_out(e), "no answer or close: {e}");
        }
        let code = status(&got);
        assert!(
            got.is_empty() || code.is_some_and(|c| c >= 400),
            "{:?} got {:?}",
            String::from_utf8_lossy(&request[..request.len().min(40)]),
            String::from_utf8_lossy(&got)
        );
    }
    scrape(addr).unwrap_or_else(|e| panic!("scrape after malformed requests: {e}"));
}

#[test]
fn limits_out_of_range_are_an_error_naming_the_field() {
    let (_subscriber, guard) = hdrtrace::build(&TracingConfig::default()).unwrap();
    let cases = [
        (with(|l| l.max_connections = 0), "max_connections"),
        (with(|l| l.max_connections = usize::MAX), "max_connections"),
        (with(|l| l.max_header_bytes = 100), "max_header_bytes"),
        (
            with(|l| l.header_read_timeout = Duration::ZERO),
            "header_read_timeout",
        ),
        (with(|l| l.write_timeout = Duration::MAX), "write_timeout"),
        (
            with(|l| l.max_connection_age = Duration::MAX),
            "max_connection_age",
        ),
    ];
    for (limits, field) in cases {
        let err = prometheus::serve_with("127.0.0.1:0", guard.snapshot_source(), limits)
            .expect_err(field);
        assert!(err.to_string().contains(field), "{err}");
    }
}

#[test]
fn dropping_the_server_stops_it_even_with_a_client_mid_request() {
    // Long enough that only the drop can close the held connection in time.
    let (server, _guard) = start(with(|l| l.header_read_timeout = Duration::from_secs(60)));
    let addr = server.local_addr();
    scrape(addr).unwrap_or_else(|e| panic!("scrape before the drop: {e}"));
    let mut holder = connect(addr);
    holder.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
    let (done, dropped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(server);
        let _ = done.send(());
    });
    dropped
        .recv_timeout(IO_TIMEOUT)
        .expect("dropping the server returned within the time-out");
    // The held connection was closed, not left to its time-out.
    let (_, err) = read_all(&mut holder);
    if let Some(e) = &err {
        assert!(
            !timed_out(e),
            "the held connection outlived the server: {e}"
        );
    }
}
