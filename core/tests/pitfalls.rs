//! One test per pitfall of DESIGN.md section 4.1 ("where designs like this usually go wrong").

mod common;

use bytes::{Bytes, BytesMut};
use common::raw::{welcome, Raw};
use common::*;
use tether_core::wire::{Decoder, Frame, Positions};
use tether_core::{
    AckMode, Config, Duration, Event, FirstConnect, Instant, Reason, SendError, SessionState,
    Transmit,
};

const LIMIT: Duration = Duration::from_secs(120);

fn data(seq: u64, ack: u64) -> Frame {
    Frame::data(seq, ack, &[Bytes::from_static(b"m")])
}

// ----- Delivered is not acknowledged -----

/// In manual-ack mode, delivered-but-unacked messages are not redelivered on resume, the sender
/// confirms only acked ones, and keeps their payloads: a later Lost hands them back.
#[test]
fn pitfall_delivered_is_not_acknowledged() {
    let config = Config { ack_mode: AckMode::Manual, ..test_config() };
    let mut net = Net::connected(config, 11);
    net.server_stalled = true; // the server app delivers nothing and acks nothing yet
                               // Two frames of ten messages each: the core delivers a frame's messages together.
    for _ in 0..2 {
        net.client_sends(0, 10, 10);
        net.run_for(Duration::from_millis(50));
    }
    // Deliver the first ten to the server app by hand and ack only 5 of them.
    let id = net.clients[0].session.id().unwrap();
    let s = net.server.session_mut(id).unwrap();
    let delivery = std::iter::from_fn(|| s.poll_event())
        .find_map(|e| match e {
            Event::Messages(d) => Some(d),
            _ => None,
        })
        .expect("a delivery");
    assert_eq!(delivery.map(|m| m.0).collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
    s.ack(4).unwrap();
    assert!(s.ack(15).is_err(), "cannot ack what was not delivered");
    net.run_for(Duration::from_millis(50));
    assert_eq!(net.clients[0].app.confirmed, Some(4), "only acked messages are confirmed");
    net.reset(0);
    assert!(net.run_until(LIMIT, |n| n.clients[0].session.stats().reconnects == 1));
    net.run_for(Duration::from_millis(50));
    // Nothing is redelivered: the next message the server app sees is 10.
    let s = net.server.session_mut(id).unwrap();
    let next = std::iter::from_fn(|| s.poll_event()).find_map(|e| match e {
        Event::Messages(d) => Some(d.next_seq()),
        _ => None,
    });
    assert_eq!(next, Some(10));
    // The server is restarted before acking: the client gets back 5..20, including 5..10 that the
    // server application did receive (Lost means "not confirmed", not "not arrived").
    net.restart_server();
    assert!(net.run_until(LIMIT, |n| n.clients[0].app.ended()));
    let (_, unconfirmed) = net.clients[0].app.lost().unwrap();
    assert_eq!(unconfirmed.first().map(|m| m.seq), Some(5));
    assert_eq!(unconfirmed.len(), 15);
}

/// `Lost` means "not confirmed": after a refused resume, the peer may have received some of the
/// returned messages. The checker accepts that overlap; it forbids only confirmed ∩ returned.
#[test]
fn pitfall_lost_means_not_confirmed() {
    let mut overlaps = 0;
    for seed in 0..30 {
        let mut net = Net::connected(test_config(), seed);
        net.client_sends(0, 50, 10);
        net.run_for(Duration::from_micros(5_000 + seed * 200));
        let delivered = net.server_app(0).unwrap().delivered.len();
        net.restart_server();
        assert!(net.run_until(LIMIT, |n| n.clients[0].app.ended()));
        let app = &net.clients[0].app;
        let (_, unconfirmed) = app.lost().unwrap();
        let confirmed = app.confirmed.map_or(0, |c| c + 1) as usize;
        assert_eq!(confirmed + unconfirmed.len(), 50);
        if confirmed < delivered {
            overlaps += 1;
        }
        check_contract(&net);
    }
    assert!(overlaps > 0, "no run exercised delivered-but-unconfirmed messages");
}

// ----- Heartbeats are not progress -----

/// A peer that answers heartbeats but never acknowledges data is found by `ack_timeout`, and
/// acks are never acked: an idle session exchanges only heartbeats.
#[test]
fn pitfall_heartbeats_are_not_progress() {
    let config = Config { ack_timeout: Duration::from_millis(800), ..test_config() };
    let mut raw = Raw::new(config, 100);
    raw.s.send(raw.now, Bytes::from_static(b"x")).unwrap();
    let t0 = raw.now;
    raw.drain();
    loop {
        raw.now = raw.s.poll_timeout().unwrap();
        raw.s.handle_timeout(raw.now);
        if raw.s.state() != SessionState::Connected {
            break;
        }
        // The "peer" answers every heartbeat and sends its own, but never acks message 0.
        for f in raw.drain() {
            if let Frame::Ping { token } = f {
                raw.feed(&[Frame::Pong { token }, Frame::Ping { token: 99 }]);
            }
        }
        assert!(raw.now - t0 < Duration::from_secs(5), "never detected");
    }
    assert_eq!(raw.conn_closed_with(), Some(Reason::AckTimeout));
    assert_eq!(raw.now - t0, Duration::from_millis(800));
}

#[test]
fn pitfall_acks_are_never_acked() {
    let mut net = Net::connected(test_config(), 3);
    net.client_sends(0, 100, 10);
    net.server_sends(0, 100, 10);
    net.run_for(Duration::from_secs(1));
    let before = net.client_writes + net.server_writes;
    net.run_for(Duration::from_secs(10));
    let idle_writes = net.client_writes + net.server_writes - before;
    // Each side sends one heartbeat per interval and answers the other's: 4 per 100 ms at most.
    assert!(idle_writes <= 4 * 100 + 4, "{idle_writes} writes while idle");
    assert!(idle_writes >= 100, "heartbeats must flow while idle: {idle_writes}");
}

// ----- Stale connections talk after takeover -----

/// After a resume replaced a half-open connection, frames still arriving on the old one are
/// ignored, positions do not roll back, and the old transport is closed.
#[test]
fn pitfall_stale_connections_after_takeover() {
    for seed in 0..20 {
        let mut net = Net::connected(test_config(), seed);
        net.client_sends(0, 100, 20);
        net.run_for(Duration::from_millis(2));
        // The client alone sees the connection die; its in-flight bytes reach the server late.
        net.half_open(0);
        net.client_sends(0, 100, 20);
        assert!(net.run_until(LIMIT, |n| n.server_app(0).unwrap().delivered.len() == 200));
        net.run_for(Duration::from_secs(1));
        assert_eq!(net.server.connection_count(), 1);
        check_contract(&net);
    }
}

// ----- Peers lie -----

#[test]
fn pitfall_peers_lie_ack_beyond_sent() {
    let mut raw = Raw::new(test_config(), 100);
    raw.s.send(raw.now, Bytes::from_static(b"x")).unwrap();
    raw.drain();
    raw.feed(&[data(0, 5)]);
    assert_eq!(raw.conn_closed_with(), Some(Reason::InvalidAck));
    assert_eq!(raw.s.poll_event(), Some(Event::Disconnected { reason: Reason::InvalidAck }));
    assert_eq!(raw.s.stats().unconfirmed_messages, 1, "nothing was confirmed by the lie");
}

#[test]
fn pitfall_peers_lie_ack_backwards() {
    let mut raw = Raw::new(test_config(), 100);
    for _ in 0..3 {
        raw.s.send(raw.now, Bytes::from_static(b"x")).unwrap();
    }
    raw.drain();
    raw.feed(&[Frame::Ack(Positions { received: 3, acked: 2, max_seq: 100, max_bytes: 1 << 30 })]);
    assert_eq!(raw.s.poll_event(), Some(Event::Confirmed { up_to: 1 }));
    raw.feed(&[data(0, 1)]);
    assert_eq!(raw.conn_closed_with(), Some(Reason::InvalidAck));
}

#[test]
fn pitfall_peers_lie_resume_position_beyond_sent() {
    // The server claims to have received 5 messages the client never sent: the connection ends,
    // and so does the session if it was the first connection (`FirstConnect::Fail`).
    let lie = welcome(Positions { received: 5, acked: 0, max_seq: 10, max_bytes: 100 });
    let retry = Config { first_connect: FirstConnect::Retry, ..test_config() };
    for (config, state) in [(retry, SessionState::Detached), (test_config(), SessionState::Ended)] {
        let mut raw = Raw::handshaking(config);
        raw.feed(std::slice::from_ref(&lie));
        assert_eq!(raw.conn_closed_with(), Some(Reason::InvalidResumePosition));
        assert_eq!(raw.s.state(), state);
    }
}

#[test]
fn pitfall_peers_lie_resume_position_behind_confirmed() {
    // A resume, with the owner's secret, claiming less than what the client already acknowledged
    // (and the server already confirmed) is refused; the session is untouched.
    let mut net = Net::connected(test_config(), 8);
    net.server_sends(0, 10, 10);
    assert!(net.run_until(LIMIT, |n| n.server_app(0).unwrap().confirmed == Some(9)));
    let welcome = net.welcomes[0];
    for positions in [
        Positions { received: 3, acked: 3, max_seq: 100, max_bytes: 1 << 20 }, // behind confirmed
        Positions { received: 50, acked: 10, max_seq: 100, max_bytes: 1 << 20 }, // beyond sent
        Positions { received: 10, acked: 11, max_seq: 100, max_bytes: 1 << 20 }, // acked > received
    ] {
        let hello = Frame::Hello(tether_core::wire::Hello {
            min_version: tether_core::wire::PROTOCOL_VERSION,
            max_version: tether_core::wire::PROTOCOL_VERSION,
            kind: tether_core::wire::HelloKind::Resume,
            session_id: welcome.session_id,
            secret: welcome.secret,
            positions,
            max_message_size: 1 << 20,
        });
        let mut b = BytesMut::new();
        hello.encode(&mut b);
        let raw = net.raw_connect();
        net.server.handle_input(net.now, raw, b.freeze());
        let mut buf = BytesMut::new();
        let mut refused = None;
        while let Some(t) = net.server.poll_transmit(net.now, &mut buf) {
            let mut d = Decoder::new(1024);
            d.push(buf.split().freeze());
            if let (Transmit::Close(c), Ok(Some(Frame::Reject { reason, .. }))) =
                (t, d.next_frame())
            {
                if c == raw {
                    refused = Some(reason);
                }
            }
        }
        assert_eq!(refused, Some(Reason::InvalidResumePosition), "{positions:?}");
    }
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.server_app(0).unwrap().confirmed, Some(9));
    assert_eq!(net.clients[0].session.stats().disconnects, 0);
    check_contract(&net);
}

#[test]
fn pitfall_peers_lie_sequence_gap_and_wrong_direction() {
    let mut raw = Raw::new(test_config(), 100);
    raw.feed(&[data(3, 0)]);
    assert_eq!(raw.conn_closed_with(), Some(Reason::InvalidSequence));

    let mut raw = Raw::new(test_config(), 100);
    let hello = Frame::Hello(tether_core::wire::Hello {
        min_version: tether_core::wire::PROTOCOL_VERSION,
        max_version: tether_core::wire::PROTOCOL_VERSION,
        kind: tether_core::wire::HelloKind::New,
        session_id: 0,
        secret: [0; 16],
        positions: Positions::default(),
        max_message_size: 1 << 20,
    });
    raw.feed(&[hello]);
    assert_eq!(raw.conn_closed_with(), Some(Reason::UnexpectedFrame));
}

#[test]
fn pitfall_peers_lie_beyond_the_window() {
    let config = Config { receive_window_messages: 2, ..test_config() };
    let mut raw = Raw::new(config, 100);
    raw.feed(&[data(0, 0), data(1, 0), data(2, 0)]);
    assert_eq!(raw.conn_closed_with(), Some(Reason::FlowControlViolation));
}

/// A window of zero forever: the sender buffers up to its limit, reports backpressure, never
/// panics or grows; a close cannot complete and ends as Lost with every message handed back.
#[test]
fn pitfall_peers_lie_zero_window_forever() {
    let config = Config { max_unconfirmed_messages: 10, ..test_config() };
    let mut raw = Raw::new(config, 0);
    let mut accepted = 0;
    for _ in 0..20 {
        match raw.s.send(raw.now, Bytes::from_static(b"x")) {
            Ok(_) => accepted += 1,
            Err(SendError::Backpressure(_)) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(accepted, 10);
    assert!(raw.drain().iter().all(|f| !matches!(f, Frame::Data { .. })));
    raw.s.close(raw.now).unwrap();
    let start = raw.now;
    while raw.s.state() != SessionState::Ended {
        raw.now = raw.s.poll_timeout().unwrap();
        raw.s.handle_timeout(raw.now);
        for f in raw.drain() {
            if let Frame::Ping { token } = f {
                raw.feed(&[Frame::Pong { token }, Frame::Ping { token }]);
            }
        }
        assert!(raw.now - start <= Duration::from_secs(6));
    }
    let mut lost = None;
    while let Some(e) = raw.s.poll_event() {
        if let Event::Lost { reason, unconfirmed } = e {
            lost = Some((reason, unconfirmed.len()));
        }
    }
    assert_eq!(lost, Some((Reason::CloseTimeout, 10)));
}

// ----- Close races -----

fn close_race(seed: u64, setup: impl Fn(&mut Net)) -> Net {
    let mut net = Net::connected(test_config(), seed);
    net.client_sends(0, 50, 30);
    net.server_sends(0, 50, 30);
    net.run_for(Duration::from_millis(3));
    setup(&mut net);
    assert!(net.run_to_end(LIMIT), "seed {seed}: a side never ended");
    check_contract(&net);
    net
}

#[test]
fn pitfall_close_race_both_sides_close_at_once() {
    for seed in 0..20 {
        let net = close_race(seed, |n| {
            let now = n.now;
            n.clients[0].session.close(now).unwrap();
            let id = n.clients[0].session.id().unwrap();
            n.server.session_mut(id).unwrap().close(now).unwrap();
        });
        assert!(net.clients[0].app.closed() && net.server_app(0).unwrap().closed(), "seed {seed}");
    }
}

#[test]
fn pitfall_close_race_close_while_detached() {
    for seed in 0..20 {
        let net = close_race(seed, |n| {
            n.blackhole(0);
            n.run_for(Duration::from_millis(600)); // past idle_timeout: detached
            let now = n.now;
            n.clients[0].session.close(now).unwrap();
        });
        assert!(net.clients[0].app.closed() && net.server_app(0).unwrap().closed(), "seed {seed}");
    }
}

#[test]
fn pitfall_close_race_close_while_detached_too_long() {
    // The partition outlasts close_timeout: the close ends as Lost on the client; the server
    // session, detached, is given up at session_timeout as Lost too.
    let net = close_race(1, |n| {
        let now = n.now;
        n.clients[0].session.close(now).unwrap();
        n.partition(Duration::from_secs(30));
    });
    assert_eq!(net.clients[0].app.lost().map(|l| *l.0), Some(Reason::CloseTimeout));
    assert!(net.server_app(0).unwrap().lost().is_some());
}

#[test]
fn pitfall_close_race_peer_stops_reading() {
    let mut net = Net::connected(test_config(), 2);
    net.server_stalled = true;
    net.client_sends(0, 50, 30);
    net.run_for(Duration::from_millis(3));
    net.clients[0].session.close(net.now).unwrap();
    assert!(net.run_until(LIMIT, |n| n.clients[0].app.ended()));
    assert_eq!(net.clients[0].app.lost().map(|l| *l.0), Some(Reason::CloseTimeout));
    net.server_stalled = false;
    assert!(net.run_to_end(LIMIT));
    assert_eq!(net.server_app(0).unwrap().lost().map(|l| *l.0), Some(Reason::CloseTimeout));
    check_contract(&net);
}

#[test]
fn pitfall_close_race_abort_during_close() {
    for seed in 0..10 {
        let net = close_race(seed, |n| {
            let now = n.now;
            n.clients[0].session.close(now).unwrap();
            n.run_for(Duration::from_millis(seed));
            let id = n.clients[0].session.id().unwrap();
            if let Some(s) = n.server.session_mut(id) {
                s.abort(now);
            }
        });
        let c = &net.clients[0].app;
        let s = net.server_app(0).unwrap();
        // Each side ends exactly once; if the abort landed, both see Lost.
        assert!(c.ended() && s.ended());
        if s.lost().is_some() {
            assert!(c.lost().is_some() || c.closed());
        }
    }
}

// ----- Replay and flow control -----

/// Replayed messages count once in stats and windows; replay respects the peer's window.
#[test]
fn pitfall_replay_respects_flow_control_and_counts_once() {
    let config =
        Config { receive_window_messages: 16, receive_window_bytes: 2 << 20, ..test_config() };
    for seed in 0..10 {
        let mut net = Net::connected(config.clone(), seed);
        net.server_stalled = true;
        net.client_sends(0, 100, 100);
        net.run_for(Duration::from_millis(100));
        net.reset(0);
        net.run_for(Duration::from_millis(500));
        net.server_stalled = false;
        assert!(net.run_until(LIMIT, |n| n.server_app(0).unwrap().delivered.len() == 100));
        let stats = net.clients[0].session.stats();
        assert_eq!(stats.messages_sent, 100);
        let id = net.clients[0].session.id().unwrap();
        let server = net.server.session(id).unwrap().stats();
        assert_eq!(server.messages_received, 100, "replays counted once");
        assert!(net.max_buffered_receive <= 16 * 100);
        check_contract(&net);
    }
}

// ----- Timers -----

/// `handle_timeout` at any time, early or repeated, is harmless: a run with spurious timeouts at
/// every step ends exactly like one without.
#[test]
fn pitfall_timers_spurious_timeouts_are_harmless() {
    for seed in 0..10 {
        let run = |spurious: bool| {
            let mut net = Net::new(test_config(), 1, seed);
            net.spurious_timeouts = spurious;
            assert!(net.run_until(LIMIT, |n| n.server_app(0).is_some()));
            net.client_sends(0, 100, 50);
            net.run_for(Duration::from_millis(4));
            net.reset(0);
            assert!(net.run_until(LIMIT, |n| n.server_app(0).unwrap().delivered.len() == 100));
            net.clients[0].session.close(net.now).unwrap();
            assert!(net.run_to_end(LIMIT));
            check_contract(&net);
            (net.clients[0].app.events.clone(), net.now)
        };
        assert_eq!(run(false), run(true), "seed {seed}");
    }
}

/// `poll_timeout` is the earliest armed deadline: nothing is ever due before it.
#[test]
fn pitfall_timers_poll_timeout_is_the_earliest_deadline() {
    let mut raw = Raw::new(test_config(), 100);
    raw.s.send(raw.now, Bytes::from_static(b"x")).unwrap();
    raw.drain();
    let deadline = raw.s.poll_timeout().unwrap();
    // Just before the deadline, a timeout call changes nothing and writes nothing.
    raw.now = Instant::from_nanos(deadline.as_nanos() - 1);
    raw.s.handle_timeout(raw.now);
    assert!(raw.drain().is_empty());
    assert_eq!(raw.s.poll_timeout(), Some(deadline));
    raw.now = deadline;
    raw.s.handle_timeout(raw.now);
    assert!(!raw.drain().is_empty(), "something was due at the deadline");
}

/// Same seed, same run: the harness and the core are deterministic.
#[test]
fn determinism_same_seed_same_events() {
    let run = || {
        let mut net = Net::new(test_config(), 2, 42);
        net.split_reads = true;
        assert!(net.run_until(LIMIT, |n| n.server_app(1).is_some()));
        net.client_sends(0, 100, 50);
        net.client_sends(1, 100, 50);
        net.run_for(Duration::from_millis(5));
        net.blackhole(0);
        net.lose_suffix_then_reset(1);
        net.run_for(Duration::from_secs(5));
        (net.clients.iter().map(|c| c.app.events.clone()).collect::<Vec<_>>(), net.now, net.steps)
    };
    assert_eq!(run(), run());
}

/// Regression (found in review): the connection dies after the responder got `Close`; on resume
/// its `CloseAck` arrives right behind its `Welcome`, before the initiator re-sent `Close` on the
/// new connection. The initiator must accept it (its `Close` went out on the earlier connection).
#[test]
fn pitfall_close_race_close_ack_right_after_resume() {
    for step in 0..60u64 {
        let mut net = Net::connected(test_config(), step);
        net.client_sends(0, 5, 10);
        net.run_for(Duration::from_millis(50));
        net.clients[0].session.close(net.now).unwrap();
        net.run_for(Duration::from_micros(step * 250));
        net.reset(0);
        assert!(net.run_to_end(LIMIT));
        check_contract(&net);
        assert!(
            net.clients[0].app.closed(),
            "step {step}: {:?}",
            net.clients[0].app.lost().map(|l| *l.0)
        );
        assert!(net.server_app(0).unwrap().closed(), "step {step}");
    }
}
