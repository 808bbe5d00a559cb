//! The `/metrics` endpoint: hyper's HTTP/1 server on a current-thread tokio
//! runtime in one background thread, under [`ServerLimits`].
//!
//! Each connection is its own task, so a stalled client holds only its own
//! connection. Requests are answered without ever reading a body: a request
//! that declares one is refused, so no declared length is ever allocated.

use super::limits::ServerLimits;
use super::write_deadline::WriteDeadline;
use super::{Buckets, Exposition};
use crate::error::ExportError;
use crate::export::{render_html, HtmlOptions};
use crate::read::source::LatestSnapshot;
use http_body_util::Full;
use hyper::body::{Body as _, Bytes, Incoming};
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CONNECTION, CONTENT_TYPE as CONTENT_TYPE_HEADER};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// The path served.
const PATH: &str = "/metrics";

/// The path of the live HTML report, and how often the page reloads itself.
const REPORT_PATH: &str = "/";
const REPORT_REFRESH: Duration = Duration::from_secs(5);

/// How long a stopping server lets in-flight responses finish before it
/// closes their connections.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// How long to wait before accepting again after a failed accept (out of
/// descriptors, say), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Written, best effort and without reading, to a connection over
/// [`ServerLimits::max_connections`] before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\
Connection: close\r\nRetry-After: 1\r\n\r\n";

/// [`serve_with`] under [`ServerLimits::default`].
pub fn serve<A>(addr: A, source: impl LatestSnapshot) -> Result<MetricsServer, ExportError>
where
    A: ToSocketAddrs + std::fmt::Display,
{
    serve_with(addr, source, ServerLimits::default())
}

/// [`serve_with_buckets`] with [`Buckets::default`].
pub fn serve_with<A>(
    addr: A,
    source: impl LatestSnapshot,
    limits: ServerLimits,
) -> Result<MetricsServer, ExportError>
where
    A: ToSocketAddrs + std::fmt::Display,
{
    serve_with_buckets(addr, source, limits, Buckets::default())
}

/// Serves `GET` and `HEAD` of `/metrics` on `addr` (port 0 picks a free one)
/// from a background thread until the returned [`MetricsServer`] is dropped.
/// Each scrape renders `source.latest()` with histogram bounds `buckets`, in
/// the exposition the request's `Accept` headers pick, read as one list
/// ([`Exposition::negotiate`]): protobuf with native histograms when they
/// ask for it, else OpenMetrics or the Prometheus text format; give it
/// [`TracingGuard::snapshot_source`](crate::TracingGuard::snapshot_source)
/// for live data. `GET /` is the snapshot's HTML report
/// ([`render_html`](crate::export::render_html) with
/// [`HtmlOptions::default`], reloading itself every 5 s). Other paths get
/// `404`, other methods `405`, a request with a body `413` (its body
/// unread), and every client is held to `limits`.
///
/// Limits out of range are an [`ExportError::Exporter`] naming the field; a port that
/// cannot be bound is an [`ExportError::Io`] naming it.
pub fn serve_with_buckets<A>(
    addr: A,
    source: impl LatestSnapshot,
    limits: ServerLimits,
    buckets: Buckets,
) -> Result<MetricsServer, ExportError>
where
    A: ToSocketAddrs + std::fmt::Display,
{
    limits.validate()?;
    let io = |context: String| move |source| ExportError::Io { context, source };
    let listener = std::net::TcpListener::bind(&addr)
        .map_err(io(format!("cannot serve Prometheus metrics on {addr}")))?;
    let local = listener
        .local_addr()
        .map_err(io(format!("cannot read the address bound for {addr}")))?;
    listener
        .set_nonblocking(true)
        .map_err(io(format!("cannot make {local} non-blocking")))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(io(format!("cannot start the metrics runtime for {local}")))?;
    let listener = {
        let _context = runtime.enter();
        TcpListener::from_std(listener).map_err(io(format!(
            "cannot register {local} with the metrics runtime"
        )))?
    };
    let (stop, stopped) = watch::channel(false);
    let source: Arc<dyn LatestSnapshot> = Arc::new(source);
    let buckets = Arc::new(buckets);
    let thread = std::thread::Builder::new()
        .name("hdrtrace-metrics".into())
        .spawn(move || runtime.block_on(accept(listener, source, buckets, limits, stopped)))
        .map_err(io(format!("cannot start the metrics thread for {local}")))?;
    Ok(MetricsServer {
        addr: local,
        stop,
        thread: Some(thread),
    })
}

/// Accepts until told to stop, one task per connection within
/// `limits.max_connections`; then lets in-flight responses finish for up to
/// [`STOP_GRACE`].
async fn accept(
    listener: TcpListener,
    source: Arc<dyn LatestSnapshot>,
    buckets: Arc<Buckets>,
    limits: ServerLimits,
    mut stopped: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .max_header_size(limits.max_header_bytes);
    let http = Arc::new(http);
    loop {
        let accepted = tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _peer)) = accepted else {
            tokio::select! {
                _ = stopped.changed() => break,
                () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // Best effort: a fresh socket's send buffer takes these bytes at
            // once, and a client that cannot take them is closed all the same.
            let _ = stream.try_write(BUSY);
            continue;
        };
        // Small responses go out without waiting for Nagle; failing to set
        // it only costs latency.
        let _ = stream.set_nodelay(true);
        let (http, source, stopped) = (http.clone(), source.clone(), stopped.clone());
        let buckets = buckets.clone();
        tokio::spawn(async move {
            connection(stream, &http, source, buckets, limits, stopped).await;
            drop(permit);
        });
    }
    drop(listener);
    // Every permit back means every connection task has ended.
    let everyone = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(STOP_GRACE, permits.acquire_many(everyone)).await;
}

/// Serves one connection until the client or the limits end it, or the
/// server stops.
async fn connection(
    stream: TcpStream,
    http: &hyper::server::conn::http1::Builder,
    source: Arc<dyn LatestSnapshot>,
    buckets: Arc<Buckets>,
    limits: ServerLimits,
    mut stopped: watch::Receiver<bool>,
) {
    let io = TokioIo::new(WriteDeadline::new(stream, limits.write_timeout));
    let service = hyper::service::service_fn(move |request| {
        let response = respond(&request, source.as_ref(), &buckets);
        async move { Ok::<_, Infallible>(response) }
    });
    let conn = http.serve_connection(io, service);
    tokio::pin!(conn);
    let aged = tokio::time::sleep(limits.max_connection_age);
    tokio::pin!(aged);
    let mut closing = false;
    loop {
        tokio::select! {
            // An error here is the client's (malformed, timed out, gone); the
            // connection is closed either way and there is no one to tell.
            _ = conn.as_mut() => return,
            () = aged.as_mut(), if !closing => {},
            _ = stopped.changed(), if !closing => {},
        }
        // Finish the response in flight, take no further request.
        conn.as_mut().graceful_shutdown();
        closing = true;
    }
}

/// The answer to one request, decided from its head alone.
fn respond(
    request: &Request<Incoming>,
    source: &dyn LatestSnapshot,
    buckets: &Buckets,
) -> Response<Full<Bytes>> {
    if !request.body().is_end_stream() {
        return refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            "hdrtrace takes no request body\n",
        );
    }
    let report = request.uri().path() == REPORT_PATH;
    if !report && request.uri().path() != PATH {
        return refusal(StatusCode::NOT_FOUND, "hdrtrace serves GET /metrics\n");
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = refusal(
            StatusCode::METHOD_NOT_ALLOWED,
            "hdrtrace serves GET /metrics\n",
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    if report {
        return report_page(source);
    }
    // Several `Accept` headers are one comma-separated list (RFC 9110,
    // section 5.3); a value that is not visible ASCII says nothing readable
    // and is skipped. Their size is bounded by `max_header_bytes`.
    let accepts: Vec<&str> = request
        .headers()
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let accept = (!accepts.is_empty()).then(|| accepts.join(","));
    let exposition = Exposition::negotiate(accept.as_deref());
    let body = Bytes::from(exposition.render(&source.latest(), buckets));
    let mut response = Response::new(Full::new(body));
    response.headers_mut().insert(
        CONTENT_TYPE_HEADER,
        HeaderValue::from_static(exposition.content_type()),
    );
    response
}

/// The live HTML report of `source.latest()` ([`render_html`]): read-only,
/// reloading itself every [`REPORT_REFRESH`].
fn report_page(source: &dyn LatestSnapshot) -> Response<Full<Bytes>> {
    let options = HtmlOptions {
        refresh: Some(REPORT_REFRESH),
        ..HtmlOptions::default()
    };
    let body = render_html(&source.latest(), &options);
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        CONTENT_TYPE_HEADER,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// A plain-text error answer after which the connection is closed, so that
/// whatever the client sent after the head is never read.
fn refusal(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A running metrics endpoint; dropping it stops the server (in-flight
/// responses get a moment to finish) and joins its thread.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// The address actually bound (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The scrape URL, `http://ADDR/metrics`.
    pub fn url(&self) -> String {
        format!("http://{}{PATH}", self.addr)
    }
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        // Fails only if the server thread has already ended, receiver and all.
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
