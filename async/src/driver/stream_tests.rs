//! The driver over streams that behave as real ones may: reads cut short, writes held until a
//! flush, a stream that takes no bytes, a socket that is full for a while, the shutdown of a
//! refused connection, and small writes for many connections in one pass. Over the in-memory pipes of `test_runtime`, in paused time, so a driver
//! that waits for a timer instead of going on shows as time passing.

use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;

use super::LINGER;
use crate::runtime::ByteStream;
use crate::test_runtime::{server_and_clients, server_and_dialer, within};
use crate::Config;

/// Delegates everything to `$inner` except the methods given.
macro_rules! delegate_rest {
    (read) => {
        fn poll_read(
            &mut self,
            cx: &mut Context<'_>,
            buf: &mut BytesMut,
        ) -> Poll<io::Result<usize>> {
            self.inner.poll_read(cx, buf)
        }
    };
    (write) => {
        fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(buf)])
        }

        fn is_write_vectored(&self) -> bool {
            true
        }
    };
    (flush) => {
        fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.inner.poll_flush(cx)
        }
    };
    (close) => {
        fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.inner.poll_close(cx)
        }
    };
}

/// A connection whose reads return 64 bytes at most delivers a 256 KiB message without waiting
/// for any timer: a pass that used up its reads comes back for the rest by itself (a stream that
/// returned data has registered no wake-up for more).
#[tokio::test(start_paused = true)]
async fn reads_cut_short_go_on_without_a_timer() {
    let (server, mut clients) =
        server_and_clients(Config::default(), Config::default(), 1, 64).await;
    let client = clients.remove(0);
    let session = server.accept().await.unwrap();
    let start = Instant::now();
    let payload = Bytes::from((0..256 * 1024).map(|i| i as u8).collect::<Vec<u8>>());
    client.send(payload.clone()).await.unwrap();
    assert!(session.recv().await.unwrap().payload == payload, "damaged");
    assert_eq!(start.elapsed(), Duration::ZERO, "the rest of the message waited for a timer");
}

/// Sends only what is flushed, as TLS and buffered writers do.
struct SendsOnFlush {
    inner: Box<dyn ByteStream>,
    held: Vec<u8>,
}

impl ByteStream for SendsOnFlush {
    delegate_rest!(read);
    delegate_rest!(write);

    fn poll_write_vectored(
        &mut self,
        _: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        bufs.iter().for_each(|b| self.held.extend_from_slice(b));
        Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()))
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            let n = ready!(self.inner.poll_write(cx, &self.held))?;
            self.held.drain(..n);
        }
        self.inner.poll_flush(cx)
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_flush(cx))?;
        self.inner.poll_close(cx)
    }
}

/// A session runs over a stream that sends only what is flushed: the driver flushes what it
/// wrote.
#[tokio::test(start_paused = true)]
async fn a_stream_that_sends_on_flush_carries_the_session() {
    let (server, dialer) = server_and_dialer(Config::default(), usize::MAX, None);
    let client = dialer
        .connect_wrapped(Config::default(), |near| {
            Box::new(SendsOnFlush { inner: near, held: Vec::new() })
        })
        .await
        .expect("the Hello was flushed");
    let session = server.accept().await.unwrap();
    client.send(Bytes::from_static(b"ping")).await.unwrap();
    assert_eq!(&session.recv().await.unwrap().payload[..], b"ping");
    session.send(Bytes::from_static(b"pong")).await.unwrap();
    assert_eq!(&client.recv().await.unwrap().payload[..], b"pong");
}

/// A vectored write to the stream given.
type Write = fn(&mut dyn ByteStream, &mut Context<'_>, &[IoSlice<'_>]) -> Poll<io::Result<usize>>;

/// Delegates to `inner`, except that its writes go through `write`.
struct OnWrite {
    inner: Box<dyn ByteStream>,
    write: Write,
}

impl ByteStream for OnWrite {
    delegate_rest!(read);
    delegate_rest!(write);
    delegate_rest!(flush);
    delegate_rest!(close);

    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        (self.write)(&mut *self.inner, cx, bufs)
    }
}

/// Takes no bytes: `Ok(0)`, a stream that can take no more.
fn takes_nothing(
    _: &mut dyn ByteStream,
    _: &mut Context<'_>,
    _: &[IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    Poll::Ready(Ok(0))
}

/// A stream that takes no bytes is a failed connection, not one to write to again and again:
/// the first connect over it fails.
#[tokio::test(start_paused = true)]
async fn a_stream_that_takes_no_bytes_fails_the_connect() {
    let (_server, dialer) = server_and_dialer(Config::default(), usize::MAX, None);
    let connect = dialer.connect_wrapped(Config::default(), |near| {
        Box::new(OnWrite { inner: near, write: takes_nothing })
    });
    assert!(within(connect, "the connect ended").await.is_err(), "connected over it");
}

/// Writes `full_for_a_while` still refuses: `Pending`, waking the task at once, as a socket
/// that drains at once would (only the test below sets it).
static FULL_FOR: AtomicUsize = AtomicUsize::new(0);

/// A socket that is full for the next `FULL_FOR` writes, then takes everything.
fn full_for_a_while(
    inner: &mut dyn ByteStream,
    cx: &mut Context<'_>,
    bufs: &[IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    if FULL_FOR.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
        cx.waker().wake_by_ref();
        return Poll::Pending;
    }
    inner.poll_write_vectored(cx, bufs)
}

/// A client whose socket was full while it had 4 MiB to send fills its write buffer to the cap,
/// then, once the socket takes it all, comes back for the rest at once: nothing waits for a
/// timer. The server's application takes nothing until every message is there, so no ack from
/// the server wakes the client's driver meanwhile (its first timer, a delayed ack, is 10 ms off).
#[tokio::test(start_paused = true)]
async fn a_write_buffer_drained_from_its_cap_is_refilled_at_once() {
    let (server, dialer) = server_and_dialer(Config::default(), usize::MAX, None);
    let client = dialer
        .connect_wrapped(Config::default(), |near| {
            Box::new(OnWrite { inner: near, write: full_for_a_while })
        })
        .await
        .unwrap();
    let session = server.accept().await.unwrap();
    let start = Instant::now();
    // Full for 40 passes of the driver: long enough to pull 1 MiB (`CLIENT_WRITE_CAP`) at
    // `PASS_TRANSMIT_BYTES` a pass.
    FULL_FOR.store(40, Ordering::SeqCst);
    let payload = |i: u8| Bytes::from(vec![i; 64 * 1024]);
    let mut queue = (0..64).map(payload).collect();
    client.send_many(&mut queue).await.unwrap();
    while session.stats().messages_received < 64 {
        assert!(start.elapsed() < Duration::from_millis(5), "the rest waited for a timer");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for i in 0..64 {
        assert!(session.recv().await.unwrap().payload == payload(i), "message {i}");
    }
}

/// Set when a `Garbles` stream reads the end of the stream (only the test below makes one).
static SERVER_EOF: AtomicBool = AtomicBool::new(false);

/// Sends bytes that are no `Hello` in place of what the client writes, hides what the server
/// answers, and notes when the server's end of the stream arrives.
struct Garbles {
    inner: Box<dyn ByteStream>,
}

impl ByteStream for Garbles {
    delegate_rest!(write);
    delegate_rest!(flush);
    delegate_rest!(close);

    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len = bufs.iter().map(|b| b.len()).sum();
        self.inner.poll_write(cx, &vec![0xff; len])
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, _: &mut BytesMut) -> Poll<io::Result<usize>> {
        let mut answer = BytesMut::with_capacity(4096);
        while let Poll::Ready(read) = self.inner.poll_read(cx, &mut answer) {
            if read? == 0 {
                SERVER_EOF.store(true, Ordering::SeqCst);
                return Poll::Pending;
            }
            answer.clear();
        }
        Poll::Pending
    }
}

/// A connection the server refuses (its first bytes are no `Hello`) is shut down once the
/// refusal is written: the client reads the end of the stream at once, not when the server
/// lets go of the connection `LINGER` later.
#[tokio::test(start_paused = true)]
async fn a_refused_connection_is_shut_down_at_once() {
    let (_server, dialer) = server_and_dialer(Config::default(), usize::MAX, None);
    let start = Instant::now();
    let connect = tokio::spawn(async move {
        let _ = dialer
            .connect_wrapped(Config::default(), |near| Box::new(Garbles { inner: near }))
            .await;
    });
    while !SERVER_EOF.load(Ordering::SeqCst) {
        assert!(start.elapsed() < LINGER / 2, "no end of stream from the server");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    connect.abort();
}

/// A server with a small message for each of four sessions at once writes all four in one pass:
/// its per-pass budget counts bytes, so small transmits never end a pass early, and none waits
/// for the next wake-up (a client's delayed ack, 10 ms later).
#[tokio::test(start_paused = true)]
async fn small_transmits_for_many_connections_go_out_in_one_pass() {
    let (server, clients) =
        server_and_clients(Config::default(), Config::default(), 4, usize::MAX).await;
    let mut sessions = Vec::new();
    for _ in &clients {
        sessions.push(server.accept().await.unwrap());
    }
    let start = Instant::now();
    for (i, s) in sessions.iter().enumerate() {
        s.send(Bytes::from(vec![i as u8; 10])).await.unwrap();
    }
    for client in &clients {
        let m = client.recv().await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO, "message for client {} waited", m.payload[0]);
    }
}
