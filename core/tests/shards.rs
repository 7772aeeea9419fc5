//! A server split into shards: sessions live on the shard their id names, a resume accepted by
//! another shard is handed over with its bytes and resumes exactly, and the limits count over all
//! shards.

use bytes::{Bytes, BytesMut};
use tether_core::wire::{Decoder, Frame};
use tether_core::{
    Config, ConnId, Duration, Endpoint, Event, Instant, Reason, Session, Shard, Transmit,
};

fn config() -> Config {
    Config { reconnect_backoff_initial: Duration::from_millis(1), ..Config::default() }
}

fn shards(n: u32, config: &Config) -> Vec<Endpoint> {
    Shard::split(n)
        .into_iter()
        .map(|shard| Endpoint::sharded(config.clone(), [9; 32], Instant::ZERO, shard).unwrap())
        .collect()
}

/// A client connected to one connection of a sharded server, and what each side reported.
struct Link {
    conn: ConnId,
    /// The shard that holds `conn` now.
    at: usize,
    client_events: Vec<Event>,
    server_events: Vec<(usize, Event)>,
    /// Frames the server wrote to the client (to see a `Reject`).
    rejected: Option<Reason>,
    /// The server reads in place (`handle_input_buf`, one byte at a time) into `rbuf`.
    in_place: bool,
    rbuf: BytesMut,
}

impl Link {
    /// `client` connects on a new connection `conn`, which shard `at` accepts.
    fn connect(
        client: &mut Session,
        eps: &mut [Endpoint],
        now: Instant,
        conn: u64,
        at: usize,
    ) -> Link {
        assert!(client.poll_connect(now));
        let conn = ConnId(conn);
        client.handle_connected(now, conn);
        eps[at].handle_connected(now, conn);
        Link {
            conn,
            at,
            client_events: Vec::new(),
            server_events: Vec::new(),
            rejected: None,
            in_place: false,
            rbuf: BytesMut::new(),
        }
    }

    /// The server's input on `conn`: as one owned chunk, or in place in two reads (the first
    /// three bytes, then the rest: a `Hello` completes in the second, with what follows it).
    fn server_input(&mut self, ep: &mut Endpoint, now: Instant, conn: ConnId, bytes: Bytes) {
        if !self.in_place {
            return ep.handle_input(now, conn, bytes);
        }
        let cut = bytes.len().min(3);
        for piece in [&bytes[..cut], &bytes[cut..]] {
            self.rbuf.extend_from_slice(piece);
            let missing = ep.handle_input_buf(now, conn, &mut self.rbuf);
            assert_eq!(missing == 0, self.rbuf.is_empty());
        }
    }

    /// Moves bytes both ways, and handed-off connections to their shard, until nothing moves.
    fn pump(&mut self, client: &mut Session, eps: &mut [Endpoint], now: Instant) {
        let mut buf = BytesMut::new();
        for _ in 0..1000 {
            let mut moved = false;
            while let Some(t) = client.poll_transmit(now, &mut buf) {
                moved = true;
                let bytes = buf.split().freeze();
                if let Transmit::Write(c) = t {
                    self.server_input(&mut eps[self.at], now, c, bytes);
                }
            }
            let handoffs: Vec<_> = eps.iter_mut().filter_map(|ep| ep.poll_handoff()).collect();
            for h in handoffs {
                moved = true;
                assert_eq!(h.conn, self.conn);
                assert_ne!(h.shard as usize, self.at, "handed to another shard");
                self.at = h.shard as usize;
                eps[self.at].handle_connected(now, h.conn);
                assert!(self.rbuf.is_empty(), "a handoff takes the bytes left in the read buffer");
                for bytes in h.bytes {
                    self.server_input(&mut eps[self.at], now, h.conn, bytes);
                }
            }
            while let Some(t) = eps[self.at].poll_transmit(now, &mut buf) {
                moved = true;
                let bytes = buf.split().freeze();
                let mut d = Decoder::new(1 << 21);
                d.push(bytes.clone());
                while let Ok(Some(f)) = d.next_frame() {
                    if let Frame::Reject { reason, .. } = f {
                        self.rejected = Some(reason);
                    }
                }
                match t {
                    Transmit::Write(c) if c == self.conn => client.handle_input(now, c, bytes),
                    Transmit::Close(c) if c == self.conn => client.handle_disconnected(now, c),
                    _ => {}
                }
            }
            while let Some(e) = client.poll_event() {
                moved = true;
                self.client_events.push(e);
            }
            for (i, ep) in eps.iter_mut().enumerate() {
                while let Some((_, e)) = ep.poll_event() {
                    moved = true;
                    self.server_events.push((i, e));
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the exchange did not settle");
    }
}

fn messages(events: &[(usize, Event)]) -> Vec<Bytes> {
    events
        .iter()
        .flat_map(|(_, e)| match e {
            Event::Messages(d) => d.clone().map(|m| m.1).collect(),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn a_resume_accepted_by_another_shard_is_handed_over_and_resumes_exactly() {
    resume_handed_over(false);
}

#[test]
fn a_resume_read_in_place_is_handed_over_with_the_bytes_left_in_the_buffer() {
    resume_handed_over(true);
}

fn resume_handed_over(in_place: bool) {
    let config = config();
    let mut eps = shards(2, &config);
    let mut client = Session::client(config.clone(), 5, Instant::ZERO).unwrap();
    let now = Instant::ZERO;
    // Shard 0 accepts the first connection: the session is its own.
    let mut link = Link::connect(&mut client, &mut eps, now, 1, 0);
    link.in_place = in_place;
    client.send(now, Bytes::from_static(b"before")).unwrap();
    link.pump(&mut client, &mut eps, now);
    let id = client.id().expect("an id was issued");
    assert_eq!(id.0 % 2, 0, "shard 0 issues ids of its own");
    assert_eq!((eps[0].session_count(), eps[1].session_count()), (1, 0));

    // The connection dies; messages sent meanwhile wait for the resume.
    client.handle_disconnected(now, link.conn);
    eps[0].handle_disconnected(now, link.conn);
    client.send(now, Bytes::from_static(b"while detached")).unwrap();
    let mut now = now;
    while !client.poll_connect(now) {
        now = now + Duration::from_millis(1);
        client.handle_timeout(now);
    }
    // Shard 1 accepts the new connection; the resume goes to shard 0 with its bytes.
    let conn = ConnId(2);
    client.handle_connected(now, conn);
    eps[1].handle_connected(now, conn);
    let events = std::mem::take(&mut link.server_events);
    link.conn = conn;
    link.at = 1;
    link.rbuf.clear();
    link.pump(&mut client, &mut eps, now);
    assert_eq!(link.at, 0, "the connection moved to the session's shard");
    assert!(link.client_events.contains(&Event::Resumed), "{:?}", link.client_events);
    assert_eq!(link.rejected, None);
    let mut all = events;
    all.extend(link.server_events.iter().cloned());
    assert_eq!(messages(&all), [&b"before"[..], &b"while detached"[..]]);
    assert!(all.iter().all(|(shard, _)| *shard == 0), "only shard 0 reports the session");
    assert_eq!((eps[1].connection_count(), eps[1].handshake_count()), (0, 0));
    assert_eq!(eps[1].session_count(), 0);
}

#[test]
fn every_shard_issues_ids_of_its_own() {
    let config = config();
    let mut eps = shards(3, &config);
    for at in 0..3 {
        for k in 0..4u64 {
            let mut client = Session::client(config.clone(), k, Instant::ZERO).unwrap();
            let mut link =
                Link::connect(&mut client, &mut eps, Instant::ZERO, 10 * at as u64 + k, at);
            link.pump(&mut client, &mut eps, Instant::ZERO);
            assert_eq!(client.id().unwrap().0 % 3, at as u64);
        }
    }
}

#[test]
fn limits_hold_over_all_shards() {
    let config = Config { max_sessions: 1, max_handshakes: 1, ..config() };
    let mut eps = shards(2, &config);
    let now = Instant::ZERO;
    // A connection handshaking on shard 0 takes the only handshake slot: shard 1 refuses.
    eps[0].handle_connected(now, ConnId(100));
    let mut client = Session::client(config.clone(), 1, now).unwrap();
    let mut link = Link::connect(&mut client, &mut eps, now, 1, 1);
    link.pump(&mut client, &mut eps, now);
    assert_eq!(link.rejected, Some(Reason::TooManyHandshakes));
    eps[0].handle_disconnected(now, ConnId(100));

    // One session on shard 0 fills the server: a new session on shard 1 is refused as busy.
    let mut first = Session::client(config.clone(), 2, now).unwrap();
    let mut link = Link::connect(&mut first, &mut eps, now, 2, 0);
    link.pump(&mut first, &mut eps, now);
    assert!(first.id().is_some());
    let mut second = Session::client(config.clone(), 3, now).unwrap();
    let mut link = Link::connect(&mut second, &mut eps, now, 3, 1);
    link.pump(&mut second, &mut eps, now);
    assert_eq!(link.rejected, Some(Reason::ServerBusy));
    assert_eq!(eps[1].session_count(), 0);
}

#[test]
fn the_detached_limit_counts_over_all_shards() {
    let config = Config { max_detached_sessions: 1, ..config() };
    let mut eps = shards(2, &config);
    let now = Instant::ZERO;
    let mut clients = Vec::new();
    for at in 0..2 {
        let mut client = Session::client(config.clone(), at as u64, now).unwrap();
        let mut link = Link::connect(&mut client, &mut eps, now, at as u64 + 1, at);
        link.pump(&mut client, &mut eps, now);
        clients.push((client, link));
    }
    eps[0].handle_disconnected(now, ConnId(1));
    assert_eq!(eps[0].detached_count(), 1);
    let later = now + Duration::from_millis(5);
    eps[1].handle_disconnected(later, ConnId(2));
    let detached = eps[0].detached_count() + eps[1].detached_count();
    assert_eq!(detached, 1, "the server holds at most max_detached_sessions detached sessions");
    let mut evicted = 0;
    for ep in &mut eps {
        while let Some((_, e)) = ep.poll_event() {
            if let Event::Lost { reason: Reason::Evicted, .. } = e {
                evicted += 1;
            }
        }
    }
    assert_eq!(evicted, 1);
}

/// Decoding in place, a shard that meets another shard's resume hands over everything the
/// connection sent: the `Hello` and what followed it in the read buffer, in order; and in owned
/// chunks the same, whatever the chunking.
#[test]
fn a_handoff_carries_every_byte_the_connection_sent() {
    use tether_core::wire::{Hello, HelloKind, Positions, PROTOCOL_VERSION};
    let config = config();
    let hello = Hello {
        min_version: PROTOCOL_VERSION,
        max_version: PROTOCOL_VERSION,
        kind: HelloKind::Resume,
        session_id: 4, // even: shard 0's
        secret: [3; 16],
        positions: Positions { received: 0, acked: 0, max_seq: 10, max_bytes: 1000 },
        max_message_size: 1000,
    };
    let mut sent = BytesMut::new();
    Frame::Hello(hello).encode(&mut sent);
    Frame::Ping { token: 7 }.encode(&mut sent);
    sent.extend_from_slice(&[0, 0, 0]); // the start of a frame
    let sent = sent.freeze();
    let now = Instant::ZERO;
    for cut in 1..sent.len() {
        for in_place in [false, true] {
            let mut eps = shards(2, &config);
            let conn = ConnId(1);
            eps[1].handle_connected(now, conn);
            let mut rbuf = BytesMut::new();
            // Reads until the handoff: after it, the connection is no longer this shard's.
            let mut delivered = 0;
            let mut handoff = None;
            for piece in [sent.slice(..cut), sent.slice(cut..)] {
                delivered += piece.len();
                if in_place {
                    rbuf.extend_from_slice(&piece);
                    eps[1].handle_input_buf(now, conn, &mut rbuf);
                } else {
                    eps[1].handle_input(now, conn, piece);
                }
                handoff = eps[1].poll_handoff();
                if handoff.is_some() {
                    break;
                }
            }
            let h = handoff.expect("handed over");
            assert_eq!((h.conn, h.shard), (conn, 0));
            assert!(rbuf.is_empty(), "the handoff took the read buffer's bytes");
            let carried: Vec<u8> = h.bytes.iter().flat_map(|b| b.iter().copied()).collect();
            assert_eq!(carried, sent[..delivered], "cut {cut}, in place {in_place}");
            assert_eq!(eps[1].connection_count(), 0);
        }
    }
}

/// A session that resumes on its shard stops counting as detached for the other shards at once:
/// a session detaching on another shard right after is not evicted for a limit the server no
/// longer exceeds.
#[test]
fn a_resume_lowers_the_detached_count_the_other_shards_see() {
    let config = Config { max_detached_sessions: 1, ..config() };
    let mut eps = shards(2, &config);
    let mut now = Instant::ZERO;
    let mut a = Session::client(config.clone(), 1, now).unwrap();
    let mut link_a = Link::connect(&mut a, &mut eps, now, 1, 0);
    link_a.pump(&mut a, &mut eps, now);
    let mut b = Session::client(config.clone(), 2, now).unwrap();
    let mut link_b = Link::connect(&mut b, &mut eps, now, 2, 1);
    link_b.pump(&mut b, &mut eps, now);
    assert_eq!((eps[0].session_count(), eps[1].session_count()), (1, 1));

    // A's connection dies and A resumes on its own shard.
    a.handle_disconnected(now, link_a.conn);
    eps[0].handle_disconnected(now, link_a.conn);
    assert_eq!(eps[0].detached_count(), 1);
    for _ in 0..1000 {
        if a.poll_connect(now) {
            break;
        }
        now = now + Duration::from_millis(1);
        a.handle_timeout(now);
    }
    let conn = ConnId(3);
    a.handle_connected(now, conn);
    eps[0].handle_connected(now, conn);
    link_a.conn = conn;
    link_a.pump(&mut a, &mut eps, now);
    assert!(link_a.client_events.contains(&Event::Resumed), "{:?}", link_a.client_events);
    assert_eq!(eps[0].detached_count(), 0);

    // Now B detaches: the only detached session of the server, within the limit.
    eps[1].handle_disconnected(now, link_b.conn);
    assert_eq!(eps[1].detached_count(), 1, "B is kept");
    while let Some((_, e)) = eps[1].poll_event() {
        assert!(!matches!(e, Event::Lost { .. }), "B was evicted: {e:?}");
    }
}
