//! The server endpoint: handshake refusals, table limits, timeouts and secrets.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use tether_core::wire::{Decoder, Frame, HelloKind};
use tether_core::{
    Config, ConnId, Duration, Endpoint, Event, FirstConnect, Instant, Reason, Session, Transmit,
};

const LIMIT: Duration = Duration::from_secs(120);

fn hello(kind: HelloKind, min: u16, max: u16) -> Frame {
    Frame::Hello(raw::new_hello(kind, min, max))
}

/// Sends `bytes` on a fresh raw connection and returns the frames the endpoint answered with and
/// whether it closed the connection.
fn answer(ep: &mut Endpoint, now: Instant, conn: ConnId, bytes: Bytes) -> (Vec<Frame>, bool) {
    ep.handle_connected(now, conn);
    ep.handle_input(now, conn, bytes);
    drain(ep, now, conn)
}

fn drain(ep: &mut Endpoint, now: Instant, conn: ConnId) -> (Vec<Frame>, bool) {
    let mut frames = Vec::new();
    let mut closed = false;
    let mut buf = BytesMut::new();
    while let Some(t) = ep.poll_transmit(now, &mut buf) {
        let bytes = buf.split().freeze();
        let (Transmit::Write(c) | Transmit::Close(c)) = t;
        if c != conn {
            continue;
        }
        let mut d = Decoder::new(1 << 20);
        d.push(bytes);
        while let Ok(Some(f)) = d.next_frame() {
            frames.push(f);
        }
        closed |= matches!(t, Transmit::Close(_));
    }
    (frames, closed)
}

fn encoded(f: &Frame) -> Bytes {
    let mut b = BytesMut::new();
    f.encode(&mut b);
    b.freeze()
}

fn endpoint(config: Config) -> Endpoint {
    Endpoint::new(config, [1; 32], Instant::ZERO).unwrap()
}

fn rejected_with(frames: &[Frame]) -> Option<Reason> {
    frames.iter().find_map(|f| match f {
        Frame::Reject { reason, .. } => Some(*reason),
        _ => None,
    })
}

#[test]
fn unknown_version_is_rejected_with_the_supported_range() {
    let mut ep = endpoint(test_config());
    let (frames, closed) =
        answer(&mut ep, Instant::ZERO, ConnId(1), encoded(&hello(HelloKind::New, 7, 9)));
    assert!(closed);
    assert_eq!(
        frames,
        vec![Frame::Reject { reason: Reason::UnsupportedVersion, min_version: 2, max_version: 2 }]
    );
    assert_eq!(ep.session_count(), 0);
}

/// Version 1 (one message per data frame, never released) is not spoken: a client that offers
/// only it is refused with the range this build speaks.
#[test]
fn a_version_1_client_is_refused() {
    let mut ep = endpoint(test_config());
    let (frames, closed) =
        answer(&mut ep, Instant::ZERO, ConnId(1), encoded(&hello(HelloKind::New, 1, 1)));
    assert!(closed);
    assert_eq!(
        frames,
        vec![Frame::Reject { reason: Reason::UnsupportedVersion, min_version: 2, max_version: 2 }]
    );
}

#[test]
fn malformed_start_is_rejected() {
    let mut ep = endpoint(test_config());
    // A valid frame that is not a Hello.
    let (frames, closed) =
        answer(&mut ep, Instant::ZERO, ConnId(1), encoded(&Frame::Ping { token: 1 }));
    assert!(closed);
    assert_eq!(rejected_with(&frames), Some(Reason::MalformedHandshake));
    // Garbage.
    let (frames, _) =
        answer(&mut ep, Instant::ZERO, ConnId(2), Bytes::from_static(b"\x00\x00\x00\x05hello...."));
    assert_eq!(rejected_with(&frames), Some(Reason::ChecksumMismatch));
    // A declared length far beyond a Hello: refused before buffering.
    let (frames, _) =
        answer(&mut ep, Instant::ZERO, ConnId(3), Bytes::from_static(b"\x00\x10\x00\x00"));
    assert_eq!(rejected_with(&frames), Some(Reason::FrameTooLarge));
    // A "new session" Hello that claims to have received messages.
    let mut h = hello(HelloKind::New, 2, 2);
    if let Frame::Hello(h) = &mut h {
        h.positions.received = 3;
        h.positions.acked = 3;
    }
    let (frames, _) = answer(&mut ep, Instant::ZERO, ConnId(4), encoded(&h));
    assert_eq!(rejected_with(&frames), Some(Reason::MalformedHandshake));
    assert_eq!((ep.session_count(), ep.handshake_count(), ep.connection_count()), (0, 0, 0));
}

#[test]
fn unknown_session_and_bad_secret_are_rejected() {
    let mut net = Net::connected(test_config(), 1);
    let id = net.clients[0].session.id().unwrap();
    let mut h = hello(HelloKind::Resume, 2, 2);
    if let Frame::Hello(h) = &mut h {
        h.session_id = id.0 ^ 1;
    }
    let (frames, _) = answer(&mut net.server, net.now, ConnId(900), encoded(&h));
    assert_eq!(rejected_with(&frames), Some(Reason::UnknownSession));
    if let Frame::Hello(h) = &mut h {
        h.session_id = id.0;
        h.secret = [9; 16];
    }
    let (frames, _) = answer(&mut net.server, net.now, ConnId(901), encoded(&h));
    assert_eq!(rejected_with(&frames), Some(Reason::BadSecret));
}

#[test]
fn handshake_timeout_closes_silent_connections() {
    let mut ep = endpoint(test_config());
    ep.handle_connected(Instant::ZERO, ConnId(1));
    ep.handle_input(Instant::ZERO, ConnId(1), Bytes::from_static(b"\x00\x00"));
    assert_eq!(ep.handshake_count(), 1);
    let deadline = ep.poll_timeout().unwrap();
    assert_eq!(deadline, Instant::ZERO + test_config().handshake_timeout);
    ep.handle_timeout(deadline);
    let (frames, closed) = drain(&mut ep, deadline, ConnId(1));
    assert!(closed);
    assert_eq!(rejected_with(&frames), Some(Reason::HandshakeTimeout));
    assert_eq!((ep.handshake_count(), ep.connection_count()), (0, 0));
}

/// `test_config` for a client that retries its first connection.
fn retrying() -> Config {
    Config { first_connect: FirstConnect::Retry, ..test_config() }
}

/// A client that queued `queued` messages and was told to connect.
fn connecting_client(config: Config, queued: usize) -> Session {
    let mut s = Session::client(config, 1, Instant::ZERO).unwrap();
    for i in 0..queued {
        s.send(Instant::ZERO, payload(&format!("m{i}"), 8)).unwrap();
    }
    assert!(s.poll_connect(Instant::ZERO));
    s
}

/// The session's events until it has none left.
fn events(s: &mut Session) -> Vec<Event> {
    core::iter::from_fn(|| s.poll_event()).collect()
}

/// The reason and the payloads handed back, if `events` ends the session as lost.
fn lost_with(events: &[Event]) -> Option<(Reason, Vec<Bytes>)> {
    events.iter().find_map(|e| match e {
        Event::Lost { reason, unconfirmed } => {
            Some((*reason, unconfirmed.iter().map(|u| u.payload.clone()).collect()))
        }
        _ => None,
    })
}

#[test]
fn a_first_connect_that_fails_ends_the_session_with_connect_failed_by_default() {
    let mut s = connecting_client(test_config(), 2);
    let t = Instant::ZERO + Duration::from_millis(3);
    s.handle_connect_failed(t);
    let lost = lost_with(&events(&mut s));
    assert_eq!(lost, Some((Reason::ConnectFailed, vec![payload("m0", 8), payload("m1", 8)])));
    assert!(!s.poll_connect(t + Duration::from_secs(60)), "no retry");
}

#[test]
fn a_first_connection_lost_before_its_handshake_ends_the_session_by_default() {
    let mut s = connecting_client(test_config(), 1);
    s.handle_connected(Instant::ZERO, ConnId(1));
    s.handle_disconnected(Instant::ZERO, ConnId(1));
    let lost = lost_with(&events(&mut s));
    assert_eq!(lost.map(|l| l.0), Some(Reason::TransportLost));
    assert!(!s.poll_connect(Instant::ZERO + Duration::from_secs(60)));
}

#[test]
fn a_first_handshake_that_times_out_ends_the_session_by_default() {
    let mut s = connecting_client(test_config(), 1);
    s.handle_connected(Instant::ZERO, ConnId(1));
    let mut buf = BytesMut::new();
    while s.poll_transmit(Instant::ZERO, &mut buf).is_some() {}
    let t = s.poll_timeout().unwrap();
    s.handle_timeout(t);
    assert_eq!(s.poll_transmit(t, &mut buf), Some(Transmit::Close(ConnId(1))));
    let lost = lost_with(&events(&mut s));
    assert_eq!(lost.map(|l| l.0), Some(Reason::HandshakeTimeout));
}

#[test]
fn with_retry_a_failed_first_connect_is_retried_until_session_timeout() {
    let config = retrying();
    let mut s = connecting_client(config.clone(), 1);
    let mut now = Instant::ZERO;
    let mut attempts = 1;
    let end = Instant::ZERO + config.session_timeout;
    loop {
        s.handle_connect_failed(now);
        let Some(next) = s.poll_timeout() else { break };
        assert!(next <= end, "no attempt is scheduled past session_timeout");
        now = next;
        s.handle_timeout(now);
        if s.poll_connect(now) {
            attempts += 1;
        }
        assert!(attempts < 1_000, "the backoff grows");
    }
    assert!(attempts > 5, "retried {attempts} times");
    let lost = lost_with(&events(&mut s));
    assert_eq!(lost.map(|l| l.0), Some(Reason::SessionTimeout));
}

#[test]
fn a_full_server_ends_a_new_client_with_server_busy_by_default() {
    let config = Config { max_sessions: 2, ..test_config() };
    let mut net = Net::new(config, 3, 5);
    net.run_for(Duration::from_secs(1));
    let busy = |n: &Net| {
        n.clients.iter().filter(|c| c.app.lost().map(|l| *l.0) == Some(Reason::ServerBusy)).count()
    };
    assert_eq!((busy(&net), net.server.session_count()), (1, 2));
}

#[test]
fn sessions_lists_every_session_held_with_its_own_id() {
    let mut net = Net::new(test_config(), 3, 11);
    assert!(net.run_until(LIMIT, |n| n.clients.iter().all(|c| c.app.connected)));
    net.reset(1);
    net.run_for(Duration::from_millis(1));
    let listed: Vec<_> = net.server.sessions().map(|(id, s)| (id, s.id())).collect();
    let mut ids: Vec<_> = net.clients.iter().filter_map(|c| c.session.id()).collect();
    ids.sort();
    assert_eq!(listed, ids.iter().map(|&id| (id, Some(id))).collect::<Vec<_>>());
    assert!(net.server.session_ids().eq(ids.iter().copied()));
}

#[test]
fn after_the_first_handshake_a_failed_connect_is_retried_even_by_default() {
    let mut net = Net::connected(test_config(), 9);
    net.reset(0);
    // The server refuses connections for a while: connects fail, the client keeps trying.
    net.partition(Duration::from_secs(2));
    assert!(net.run_until(LIMIT, |n| n.clients[0].app.count(|e| *e == Event::Resumed) == 1));
    assert!(!net.clients[0].app.ended());
}

#[test]
fn client_handshake_timeout_reconnects() {
    // The server never answers: the client gives up the connection after handshake_timeout and
    // tries again with backoff.
    let now = Instant::ZERO;
    let mut s = Session::client(retrying(), 1, now).unwrap();
    assert!(s.poll_connect(now));
    s.handle_connected(now, ConnId(1));
    let mut buf = BytesMut::new();
    while s.poll_transmit(now, &mut buf).is_some() {}
    let t = s.poll_timeout().unwrap();
    assert_eq!(t, now + test_config().handshake_timeout);
    s.handle_timeout(t);
    assert_eq!(s.poll_transmit(t, &mut buf), Some(Transmit::Close(ConnId(1))));
    let retry = s.poll_timeout().unwrap();
    assert!(retry <= t + test_config().reconnect_backoff_initial);
    assert!(s.poll_connect(retry));
}

#[test]
fn handshake_limit_refuses_beyond_max_handshakes() {
    let config = Config { max_handshakes: 3, ..test_config() };
    let mut ep = endpoint(config);
    for c in 0..3 {
        ep.handle_connected(Instant::ZERO, ConnId(c));
    }
    let (frames, closed) = answer(&mut ep, Instant::ZERO, ConnId(3), Bytes::new());
    assert!(closed);
    assert_eq!(rejected_with(&frames), Some(Reason::TooManyHandshakes));
    assert_eq!(ep.handshake_count(), 3);
}

#[test]
fn session_limit_refuses_new_sessions_and_the_client_retries() {
    let config = Config { max_sessions: 2, ..retrying() };
    let mut net = Net::new(config, 3, 5);
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.server.session_count(), 2);
    let waiting = net.clients.iter().filter(|c| c.session.id().is_none()).count();
    assert_eq!(waiting, 1, "the third client is refused (ServerBusy) and keeps retrying");
    // One session closes: the third client gets in.
    let i = net.clients.iter().position(|c| c.session.id().is_some()).unwrap();
    net.clients[i].session.close(net.now).unwrap();
    assert!(net.run_until(LIMIT, |n| n
        .clients
        .iter()
        .filter(|c| c.session.id().is_some())
        .count()
        == 3));
}

#[test]
fn detached_limit_evicts_the_longest_detached() {
    let config = Config { max_detached_sessions: 1, ..test_config() };
    let mut net = Net::new(config, 3, 6);
    assert!(net.run_until(LIMIT, |n| (0..3).all(|i| n.server_app(i).is_some())));
    // Partition everything: all three server sessions detach; only one may stay.
    net.partition(Duration::from_secs(3));
    assert!(net.run_until(LIMIT, |n| n.server.session_count() == 1));
    let evicted = net
        .server_apps
        .values()
        .filter(|a| a.lost().map(|l| *l.0) == Some(Reason::Evicted))
        .count();
    assert_eq!(evicted, 2);
    net.run_for(Duration::from_secs(5));
    // The evicted sessions' clients learn it when they resume.
    let refused = net.clients.iter().filter(|c| c.app.lost().is_some()).count();
    assert_eq!(refused, 2);
    check_contract(&net);
}

/// Found by the `endpoint` fuzz target: a `Hello` followed in the same read by a frame that breaks
/// the protocol makes the new session detach inside the handshake; the limit must hold then too.
#[test]
fn a_session_detached_by_its_first_read_counts_against_the_detached_limit() {
    let config = Config { max_detached_sessions: 1, ..test_config() };
    let mut ep = endpoint(config);
    let now = Instant::ZERO;
    let (frames, _) = answer(&mut ep, now, ConnId(1), encoded(&hello(HelloKind::New, 2, 2)));
    assert!(matches!(frames.first(), Some(Frame::Welcome(_))), "{frames:?}");
    ep.handle_disconnected(now, ConnId(1));
    assert_eq!(ep.detached_count(), 1);
    // A second Hello on an established connection is a protocol violation.
    let mut bytes = BytesMut::new();
    hello(HelloKind::New, 2, 2).encode(&mut bytes);
    hello(HelloKind::New, 2, 2).encode(&mut bytes);
    let later = now + Duration::from_millis(1);
    answer(&mut ep, later, ConnId(2), bytes.freeze());
    assert_eq!(ep.detached_count(), 1, "the longest-detached session was evicted");
    let mut evicted = 0;
    while let Some((_, event)) = ep.poll_event() {
        evicted += usize::from(matches!(event, Event::Lost { reason: Reason::Evicted, .. }));
    }
    assert_eq!(evicted, 1);
}

#[test]
fn detached_sessions_expire_after_session_timeout() {
    let mut net = Net::connected(test_config(), 7);
    net.client_sends(0, 10, 10);
    net.run_for(Duration::from_millis(2));
    net.partition(Duration::from_secs(60));
    let t0 = net.now;
    assert!(net.run_until(LIMIT, |n| n.server.session_count() == 0));
    let timeout = test_config().session_timeout;
    assert!(net.now - t0 <= timeout + test_config().idle_timeout + Duration::from_millis(1));
    assert_eq!(net.server_app(0).unwrap().lost().map(|l| *l.0), Some(Reason::SessionTimeout));
    // The client gives up on its own as well, with the exact unconfirmed list.
    assert!(net.run_until(LIMIT, |n| n.clients[0].app.ended()));
    check_contract(&net);
}

#[test]
fn ids_and_secrets_are_deterministic_per_key_and_differ_across_keys() {
    let id_for = |key: [u8; 32]| {
        let mut ep = Endpoint::new(test_config(), key, Instant::ZERO).unwrap();
        ep.handle_connected(Instant::ZERO, ConnId(1));
        ep.handle_input(Instant::ZERO, ConnId(1), encoded(&hello(HelloKind::New, 2, 2)));
        let (frames, _) = drain(&mut ep, Instant::ZERO, ConnId(1));
        match &frames[0] {
            Frame::Welcome(w) => (w.session_id, w.secret),
            f => panic!("{f:?}"),
        }
    };
    assert_eq!(id_for([1; 32]), id_for([1; 32]));
    assert_ne!(id_for([1; 32]), id_for([2; 32]));
    assert_ne!(id_for([1; 32]).1, [0; 16]);
}

#[test]
fn a_closed_session_answers_late_resumes_with_session_closed() {
    let mut net = Net::connected(test_config(), 8);
    let welcome = net.welcomes[0];
    net.clients[0].session.close(net.now).unwrap();
    assert!(net.run_to_end(LIMIT));
    assert_eq!(net.server.session_count(), 0);
    // The owner's secret: the tombstone answers SessionClosed; a wrong one is BadSecret.
    let mut h = hello(HelloKind::Resume, 2, 2);
    if let Frame::Hello(h) = &mut h {
        h.session_id = welcome.session_id;
        h.secret = welcome.secret;
    }
    let (frames, _) = answer(&mut net.server, net.now, ConnId(999), encoded(&h));
    assert_eq!(rejected_with(&frames), Some(Reason::SessionClosed));
    if let Frame::Hello(h) = &mut h {
        h.secret[0] ^= 1;
    }
    let (frames, _) = answer(&mut net.server, net.now, ConnId(998), encoded(&h));
    assert_eq!(rejected_with(&frames), Some(Reason::BadSecret));
    // After session_timeout the tombstone is gone.
    net.run_for(test_config().session_timeout + Duration::from_secs(1));
    let (frames, _) = answer(&mut net.server, net.now, ConnId(997), encoded(&h));
    assert_eq!(rejected_with(&frames), Some(Reason::UnknownSession));
}

/// The server closes; its `CloseDone` is lost with the connection. The client (responder, its
/// `CloseAck` sent) resumes and is told `SessionClosed`, whether or not the server session has been
/// dropped yet: both sides end `Closed`.
#[test]
fn a_responder_whose_close_done_was_lost_learns_session_closed() {
    for stall in [false, true] {
        let mut net = Net::connected(test_config(), 10);
        net.client_sends(0, 5, 10);
        net.run_for(Duration::from_millis(50));
        let id = net.clients[0].session.id().unwrap();
        net.server.session_mut(id).unwrap().close(net.now).unwrap();
        // Stop just after the server ended (its CloseDone is in flight), then reset.
        net.server_stalled = stall;
        assert!(net.run_until(LIMIT, |n| n
            .server
            .session(id)
            .is_none_or(|s| { s.state() == tether_core::SessionState::Ended })));
        net.reset(0);
        net.server_stalled = false;
        assert!(net.run_to_end(LIMIT));
        assert!(
            net.clients[0].app.closed(),
            "stall={stall}: {:?}",
            net.clients[0].app.lost().map(|l| *l.0)
        );
        assert!(net.server_app(0).unwrap().closed());
        let c = &net.clients[0].app;
        assert_eq!(
            c.count(|e| matches!(e, Event::Disconnected { .. })),
            1,
            "the reset hit the close"
        );
        check_contract(&net);
    }
}

#[test]
fn endpoint_and_session_are_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Endpoint>();
    assert_send::<Session>();
}

#[test]
fn first_event_of_a_server_session_is_connected() {
    let mut net = Net::new(test_config(), 2, 9);
    assert!(net.run_until(LIMIT, |n| n.server_app(0).is_some() && n.server_app(1).is_some()));
    for app in net.server_apps.values() {
        assert_eq!(app.events.first(), Some(&Event::Connected));
    }
}

/// A caller that reads a few events at a time is served round robin: no session starves behind
/// a busier, lower-numbered one (sim finding #7).
#[test]
fn poll_event_is_round_robin_across_sessions() {
    let mut net = Net::new(test_config(), 3, 12);
    assert!(net.run_until(LIMIT, |n| (0..3).all(|i| n.server_app(i).is_some())));
    net.server_stalled = true;
    // Two frames per session, so each has two deliveries waiting.
    for _ in 0..2 {
        for i in 0..3 {
            net.client_sends(i, 10, 10);
        }
        net.run_for(Duration::from_millis(50));
    }
    let mut firsts = std::collections::BTreeMap::new();
    for k in 0..6 {
        let (id, e) = net.server.poll_event().expect("events are waiting");
        assert!(matches!(e, Event::Messages(_)));
        firsts.entry(id).or_insert(k);
    }
    assert!(net.server.poll_event().is_none());
    assert_eq!(firsts.len(), 3, "reads reached all three sessions: {firsts:?}");
    assert!(firsts.values().all(|k| *k < 3), "the first three reads: {firsts:?}");
}
