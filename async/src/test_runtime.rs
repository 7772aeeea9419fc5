//! A minimal runtime for the unit tests of the handles: tokio's clock, timers and spawning, and
//! in-memory pipes as connections. (The real tokio binding is tether-tokio, which depends on this
//! crate; these tests cannot use it.)

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWrite, DuplexStream};
use tokio::sync::mpsc;

use crate::runtime::{Accept, ByteStream, Connect, Runtime, Task, Timer};
use crate::{Config, Server, Session};

#[derive(Debug)]
struct TestRuntime;

#[derive(Debug)]
struct TestTimer(Pin<Box<tokio::time::Sleep>>);

impl Runtime for TestRuntime {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn new_timer(&self, deadline: Instant) -> Pin<Box<dyn Timer>> {
        Box::pin(TestTimer(Box::pin(tokio::time::sleep_until(deadline.into()))))
    }

    fn spawn(&self, task: Task) {
        tokio::spawn(task);
    }
}

impl Timer for TestTimer {
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        self.0.as_mut().reset(deadline.into());
    }

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        std::future::Future::poll(self.0.as_mut(), cx)
    }
}

struct Pipe(DuplexStream);

impl ByteStream for Pipe {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        std::future::Future::poll(std::pin::pin!(self.0.read_buf(buf)), cx)
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

/// A server and a connected client over in-memory pipes, on the current tokio runtime.
pub(crate) async fn pair(server: Config, client: Config) -> (Server, Session) {
    let runtime: Arc<dyn Runtime> = Arc::new(TestRuntime);
    let (tx, rx) = mpsc::unbounded_channel::<DuplexStream>();
    let accept = Accept::new(rx, |mut rx| async move {
        let next = rx.recv().await.map(|s| Box::new(Pipe(s)) as Box<dyn ByteStream>);
        (rx, next.ok_or_else(|| io::Error::other("no more pipes")))
    });
    let server = Server::start(runtime.clone(), accept, server, None).unwrap();
    let connect: Connect = Box::new(move || {
        let (near, far) = tokio::io::duplex(1 << 20);
        let sent = tx.send(far);
        Box::pin(async move {
            sent.map_err(|_| io::Error::from(io::ErrorKind::ConnectionRefused))?;
            Ok(Box::new(Pipe(near)) as Box<dyn ByteStream>)
        })
    });
    let client = crate::client::connect(runtime, connect, client).await.unwrap();
    (server, client)
}
