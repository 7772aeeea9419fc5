//! The round-trip floor of any adapter built like tether's: each end is two tasks, the
//! application's and a driver that owns the socket and the core, with one far-off timer
//! registered (every session has a deadline). They share one mutex: the application puts
//! messages in one queue and takes them from another, and each side keeps the other's waker.
//! Nothing else: no slots, no inbox, no flow control beyond the core's own, no close, no
//! reconnect. Not a product path. The `core_inline` rows show what the core and the system calls
//! cost; this row adds what handing each message between two tasks costs; the tether row's excess
//! over it is what the adapter's own bookkeeping costs.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tether_core::{Endpoint, Event, Instant as CoreInstant, Session, SessionId};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::core_inline::{core_now, CONN};

/// Most bytes one read takes.
const READ_SIZE: usize = 64 * 1024;

/// What an end's two tasks share.
#[derive(Default)]
struct Queues {
    to_send: Vec<Bytes>,
    received: VecDeque<Bytes>,
    app: Option<Waker>,
    driver: Option<Waker>,
}

type Shared = Arc<Mutex<Queues>>;

/// The application's side: queue a message and wake the driver.
fn put(shared: &Shared, payload: Bytes) {
    let mut q = shared.lock().unwrap();
    q.to_send.push(payload);
    let driver = q.driver.clone();
    drop(q);
    if let Some(w) = driver {
        w.wake();
    }
}

/// The application's side: the next message received.
async fn take(shared: &Shared) -> Bytes {
    poll_fn(|cx| {
        let mut q = shared.lock().unwrap();
        match q.received.pop_front() {
            Some(p) => Poll::Ready(p),
            None => {
                q.app = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    })
    .await
}

/// The core a driver drives: a client session, or a server endpoint with its one session.
enum Core {
    Client(Session),
    Server(Endpoint, Option<SessionId>),
}

impl Core {
    fn session(&mut self) -> &mut Session {
        match self {
            Core::Client(s) => s,
            Core::Server(e, id) => e.session_mut(id.expect("a session")).expect("a session"),
        }
    }

    /// Feeds what was read; the messages delivered go to `out`.
    fn input(&mut self, now: CoreInstant, rbuf: &mut BytesMut, out: &mut Vec<Bytes>) {
        let mut take = |event| {
            if let Event::Messages(delivery) = event {
                out.extend(delivery.map(|(_, payload)| payload));
            }
        };
        match self {
            Core::Client(s) => {
                s.handle_input_buf(now, CONN, rbuf);
                while let Some(event) = s.poll_event() {
                    take(event);
                }
            }
            Core::Server(e, session) => {
                e.handle_input_buf(now, CONN, rbuf);
                while let Some((id, event)) = e.poll_event() {
                    *session = Some(id);
                    take(event);
                }
            }
        }
    }

    fn transmit(&mut self, now: CoreInstant, wbuf: &mut BytesMut) {
        match self {
            Core::Client(s) => while s.poll_transmit(now, wbuf).is_some() {},
            Core::Server(e, _) => while e.poll_transmit(now, wbuf).is_some() {},
        }
    }
}

/// A driver: takes queued messages into the core, reads and feeds, hands what arrived to the
/// application, writes. Runs until the stream ends.
async fn drive(mut io: TcpStream, mut core: Core, shared: Shared, origin: Instant) {
    let (mut rbuf, mut wbuf) = (BytesMut::new(), BytesMut::new());
    let mut scratch = vec![0u8; READ_SIZE];
    let (mut to_send, mut arrived) = (Vec::new(), Vec::new());
    poll_fn(|cx: &mut Context<'_>| loop {
        let now = core_now(origin);
        {
            let mut q = shared.lock().unwrap();
            if !q.driver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                q.driver = Some(cx.waker().clone());
            }
            std::mem::swap(&mut to_send, &mut q.to_send);
        }
        for payload in to_send.drain(..) {
            core.session().send(now, payload).expect("send");
        }
        // Through `AsyncRead`, as the tokio binding reads: a short read clears the socket's
        // readiness, so the next poll registers without a system call (`try_read_buf` would
        // make one more, failing, `recvfrom` per message).
        let mut room = ReadBuf::new(&mut scratch);
        let read = match Pin::new(&mut io).poll_read(cx, &mut room) {
            Poll::Ready(Ok(())) if room.filled().is_empty() => return Poll::Ready(()),
            Poll::Ready(Ok(())) => true,
            Poll::Ready(Err(e)) => panic!("read: {e}"),
            Poll::Pending => false,
        };
        if read {
            rbuf.extend_from_slice(room.filled());
            core.input(core_now(origin), &mut rbuf, &mut arrived);
            if !arrived.is_empty() {
                let mut q = shared.lock().unwrap();
                q.received.extend(arrived.drain(..));
                let app = q.app.take();
                drop(q);
                if let Some(w) = app {
                    w.wake();
                }
            }
        }
        core.transmit(now, &mut wbuf);
        while !wbuf.is_empty() {
            match Pin::new(&mut io).poll_write(cx, &wbuf) {
                Poll::Ready(Ok(n)) => drop(wbuf.split_to(n)),
                Poll::Ready(Err(e)) => panic!("write: {e}"),
                Poll::Pending => break,
            }
        }
        // Registered for readability, or read something: go round again.
        if !read {
            return Poll::Pending;
        }
    })
    .await
}

/// 64 B round trips over loopback, 1,000 warm-up then `timed`: the times of the timed ones.
pub async fn ping_pong(timed: usize) -> Vec<Duration> {
    // The raw rows' connected pair (TCP_NODELAY, its 4-byte preamble already read).
    let (io, server_io) = crate::tcp_pair().await;
    let origin = Instant::now();
    let far = tokio::spawn(tokio::time::sleep(Duration::from_secs(3600)));
    let config = tether_core::Config::default();

    let mut endpoint = Endpoint::new(config.clone(), [9; 32], core_now(origin)).expect("config");
    endpoint.handle_connected(core_now(origin), CONN);
    let server = Shared::default();
    let server_driver =
        tokio::spawn(drive(server_io, Core::Server(endpoint, None), server.clone(), origin));
    let echo = {
        let server = server.clone();
        tokio::spawn(async move {
            loop {
                let payload = take(&server).await;
                put(&server, payload);
            }
        })
    };

    let mut session = Session::client(config, 7, core_now(origin)).expect("config");
    assert!(session.poll_connect(core_now(origin)));
    session.handle_connected(core_now(origin), CONN);
    let client = Shared::default();
    let client_driver = tokio::spawn(drive(io, Core::Client(session), client.clone(), origin));

    let payload = Bytes::from_static(&[7u8; 64]);
    let mut times = Vec::with_capacity(timed);
    for i in 0..1_000 + timed {
        let started = Instant::now();
        put(&client, payload.clone());
        assert_eq!(take(&client).await.len(), 64);
        if i >= 1_000 {
            times.push(started.elapsed());
        }
    }
    for task in [client_driver, server_driver, echo, far] {
        task.abort();
    }
    times
}
