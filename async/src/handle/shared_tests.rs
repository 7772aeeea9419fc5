//! The shared state as the handles see it: waits registered once per waiter and task and all
//! woken, link events, ends, statistics and readiness, over the in-memory pipes of
//! `test_runtime`.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;

use super::inbox_holds;
use crate::test_runtime::{pair, server_and_dialer, within};
use crate::{Config, End, LinkEvent, Reason, SessionState};

/// A waker that counts its wake-ups.
#[derive(Default)]
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting() -> (Arc<Count>, Waker) {
    let count = Arc::new(Count::default());
    (count.clone(), Waker::from(count))
}

/// A waiter polling again registers no second wait; two waiters of one task get one each, and
/// both are woken by the message that arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_is_registered_once_per_waiter_and_task() {
    let (server, client) = pair(Config::default(), Config::default()).await;
    let a = server.accept().await.unwrap();
    let b = a.clone();
    let (woken, waker) = counting();
    let mut cx = Context::from_waker(&waker);
    for _ in 0..3 {
        assert!(a.poll_recv(&mut cx).is_pending());
    }
    assert_eq!(a.shared.waits(a.key)[0], 1, "one waiter polled three times");
    assert!(b.poll_recv(&mut cx).is_pending());
    assert_eq!(a.shared.waits(a.key)[0], 2, "a second waiter of the same task");
    client.send(Bytes::from_static(b"one")).await.unwrap();
    within(
        async {
            while a.shared.waits(a.key)[0] > 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        },
        "the message wakes both waits",
    )
    .await;
    assert!(woken.0.load(Ordering::SeqCst) >= 1, "the task was woken");
    let mut recv = pin!(b.recv());
    assert!(matches!(recv.as_mut().poll(&mut cx), Poll::Ready(Some(_))));
}

/// Dropping a clone, of a client's handle or of an accepted session, leaves the session running;
/// the last handle dropped aborts it, and the peer learns it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_last_handle_dropped_aborts_the_session() {
    let (server, client) = pair(Config::default(), Config::default()).await;
    let accepted = server.accept().await.unwrap();
    drop(accepted.clone());
    drop(client.clone());
    client.send(Bytes::from_static(b"there")).await.unwrap();
    accepted.send(Bytes::from_static(b"back")).await.unwrap();
    assert_eq!(within(accepted.recv(), "client to server").await.unwrap().payload, "there");
    assert_eq!(within(client.recv(), "server to client").await.unwrap().payload, "back");
    assert_eq!(accepted.state(), SessionState::Connected);
    assert_eq!(client.state(), SessionState::Connected);
    drop(accepted);
    let end = within(client.ended(), "the peer learns of the abort").await;
    assert!(matches!(end, End::Lost { reason: Reason::ApplicationAbort, .. }), "{end:?}");
    assert!(!end.is_closed());
    let End::Lost { unconfirmed, .. } = &end else { unreachable!() };
    let shown =
        format!("session lost (ApplicationAbort (48)); {} messages unconfirmed", unconfirmed.len());
    assert_eq!(end.to_string(), shown);
}

/// `recv_many` takes at most `limit` messages, from the handles' batch first and then from the
/// inbox, in order; `stats` counts both as buffered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_many_takes_at_most_its_limit_from_the_batch_then_the_inbox() {
    let (server, client) = pair(Config::default(), Config::default()).await;
    let session = server.accept().await.unwrap();
    for i in 0..4u8 {
        client.send(Bytes::from(vec![i; 10])).await.unwrap();
    }
    inbox_holds(&session, 4).await;
    // `recv` takes the inbox into the batch: 3 wait there.
    assert_eq!(session.recv().await.unwrap().payload, Bytes::from(vec![0; 10]));
    for i in 4..14u8 {
        client.send(Bytes::from(vec![i; 100])).await.unwrap();
    }
    inbox_holds(&session, 10).await;
    let stats = session.stats();
    assert_eq!(stats.buffered_receive_messages, 3 + 10);
    assert_eq!(stats.buffered_receive_bytes, 3 * 10 + 10 * 100);
    let mut out = Vec::new();
    assert_eq!(within(session.recv_many(&mut out, 5), "recv_many").await, 5);
    let first: Vec<u8> = out.iter().map(|m| m.payload[0]).collect();
    assert_eq!(first, [1, 2, 3, 4, 5], "3 from the batch, then 2 from the inbox");
    assert_eq!(session.stats().buffered_receive_messages, 8);
    out.clear();
    assert_eq!(within(session.recv_many(&mut out, 100), "recv_many").await, 8);
    assert_eq!(out.last().map(|m| m.payload[0]), Some(13));
}

/// Link events wait for the application in order, every one of them (up to the bound of 64),
/// however many come before it looks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_events_queue_up_in_order_until_taken() {
    let fast = Config {
        reconnect_backoff_initial: Duration::from_millis(1),
        reconnect_backoff_max: Duration::from_millis(5),
        ..Config::default()
    };
    let (server, client, cut) = crate::test_runtime::cuttable_pair(Config::default(), fast).await;
    let accepted = server.accept().await.unwrap();
    for round in 0..2u8 {
        cut.cut();
        // Resumed: a message sent now arrives.
        client.send(Bytes::from(vec![round])).await.unwrap();
        let got = within(accepted.recv(), "delivered after the resume").await.unwrap();
        assert_eq!(got.payload, Bytes::from(vec![round]));
        within(
            async {
                loop {
                    let links = client.shared.lock().slots[&client.key].links_len();
                    if links >= 2 * (usize::from(round) + 1) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            },
            "the client reports the cut and the resume",
        )
        .await;
    }
    for _ in 0..2 {
        let lost = within(client.next_link_event(), "a link event").await;
        assert!(matches!(lost, Some(LinkEvent::Disconnected { .. })), "{lost:?}");
        let back = within(client.next_link_event(), "a link event").await;
        assert_eq!(back, Some(LinkEvent::Resumed));
    }
}

/// A client's driver finishes once its session has ended: it lets go of the shared state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_driver_finishes_when_its_session_ends() {
    let (server, client) = pair(Config::default(), Config::default()).await;
    let accepted = server.accept().await.unwrap();
    let closing = tokio::spawn(async move { accepted.close().await });
    let end = within(client.close(), "the close").await;
    assert_eq!(end, End::Closed);
    assert!(end.is_closed());
    assert_eq!(end.to_string(), "session closed");
    within(
        async {
            while Arc::strong_count(&client.shared) > 1 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        },
        "the driver drops its reference to the shared state",
    )
    .await;
    assert_eq!(within(closing, "the server's close").await.unwrap(), End::Closed);
}

/// `poll_send_ready` is ready while there is room; while the unconfirmed buffer is full it waits
/// for any message the size limit allows, up to exactly `max_message_size`, and is ready at once
/// for a larger one (waiting cannot help it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_readiness_follows_room_and_the_size_limit() {
    let cfg = Config { max_unconfirmed_messages: 2, ..Config::default() };
    let (server, client) = pair(Config::default(), cfg).await;
    let _unread = server.accept().await.unwrap();
    let (_, waker) = counting();
    let mut cx = Context::from_waker(&waker);
    let max = Config::default().max_message_size as usize;
    assert!(client.poll_send_ready(&mut cx, 1).is_ready(), "room");
    assert!(client.poll_send_ready(&mut cx, max).is_ready(), "room for the largest message");
    for i in 0..2u8 {
        client.send(Bytes::from(vec![i])).await.unwrap();
    }
    assert!(client.poll_send_ready(&mut cx, 1).is_pending(), "full");
    assert!(client.poll_send_ready(&mut cx, max).is_pending(), "the largest message waits too");
    assert!(client.poll_send_ready(&mut cx, max + 1).is_ready(), "too large: no use waiting");
}

/// A close with automatic acks takes at most one receive window (the configured one, not the
/// default) of the peer's unread messages into the handles' batch, acknowledging them; beyond it
/// the close waits for the application, and completes once it took them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_holds_at_most_the_configured_receive_window_for_the_application() {
    let small = Config { receive_window_messages: 4, ..Config::default() };
    let (server, client) = pair(small, Config::default()).await;
    let session = server.accept().await.unwrap();
    for i in 0..12u8 {
        client.send(Bytes::from(vec![i])).await.unwrap();
    }
    inbox_holds(&session, 4).await;
    let closer = session.clone();
    let close = tokio::spawn(async move { closer.close().await });
    // The close takes the first 4 and acknowledges them; the next 4 arrive and wait.
    let acked = async {
        while client.stats().unconfirmed_messages > 8 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    within(acked, "the first window is acknowledged").await;
    inbox_holds(&session, 4).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!close.is_finished(), "the close took more than one receive window");
    assert_eq!(client.stats().unconfirmed_messages, 8);
    assert_eq!(session.stats().buffered_receive_messages, 8);
    for i in 0..12u8 {
        assert_eq!(session.recv().await.unwrap().payload, Bytes::from(vec![i]));
    }
    assert_eq!(within(close, "the close completes").await.unwrap(), End::Closed);
}

/// A session whose handshake completes after the application dropped its `Server` cannot be
/// accepted: it is aborted, and the abort goes out in the same driver pass, not at the driver's
/// next timer (virtual time, paused: the slow timers would show as seconds).
#[tokio::test(start_paused = true)]
async fn a_session_arriving_after_the_acceptor_is_gone_is_aborted_at_once() {
    let slow = Config {
        heartbeat_interval: crate::Duration::from_secs(10),
        idle_timeout: crate::Duration::from_secs(40),
        ..Config::default()
    };
    let (server, dialer) = server_and_dialer(slow.clone(), usize::MAX, None);
    let first = dialer.connect(slow.clone()).await.unwrap();
    // An accepted session keeps the server's driver running once the acceptor is gone.
    let kept = server.accept().await.unwrap();
    drop(server);
    let start = tokio::time::Instant::now();
    if let Ok(late) = dialer.connect(slow).await {
        let end = within(late.ended(), "the late session ends").await;
        assert!(matches!(end, End::Lost { .. }), "{end:?}");
    }
    let took = start.elapsed();
    assert!(took < Duration::from_secs(1), "the abort waited {took:?} for the driver's timer");
    assert_eq!(kept.state(), SessionState::Connected);
    drop(first);
}

/// The client's end of a pipe that writes about 300 KiB of standalone acks (repeating what the
/// client advertised) after each of the client's writes but its first (the `Hello`): a peer that
/// spaces its messages a read buffer apart.
struct SpacedOut {
    inner: Box<dyn crate::runtime::ByteStream>,
    writes: usize,
    /// What goes after each write ([`ack_padding`]).
    padding: Vec<u8>,
}

/// Acks of a client whose default window stands: nothing received, nothing acknowledged.
fn ack_padding() -> Vec<u8> {
    use tether_core::wire::{Frame, Positions};
    let c = Config::default();
    let ack = Frame::Ack(Positions {
        received: 0,
        acked: 0,
        max_seq: u64::from(c.receive_window_messages),
        max_bytes: c.receive_window_bytes,
    });
    let mut one = bytes::BytesMut::new();
    ack.encode(&mut one);
    one.iter().copied().cycle().take(one.len() * (300 * 1024 / one.len())).collect()
}

impl crate::runtime::ByteStream for SpacedOut {
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut bytes::BytesMut,
    ) -> Poll<std::io::Result<usize>> {
        self.inner.poll_read(cx, buf)
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.poll_write_vectored(cx, &[std::io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        // The pipe takes every byte of a write, and the driver writes whole frames.
        let written = std::task::ready!(self.inner.poll_write_vectored(cx, bufs))?;
        self.writes += 1;
        if self.writes > 1 {
            assert!(self.inner.poll_write(cx, &self.padding).is_ready());
        }
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.inner.poll_flush(cx)
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.inner.poll_close(cx)
    }
}

/// A peer spaces small messages about 300 KiB apart with other frames, and the application does
/// not read: the messages waiting do not each keep a read buffer allocated. The inbox's estimate
/// of the read memory it holds stays within its cap (without the cap it would pass 9 MiB here),
/// and every message arrives intact once the application reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_spaced_a_read_buffer_apart_do_not_each_hold_one() {
    let server_config = Config {
        max_message_size: 64 * 1024,
        max_frame_size: 64 * 1024 + 64,
        receive_window_bytes: 1024 * 1024,
        max_unconfirmed_bytes: 1024 * 1024,
        ..Config::default()
    };
    let (server, dialer) = server_and_dialer(server_config.clone(), usize::MAX, None);
    let client = dialer
        .connect_wrapped(Config::default(), |near| {
            Box::new(SpacedOut { inner: near, writes: 0, padding: ack_padding() })
        })
        .await
        .unwrap();
    let session = server.accept().await.unwrap();
    let n = 32u8;
    for i in 0..n {
        client.send(Bytes::from(vec![i; 100])).await.unwrap();
        // One message per write: wait until the server has it.
        inbox_holds(&session, usize::from(i) + 1).await;
    }
    let held = session.shared.lock().slots.get(&session.key).unwrap().inbox_held_memory();
    let cap = crate::inbox::held_memory_cap(server_config.receive_window_bytes);
    assert!(held <= cap, "{held} bytes held, cap {cap}");
    for i in 0..n {
        let m = session.recv().await.unwrap();
        assert_eq!((m.seq, m.payload), (u64::from(i), Bytes::from(vec![i; 100])));
    }
    let held = session.shared.lock().slots.get(&session.key).unwrap().inbox_held_memory();
    assert_eq!(held, 0, "nothing waits");
}
