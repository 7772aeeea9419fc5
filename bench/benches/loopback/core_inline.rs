//! The round-trip floor of tether's adapter design: each end drives `tether-core` itself, inline
//! in one task on its `TcpStream` (no driver task, no lock, no hand-off between tasks and no
//! timer), as an adapter whose application tasks did their own I/O would. Not a product path:
//! nothing here heartbeats, resumes or closes. What it measures is what the core and the system
//! calls cost a round trip; the tether row's excess over it is the adapter's.
//!
//! The second floor row keeps one far-off timer registered with the runtime while it runs, as
//! every session has a deadline (heartbeat, idle timeout, delayed ack): a runtime with a timer
//! parks with a timeout and runs its timer wheel at each park, which raw TCP's rows never pay.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tether_core::{ConnId, Endpoint, Event, Instant as CoreInstant, Session, SessionId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The only connection of each end.
pub const CONN: ConnId = ConnId(1);
/// Read room kept free before each read.
const MIN_ROOM: usize = 4096;

/// The core's clock: nanoseconds since `origin`.
pub fn core_now(origin: Instant) -> CoreInstant {
    CoreInstant::from_nanos(u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
}

/// Reads once into `buf` (growing it when little room is left); false at the end of the stream.
async fn read_some(io: &mut TcpStream, buf: &mut BytesMut) -> bool {
    if buf.capacity() - buf.len() < MIN_ROOM {
        buf.reserve(64 * 1024);
    }
    matches!(io.read_buf(buf).await, Ok(n) if n > 0)
}

/// Writes out and clears what the core put in `buf`.
async fn write_out(io: &mut TcpStream, buf: &mut BytesMut) {
    if !buf.is_empty() {
        io.write_all(buf).await.expect("write");
        buf.clear();
    }
}

/// The echo end: a server `Endpoint` that sends every message back.
async fn echo(mut io: TcpStream, origin: Instant) {
    let config = tether_core::Config::default();
    let mut endpoint = Endpoint::new(config, [9; 32], core_now(origin)).expect("config");
    endpoint.handle_connected(core_now(origin), CONN);
    let (mut rbuf, mut wbuf) = (BytesMut::new(), BytesMut::new());
    let mut replies: Vec<(SessionId, Bytes)> = Vec::new();
    while read_some(&mut io, &mut rbuf).await {
        let now = core_now(origin);
        endpoint.handle_input_buf(now, CONN, &mut rbuf);
        while let Some((id, event)) = endpoint.poll_event() {
            if let Event::Messages(delivery) = event {
                replies.extend(delivery.map(|(_, payload)| (id, payload)));
            }
        }
        for (id, payload) in replies.drain(..) {
            endpoint.session_mut(id).expect("session").send(now, payload).expect("send");
        }
        while endpoint.poll_transmit(now, &mut wbuf).is_some() {}
        write_out(&mut io, &mut wbuf).await;
    }
}

/// 64 B round trips over loopback, 1,000 warm-up then `timed`: the times of the timed ones.
/// `with_timer`: a timer an hour away stays registered with the runtime meanwhile.
pub async fn ping_pong(timed: usize, with_timer: bool) -> Vec<Duration> {
    // The raw rows' connected pair (TCP_NODELAY, its 4-byte preamble already read).
    let (mut io, server) = crate::tcp_pair().await;
    let origin = Instant::now();
    let echo = tokio::spawn(echo(server, origin));
    let far = with_timer.then(|| tokio::spawn(tokio::time::sleep(Duration::from_secs(3600))));

    let mut session =
        Session::client(tether_core::Config::default(), 7, core_now(origin)).expect("config");
    assert!(session.poll_connect(core_now(origin)));
    session.handle_connected(core_now(origin), CONN);
    let (mut rbuf, mut wbuf) = (BytesMut::new(), BytesMut::new());
    let payload = Bytes::from_static(&[7u8; 64]);
    let (mut connected, mut done) = (false, 0);
    let mut times = Vec::with_capacity(timed);
    let mut started: Option<Instant> = None;
    while done < 1_000 + timed {
        let now = core_now(origin);
        if connected && started.is_none() {
            started = Some(Instant::now());
            session.send(now, payload.clone()).expect("send");
        }
        while session.poll_transmit(now, &mut wbuf).is_some() {}
        write_out(&mut io, &mut wbuf).await;
        assert!(read_some(&mut io, &mut rbuf).await, "echo ended");
        session.handle_input_buf(core_now(origin), CONN, &mut rbuf);
        while let Some(event) = session.poll_event() {
            match event {
                Event::Connected => connected = true,
                Event::Messages(delivery) => {
                    for (_, echoed) in delivery {
                        assert_eq!(echoed.len(), 64);
                        let t = started.take().expect("a message in flight");
                        if done >= 1_000 {
                            times.push(t.elapsed());
                        }
                        done += 1;
                    }
                }
                _ => {}
            }
        }
    }
    drop(io);
    let _ = echo.await;
    if let Some(far) = far {
        far.abort();
    }
    times
}
