//! The handle API over TCP: Sink/Stream, backpressure, close and abort semantics, batches,
//! manual acks, acks that must not wait for a timer, set-up errors, and a junk flood next to a
//! live session.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::task::{Context, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use futures_sink::Sink;
use tether_async::{AckMode, Config, End, Error, FirstConnect, Reason, SendError, Session};

use crate::support::{assert_all, config, payload, quiet_config, stream_through};
use crate::util::{join, yield_now};
use crate::Harness;

/// A session driven through its `Sink` (client) and `Stream` (server) implementations.
pub async fn sink_and_stream<H: Harness>(h: H) {
    h.clone()
        .within(30, async move {
            let server = h.bind(config().into()).await.unwrap();
            let addr = server.local_addr().unwrap();
            let reader = h.spawn(async move {
                let mut s = server.accept().await.unwrap();
                let mut got = Vec::new();
                while let Some(m) = poll_fn(|cx| Pin::new(&mut s).poll_next(cx)).await {
                    got.push(m.payload);
                }
                (got, s.ended().await)
            });
            let mut client = h.connect(addr, config().into()).await.unwrap();
            let n = 2_000;
            for i in 0..n {
                poll_fn(|cx| Pin::new(&mut client).poll_ready(cx)).await.unwrap();
                Pin::new(&mut client).start_send(payload("sink", i)).unwrap();
            }
            poll_fn(|cx| Pin::new(&mut client).poll_flush(cx)).await.unwrap();
            poll_fn(|cx| Pin::new(&mut client).poll_close(cx)).await.unwrap();
            let (got, end) = reader.await;
            assert_all(&got, "sink", n);
            assert_eq!(end, End::Closed);
        })
        .await;
}

/// The `Sink` under backpressure: a message `start_send` could not hand over is held and sent by
/// the next `poll_ready`/`poll_flush`, in order, none lost or repeated.
pub async fn sink_holds_a_message_through_backpressure<H: Harness>(h: H) {
    h.clone()
        .within(30, async move {
            let small = Config { max_unconfirmed_messages: 4, ..config() };
            let server = h.bind(config().into()).await.unwrap();
            let mut client = h.connect(server.local_addr().unwrap(), small.into()).await.unwrap();
            let s = server.accept().await.unwrap();
            let n = 300;
            let hr = h.clone();
            let reader = h.spawn(async move {
                let mut got = Vec::new();
                while let Some(m) = s.recv().await {
                    got.push(m.payload);
                    if got.len() % 16 == 0 {
                        hr.sleep(Duration::from_millis(1)).await;
                    }
                }
                got
            });
            let mut held = 0;
            for i in 0..n {
                poll_fn(|cx| Pin::new(&mut client).poll_ready(cx)).await.unwrap();
                Pin::new(&mut client).start_send(payload("bp", i)).unwrap();
                // Full now: the next `start_send` meets backpressure and the handle holds it.
                let mut cx = Context::from_waker(Waker::noop());
                held += usize::from(client.poll_send_ready(&mut cx, 16).is_pending());
            }
            assert!(held > 50, "the test met backpressure only {held} times");
            poll_fn(|cx| Pin::new(&mut client).poll_close(cx)).await.unwrap();
            assert_all(&reader.await, "bp", n);
        })
        .await;
}

/// `close` reports what was not delivered: the peer's application never takes the messages, so
/// they are never confirmed, and after `close_timeout` the close ends `Lost` with exactly those
/// (through `close()` and through the `Sink`'s `poll_close`).
pub async fn close_reports_the_messages_the_peer_never_took<H: Harness>(h: H) {
    h.clone()
        .within(30, async move {
            let closing = Config { close_timeout: Duration::from_millis(300), ..config() };
            let server = h.bind(config().into()).await.unwrap();
            let addr = server.local_addr().unwrap();
            let client = h.connect(addr, closing.clone().into()).await.unwrap();
            let _unread = server.accept().await.unwrap();
            for i in 0..5 {
                client.send(payload("c", i)).await.unwrap();
            }
            let end = client.close().await;
            let End::Lost { reason, unconfirmed } = end else {
                panic!("expected Lost, got {end:?}")
            };
            assert_eq!(reason, Reason::CloseTimeout);
            let got: Vec<Bytes> = unconfirmed.into_iter().map(|m| m.payload).collect();
            assert_eq!(got, (0..5).map(|i| payload("c", i)).collect::<Vec<_>>());

            let mut sink = h.connect(addr, closing.into()).await.unwrap();
            let _unread = server.accept().await.unwrap();
            poll_fn(|cx| Pin::new(&mut sink).poll_ready(cx)).await.unwrap();
            Pin::new(&mut sink).start_send(payload("s", 0)).unwrap();
            let closed = poll_fn(|cx| Pin::new(&mut sink).poll_close(cx)).await;
            let Err(Error::Ended(End::Lost { reason, unconfirmed })) = closed else {
                panic!("expected the Sink's close to fail as Lost, got {closed:?}")
            };
            assert_eq!(reason, Reason::CloseTimeout);
            assert_eq!(unconfirmed.len(), 1);
        })
        .await;
}

/// A close by an application that is not reading completes at once (not at `close_timeout`, a
/// minute: the test's 30 s bound would fire first): the close takes the peer's messages into the
/// handle, `recv` returns them afterwards, and both sides end `Closed`.
pub async fn close_takes_the_messages_the_application_has_not_read<H: Harness>(h: H) {
    h.clone()
        .within(30, async move {
            let cfg = Config { close_timeout: Duration::from_secs(60), ..config() };
            let server = h.bind(cfg.clone().into()).await.unwrap();
            let addr = server.local_addr().unwrap();
            let client = h.connect(addr, cfg.into()).await.unwrap();
            let s = server.accept().await.unwrap();
            for i in 0..50 {
                client.send(payload("c", i)).await.unwrap();
            }
            // Some of them are still on their way while the server closes.
            assert_eq!(s.close().await, End::Closed);
            let waiting = s.stats();
            let bytes: usize = (0..50).map(|i| payload("c", i).len()).sum();
            assert_eq!(
                (waiting.buffered_receive_messages, waiting.buffered_receive_bytes),
                (50, bytes as u64),
                "stats count what waits for recv"
            );
            let mut got = Vec::new();
            while let Some(m) = s.recv().await {
                got.push(m.payload);
            }
            assert_eq!(got, (0..50).map(|i| payload("c", i)).collect::<Vec<_>>());
            assert_eq!(s.stats().buffered_receive_messages, 0);
            assert_eq!(client.ended().await, End::Closed);
        })
        .await;
}

/// `send_many` and `recv_many` move whole batches in order; backpressure leaves exactly the
/// unsent messages queued; an error hands back the refused message and keeps the rest.
pub async fn batches_keep_order_backpressure_and_unsent_messages<H: Harness>(h: H) {
    h.clone()
        .within(30, async move {
            let small = Config { max_unconfirmed_messages: 50, ..config() };
            let server = h.bind(config().into()).await.unwrap();
            let client = h.connect(server.local_addr().unwrap(), small.into()).await.unwrap();
            let s = server.accept().await.unwrap();
            let mut queue: VecDeque<Bytes> = (0..120).map(|i| payload("b", i)).collect();
            // Nobody receives yet: 50 go out, the rest wait for confirmations.
            let blocked = h.timeout(Duration::from_millis(200), client.send_many(&mut queue));
            assert!(blocked.await.is_none(), "the batch waits on backpressure");
            assert_eq!(queue.len(), 70, "exactly the unsent messages stay queued");
            assert_eq!(queue.front(), Some(&payload("b", 50)));
            let receiver = h.spawn(async move {
                let mut got = Vec::new();
                let mut batch = Vec::new();
                while got.len() < 120 {
                    let n = s.recv_many(&mut batch, 16).await;
                    assert!((1..=16).contains(&n), "{n} messages in a batch of at most 16");
                    got.append(&mut batch);
                }
                (s, got)
            });
            assert_eq!(client.send_many(&mut queue).await.unwrap(), Some(119));
            assert!(queue.is_empty());
            assert_eq!(client.send_many(&mut queue).await.unwrap(), None, "empty batch");
            let (s, got) = receiver.await;
            let seqs: Vec<u64> = got.iter().map(|m| m.seq).collect();
            assert_eq!(seqs, (0..120).collect::<Vec<_>>());
            let payloads: Vec<Bytes> = got.into_iter().map(|m| m.payload).collect();
            assert_all(&payloads, "b", 120);

            // Once closing, the first message comes back in the error and the rest stay queued.
            let closer = client.clone();
            let closing = h.spawn(async move { closer.close().await });
            // (Until the close has started: backpressure can come first, as nobody reads.)
            while !matches!(client.try_send(payload("late", 0)), Err(SendError::Closing(_))) {
                yield_now().await;
            }
            let mut late: VecDeque<Bytes> = (0..3).map(|i| payload("late", i)).collect();
            match client.send_many(&mut late).await {
                Err(SendError::Closing(p)) => assert_eq!(p, payload("late", 0)),
                other => panic!("{other:?}"),
            }
            assert_eq!(late.len(), 2);
            // The peer takes what is left; then the session is closed and recv_many returns 0.
            let mut rest = Vec::new();
            while s.recv_many(&mut rest, 64).await > 0 {}
            assert_eq!(closing.await, End::Closed);
            assert_eq!(s.recv_many(&mut rest, 64).await, 0);
        })
        .await;
}

/// Dropping the last handle aborts the session; the peer sees `Lost(ApplicationAbort)`.
pub async fn dropping_the_last_handle_aborts<H: Harness>(h: H) {
    h.clone()
        .within(30, async move {
            let server = h.bind(config().into()).await.unwrap();
            let client = h.connect(server.local_addr().unwrap(), config().into()).await.unwrap();
            let s = server.accept().await.unwrap();
            let clone = client.clone();
            drop(client);
            // A clone keeps it alive.
            clone.send(Bytes::from_static(b"still here")).await.unwrap();
            assert_eq!(s.recv().await.unwrap().payload, Bytes::from_static(b"still here"));
            drop(clone);
            match s.ended().await {
                End::Lost { reason, .. } => assert_eq!(reason, Reason::ApplicationAbort),
                e => panic!("{e:?}"),
            }
            assert!(s.recv().await.is_none());
        })
        .await;
}

/// In manual-ack mode only what the application acked is confirmed to the sender.
pub async fn manual_ack_confirms_only_acked_messages<H: Harness>(h: H) {
    h.clone()
        .within(30, async move {
            let manual = Config { ack_mode: AckMode::Manual, ..config() };
            let server = h.bind(manual.into()).await.unwrap();
            let client = h.connect(server.local_addr().unwrap(), config().into()).await.unwrap();
            let s = server.accept().await.unwrap();
            for i in 0..10 {
                client.send(payload("m", i)).await.unwrap();
            }
            for i in 0..10 {
                assert_eq!(s.recv().await.unwrap().seq, i);
            }
            h.sleep(Duration::from_millis(100)).await;
            assert_eq!(client.stats().unconfirmed_messages, 10);
            s.ack(3).unwrap();
            while client.stats().unconfirmed_messages != 6 {
                h.sleep(Duration::from_millis(5)).await;
            }
            s.ack(9).unwrap();
            while client.stats().unconfirmed_messages != 0 {
                h.sleep(Duration::from_millis(5)).await;
            }
            assert!(client.ack(0).is_err(), "the client acks on receipt");
            assert_eq!(client.close().await, End::Closed);
        })
        .await;
}

/// A flood of junk connections beyond `max_handshakes` does not disturb an established session,
/// and the limits hold.
pub async fn junk_flood_does_not_disturb_established_sessions<H: Harness>(h: H) {
    h.clone()
        .within(30, async move {
            let cfg = Config { max_handshakes: 8, max_sessions: 2, ..config() };
            let server = h.bind(cfg.clone().into()).await.unwrap();
            let addr = server.local_addr().unwrap();
            let client = h.connect(addr, cfg.clone().into()).await.unwrap();
            let s = server.accept().await.unwrap();
            drop(h.spawn(async move {
                while let Some(m) = s.recv().await {
                    let _ = s.send(m.payload).await;
                }
            }));
            let mut junk = Vec::new();
            for i in 0..60u32 {
                // Plain blocking sockets: a loopback connect completes at once.
                let Ok(mut c) = TcpStream::connect(addr) else { continue };
                if i % 2 == 0 {
                    let _ = c.write_all(&[0xff; 200]);
                }
                junk.push(c);
                let p = Bytes::from(i.to_string());
                client.send(p.clone()).await.unwrap();
                assert_eq!(client.recv().await.unwrap().payload, p);
                assert!(server.counts().handshakes <= 8);
            }
            // The session table is bounded too: a third session is refused (max_sessions = 2).
            // Junk may still hold every handshake slot: the second client waits its turn.
            let retry = Config { first_connect: FirstConnect::Retry, ..cfg.clone() };
            let second = h.connect(addr, retry.into()).await.unwrap();
            let third = h.connect(addr, cfg.into()).await.map(|_| ());
            assert!(third.is_err(), "third session accepted beyond max_sessions");
            assert_eq!(server.counts().sessions, 2);
            drop(second);
            drop(junk);
            assert_eq!(client.stats().reconnects, 0);
            assert_eq!(client.close().await, End::Closed);
        })
        .await;
}

/// Misuse is refused before any I/O, with an error that names the problem; a session that ends
/// before its first handshake is reported as such.
pub async fn setup_errors_say_what_went_wrong<H: Harness>(h: H) {
    h.clone()
        .within(30, async move {
            let bad = Config { receive_window_messages: 0, ..config() };
            let err = h.bind(bad.clone().into()).await.unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{err:?}");
            assert!(err.to_string().contains("receive_window_messages"), "{err}");
            assert!(std::error::Error::source(&err).is_some(), "the cause is chained");
            let err =
                h.connect(SocketAddr::from(([127, 0, 0, 1], 9)), bad.into()).await.unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{err:?}");
        })
        .await;
}

/// A loopback address where nothing listens.
fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// The first connect fails at once with the OS's reason, not after `session_timeout` (a minute:
/// the test's 30 s bound would fire first); a server that is not tether ends the session with what
/// it did; `FirstConnect::Retry` keeps trying until `session_timeout`.
pub async fn the_first_connect_fails_fast_with_the_os_reason<H: Harness>(h: H) {
    h.clone()
        .within(30, async move {
            let long = Config { session_timeout: Duration::from_secs(60), ..config() };
            let err = h.connect(closed_port(), long.clone().into()).await.unwrap_err();
            let Error::Connect(io) = &err else { panic!("{err:?}") };
            assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused, "{io}");
            assert!(err.to_string().starts_with("could not connect: "), "{err}");
            assert!(std::error::Error::source(&err).is_some(), "the OS error is chained");

            // A listener that is not a tether server: it hangs up on every connection.
            let rude = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = rude.local_addr().unwrap();
            std::thread::spawn(move || {
                for conn in rude.incoming().take(1) {
                    drop(conn);
                }
            });
            match h.connect(addr, long.into()).await.unwrap_err() {
                Error::Ended(End::Lost { reason: Reason::TransportLost, unconfirmed }) => {
                    assert!(unconfirmed.is_empty())
                }
                other => panic!("{other:?}"),
            }

            // Retry: the client keeps trying until session_timeout, with nothing sent.
            let retry = Config {
                first_connect: FirstConnect::Retry,
                session_timeout: Duration::from_millis(300),
                ..config()
            };
            let err = h.connect(closed_port(), retry.into()).await.unwrap_err();
            match &err {
                Error::Ended(End::Lost { reason: Reason::SessionTimeout, unconfirmed }) => {
                    assert!(unconfirmed.is_empty())
                }
                other => panic!("{other:?}"),
            }
            assert!(err.to_string().starts_with("session lost"), "{err}");
        })
        .await;
}

/// Both windows full, a quiet spell, then an echo loop (take one, send one, which waits for the
/// peer's ack): every message taken must be acknowledged without waiting for a timer. With
/// heartbeats a minute apart, an ack that waits for the driver's next timer deadlocks the
/// exchange.
pub async fn acks_flow_when_both_windows_are_full_and_the_apps_echo<H: Harness>(h: H) {
    let tight = Config {
        max_unconfirmed_messages: 8,
        heartbeat_interval: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(180),
        ack_timeout: Duration::from_secs(180),
        ..config()
    };
    h.clone()
        .within(20, async move {
            let server = h.bind(tight.clone().into()).await.unwrap();
            let client = h.connect(server.local_addr().unwrap(), tight.into()).await.unwrap();
            let s = server.accept().await.unwrap();
            let echo = |session: Session, tag: &'static str| {
                let h = h.clone();
                async move {
                    for i in 0..8 {
                        session.send(payload(tag, i)).await.unwrap();
                    }
                    // Quiet: the delayed acks of what arrived have gone out; only timers are armed.
                    h.sleep(Duration::from_millis(300)).await;
                    for i in 8..208 {
                        session.recv().await.unwrap();
                        session.send(payload(tag, i)).await.unwrap();
                    }
                    session
                }
            };
            let (c, s) = join(echo(client, "c"), echo(s, "s")).await;
            let drain = |session: Session| async move {
                for _ in 0..8 {
                    session.recv().await.unwrap();
                }
                session
            };
            let (c, _s) = join(drain(c), drain(s)).await;
            assert_eq!(c.close().await, End::Closed);
        })
        .await;
}

/// A session that completes its handshake after the `Server` was dropped is aborted at once: the
/// Abort goes out in the pass after the event that decided it, not at the next timer.
pub async fn a_session_arriving_after_the_server_was_dropped_is_aborted_promptly<H: Harness>(h: H) {
    h.clone()
        .within(30, async move {
            let slow = quiet_config();
            let server = h.bind(slow.clone().into()).await.unwrap();
            let addr = server.local_addr().unwrap();
            let _first = h.connect(addr, slow.clone().into()).await.unwrap();
            let _kept = server.accept().await.unwrap(); // keeps the server's driver running
            drop(server);
            let start = std::time::Instant::now();
            let end = match h.connect(addr, slow.into()).await {
                Ok(late) => h.timeout(Duration::from_secs(8), late.ended()).await.unwrap(),
                Err(Error::Ended(end)) => end,
                Err(e) => panic!("{e:?}"),
            };
            // The server's abort, or (first connection, `FirstConnect::Fail`) the reset of the
            // connection it closed, if that overtakes the abort.
            let reason = match &end {
                End::Lost { reason, .. } => *reason,
                End::Closed => panic!("a session nobody accepts closed"),
            };
            assert!(matches!(reason, Reason::ApplicationAbort | Reason::TransportLost), "{end:?}");
            let took = start.elapsed();
            assert!(took < Duration::from_millis(1500), "aborted after {took:?}");
        })
        .await;
}

/// Acks that reopen half the receive window go out at once, without waiting for `ack_delay`,
/// when the application takes messages one at a time (the driver is not woken for every take).
pub async fn acks_reopen_a_half_empty_window_without_waiting_for_ack_delay<H: Harness>(h: H) {
    h.clone()
        .within(30, async move {
            let cfg = Config {
                receive_window_messages: 16,
                ack_delay: Duration::from_millis(500),
                ..quiet_config()
            };
            let server = h.bind(cfg.clone().into()).await.unwrap();
            let client = h.connect(server.local_addr().unwrap(), cfg.into()).await.unwrap();
            let session = server.accept().await.unwrap();
            // 10 windows: waiting for ack_delay even once would take 500 ms.
            let took = stream_through(&client, &session, 0..160).await;
            assert!(took < Duration::from_millis(400), "took {took:?}");
        })
        .await;
}

/// The sender's own unconfirmed limit (not the receive window) holds it back, at exactly
/// `ack_every` messages, and earlier traffic put the receiver's count out of step with the
/// core's: the ack for each batch must still go out when the application has taken it, not
/// `ack_delay` later.
pub async fn an_ack_due_on_the_last_message_a_sender_may_have_in_flight_goes_out_at_once<
    H: Harness,
>(
    h: H,
) {
    h.clone()
        .within(30, async move {
            let cfg = Config { ack_delay: Duration::from_millis(300), ..quiet_config() };
            let sender_cfg = Config { max_unconfirmed_messages: cfg.ack_every, ..cfg.clone() };
            let server = h.bind(cfg.into()).await.unwrap();
            let client = h.connect(server.local_addr().unwrap(), sender_cfg.into()).await.unwrap();
            let session = server.accept().await.unwrap();
            stream_through(&client, &session, 0..5).await;
            h.sleep(Duration::from_millis(600)).await;
            // 10 batches: waiting for ack_delay (300 ms) even once fails this.
            let took = stream_through(&client, &session, 5..5 + 10 * 32).await;
            assert!(took < Duration::from_millis(250), "took {took:?}");
        })
        .await;
}
