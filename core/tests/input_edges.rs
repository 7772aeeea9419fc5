//! Handshake frames out of place, against a hand-played peer: a `Welcome` or `Reject` on an
//! established connection, and data before the handshake, end that connection with
//! `UnexpectedFrame` and nothing else. (Prompted by mutants the other tests let through; see
//! docs/TESTING.md, "Mutation testing".)

mod common;

use bytes::Bytes;
use common::raw::Raw;
use common::test_config;
use tether_core::wire::{Frame, Positions, Welcome, PROTOCOL_VERSION};
use tether_core::{Event, FirstConnect, Reason, SessionState};

fn events(raw: &mut Raw) -> Vec<Event> {
    raw.events()
}

/// A second `Welcome`, even one that looks like a valid resume of this very session, is not
/// accepted on an established connection: it is a protocol violation, not a resume.
#[test]
fn a_welcome_on_an_established_connection_is_unexpected() {
    for resumed in [false, true] {
        let mut raw = Raw::new(test_config(), 100);
        raw.feed(&[Frame::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            resumed,
            session_id: 7,
            secret: [3; 16],
            positions: Positions { received: 0, acked: 0, max_seq: 100, max_bytes: 1 << 30 },
            max_message_size: 1 << 20,
        })]);
        assert_eq!(raw.conn_closed_with(), Some(Reason::UnexpectedFrame), "resumed {resumed}");
        assert_eq!(
            events(&mut raw),
            [Event::Disconnected { reason: Reason::UnexpectedFrame }],
            "resumed {resumed}"
        );
        assert_eq!(raw.s.stats().reconnects, 0);
    }
}

/// A `Reject` on an established connection is a protocol violation on that connection; it does
/// not end the session (only a refused handshake can).
#[test]
fn a_reject_on_an_established_connection_does_not_end_the_session() {
    for reason in [Reason::BadSecret, Reason::ServerBusy] {
        let mut raw = Raw::new(test_config(), 100);
        raw.s.send(raw.now, Bytes::from_static(b"kept")).unwrap();
        raw.drain();
        raw.feed(&[Frame::Reject {
            reason,
            min_version: PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
        }]);
        assert_eq!(raw.conn_closed_with(), Some(Reason::UnexpectedFrame), "{reason:?}");
        assert_eq!(events(&mut raw), [Event::Disconnected { reason: Reason::UnexpectedFrame }]);
        assert_eq!(raw.s.state(), SessionState::Detached);
        assert_eq!(raw.s.stats().unconfirmed_messages, 1);
    }
}

/// What a client's first connection ending in its handshake with `reason` leaves: with
/// `FirstConnect::Retry` a detached session that will try again; with the default
/// (`FirstConnect::Fail`) a session lost with that reason, handing back nothing.
fn first_handshake_failed(raw: &mut Raw, retry: bool, reason: Reason, what: &str) {
    let events = events(raw);
    if retry {
        assert!(events.is_empty(), "{what}: {events:?}");
        assert_eq!(raw.s.state(), SessionState::Detached, "{what}");
    } else {
        match events.as_slice() {
            [Event::Lost { reason: r, unconfirmed }] if *r == reason && unconfirmed.is_empty() => {}
            e => panic!("{what}: {e:?}"),
        }
    }
}

fn first_connect(retry: bool) -> tether_core::Config {
    let first_connect = if retry { FirstConnect::Retry } else { FirstConnect::Fail };
    tether_core::Config { first_connect, ..test_config() }
}

/// Frames of an established session before the handshake completed: the connection ends and
/// nothing is delivered or confirmed.
#[test]
fn session_frames_before_the_welcome_are_unexpected() {
    let frames = [
        Frame::data(0, 0, &[Bytes::from_static(b"early")]),
        Frame::Ping { token: 1 },
        Frame::Ack(Positions { received: 0, acked: 0, max_seq: 10, max_bytes: 100 }),
        Frame::Close { final_seq: 0 },
    ];
    for retry in [false, true] {
        for f in &frames {
            let mut raw = Raw::handshaking(first_connect(retry));
            raw.feed(std::slice::from_ref(f));
            assert_eq!(raw.conn_closed_with(), Some(Reason::UnexpectedFrame), "{f:?}");
            first_handshake_failed(&mut raw, retry, Reason::UnexpectedFrame, &format!("{f:?}"));
            assert_eq!(raw.s.stats().messages_received, 0);
        }
    }
}

/// The client's connection dies and it reconnects: its resume `Hello` is written, unanswered.
fn resuming(raw: &mut Raw) {
    raw.reconnect();
    events(raw);
}

fn welcome(resumed: bool, session_id: u64, secret: [u8; 16]) -> Frame {
    Frame::Welcome(Welcome {
        version: PROTOCOL_VERSION,
        resumed,
        session_id,
        secret,
        positions: Positions { received: 0, acked: 0, max_seq: 100, max_bytes: 1 << 30 },
        max_message_size: 1 << 20,
    })
}

/// A resuming client takes only a `Welcome` that resumes its own session (its id, its secret):
/// a fresh session, another session's id or a wrong secret is a malformed handshake, and the
/// client keeps its session (it never carries on as a session it does not own).
#[test]
fn a_resume_accepts_only_a_welcome_resuming_its_own_session() {
    let wrong = [
        ("a new session", welcome(false, 7, [3; 16])),
        ("another session", welcome(true, 8, [3; 16])),
        ("another secret", welcome(true, 7, [4; 16])),
    ];
    for (what, w) in wrong {
        let mut raw = Raw::new(test_config(), 100);
        raw.s.send(raw.now, Bytes::from_static(b"kept")).unwrap();
        resuming(&mut raw);
        raw.feed(&[w]);
        assert_eq!(raw.conn_closed_with(), Some(Reason::MalformedHandshake), "{what}");
        assert!(events(&mut raw).is_empty(), "{what}");
        assert_eq!(raw.s.state(), SessionState::Detached, "{what}");
        assert_eq!(raw.s.id(), Some(tether_core::SessionId(7)), "{what}");
        assert_eq!(raw.s.stats().reconnects, 0, "{what}");
    }
    // Its own session resumes.
    let mut raw = Raw::new(test_config(), 100);
    resuming(&mut raw);
    raw.feed(&[welcome(true, 7, [3; 16])]);
    assert_eq!(events(&mut raw), [Event::Resumed]);
}

/// A client asking for a new session does not take a `Welcome` claiming to resume one.
#[test]
fn a_new_session_does_not_accept_a_resuming_welcome() {
    for retry in [false, true] {
        let mut raw = Raw::handshaking(first_connect(retry));
        raw.feed(&[welcome(true, 7, [3; 16])]);
        assert_eq!(raw.conn_closed_with(), Some(Reason::MalformedHandshake));
        first_handshake_failed(&mut raw, retry, Reason::MalformedHandshake, "resumed welcome");
        assert_eq!(raw.s.id(), None);
    }
}

/// A standalone `Ack` acknowledging more than it says was received is a lie: the connection
/// ends with `InvalidAck` and nothing is confirmed by it.
#[test]
fn an_ack_beyond_what_it_says_was_received_is_invalid() {
    let mut raw = Raw::new(test_config(), 100);
    for _ in 0..3 {
        raw.s.send(raw.now, Bytes::from_static(b"x")).unwrap();
    }
    raw.drain();
    raw.feed(&[Frame::Ack(Positions { received: 1, acked: 2, max_seq: 100, max_bytes: 1 << 30 })]);
    assert_eq!(raw.conn_closed_with(), Some(Reason::InvalidAck));
    assert_eq!(events(&mut raw), [Event::Disconnected { reason: Reason::InvalidAck }]);
    assert_eq!(raw.s.stats().unconfirmed_messages, 3);
}

/// The round-trip time is measured from a message's first write to the ack that says it arrived.
#[test]
fn the_rtt_is_sampled_from_the_acknowledged_message() {
    let mut raw = Raw::new(test_config(), 100);
    raw.s.send(raw.now, Bytes::from_static(b"first")).unwrap();
    raw.drain();
    raw.now = raw.now + tether_core::Duration::from_millis(10);
    raw.s.send(raw.now, Bytes::from_static(b"second")).unwrap();
    raw.drain();
    assert_eq!(raw.s.stats().rtt, None);
    raw.now = raw.now + tether_core::Duration::from_millis(30);
    raw.feed(&[Frame::Ack(Positions { received: 1, acked: 1, max_seq: 100, max_bytes: 1 << 30 })]);
    assert_eq!(raw.s.stats().rtt, Some(tether_core::Duration::from_millis(40)));
}

/// A standalone `Ack` whose receive position goes backwards is a lie (the peer cannot un-receive).
#[test]
fn an_ack_whose_receive_position_goes_backwards_is_invalid() {
    let mut raw = Raw::new(test_config(), 100);
    for _ in 0..3 {
        raw.s.send(raw.now, Bytes::from_static(b"x")).unwrap();
    }
    raw.drain();
    raw.feed(&[Frame::Ack(Positions { received: 3, acked: 1, max_seq: 100, max_bytes: 1 << 30 })]);
    assert_eq!(events(&mut raw), [Event::Confirmed { up_to: 0 }]);
    raw.feed(&[Frame::Ack(Positions { received: 2, acked: 1, max_seq: 100, max_bytes: 1 << 30 })]);
    assert_eq!(raw.conn_closed_with(), Some(Reason::InvalidAck));
    assert_eq!(events(&mut raw), [Event::Disconnected { reason: Reason::InvalidAck }]);
}

/// An idle session measures the round-trip time with its heartbeat: the `Pong` that answers the
/// latest `Ping` is a sample; a `Pong` with another token is not.
#[test]
fn a_pong_answering_the_heartbeat_is_an_rtt_sample() {
    let mut raw = Raw::new(test_config(), 100);
    raw.drain();
    raw.now = raw.s.poll_timeout().unwrap();
    raw.s.handle_timeout(raw.now);
    let token = raw
        .drain()
        .iter()
        .find_map(|f| if let Frame::Ping { token } = f { Some(*token) } else { None })
        .expect("an idle session sends a heartbeat");
    raw.now = raw.now + tether_core::Duration::from_millis(20);
    raw.feed(&[Frame::Pong { token: token + 1 }]);
    assert_eq!(raw.s.stats().rtt, None, "a pong for another ping is not a sample");
    raw.feed(&[Frame::Pong { token }]);
    assert_eq!(raw.s.stats().rtt, Some(tether_core::Duration::from_millis(20)));
}
