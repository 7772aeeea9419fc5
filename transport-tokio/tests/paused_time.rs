//! tether on tokio's paused clock (`#[tokio::test(start_paused = true)]`): sessions over in-memory
//! duplex pipes, with timers of realistic length (seconds to minutes) that run in virtual time.
//! Dead-peer detection, reconnect backoff, a long quiet session and the session timeout are
//! measured in virtual time, exactly; the real time each test took is only printed.

mod common;

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use common::payload;
use tether_tokio::{
    connect_with, Config, End, FirstConnect, LinkEvent, Listener, Reason, Server, SessionState,
    Settings, UnconfirmedMessage,
};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::mpsc;
use tokio::time::{sleep, Instant};

/// Default-sized timers: heartbeats every second, a connection silent for 5 s is dead.
fn config() -> Config {
    Config {
        heartbeat_interval: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(5),
        ack_timeout: Duration::from_secs(10),
        handshake_timeout: Duration::from_secs(5),
        session_timeout: Duration::from_secs(60),
        close_timeout: Duration::from_secs(30),
        reconnect_backoff_initial: Duration::from_millis(100),
        reconnect_backoff_max: Duration::from_secs(2),
        ..Config::default()
    }
}

/// A listener fed by the test: each connection is an in-memory duplex pipe.
struct PipeListener(mpsc::UnboundedReceiver<DuplexStream>);

impl Listener for PipeListener {
    type Stream = DuplexStream;

    async fn accept(&mut self) -> io::Result<DuplexStream> {
        match self.0.recv().await {
            Some(stream) => Ok(stream),
            None => std::future::pending().await,
        }
    }
}

const OPEN: u8 = 0;
/// Reads and writes stay pending and nothing wakes them: the peer vanished, the pipe stays open.
const FROZEN: u8 = 1;
/// Reads and writes fail: the connection was reset.
const BROKEN: u8 = 2;

/// The client's end of a pipe, which the test can freeze or break.
struct Pipe {
    inner: DuplexStream,
    mode: Arc<AtomicU8>,
}

impl Pipe {
    fn fault<T>(&self) -> Option<Poll<io::Result<T>>> {
        match self.mode.load(Ordering::SeqCst) {
            FROZEN => Some(Poll::Pending),
            BROKEN => Some(Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()))),
            _ => None,
        }
    }
}

impl AsyncRead for Pipe {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(fault) = self.fault() {
            return fault;
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Pipe {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(fault) = self.fault() {
            return fault;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(fault) = self.fault() {
            return fault;
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(fault) = self.fault() {
            return fault;
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A server over pipes and a connector that opens them, records each attempt's virtual time and
/// each pipe's fault switch, and refuses attempts before `refuse_until`.
struct Net {
    server: Server,
    attempts: Arc<Mutex<Vec<Instant>>>,
    pipes: Arc<Mutex<Vec<Arc<AtomicU8>>>>,
    refuse_until: Arc<Mutex<Option<Instant>>>,
}

impl Net {
    fn new() -> (Net, impl tether_tokio::Connector<Stream: tether_tokio::AsyncStream>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let server =
            Server::from_listener(PipeListener(rx), Settings::seeded(config(), 1)).unwrap();
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let pipes = Arc::new(Mutex::new(Vec::new()));
        let refuse_until = Arc::new(Mutex::new(None::<Instant>));
        let (log, switches, refusing) = (attempts.clone(), pipes.clone(), refuse_until.clone());
        let connector = move || {
            let now = Instant::now();
            log.lock().unwrap().push(now);
            let refused = refusing.lock().unwrap().is_some_and(|until| now < until);
            let opened = if refused {
                Err(io::Error::from(io::ErrorKind::ConnectionRefused))
            } else {
                let (ours, theirs) = tokio::io::duplex(64 * 1024);
                let mode = Arc::new(AtomicU8::new(OPEN));
                switches.lock().unwrap().push(mode.clone());
                tx.send(theirs).map(|()| Pipe { inner: ours, mode }).map_err(io::Error::other)
            };
            std::future::ready(opened)
        };
        (Net { server, attempts, pipes, refuse_until }, connector)
    }

    fn set_pipe(&self, index: usize, mode: u8) {
        self.pipes.lock().unwrap()[index].store(mode, Ordering::SeqCst);
    }
}

/// Sends `payload("c", i)` for `range` from `from` and checks `to` receives exactly them.
async fn through(
    from: &tether_tokio::Session,
    to: &tether_tokio::Session,
    range: std::ops::Range<u64>,
) {
    for i in range.clone() {
        assert_eq!(from.send(payload("c", i)).await.unwrap(), i);
    }
    for i in range {
        let m = to.recv().await.expect("a message");
        assert_eq!((m.seq, m.payload), (i, payload("c", i)));
    }
}

/// A pipe that freezes (nothing arrives, nothing leaves, nobody is told, it stays open) is
/// declared dead `idle_timeout` after the last frame that came through it: never later, and
/// no earlier than one heartbeat interval before that. The session resumes on a new pipe and the
/// messages sent meanwhile arrive exactly once.
#[tokio::test(start_paused = true)]
async fn a_frozen_pipe_is_declared_dead_within_idle_timeout_of_virtual_time() {
    let real = std::time::Instant::now();
    let cfg = config();
    let (net, connector) = Net::new();
    let client = connect_with(connector, Settings::seeded(cfg.clone(), 2)).await.unwrap();
    let session = net.server.accept().await.unwrap();
    through(&client, &session, 0..10).await;
    sleep(Duration::from_millis(2_345)).await; // some heartbeats, at an arbitrary phase
    net.set_pipe(0, FROZEN);
    let t0 = Instant::now();
    for i in 10..20 {
        client.send(payload("c", i)).await.unwrap();
    }
    let lost = client.next_link_event().await;
    let detected = t0.elapsed();
    assert_eq!(lost, Some(LinkEvent::Disconnected { reason: Reason::IdleTimeout }));
    assert!(detected <= cfg.idle_timeout, "declared dead {detected:?} after the freeze");
    assert!(detected >= cfg.idle_timeout - cfg.heartbeat_interval, "too early: {detected:?}");
    assert_eq!(client.next_link_event().await, Some(LinkEvent::Resumed));
    for i in 10..20 {
        let m = session.recv().await.unwrap();
        assert_eq!((m.seq, m.payload), (i, payload("c", i)));
    }
    through(&client, &session, 20..30).await;
    assert_eq!(client.stats().reconnects, 1);
    assert_eq!(net.pipes.lock().unwrap().len(), 2);
    println!(
        "frozen pipe noticed after {detected:?} of virtual time; test took {:?}",
        real.elapsed()
    );
}

/// Connections are refused for 30 virtual seconds after the pipe breaks: the client retries on
/// the backoff (attempt `n` waits at most `min(max, initial * 2^n)`, never more than
/// `reconnect_backoff_max`, jittered from the seed), and resumes on the first attempt after the
/// refusals end; what was sent meanwhile arrives exactly once.
#[tokio::test(start_paused = true)]
async fn reconnect_backoff_runs_in_virtual_time() {
    let cfg = config();
    let (net, connector) = Net::new();
    let client = connect_with(connector, Settings::seeded(cfg.clone(), 3)).await.unwrap();
    let session = net.server.accept().await.unwrap();
    through(&client, &session, 0..10).await;
    sleep(Duration::from_secs(1)).await; // the first connect lies behind
    let t0 = Instant::now();
    let refuse_until = t0 + Duration::from_secs(30);
    *net.refuse_until.lock().unwrap() = Some(refuse_until);
    net.set_pipe(0, BROKEN);
    for i in 10..20 {
        client.send(payload("c", i)).await.unwrap();
    }
    let lost = client.next_link_event().await;
    assert_eq!(lost, Some(LinkEvent::Disconnected { reason: Reason::TransportLost }));
    assert_eq!(client.next_link_event().await, Some(LinkEvent::Resumed));
    let resumed = Instant::now();
    for i in 10..20 {
        let m = session.recv().await.unwrap();
        assert_eq!((m.seq, m.payload), (i, payload("c", i)));
    }
    through(&client, &session, 20..30).await;

    // Every attempt after the break, and the waits between them (the first from the break).
    let attempts: Vec<Instant> =
        net.attempts.lock().unwrap().iter().copied().filter(|&a| a >= t0).collect();
    assert_eq!(net.attempts.lock().unwrap().len(), attempts.len() + 1, "one connect before");
    let (last, refused) = attempts.split_last().unwrap();
    assert!(refused.iter().all(|&a| a < refuse_until));
    assert!(*last >= refuse_until, "resumed on an attempt that should have been refused");
    let mut waits = Vec::new();
    let mut previous = t0;
    for (n, &at) in attempts.iter().enumerate() {
        let wait = at - previous;
        let ceiling = cfg.reconnect_backoff_initial.saturating_mul(1 << n.min(20));
        let ceiling = ceiling.min(cfg.reconnect_backoff_max);
        // Timers fire on the next millisecond at the latest.
        assert!(wait <= ceiling + Duration::from_millis(1), "wait {n}: {wait:?} > {ceiling:?}");
        waits.push(wait);
        previous = at;
    }
    assert!(
        *last - refuse_until <= cfg.reconnect_backoff_max + Duration::from_millis(1),
        "first attempt after the refusals {:?} late",
        *last - refuse_until
    );
    assert!(resumed - *last < Duration::from_millis(10), "handshake took {:?}", resumed - *last);
    // Jittered: not all waits alike (deterministic, since the seed is fixed).
    assert!(waits.iter().skip(5).any(|w| w.abs_diff(waits[5]) > Duration::from_millis(10)));
    println!(
        "{} attempts over {:?} of virtual time; waits {waits:?}",
        attempts.len(),
        resumed - t0
    );
}

/// A session with nothing to say lives on heartbeats for ten virtual minutes: no link event, no
/// reconnect, still connected, and it delivers both ways afterwards. The test asserts the virtual
/// time that passed and prints the real time it took (no assertion on real time).
#[tokio::test(start_paused = true)]
async fn a_quiet_session_lives_ten_virtual_minutes_on_heartbeats() {
    let real = std::time::Instant::now();
    let start = Instant::now();
    let (net, connector) = Net::new();
    let client = connect_with(connector, Settings::seeded(config(), 4)).await.unwrap();
    let session = net.server.accept().await.unwrap();
    let events = client.clone();
    let watcher = tokio::spawn(async move { events.next_link_event().await });
    sleep(Duration::from_secs(600)).await;
    assert!(!watcher.is_finished(), "a link event: {:?}", watcher.await);
    watcher.abort();
    assert_eq!(client.state(), SessionState::Connected);
    assert_eq!((client.stats().reconnects, client.stats().disconnects), (0, 0));
    through(&client, &session, 0..5).await;
    session.send(Bytes::from_static(b"down")).await.unwrap();
    assert_eq!(client.recv().await.unwrap().payload, Bytes::from_static(b"down"));
    let closer = session.clone();
    let server_side = tokio::spawn(async move {
        while closer.recv().await.is_some() {}
        closer.ended().await
    });
    assert_eq!(client.close().await, End::Closed);
    assert_eq!(server_side.await.unwrap(), End::Closed);
    let virtual_elapsed = start.elapsed();
    assert!(virtual_elapsed >= Duration::from_secs(600), "{virtual_elapsed:?}");
    println!("{virtual_elapsed:?} of virtual time in {:?} of real time", real.elapsed());
}

/// A client whose every connection attempt is refused gives up exactly `session_timeout` (60
/// virtual seconds) after it started, handing back every message queued meanwhile, in order.
#[tokio::test(start_paused = true)]
async fn a_client_that_never_connects_ends_at_session_timeout_of_virtual_time() {
    let cfg = Config { first_connect: FirstConnect::Retry, ..config() };
    let (net, connector) = Net::new();
    let start = Instant::now();
    *net.refuse_until.lock().unwrap() = Some(start + Duration::from_secs(3600));
    let client = tether_tokio::start(connector, Settings::seeded(cfg.clone(), 5)).unwrap();
    for i in 0..5 {
        client.send(payload("c", i)).await.unwrap();
    }
    let end = client.ended().await;
    let after = start.elapsed();
    let handed_back: Vec<UnconfirmedMessage> =
        (0..5).map(|seq| UnconfirmedMessage { seq, payload: payload("c", seq) }).collect();
    assert_eq!(end, End::Lost { reason: Reason::SessionTimeout, unconfirmed: handed_back });
    assert!(
        (cfg.session_timeout..=cfg.session_timeout + Duration::from_millis(1)).contains(&after),
        "ended after {after:?}"
    );
    assert!(net.attempts.lock().unwrap().len() >= 20, "retried throughout");
}

/// A first connection that never opens (a black-holed SYN) fails after `handshake_timeout` of
/// virtual time with `TimedOut`, not after `session_timeout`.
#[tokio::test(start_paused = true)]
async fn a_first_connect_that_never_opens_times_out_after_handshake_timeout() {
    let cfg = config();
    let start = Instant::now();
    let connector = || std::future::pending::<io::Result<DuplexStream>>();
    let err = connect_with(connector, Settings::seeded(cfg.clone(), 6)).await.unwrap_err();
    let tether_tokio::Error::Connect(io) = &err else { panic!("{err:?}") };
    assert_eq!(io.kind(), io::ErrorKind::TimedOut, "{io}");
    assert!(err.to_string().contains("timed out after 5s"), "{err}");
    let after = start.elapsed();
    assert!(
        (cfg.handshake_timeout..=cfg.handshake_timeout + Duration::from_millis(1)).contains(&after),
        "gave up after {after:?} of virtual time"
    );
}
