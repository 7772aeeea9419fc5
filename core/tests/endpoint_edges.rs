//! The server endpoint at its edges: which `Hello`s are refused, what a refused or finished
//! connection leaves behind, tombstones beyond their limit, and a session whose application reads
//! late. (Each test here was prompted by a mutant that the other tests let through; see
//! docs/TESTING.md, "Mutation testing".)

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use tether_core::wire::{Decoder, Frame, Hello, HelloKind};
use tether_core::{Config, ConnId, Duration, Endpoint, Event, Instant, Reason, Session, Transmit};

const LIMIT: Duration = Duration::from_secs(120);

fn hello(kind: HelloKind, min: u16, max: u16) -> Hello {
    raw::new_hello(kind, min, max)
}

fn encoded(f: &Frame) -> Bytes {
    let mut b = BytesMut::new();
    f.encode(&mut b);
    b.freeze()
}

/// Every transmit of the endpoint, decoded: (connection, frames, closed).
fn drain_all(ep: &mut Endpoint, now: Instant) -> Vec<(ConnId, Vec<Frame>, bool)> {
    let mut out = Vec::new();
    let mut buf = BytesMut::new();
    while let Some(t) = ep.poll_transmit(now, &mut buf) {
        let (Transmit::Write(c) | Transmit::Close(c)) = t;
        let mut d = Decoder::new(1 << 21);
        d.push(buf.split().freeze());
        let mut frames = Vec::new();
        while let Ok(Some(f)) = d.next_frame() {
            frames.push(f);
        }
        out.push((c, frames, matches!(t, Transmit::Close(_))));
    }
    out
}

/// The endpoint's answer to `hello` on a fresh connection: the frames it wrote and whether it
/// closed the connection.
fn answer(ep: &mut Endpoint, now: Instant, conn: ConnId, hello: Hello) -> (Vec<Frame>, bool) {
    ep.handle_connected(now, conn);
    ep.handle_input(now, conn, encoded(&Frame::Hello(hello)));
    let mut frames = Vec::new();
    let mut closed = false;
    for (c, f, close) in drain_all(ep, now) {
        if c == conn {
            frames.extend(f);
            closed |= close;
        }
    }
    (frames, closed)
}

fn rejected_with(frames: &[Frame]) -> Option<Reason> {
    frames.iter().find_map(|f| match f {
        Frame::Reject { reason, .. } => Some(*reason),
        _ => None,
    })
}

fn endpoint(config: Config) -> Endpoint {
    Endpoint::new(config, [1; 32], Instant::ZERO).unwrap()
}

/// A client that asks for a new session must come with nothing: no id, nothing received, nothing
/// acknowledged. Each field alone is enough to refuse it (it would otherwise be given a session
/// whose positions contradict its own).
#[test]
fn a_new_session_hello_claiming_any_history_is_malformed() {
    type Claim = (&'static str, fn(&mut Hello));
    let claims: [Claim; 3] = [
        ("a session id", |h| h.session_id = 42),
        ("received messages", |h| h.positions.received = 3),
        ("acknowledged messages", |h| h.positions.acked = 1),
    ];
    let mut ep = endpoint(test_config());
    for (k, (what, claim)) in claims.iter().enumerate() {
        let mut h = hello(HelloKind::New, 2, 2);
        claim(&mut h);
        let (frames, closed) = answer(&mut ep, Instant::ZERO, ConnId(k as u64), h);
        assert!(closed, "{what}");
        assert_eq!(rejected_with(&frames), Some(Reason::MalformedHandshake), "{what}");
    }
    assert_eq!((ep.session_count(), ep.handshake_count(), ep.connection_count()), (0, 0, 0));
}

/// A peer that accepts no message at all (`max_message_size` 0) cannot hold a session.
#[test]
fn a_hello_accepting_no_message_is_malformed() {
    let mut ep = endpoint(test_config());
    let h = Hello { max_message_size: 0, ..hello(HelloKind::New, 2, 2) };
    let (frames, closed) = answer(&mut ep, Instant::ZERO, ConnId(1), h);
    assert!(closed);
    assert_eq!(rejected_with(&frames), Some(Reason::MalformedHandshake));
    assert_eq!(ep.session_count(), 0);
}

/// A newer client that speaks a range of versions including ours is served in ours.
#[test]
fn a_client_offering_a_wider_version_range_is_accepted_in_ours() {
    let mut ep = endpoint(test_config());
    let (frames, closed) = answer(&mut ep, Instant::ZERO, ConnId(1), hello(HelloKind::New, 1, 9));
    assert!(!closed);
    match frames.as_slice() {
        [Frame::Welcome(w)] => {
            assert_eq!(w.version, tether_core::wire::PROTOCOL_VERSION);
            assert!(!w.resumed);
        }
        f => panic!("expected a Welcome: {f:?}"),
    }
    assert_eq!(ep.session_count(), 1);
}

/// Two connections are refused; the first goes away before its `Reject` was written. The second
/// still gets its `Reject` and its close, and nothing is written for the one that is gone.
#[test]
fn a_refused_connection_that_disconnects_does_not_take_another_refusal_with_it() {
    let config = Config { max_handshakes: 1, ..test_config() };
    let mut ep = endpoint(config);
    let now = Instant::ZERO;
    ep.handle_connected(now, ConnId(1)); // takes the only handshake slot
    ep.handle_connected(now, ConnId(2)); // refused
    ep.handle_connected(now, ConnId(3)); // refused
    ep.handle_disconnected(now, ConnId(2));
    let out = drain_all(&mut ep, now);
    assert!(out.iter().all(|(c, _, _)| *c != ConnId(2)), "{out:?}");
    let third: Vec<_> = out.iter().filter(|(c, _, _)| *c == ConnId(3)).collect();
    assert_eq!(third.len(), 1, "{out:?}");
    assert_eq!(rejected_with(&third[0].1), Some(Reason::TooManyHandshakes));
    assert!(third[0].2, "the refused connection is closed");
    assert_eq!((ep.connection_count(), ep.handshake_count()), (1, 1));
}

/// When one session ends and is dropped, every other connection stays known: another session
/// keeps its connection (no disconnect), and a connection still in its handshake completes it.
#[test]
fn dropping_an_ended_session_leaves_other_connections_alone() {
    let mut net = Net::new(test_config(), 2, 21);
    assert!(net.run_until(LIMIT, |n| (0..2).all(|i| n.server_app(i).is_some())));
    let waiting = net.raw_connect();
    assert_eq!(net.server.handshake_count(), 1);
    net.clients[0].session.close(net.now).unwrap();
    assert!(net.run_until(LIMIT, |n| n.clients[0].app.ended() && n.server.session_count() == 1));
    assert!(net.clients[0].app.closed());
    // The connection that was waiting for its Hello is still in its handshake, and completes it.
    assert_eq!((net.server.handshake_count(), net.server.connection_count()), (1, 2));
    let now = net.now;
    net.server.handle_input(now, waiting, encoded(&Frame::Hello(hello(HelloKind::New, 2, 2))));
    let welcomed = drain_all(&mut net.server, now)
        .iter()
        .any(|(c, f, _)| *c == waiting && matches!(f.first(), Some(Frame::Welcome(_))));
    assert!(welcomed, "the waiting connection was forgotten");
    net.server.handle_disconnected(now, waiting);
    // The other session keeps exchanging messages on its connection.
    net.client_sends(1, 20, 10);
    net.server_sends(1, 20, 10);
    assert!(net.run_until(LIMIT, |n| n.clients[1].app.delivered.len() == 20
        && n.server_app(1).unwrap().delivered.len() == 20));
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.clients[1].app.count(|e| matches!(e, Event::Disconnected { .. })), 0);
    assert_eq!(net.server_app(1).unwrap().count(|e| matches!(e, Event::Disconnected { .. })), 0);
    check_contract(&net);
}

/// Tombstones of cleanly closed sessions are bounded by `max_detached_sessions`: beyond it the
/// oldest is forgotten (its late resume is `UnknownSession`), and exactly that many newest ones
/// still answer `SessionClosed`.
#[test]
fn tombstones_beyond_the_detached_limit_forget_the_oldest() {
    let config = Config { max_detached_sessions: 2, ..test_config() };
    let mut net = Net::new(config, 3, 22);
    assert!(net.run_until(LIMIT, |n| (0..3).all(|i| n.server_app(i).is_some())));
    let mut order = Vec::new();
    for i in 0..3 {
        let id = net.clients[i].session.id().unwrap();
        let welcome = *net.welcomes.iter().find(|w| w.session_id == id.0).unwrap();
        order.push(welcome);
        net.clients[i].session.close(net.now).unwrap();
        assert!(
            net.run_until(LIMIT, |n| n.clients[i].app.ended() && n.server.session(id).is_none())
        );
        assert!(net.clients[i].app.closed());
        net.run_for(Duration::from_millis(100));
    }
    let mut answers = Vec::new();
    for (k, w) in order.iter().enumerate() {
        let h =
            Hello { session_id: w.session_id, secret: w.secret, ..hello(HelloKind::Resume, 2, 2) };
        let (frames, _) = answer(&mut net.server, net.now, ConnId(900 + k as u64), h);
        answers.push(rejected_with(&frames));
    }
    assert_eq!(
        answers,
        [Some(Reason::UnknownSession), Some(Reason::SessionClosed), Some(Reason::SessionClosed)]
    );
}

/// A server and one client over one connection, driven by hand: the server application reads
/// only when the test says so, and nothing else touches the server session.
struct Pair {
    ep: Endpoint,
    client: Session,
    now: Instant,
    client_events: Vec<Event>,
}

impl Pair {
    fn new(client_config: Config, server_config: Config) -> Pair {
        let now = Instant::ZERO;
        let mut client = Session::client(client_config, 3, now).unwrap();
        let ep = Endpoint::new(server_config, [4; 32], now).unwrap();
        assert!(client.poll_connect(now));
        let conn = ConnId(1);
        client.handle_connected(now, conn);
        let mut pair = Pair { ep, client, now, client_events: Vec::new() };
        pair.ep.handle_connected(now, conn);
        pair.pump();
        pair
    }

    /// Moves bytes both ways (no time passes) until nothing moves; returns the server's writes.
    fn pump(&mut self) -> usize {
        let mut server_writes = 0;
        let mut buf = BytesMut::new();
        for _ in 0..1000 {
            let mut moved = false;
            while let Some(t) = self.client.poll_transmit(self.now, &mut buf) {
                moved = true;
                if let Transmit::Write(c) = t {
                    self.ep.handle_input(self.now, c, buf.split().freeze());
                }
            }
            while let Some(t) = self.ep.poll_transmit(self.now, &mut buf) {
                moved = true;
                server_writes += 1;
                if let Transmit::Write(c) = t {
                    self.client.handle_input(self.now, c, buf.split().freeze());
                }
            }
            while let Some(e) = self.client.poll_event() {
                moved = true;
                self.client_events.push(e);
            }
            if !moved {
                return server_writes;
            }
        }
        panic!("the exchange did not settle");
    }

    /// The server application reads every event it has; returns the messages.
    fn server_reads(&mut self) -> Vec<u64> {
        let mut seqs = Vec::new();
        while let Some((_, e)) = self.ep.poll_event() {
            if let Event::Messages(d) = e {
                seqs.extend(d.map(|m| m.0));
            }
        }
        seqs
    }
}

/// The server application reads its messages late, after the window filled. Reading opens the
/// window; the endpoint writes the ack that says so at once (no timer needs to pass), and the
/// client's held-back messages follow.
#[test]
fn a_late_read_on_the_server_opens_the_window_at_once() {
    let server = Config { receive_window_messages: 4, ..test_config() };
    let mut pair = Pair::new(test_config(), server);
    for k in 0..8u8 {
        pair.client.send(pair.now, Bytes::from(vec![k; 10])).unwrap();
    }
    pair.pump();
    // The server application reads: the first four, which filled the window.
    assert_eq!(pair.server_reads(), [0, 1, 2, 3]);
    assert!(pair.pump() > 0, "reading opened the window: an ack is written at once");
    assert_eq!(pair.server_reads(), [4, 5, 6, 7], "the rest arrived without any timer");
}
