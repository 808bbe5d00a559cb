//! A socket whose writes fail once they have made no progress for a while.
//!
//! hyper has a timeout for reading a request head but none for writing: a
//! client that sends requests and never reads would hold its connection (and
//! the response buffered for it) for as long as it likes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// `inner` whose write, flush and shutdown return [`io::ErrorKind::TimedOut`]
/// when they have stayed pending for `timeout` without any of them completing.
pub(super) struct WriteDeadline<T> {
    inner: T,
    timeout: Duration,
    /// Armed when a write first returns pending, disarmed by any completion.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteDeadline<T> {
    pub(super) fn new(inner: T, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            stalled: None,
        }
    }

    /// Passes a completed write through (and disarms the deadline); turns a
    /// pending one into a time-out error once the deadline has passed.
    fn watch<R>(
        &mut self,
        result: Poll<io::Result<R>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<R>> {
        if result.is_ready() {
            self.stalled = None;
            return result;
        }
        let timeout = self.timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {timeout:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(result, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(result, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(result, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::WriteDeadline;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn a_write_nobody_reads_times_out() {
        runtime().block_on(async {
            let (near, _far) = tokio::io::duplex(16);
            let mut writer = WriteDeadline::new(near, Duration::from_millis(50));
            let err = writer.write_all(&[0u8; 64]).await.unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
        });
    }

    #[test]
    fn a_reader_that_keeps_up_resets_the_deadline() {
        runtime().block_on(async {
            let (near, mut far) = tokio::io::duplex(16);
            let mut writer = WriteDeadline::new(near, Duration::from_millis(500));
            let reader = tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 16];
                // Slower in total than the deadline, never stalled that long.
                while got.len() < 640 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let n = far.read(&mut buf).await.unwrap();
                    got.extend_from_slice(&buf[..n]);
                }
                got
            });
            writer.write_all(&[7u8; 640]).await.unwrap();
            assert_eq!(reader.await.unwrap(), vec![7u8; 640]);
        });
    }
}
