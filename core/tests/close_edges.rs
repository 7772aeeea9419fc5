//! The close handshake against a hand-played peer: which `Close`/`CloseAck` frames are refused,
//! and how a resume refused with `SessionClosed` ends the session. (Prompted by mutants the other
//! tests let through; see docs/TESTING.md, "Mutation testing".)

mod common;

use bytes::Bytes;
use common::raw::Raw;
use common::test_config;
use tether_core::wire::{Frame, PROTOCOL_VERSION};
use tether_core::{AckMode, Config, Event, Reason, SessionState};

fn data(seq: u64, n: usize) -> Frame {
    let payloads: Vec<Bytes> = (0..n).map(|k| Bytes::from(vec![k as u8; 3])).collect();
    Frame::data(seq, 0, &payloads)
}

/// Events available now (no time passes).
fn events(raw: &mut Raw) -> Vec<Event> {
    raw.events()
}

/// The peer may repeat its `Close` (it does after every resume); the same `final_seq` again is
/// fine, a different one is a protocol violation.
#[test]
fn a_repeated_close_is_accepted_only_with_the_same_final_seq() {
    let mut raw = Raw::new(test_config(), 100);
    raw.feed(&[Frame::Close { final_seq: 0 }, Frame::Close { final_seq: 0 }]);
    let out = raw.drain_all();
    assert!(!out.contains(&None), "the connection stays up: {out:?}");
    assert_eq!(raw.s.state(), SessionState::Connected);
    raw.feed(&[Frame::Close { final_seq: 1 }]);
    assert_eq!(raw.conn_closed_with(), Some(Reason::UnexpectedFrame));
}

/// A `Close` claiming the peer sent fewer messages than we already received is a lie.
#[test]
fn a_close_below_what_was_received_is_refused() {
    let mut raw = Raw::new(test_config(), 100);
    raw.feed(&[data(0, 3)]);
    raw.feed(&[Frame::Close { final_seq: 2 }]);
    assert_eq!(raw.conn_closed_with(), Some(Reason::UnexpectedFrame));
    let events = events(&mut raw);
    assert!(
        events.contains(&Event::Disconnected { reason: Reason::UnexpectedFrame }),
        "{events:?}"
    );
    assert!(!events.contains(&Event::Closed));
}

/// A `CloseAck` when we never sent `Close` does not end the session.
#[test]
fn an_unsolicited_close_ack_is_refused() {
    let mut raw = Raw::new(test_config(), 100);
    raw.feed(&[Frame::CloseAck { final_seq: 0 }]);
    assert_eq!(raw.conn_closed_with(), Some(Reason::UnexpectedFrame));
    assert_ne!(raw.s.state(), SessionState::Ended);
    assert!(!events(&mut raw).contains(&Event::Closed));
}

/// We closed, and acknowledged only some of what we received (manual acks). A `CloseAck` whose
/// `final_seq` does not match both what we received and what we acknowledged is refused: the
/// session must not end `Closed` with a received message unacknowledged.
#[test]
fn a_close_ack_must_match_what_was_received_and_acknowledged() {
    let config = Config { ack_mode: AckMode::Manual, ..test_config() };
    for final_seq in [2, 3] {
        let mut raw = Raw::new(config.clone(), 100);
        raw.feed(&[data(0, 3)]);
        let delivered: usize = events(&mut raw)
            .iter()
            .map(|e| if let Event::Messages(d) = e { d.len() } else { 0 })
            .sum();
        assert_eq!(delivered, 3);
        raw.s.ack(1).unwrap(); // messages 0 and 1 acknowledged, 2 not
        raw.s.close(raw.now).unwrap();
        let out = raw.drain();
        assert!(out.iter().any(|f| matches!(f, Frame::Close { final_seq: 0 })), "{out:?}");
        raw.feed(&[Frame::CloseAck { final_seq }]);
        assert_eq!(raw.conn_closed_with(), Some(Reason::UnexpectedFrame), "final_seq {final_seq}");
        assert!(!events(&mut raw).contains(&Event::Closed), "final_seq {final_seq}");
    }
}

/// A client whose resume is refused with `SessionClosed`.
fn refused_as_closed(raw: &mut Raw) -> Vec<Event> {
    raw.reconnect();
    events(raw);
    raw.feed(&[Frame::Reject {
        reason: Reason::SessionClosed,
        min_version: PROTOCOL_VERSION,
        max_version: PROTOCOL_VERSION,
    }]);
    raw.drain_all();
    events(raw)
}

/// The server closed the session while we were away and we had not asked to close: it ends at
/// once as lost (`SessionClosed`), handing back what we sent.
#[test]
fn a_resume_refused_as_closed_ends_a_session_that_was_not_closing_as_lost() {
    let mut raw = Raw::new(test_config(), 100);
    raw.s.send(raw.now, Bytes::from_static(b"unconfirmed")).unwrap();
    let events = refused_as_closed(&mut raw);
    match events.as_slice() {
        [Event::Lost { reason: Reason::SessionClosed, unconfirmed }] => {
            assert_eq!(unconfirmed.len(), 1);
            assert_eq!(unconfirmed[0].payload, Bytes::from_static(b"unconfirmed"));
        }
        e => panic!("{e:?}"),
    }
    // Nothing sent, not closing: lost too (the session did not close on our request).
    let mut raw = Raw::new(test_config(), 100);
    assert!(matches!(
        refused_as_closed(&mut raw).as_slice(),
        [Event::Lost { reason: Reason::SessionClosed, .. }]
    ));
}

/// We were closing with nothing of ours unconfirmed: the server's clean close is ours too.
/// Closing with a message still unconfirmed is not clean: it is handed back.
#[test]
fn a_resume_refused_as_closed_ends_a_finished_closing_session_as_closed() {
    let mut raw = Raw::new(test_config(), 100);
    raw.s.close(raw.now).unwrap();
    assert_eq!(refused_as_closed(&mut raw), [Event::Closed]);

    let mut raw = Raw::new(test_config(), 100);
    raw.s.send(raw.now, Bytes::from_static(b"x")).unwrap();
    raw.s.close(raw.now).unwrap();
    match refused_as_closed(&mut raw).as_slice() {
        [Event::Lost { reason: Reason::SessionClosed, unconfirmed }] => {
            assert_eq!(unconfirmed.len(), 1)
        }
        e => panic!("{e:?}"),
    }
}
