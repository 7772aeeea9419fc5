//! Sessions over streams other than TCP, through the generic entry points: `connect_with` and
//! `Server::from_listener` over Unix sockets (with connections cut mid-stream, so the session must
//! reconnect and resume on new Unix connections) and over an in-memory duplex pipe with a
//! hand-written `Listener`; pipes that freeze (a peer that vanished), and a burst of
//! half-open handshakes.

mod common;

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use common::{assert_all, config, quiet_config, run_side, within};
use tether_tokio::{connect_with, Config, End, FirstConnect, Listener, Server};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::sync::mpsc;

const N: u64 = 2_000;
const PACE: Duration = Duration::from_millis(10);

/// What a [`Faulty`] stream does once its write budget is used up.
#[derive(Clone, Copy)]
enum Then {
    /// Every read and write fails, the way a connection dies under an application: the bytes
    /// written before may or may not have arrived, and the side that wrote learns it only from
    /// the error.
    Fail,
    /// Reads and writes stay pending forever and nothing wakes them, like a TCP connection whose
    /// peer vanished (nothing arrives, and the send buffer fills).
    Freeze,
}

/// A stream that breaks (see [`Then`]) once `budget` bytes were written through it, and sets
/// `dropped` (if any) when it is dropped, i.e. when its socket is closed.
struct Faulty<S> {
    inner: S,
    budget: usize,
    then: Then,
    dropped: Option<Arc<AtomicBool>>,
}

impl<S> Faulty<S> {
    fn new(inner: S, budget: usize, then: Then) -> Faulty<S> {
        Faulty { inner, budget, then, dropped: None }
    }

    /// `Some(outcome)` once the budget is used up.
    fn broken<T>(&self) -> Option<Poll<io::Result<T>>> {
        match (self.budget, self.then) {
            (0, Then::Fail) => {
                Some(Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "cut by the test"))))
            }
            (0, Then::Freeze) => Some(Poll::Pending),
            _ => None,
        }
    }
}

impl<S> Drop for Faulty<S> {
    fn drop(&mut self) {
        if let Some(flag) = &self.dropped {
            flag.store(true, Ordering::SeqCst);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Faulty<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(outcome) = self.broken() {
            return outcome;
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Faulty<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(outcome) = self.broken() {
            return outcome;
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
        if let Some(outcome) = self.broken() {
            return outcome;
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Runs N messages each way between `server` and a client from `connector`; checks the contract
/// and returns the client's reconnect count.
async fn exchange<C>(server: Server, connector: C) -> u64
where
    C: tether_tokio::Connector<Stream: tether_tokio::AsyncStream>,
{
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
            Ok(Faulty::new(stream, budget, Then::Fail))
        }
    };
    let reconnects = within(60, exchange(server, connector)).await;
    assert!(reconnects >= 4, "every cut connection was replaced: {reconnects} reconnects");
    assert!(attempts.load(Ordering::Relaxed) >= 5);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A listener fed by the test: each connection is an in-memory duplex pipe. Counts the streams
/// the server passed to `configure`.
struct PipeListener(mpsc::UnboundedReceiver<DuplexStream>, Arc<AtomicU64>);

impl PipeListener {
    fn new(rx: mpsc::UnboundedReceiver<DuplexStream>) -> PipeListener {
        PipeListener(rx, Arc::default())
    }
}

impl Listener for PipeListener {
    type Stream = DuplexStream;

    async fn accept(&mut self) -> io::Result<DuplexStream> {
        match self.0.recv().await {
            Some(stream) => Ok(stream),
            // The test's connector is gone: no more connections will come.
            None => std::future::pending().await,
        }
    }

    fn configure(&self, _stream: &DuplexStream, _config: &tether_tokio::Config) {
        self.1.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_listener_over_in_memory_pipes() {
    let (tx, rx) = mpsc::unbounded_channel();
    let listener = PipeListener::new(rx);
    let configured = listener.1.clone();
    let server = Server::from_listener(listener, config()).unwrap();
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
            Ok(Faulty::new(client, budget, Then::Fail))
        }
    };
    let reconnects = within(60, exchange(server, connector)).await;
    assert!(reconnects >= 2, "both broken pipes were replaced: {reconnects} reconnects");
    // Every pipe the server accepted went through `configure` (one still queued unaccepted when
    // the exchange ended would not have).
    let (configured, made) =
        (configured.load(Ordering::Relaxed), connections.load(Ordering::Relaxed));
    assert!((3..=made).contains(&configured), "{configured} configured of {made} made");
}

/// The client's first connection freezes while the application has megabytes queued, so the
/// client's write buffer reaches its cap. The idle timeout must still retire that connection (its
/// Close is pulled from the core although the buffer is full) and the session resumes on a new
/// one; before, the client stopped pulling from the core at the cap and never reconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_connection_with_a_full_write_buffer_is_replaced() {
    within(60, async {
        let (tx, rx) = mpsc::unbounded_channel();
        let server = Server::from_listener(PipeListener::new(rx), config()).unwrap();
        let connections = Arc::new(AtomicU64::new(0));
        let counter = connections.clone();
        let connector = move || {
            let tx = tx.clone();
            let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
            let budget = if n == 1 { 200_000 } else { usize::MAX };
            async move {
                let (client, server) = tokio::io::duplex(64 * 1024);
                tx.send(server).map_err(|_| io::Error::other("server gone"))?;
                Ok(Faulty::new(client, budget, Then::Freeze))
            }
        };
        let client = connect_with(connector, config()).await.unwrap();
        let session = server.accept().await.unwrap();
        let n = 3_000u64;
        let body = vec![7u8; 1024];
        let sender = async {
            for i in 0..n {
                let mut m = i.to_be_bytes().to_vec();
                m.extend_from_slice(&body);
                client.send(m.into()).await.unwrap();
            }
        };
        let receiver = async {
            for i in 0..n {
                let m = session.recv().await.unwrap();
                assert_eq!(m.payload[..8], i.to_be_bytes(), "message {i}");
            }
        };
        tokio::join!(sender, receiver);
        assert!(client.stats().reconnects >= 1);
        assert!(connections.load(Ordering::Relaxed) >= 2);
    })
    .await;
}

/// 64 connections arrive at once, each with one byte of a handshake that never completes. The
/// burst uses up the driver task's cooperative budget in one pass; the handshake timer must
/// still fire and refuse them (a timer polled once without budget is never registered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_timeout_fires_after_a_burst_of_half_open_connections() {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut clients = Vec::new();
    for _ in 0..64 {
        let (mut ours, theirs) = tokio::io::duplex(4096);
        ours.write_all(&[0]).await.unwrap(); // the first byte of a length prefix
        tx.send(theirs).unwrap();
        clients.push(ours);
    }
    let cfg = tether_tokio::Config { handshake_timeout: Duration::from_millis(300), ..config() };
    let _server = Server::from_listener(PipeListener::new(rx), cfg).unwrap();
    let mut buf = [0u8; 256];
    let refused = tokio::time::timeout(Duration::from_secs(4), async {
        loop {
            match clients[0].read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(refused.is_ok(), "not refused 4 s after a 300 ms handshake timeout");
    drop(tx);
}

/// A client aborted while its connection is frozen and its write buffer full still lets go of
/// the connection (within the close linger), instead of holding the socket and the driver task
/// until the OS gives up on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborting_a_client_with_a_full_write_buffer_drops_its_connection() {
    within(30, async {
        let (tx, rx) = mpsc::unbounded_channel();
        let server = Server::from_listener(PipeListener::new(rx), config()).unwrap();
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = dropped.clone();
        let connector = move || {
            let (tx, flag) = (tx.clone(), flag.clone());
            async move {
                let (client, server) = tokio::io::duplex(64 * 1024);
                tx.send(server).map_err(|_| io::Error::other("server gone"))?;
                let mut stream = Faulty::new(client, 200_000, Then::Freeze);
                stream.dropped = Some(flag);
                Ok(stream)
            }
        };
        let client = connect_with(connector, quiet_config()).await.unwrap();
        let _session = server.accept().await.unwrap();
        for _ in 0..3_000 {
            client.try_send(vec![7u8; 1024].into()).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await; // the write buffer reaches its cap
        client.abort();
        assert!(matches!(client.ended().await, End::Lost { .. }));
        tokio::time::sleep(Duration::from_secs(4)).await; // the close linger is 2 s
        assert!(dropped.load(Ordering::SeqCst), "the frozen connection is still held");
    })
    .await;
}

/// While every connection attempt fails, the client retries on the core's backoff: spaced out
/// (not a busy loop), each wait within `reconnect_backoff_max`, and the session stays alive,
/// detached, until it is aborted. Two clients started together wait differently: the jitter is
/// seeded from the OS, not from a constant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_connects_are_retried_on_the_backoff() {
    let cfg = Config { first_connect: FirstConnect::Retry, ..config() };
    let failing = || {
        let attempts = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = attempts.clone();
        let connector = move || {
            log.lock().unwrap().push(std::time::Instant::now());
            async { Err::<DuplexStream, _>(io::Error::from(io::ErrorKind::ConnectionRefused)) }
        };
        (tether_tokio::start(connector, cfg.clone()).unwrap(), attempts)
    };
    let (a, a_attempts) = failing();
    let (b, b_attempts) = failing();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut gaps = Vec::new();
    for (session, attempts) in [(a, a_attempts), (b, b_attempts)] {
        assert_eq!(session.state(), tether_tokio::SessionState::Detached);
        session.abort();
        let times = attempts.lock().unwrap().clone();
        // Waits are uniform in [0, min(200 ms, 20 ms x 2^n)]: about 20 attempts in 2 s.
        assert!((5..=60).contains(&times.len()), "{} attempts in 2 s", times.len());
        let slack = Duration::from_millis(150);
        let waits: Vec<Duration> = times.windows(2).map(|p| p[1] - p[0]).collect();
        for &wait in &waits {
            assert!(wait <= cfg.reconnect_backoff_max + slack, "waited {wait:?} between attempts");
        }
        gaps.push(waits);
    }
    let apart =
        gaps[0].iter().zip(&gaps[1]).any(|(x, y)| x.abs_diff(*y) > Duration::from_millis(10));
    assert!(apart, "two clients waited alike: {gaps:?}");
}
