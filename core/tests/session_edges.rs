//! One session's public surface at its edges: state while a handshake is in progress, counters
//! when a resume replaces a connection the server still held, and the other checks a mutant
//! showed unexercised. (See docs/TESTING.md, "Mutation testing".)

mod common;

use common::raw::Raw;
use common::*;
use tether_core::wire::{Frame, Positions};
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
    let mut net = Net::connected(test_config(), 31);
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

/// A connection reported to a session that has ended is closed at once: no handshake on it.
#[test]
fn a_connection_reported_after_the_end_is_closed_unused() {
    use bytes::BytesMut;
    use tether_core::{ConnId, Instant, Session, Transmit};
    let now = Instant::ZERO;
    let mut s = Session::client(test_config(), 1, now).unwrap();
    s.abort(now);
    assert!(matches!(s.poll_event(), Some(Event::Lost { reason: Reason::ApplicationAbort, .. })));
    s.handle_connected(now, ConnId(5));
    let mut buf = BytesMut::new();
    assert_eq!(s.poll_transmit(now, &mut buf), Some(Transmit::Close(ConnId(5))));
    assert!(buf.is_empty(), "nothing is written on it");
    assert_eq!(s.poll_transmit(now, &mut buf), None);
    assert_eq!(s.state(), SessionState::Ended);
}

/// A connect failure reported while a connection is attached (a stale report, e.g. from a
/// second attempt raced against the first) changes nothing: the handshake on the attached
/// connection goes on, even when a failed first connect would end the session.
#[test]
fn a_stale_connect_failure_during_a_handshake_is_ignored() {
    let mut raw = Raw::handshaking(test_config()); // FirstConnect::Fail
    raw.s.handle_connect_failed(raw.now);
    assert_eq!(raw.s.poll_event(), None);
    assert_ne!(raw.s.state(), SessionState::Ended);
    raw.feed(&[raw::welcome(Positions { received: 0, acked: 0, max_seq: 10, max_bytes: 1 << 20 })]);
    assert_eq!(raw.s.poll_event(), Some(Event::Connected));
}

/// `has_close_pending` tells an adapter that stopped pulling output (full write buffer) that a
/// retired connection still waits for its close: true from the connection's end until the
/// `Transmit::Close` is taken, and the reconnect waits for it.
#[test]
fn has_close_pending_holds_until_the_close_is_taken() {
    use bytes::BytesMut;
    use tether_core::Transmit;
    let mut raw = Raw::new(test_config(), 10);
    assert!(!raw.s.has_close_pending());
    raw.drain();
    assert!(!raw.s.has_close_pending());
    // The connection goes silent: the idle timeout retires it.
    raw.now = raw.now + test_config().idle_timeout;
    raw.s.handle_timeout(raw.now);
    assert!(raw.s.has_close_pending());
    raw.now = raw.now + test_config().reconnect_backoff_max;
    raw.s.handle_timeout(raw.now);
    assert!(!raw.s.poll_connect(raw.now), "no reconnect before the old connection is closed");
    let mut buf = BytesMut::new();
    assert_eq!(raw.s.poll_transmit(raw.now, &mut buf), Some(Transmit::Close(raw.conn)));
    assert!(!raw.s.has_close_pending());
    assert!(raw.s.poll_connect(raw.now));
}

/// Confirmations that arrive while the application is not reading fold into one event naming the
/// newest: the event queue stays bounded, and what is confirmed is still exact.
#[test]
fn confirmations_the_application_has_not_read_fold_into_one() {
    use bytes::Bytes;
    let mut raw = Raw::new(test_config(), 100);
    for _ in 0..5 {
        raw.s.send(raw.now, Bytes::from_static(b"m")).unwrap();
    }
    raw.drain();
    for k in 1..=5 {
        raw.feed(&[Frame::Ack(Positions {
            received: k,
            acked: k,
            max_seq: 100,
            max_bytes: 1 << 30,
        })]);
    }
    assert_eq!(raw.s.poll_event(), Some(Event::Confirmed { up_to: 4 }));
    assert_eq!(raw.s.poll_event(), None);
}

/// A connection that flaps while the application is not reading: it sees one `Disconnected`
/// and one `Resumed` (contract 3), not the whole history.
#[test]
fn a_flapping_connection_shows_at_most_one_disconnected_resumed_pair() {
    let mut raw = Raw::new(test_config(), 100);
    for _ in 0..3 {
        raw.reconnect();
        raw.feed(&[raw::resume_welcome(Positions {
            received: 0,
            acked: 0,
            max_seq: 100,
            max_bytes: 1 << 30,
        })]);
        assert_eq!(raw.s.state(), SessionState::Connected);
    }
    let mut events = Vec::new();
    while let Some(e) = raw.s.poll_event() {
        events.push(e);
    }
    assert_eq!(
        events,
        [Event::Disconnected { reason: Reason::TransportLost }, Event::Resumed],
        "{events:?}"
    );
    assert_eq!(raw.s.stats().reconnects, 3);
}

/// A message queued before the handshake that is exactly as large as the peer accepts goes out;
/// only a larger one ends the session (`MessageTooLarge`), since no connection could carry it.
#[test]
fn a_queued_message_exactly_at_the_peers_limit_is_sent() {
    use bytes::Bytes;
    for (len, fits) in [(100, true), (101, false)] {
        let mut raw = Raw::handshaking(test_config());
        raw.s.send(raw.now, Bytes::from(vec![7; len])).unwrap();
        let positions = Positions { received: 0, acked: 0, max_seq: 100, max_bytes: 1 << 30 };
        raw.feed(&[raw::welcome_limiting(positions, 100)]);
        assert_eq!(raw.s.poll_event(), Some(Event::Connected), "{len}");
        if fits {
            assert_eq!(raw.s.poll_event(), None);
            let sent = raw.drain().iter().any(|f| matches!(f, Frame::Data { .. }));
            assert!(sent, "the message is written");
        } else {
            assert!(matches!(
                raw.s.poll_event(),
                Some(Event::Lost { reason: Reason::MessageTooLarge, .. })
            ));
        }
    }
}

/// Each heartbeat carries a new token, so an answer to an older one is told apart from the answer
/// to the newest (which is what the round-trip estimate is taken from).
#[test]
fn every_heartbeat_carries_a_new_token() {
    let mut raw = Raw::new(test_config(), 10);
    raw.drain();
    let mut tokens = Vec::new();
    for _ in 0..100 {
        if tokens.len() == 3 {
            break;
        }
        raw.now = raw.s.poll_timeout().expect("a heartbeat timer");
        raw.s.handle_timeout(raw.now);
        for f in raw.drain() {
            if let Frame::Ping { token } = f {
                tokens.push(token);
                raw.feed(&[Frame::Pong { token }]);
            }
        }
    }
    assert_eq!(tokens.len(), 3, "three heartbeats within 100 timer steps");
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "tokens {tokens:?}");
}
