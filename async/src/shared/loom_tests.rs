//! Loom model checks of the handle/driver interleavings that matter. Run with
//! `RUSTFLAGS="--cfg tether_loom" cargo test -p tether-async --release --lib loom`.
//!
//! The driver's side is played by a loom thread calling the same `Inner` methods the real driver
//! calls; the core is real (a client `Session` after an in-memory handshake with an `Endpoint`).

use std::future::poll_fn;
use std::task::{Context, Waker};

use bytes::{Bytes, BytesMut};
use tether_core::{AckMode, Config, ConnId, Endpoint, Event, Instant, Reason, SendError, Transmit};

use super::*;

const CONN: ConnId = ConnId(1);

/// The models never arm a timer or spawn: only the clock is read.
#[derive(Debug)]
struct StdClock;

impl Runtime for StdClock {
    fn now(&self) -> std::time::Instant {
        std::time::Instant::now()
    }

    fn new_timer(&self, _: std::time::Instant) -> std::pin::Pin<Box<dyn crate::runtime::Timer>> {
        unreachable!("the models arm no timer")
    }

    fn spawn(&self, _: crate::runtime::Task) {
        unreachable!("the models spawn nothing")
    }
}

/// A client session after its handshake, with message 0 sent and unconfirmed (the limit is one
/// message, so the next send meets backpressure), and the server's bytes acknowledging it.
fn fixture() -> (Arc<Shared>, Bytes) {
    fixture_with_limit(1)
}

/// [`fixture`] with room for `limit` unconfirmed messages.
fn fixture_with_limit(limit: u32) -> (Arc<Shared>, Bytes) {
    let clock = Clock::new(std::sync::Arc::new(StdClock));
    let t0 = clock.now();
    let config = Config { max_unconfirmed_messages: limit, ..Config::default() };
    let mut client =
        tether_core::Session::client(Config { ack_mode: AckMode::Manual, ..config.clone() }, 1, t0)
            .unwrap();
    let mut server = Endpoint::new(config.clone(), [7; 32], t0).unwrap();
    let mut buf = BytesMut::new();
    assert!(client.poll_connect(t0));
    client.handle_connected(t0, CONN);
    server.handle_connected(t0, CONN);
    client.send(t0, Bytes::from_static(b"m0")).unwrap();
    // Hello, Welcome, then the data frame.
    for _ in 0..2 {
        while let Some(Transmit::Write(_)) = client.poll_transmit(t0, &mut buf) {
            server.handle_input(t0, CONN, buf.split().freeze());
        }
        while let Some(Transmit::Write(_)) = server.poll_transmit(t0, &mut buf) {
            client.handle_input(t0, CONN, buf.split().freeze());
        }
    }
    while client.poll_event().is_some() {}
    // The server application takes message 0; its delayed ack goes out.
    while let Some((_, e)) = server.poll_event() {
        assert!(matches!(e, Event::Connected | Event::Messages(_)));
    }
    let later = Instant::from_nanos(t0.as_nanos() + config.ack_delay.as_nanos() as u64 + 1);
    server.handle_timeout(later);
    let mut ack = BytesMut::new();
    while let Some(Transmit::Write(_)) = server.poll_transmit(later, &mut buf) {
        ack.extend_from_slice(&buf.split());
    }
    assert!(!ack.is_empty());
    assert_eq!(client.can_send(2), limit > 1);
    let shared = Shared::new(Core::Client(Box::new(client)), false, clock);
    shared.lock().slots.insert(CLIENT_KEY, Slot::new(1, tracing::Span::none()));
    (shared, ack.freeze())
}

/// One driver pass without I/O: feed `input`, drain transmits and events, wake.
fn driver_pass(shared: &Shared, input: Option<Bytes>) -> Vec<(Transmit, Bytes)> {
    driver_pass_waking(shared, input, Waker::noop())
}

/// [`driver_pass`] by a driver that `waker` wakes.
fn driver_pass_waking(
    shared: &Shared,
    input: Option<Bytes>,
    waker: &Waker,
) -> Vec<(Transmit, Bytes)> {
    let mut wake = Vec::new();
    let mut out = Vec::new();
    let mut scratch = BytesMut::new();
    let mut inner = shared.lock();
    let now = inner.advance(shared.clock.now());
    inner.begin_pass(waker);
    shared.apply_posted(&mut inner, waker, &mut Vec::new());
    if let Some(bytes) = input {
        let mut buf = BytesMut::from(&bytes[..]);
        inner.core.handle_input_buf(now, CONN, &mut buf);
    }
    inner.drain_transmits(now, &mut scratch, |t, b| {
        out.push((t, b.split().freeze()));
        true
    });
    inner.drain_events(now, &mut wake);
    drop(inner);
    for w in wake {
        w.wake();
    }
    out
}

/// A send blocked on backpressure is woken by the confirmation, whichever runs first.
#[test]
fn loom_send_racing_backpressure_release() {
    loom::model(|| {
        let (shared, ack) = fixture();
        let driver = shared.clone();
        let t = loom::thread::spawn(move || {
            driver_pass(&driver, Some(ack));
        });
        let mut payload = Some(Bytes::from_static(b"m1"));
        let r = loom::future::block_on(poll_fn(|cx| {
            shared.poll_send(CLIENT_KEY, Some((cx, 0)), &mut payload)
        }));
        assert_eq!(r, Ok(1));
        t.join().unwrap();
        let batch = Mutex::new(shared.new_batch(CLIENT_KEY));
        assert_eq!(shared.stats(CLIENT_KEY, &batch).messages_sent, 2);
    });
}

/// A send racing a close is either accepted before it (and then part of what the close waits
/// for) or refused as `Closing`: never lost in between.
#[test]
fn loom_close_racing_send() {
    loom::model(|| {
        let (shared, ack) = fixture();
        driver_pass(&shared, Some(ack));
        let closer = shared.clone();
        let t = loom::thread::spawn(move || {
            let mut cx = Context::from_waker(Waker::noop());
            let batch = Mutex::new(closer.new_batch(CLIENT_KEY));
            assert!(closer.poll_close(CLIENT_KEY, &batch, (&mut cx, 0)).is_pending());
        });
        let r = shared.poll_send(CLIENT_KEY, None, &mut Some(Bytes::from_static(b"m1")));
        t.join().unwrap();
        let stats = shared.stats(CLIENT_KEY, &Mutex::new(shared.new_batch(CLIENT_KEY)));
        match r {
            std::task::Poll::Ready(Ok(1)) => assert_eq!(stats.messages_sent, 2),
            std::task::Poll::Ready(Err(SendError::Closing(p))) => {
                assert_eq!(&p[..], b"m1");
                assert_eq!(stats.messages_sent, 1);
            }
            other => panic!("unexpected {other:?}"),
        }
        // Sends after the close are refused.
        let late = shared.poll_send(CLIENT_KEY, None, &mut Some(Bytes::from_static(b"m2")));
        assert!(matches!(late, std::task::Poll::Ready(Err(SendError::Closing(_)))));
    });
}

/// The last handle is dropped while the driver is in the middle of a pass: the session is aborted
/// exactly once, the end is recorded with the unconfirmed message, and the driver sees it finished.
#[test]
fn loom_handle_dropped_while_driver_mid_write() {
    loom::model(|| {
        let (shared, _ack) = fixture();
        let driver = shared.clone();
        let t = loom::thread::spawn(move || driver_pass(&driver, None));
        shared.drop_handle(CLIENT_KEY, 0);
        let mut written = t.join().unwrap();
        written.extend(driver_pass(&shared, None));
        // The abort reached the wire exactly once, as the connection's last write.
        let closes = written.iter().filter(|(t, _)| matches!(t, Transmit::Close(_))).count();
        assert_eq!(closes, 1);
        let inner = shared.lock();
        assert!(inner.client_finished());
        match inner.end_of(CLIENT_KEY) {
            Some(End::Lost { reason: Reason::ApplicationAbort, unconfirmed }) => {
                assert_eq!(unconfirmed.len(), 1);
                assert_eq!(&unconfirmed[0].payload[..], b"m0");
            }
            other => panic!("unexpected end {other:?}"),
        }
    });
}

/// Counts the wake-ups of a driver (a plain counter: only read after the threads joined).
struct Wakes(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Wakes {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A send racing a driver pass is never stranded: the pass writes it, or the send wakes the
/// driver for another pass. Here a first send has already woken the driver (its kick is pending),
/// so the second one must not count on that kick unless the pass it started carries it too.
#[test]
fn loom_send_racing_a_driver_pass_is_written_or_wakes_the_driver() {
    loom::model(|| {
        let (shared, ack) = fixture_with_limit(3);
        let wakes = std::sync::Arc::new(Wakes(std::sync::atomic::AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        // A first pass registers the driver's waker and takes the ack: room for m1 and m2.
        driver_pass_waking(&shared, Some(ack), &waker);
        let m1 = shared.poll_send(CLIENT_KEY, None, &mut Some(Bytes::from_static(b"m1")));
        assert_eq!(m1, std::task::Poll::Ready(Ok(1)));
        let woken_before = wakes.0.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(woken_before, 1, "the first send wakes the driver");
        let driver = shared.clone();
        let t = loom::thread::spawn(move || driver_pass_waking(&driver, None, &waker));
        let m2 = shared.poll_send(CLIENT_KEY, None, &mut Some(Bytes::from_static(b"m2")));
        assert_eq!(m2, std::task::Poll::Ready(Ok(2)));
        let written = t.join().unwrap();
        let carried = written.iter().any(|(_, bytes)| bytes.windows(2).any(|w| w == b"m2"));
        let woken = wakes.0.load(std::sync::atomic::Ordering::Relaxed) > woken_before;
        assert!(carried || woken, "m2 neither written by the pass nor announced to the driver");
    });
}

/// A client session after its handshake (acknowledging every message at once: `ack_every` 1)
/// and the server's bytes carrying messages "r0", "r1" and "r2" to it, not yet fed.
fn fixture_receiving() -> (Arc<Shared>, Bytes) {
    let clock = Clock::new(std::sync::Arc::new(StdClock));
    let t0 = clock.now();
    let config = Config { ack_every: 1, ..Config::default() };
    let mut client =
        tether_core::Session::client(Config { ack_mode: AckMode::Manual, ..config.clone() }, 1, t0)
            .unwrap();
    let mut server = Endpoint::new(config, [7; 32], t0).unwrap();
    let mut buf = BytesMut::new();
    assert!(client.poll_connect(t0));
    client.handle_connected(t0, CONN);
    server.handle_connected(t0, CONN);
    // Hello, then Welcome.
    while let Some(Transmit::Write(_)) = client.poll_transmit(t0, &mut buf) {
        server.handle_input(t0, CONN, buf.split().freeze());
    }
    let mut id = None;
    while let Some((sid, e)) = server.poll_event() {
        assert!(matches!(e, Event::Connected));
        id = Some(sid);
    }
    let s = server.session_mut(id.expect("the server accepted the session")).unwrap();
    s.send(t0, Bytes::from_static(b"r0")).unwrap();
    s.send(t0, Bytes::from_static(b"r1")).unwrap();
    s.send(t0, Bytes::from_static(b"r2")).unwrap();
    let mut input = BytesMut::new();
    while let Some(Transmit::Write(_)) = server.poll_transmit(t0, &mut buf) {
        input.extend_from_slice(&buf.split());
    }
    let shared = Shared::new(Core::Client(Box::new(client)), false, clock);
    shared.lock().slots.insert(CLIENT_KEY, Slot::new(1, tracing::Span::none()));
    (shared, input.freeze())
}

/// A message taken from the handles' batch (without the session's lock) while a driver pass runs
/// is acknowledged: by that pass, or the take posts the session and wakes the driver for another.
/// Here an earlier take has already posted the session, so the pass looks at it while the take
/// runs: a take that counted on that post although the pass had already read the word (or a pass
/// that cleared the post apart from reading it) would leave the message unacknowledged, and the
/// peer's window closed until some later event.
#[test]
fn loom_take_racing_a_driver_pass_is_acknowledged_or_wakes_the_driver() {
    loom::model(|| {
        let (shared, input) = fixture_receiving();
        let wakes = std::sync::Arc::new(Wakes(std::sync::atomic::AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        driver_pass_waking(&shared, Some(input), &waker);
        let batch = Mutex::new(shared.new_batch(CLIENT_KEY));
        let mut cx = Context::from_waker(Waker::noop());
        let mut recv = || match shared.poll_recv(CLIENT_KEY, &batch, Some((&mut cx, 0))) {
            std::task::Poll::Ready(Some(m)) => m,
            other => panic!("unexpected {other:?}"),
        };
        // The first take moves every message into the batch and acknowledges r0 under the
        // lock; the second takes r1 from the batch and posts the session.
        assert_eq!(&recv().payload[..], b"r0");
        assert_eq!(shared.lock().taken_acked, Some(0));
        let woken_at_r0 = wakes.0.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(&recv().payload[..], b"r1");
        let woken_before = wakes.0.load(std::sync::atomic::Ordering::Relaxed);
        assert!(woken_before > woken_at_r0, "the first take from the batch wakes the driver");
        let driver = shared.clone();
        let t = loom::thread::spawn(move || driver_pass_waking(&driver, None, &waker));
        assert_eq!(&recv().payload[..], b"r2");
        t.join().unwrap();
        let woken = wakes.0.load(std::sync::atomic::Ordering::Relaxed) > woken_before;
        if !woken {
            assert_eq!(shared.lock().taken_acked, Some(2), "r2 neither acknowledged nor posted");
        }
        // The pass it asked for (or any later one) acknowledges everything taken.
        driver_pass(&shared, None);
        assert_eq!(shared.lock().taken_acked, Some(2));
    });
}

/// A close draining the inbox races a `recv` of a clone sharing the batch: every message is
/// taken exactly once, in order, and the close has acknowledged all of them.
#[test]
fn loom_close_draining_racing_recv_takes_each_message_once() {
    loom::model(|| {
        let (shared, input) = fixture_receiving();
        driver_pass(&shared, Some(input));
        let batch = std::sync::Arc::new(Mutex::new(shared.new_batch(CLIENT_KEY)));
        let (closer, closer_batch) = (shared.clone(), batch.clone());
        let t = loom::thread::spawn(move || {
            let mut cx = Context::from_waker(Waker::noop());
            assert!(closer.poll_close(CLIENT_KEY, &closer_batch, (&mut cx, 1)).is_pending());
        });
        let mut cx = Context::from_waker(Waker::noop());
        let mut got = Vec::new();
        if let std::task::Poll::Ready(Some(m)) =
            shared.poll_recv(CLIENT_KEY, &batch, Some((&mut cx, 0)))
        {
            got.push(m.payload);
        }
        t.join().unwrap();
        while let std::task::Poll::Ready(Some(m)) = shared.poll_recv(CLIENT_KEY, &batch, None) {
            got.push(m.payload);
        }
        assert_eq!(got, [&b"r0"[..], b"r1", b"r2"]);
        driver_pass(&shared, None);
        assert_eq!(shared.lock().taken_acked, Some(2));
    });
}
