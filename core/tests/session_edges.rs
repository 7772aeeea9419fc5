//! One session's public surface at its edges: state while a handshake is in progress, counters
//! when a resume replaces a connection the server still held, and the other checks a mutant
//! showed unexercised. (See docs/TESTING.md, "Mutation testing".)

mod common;

use common::raw::Raw;
use common::*;
use tether_core::wire::Positions;
use tether_core::{Duration, Event, Reason, SessionState};

const LIMIT: Duration = Duration::from_secs(120);

/// A connection whose handshake has not completed is not a connected session.
#[test]
fn a_session_is_detached_until_its_handshake_completes() {
    let mut raw = Raw::handshaking(test_config());
    assert_eq!(raw.s.state(), SessionState::Detached);
    raw.feed(&[raw::welcome(Positions { received: 0, acked: 0, max_seq: 10, max_bytes: 1 << 20 })]);
    assert_eq!(raw.s.state(), SessionState::Connected);
}

/// The client lost its connection without the server noticing (half-open) and resumed: the
/// server session reports the old connection replaced, once, and counts it as a disconnect.
#[test]
fn a_resume_replacing_a_half_open_connection_counts_one_disconnect() {
    let mut net = Net::new(test_config(), 1, 31);
    assert!(net.run_until(LIMIT, |n| n.server_app(0).is_some()));
    net.half_open(0);
    assert!(net.run_until(LIMIT, |n| n.clients[0].app.count(|e| *e == Event::Resumed) == 1));
    let id = net.clients[0].session.id().unwrap();
    let app = net.server_app(0).unwrap();
    assert_eq!(app.count(|e| *e == Event::Disconnected { reason: Reason::Replaced }), 1);
    assert_eq!(net.server.session(id).unwrap().stats().disconnects, 1);
    assert_eq!(net.server.session(id).unwrap().stats().reconnects, 1);
}

/// The unconfirmed buffer takes messages up to exactly `max_unconfirmed_bytes` and
/// `max_unconfirmed_messages`, then reports backpressure; `can_send` says the same beforehand.
#[test]
fn the_unconfirmed_buffer_fills_exactly_to_its_limits() {
    use bytes::Bytes;
    use tether_core::wire::DATA_FRAME_LEN;
    use tether_core::{Config, Instant, SendError, Session};
    let config = Config {
        max_message_size: 100,
        max_frame_size: 100 + DATA_FRAME_LEN,
        max_unconfirmed_bytes: 100,
        max_unconfirmed_messages: 3,
        ..test_config()
    };
    let now = Instant::ZERO;
    let mut s = Session::client(config.clone(), 1, now).unwrap();
    assert!(s.can_send(60));
    assert_eq!(s.send(now, Bytes::from(vec![1; 60])).ok(), Some(0));
    assert!(s.can_send(40) && !s.can_send(41));
    assert!(matches!(s.send(now, Bytes::from(vec![2; 41])), Err(SendError::Backpressure(_))));
    assert_eq!(s.send(now, Bytes::from(vec![2; 40])).ok(), Some(1), "exactly the byte limit");
    assert!(!s.can_send(1) && s.can_send(0));
    assert!(matches!(s.send(now, Bytes::from(vec![3; 1])), Err(SendError::Backpressure(_))));
    assert_eq!(s.send(now, Bytes::new()).ok(), Some(2), "an empty message fits any byte count");
    assert!(!s.can_send(0), "the message limit");
    assert!(matches!(s.send(now, Bytes::new()), Err(SendError::Backpressure(_))));
    assert_eq!((s.stats().unconfirmed_messages, s.stats().unconfirmed_bytes), (3, 100));
}
