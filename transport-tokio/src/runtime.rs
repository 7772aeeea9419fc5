//! tokio as a tether [`Runtime`]: tokio's clock and timers (so paused time and turmoil's
//! simulated time drive every heartbeat, timeout and backoff), tokio's spawn, and tokio streams as
//! [`ByteStream`]s.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::BytesMut;
use tether_async::{ByteStream, Error, Runtime, Task, Timer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::runtime::Handle;

/// Any byte stream a session can run over: TCP, TLS, a Unix socket, turmoil's streams, an
/// in-memory pipe.
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> AsyncStream for T {}

/// The tokio runtime a session or server was started on.
#[derive(Debug)]
struct Tokio(Handle);

/// The runtime of the calling context, or [`Error::NoRuntime`] outside one.
pub(crate) fn current() -> Result<Arc<dyn Runtime>, Error> {
    let handle = Handle::try_current().map_err(|_| Error::NoRuntime("tokio"))?;
    Ok(Arc::new(Tokio(handle)))
}

impl Runtime for Tokio {
    /// tokio's clock as seen from the session's runtime, also when a handle is used from another
    /// thread (a paused or simulated clock belongs to its runtime).
    fn now(&self) -> Instant {
        let _in_runtime = self.0.enter();
        tokio::time::Instant::now().into_std()
    }

    fn new_timer(&self, deadline: Instant) -> Pin<Box<dyn Timer>> {
        let _in_runtime = self.0.enter();
        Box::pin(Sleep(Box::pin(tokio::time::sleep_until(deadline.into()))))
    }

    fn spawn(&self, task: Task) {
        self.0.spawn(task);
    }

    /// The runtime's worker threads (1 on a current-thread runtime).
    fn parallelism(&self) -> usize {
        self.0.metrics().num_workers()
    }
}

#[derive(Debug)]
struct Sleep(Pin<Box<tokio::time::Sleep>>);

impl Timer for Sleep {
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        self.0.as_mut().reset(deadline.into());
    }

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

/// A tokio stream as the driver uses it. Reads go straight into the driver's buffer's spare
/// capacity (`read_buf`), with no zeroing.
pub(crate) struct Stream<S>(pub(crate) S);

impl<S: AsyncStream> ByteStream for Stream<S> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        std::pin::pin!(self.0.read_buf(buf)).poll(cx)
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Boxes `stream` for the driver.
pub(crate) fn boxed<S: AsyncStream>(stream: S) -> Box<dyn ByteStream> {
    Box::new(Stream(stream))
}
