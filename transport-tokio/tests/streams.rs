//! Sessions over streams other than TCP, through the generic entry points: `connect_with` and
//! `Server::from_listener` over Unix sockets (with connections cut mid-stream, so the session must
//! reconnect and resume on new Unix connections) and over an in-memory duplex pipe with a
//! hand-written `Listener`.

mod common;

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use common::{assert_all, config, run_side, within};
use tether_tokio::{connect_with, End, Listener, Server};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::mpsc;

const N: u64 = 2_000;
const PACE: Duration = Duration::from_millis(10);

/// A stream that fails every read and write once `budget` bytes have been written through it,
/// the way a connection dies under an application: the bytes written before may or may not have
/// arrived, and the side that wrote learns it only from the error.
struct Cut<S> {
    inner: S,
    budget: usize,
}

impl<S> Cut<S> {
    fn broken() -> io::Error {
        io::Error::new(io::ErrorKind::BrokenPipe, "cut by the test")
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Cut<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.budget == 0 {
            return Poll::Ready(Err(Self::broken()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Cut<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.budget == 0 {
            return Poll::Ready(Err(Self::broken()));
        }
        let len = buf.len().min(self.budget);
        let written = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &buf[..len]))?;
        self.budget -= written;
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Runs N messages each way between `server` and a client from `connector`; checks the contract
/// and returns the client's reconnect count.
async fn exchange<C: tether_tokio::Connector>(server: Server, connector: C) -> u64 {
    let srv = tokio::spawn(async move {
        let s = server.accept().await.expect("a session");
        run_side(s, "down", N, false, PACE).await
    });
    let client = connect_with(connector, config()).await.expect("connected");
    let stats = client.clone();
    let c = run_side(client, "up", N, true, PACE).await;
    let s = srv.await.expect("server task");
    assert_eq!(c.end, End::Closed, "client end");
    assert_eq!(s.end, End::Closed, "server end");
    assert_all(&c.received, "down", N);
    assert_all(&s.received, "up", N);
    assert_eq!(stats.stats().unconfirmed_messages, 0);
    stats.stats().reconnects
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_session_resumes_across_cut_connections() {
    let dir = std::env::temp_dir().join(format!("tether-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("server.sock");
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let server = Server::from_listener(listener, config()).unwrap();
    let attempts = Arc::new(AtomicU64::new(0));
    let counter = attempts.clone();
    let connector = move || {
        let path = path.clone();
        // Connections 1..=4 die after 15-30 KB written by the client (of ~150 KB); later ones live.
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        let budget = if n <= 4 { 10_000 + 5_000 * n as usize } else { usize::MAX };
        async move {
            let stream = tokio::net::UnixStream::connect(path).await?;
            Ok(Cut { inner: stream, budget })
        }
    };
    let reconnects = within(60, exchange(server, connector)).await;
    assert!(reconnects >= 4, "every cut connection was replaced: {reconnects} reconnects");
    assert!(attempts.load(Ordering::Relaxed) >= 5);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A listener fed by the test: each connection is an in-memory duplex pipe.
struct PipeListener(mpsc::UnboundedReceiver<DuplexStream>);

impl Listener for PipeListener {
    type Stream = DuplexStream;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<DuplexStream>> {
        match self.0.poll_recv(cx) {
            Poll::Ready(Some(stream)) => Poll::Ready(Ok(stream)),
            // The test's connector is gone: no more connections will come.
            Poll::Ready(None) => Poll::Pending,
            Poll::Pending => Poll::Pending,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_listener_over_in_memory_pipes() {
    let (tx, rx) = mpsc::unbounded_channel();
    let server = Server::from_listener(PipeListener(rx), config()).unwrap();
    let connections = Arc::new(AtomicU64::new(0));
    let counter = connections.clone();
    let connector = move || {
        let tx = tx.clone();
        // The first two pipes break after 30 KB from the client.
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        let budget = if n <= 2 { 30_000 } else { usize::MAX };
        async move {
            let (client, server) = tokio::io::duplex(64 * 1024);
            tx.send(server).map_err(|_| io::Error::other("server gone"))?;
            Ok(Cut { inner: client, budget })
        }
    };
    let reconnects = within(60, exchange(server, connector)).await;
    assert!(reconnects >= 2, "both broken pipes were replaced: {reconnects} reconnects");
}
