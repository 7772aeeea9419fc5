//! The session API itself: misuse errors, delayed acks, statistics.

mod common;

use bytes::Bytes;
use common::*;
use tether_core::{AckError, AckMode, CloseError, Config, Duration, SendError};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn misuse_is_reported_at_the_call_and_hands_the_message_back() {
    let mut net = Net::connected(test_config(), 1);
    let now = net.now;
    let s = &mut net.clients[0].session;
    let big = Bytes::from(vec![0u8; test_config().max_message_size as usize + 1]);
    let too_large = s.send(now, big.clone()).unwrap_err();
    assert!(matches!(&too_large, SendError::TooLarge { payload, .. } if *payload == big));
    assert_eq!(too_large.into_payload(), big, "every refusal hands the message back");
    assert_eq!(s.ack(0), Err(AckError::NotManual));
    s.close(now).unwrap();
    s.close(now).unwrap(); // idempotent
    let m = Bytes::from_static(b"late");
    assert_eq!(s.send(now, m.clone()), Err(SendError::Closing(m.clone())));
    assert_eq!(s.send(now, m.clone()).unwrap_err().into_payload(), m);
    assert!(net.run_to_end(LIMIT));
    let s = &mut net.clients[0].session;
    assert_eq!(s.send(net.now, m.clone()), Err(SendError::Ended(m.clone())));
    assert_eq!(s.send(net.now, m.clone()).unwrap_err().into_payload(), m);
    assert_eq!(s.close(net.now), Err(CloseError::Ended));
    s.abort(net.now); // harmless after the end
    assert!(s.poll_event().is_none());
}

#[test]
fn backpressure_hands_the_message_back_and_clears_on_confirmation() {
    let config = Config { max_unconfirmed_messages: 4, ..test_config() };
    let mut net = Net::connected(config, 2);
    let now = net.now;
    let s = &mut net.clients[0].session;
    for _ in 0..4 {
        s.send(now, Bytes::from_static(b"x")).unwrap();
    }
    assert!(!s.can_send(1));
    let m = Bytes::from_static(b"fifth");
    assert_eq!(s.send(now, m.clone()), Err(SendError::Backpressure(m.clone())));
    assert_eq!(s.send(now, m.clone()).unwrap_err().into_payload(), m);
    assert!(net.run_until(LIMIT, |n| n.clients[0].app.confirmed == Some(3)));
    assert!(net.clients[0].session.can_send(1));
}

#[test]
fn delayed_ack_by_count() {
    // With a long ack_delay, a standalone ack still goes out after `ack_every` messages.
    let config = Config { ack_every: 8, ack_delay: Duration::from_millis(400), ..test_config() };
    let mut net = Net::connected(config, 3);
    net.client_sends(0, 8, 10);
    // One round trip (2 x 5 ms latency) plus slack: far below ack_delay.
    assert!(net.run_until(Duration::from_millis(30), |n| n.clients[0].app.confirmed == Some(7)));
}

#[test]
fn an_ack_goes_out_at_once_when_the_byte_window_opens_by_half() {
    // Not `ack_every` (1000), not `ack_delay` (400 ms): two 300-byte messages taken free 600 of
    // a 1000-byte window, more than half, so the sender hears of it within a round trip.
    let config = Config {
        ack_every: 1000,
        ack_delay: Duration::from_millis(400),
        max_message_size: 300,
        receive_window_bytes: 1000,
        ..test_config()
    };
    let mut net = Net::connected(config, 8);
    net.client_sends(0, 2, 300);
    assert!(net.run_until(Duration::from_millis(30), |n| n.clients[0].app.confirmed == Some(1)));
}

#[test]
fn an_ack_goes_out_at_once_when_the_application_acks_ack_every_messages() {
    // Manual acks: the server tells the client it received 2 (by `ack_delay` at the latest);
    // the application acks them later, and that is told at once: `ack_every` acked messages
    // owe an ack of their own, whatever was received since.
    let config = Config {
        ack_mode: AckMode::Manual,
        ack_every: 2,
        ack_delay: Duration::from_millis(400),
        ..test_config()
    };
    let mut net = Net::connected(config, 9);
    net.server_stalled = true;
    net.client_sends(0, 2, 10);
    net.run_for(Duration::from_millis(450));
    assert_eq!(net.clients[0].app.confirmed, None, "nothing acked by the application yet");
    net.server_stalled = false;
    assert!(net.run_until(Duration::from_millis(30), |n| n.clients[0].app.confirmed == Some(1)));
}

#[test]
fn delayed_ack_by_time() {
    // Fewer than `ack_every` messages: the ack waits for ack_delay, not longer.
    let config = Config { ack_every: 100, ack_delay: Duration::from_millis(50), ..test_config() };
    let mut net = Net::connected(config, 4);
    net.client_sends(0, 3, 10);
    let t0 = net.now;
    assert!(net.run_until(LIMIT, |n| n.clients[0].app.confirmed == Some(2)));
    let took = net.now - t0;
    assert!(took >= Duration::from_millis(50), "acked before ack_delay: {took:?}");
    assert!(took <= Duration::from_millis(50 + 10 + 1), "acked late: {took:?}");
}

#[test]
fn acks_piggyback_on_data() {
    // Both sides send: acks ride on data frames, so confirmations come before ack_delay.
    let config = Config { ack_every: 1000, ack_delay: Duration::from_millis(400), ..test_config() };
    let mut net = Net::connected(config, 5);
    net.client_sends(0, 1, 10);
    net.run_for(Duration::from_millis(6)); // the server has delivered it
    net.server_sends(0, 1, 10); // its data frame carries the ack
    assert!(net.run_until(Duration::from_millis(20), |n| n.clients[0].app.confirmed == Some(0)));
}

#[test]
fn a_conversation_needs_no_standalone_acks() {
    // Each side answers the other: every data frame carries the writer's `acked`, which the peer
    // also takes as its known `received`, so no `Ack` frame of its own is due after `ack_every`
    // messages (it cost a write per `ack_every` round trips, and a wake-up of the peer).
    let config = Config { ack_every: 4, ack_delay: Duration::from_millis(400), ..test_config() };
    let mut net = Net::connected(config, 7);
    let before = net.client_writes + net.server_writes;
    let round_trips = 20; // 10 ms each: well within ack_delay
    for k in 1..=round_trips {
        net.client_sends(0, 1, 10);
        assert!(net.run_until(LIMIT, |n| n.server_app(0).unwrap().delivered.len() == k));
        net.server_sends(0, 1, 10);
        assert!(net.run_until(LIMIT, |n| n.clients[0].app.delivered.len() == k));
    }
    let writes = net.client_writes + net.server_writes - before;
    assert_eq!(writes, 2 * round_trips as u64, "one data frame each way per round trip");
    assert_eq!(net.clients[0].app.confirmed, Some(round_trips as u64 - 1));
}

#[test]
fn an_ack_owed_at_once_is_due_now_in_poll_timeout() {
    // An adapter whose application acks outside its driver learns from `poll_timeout` alone
    // that the driver must run now, not after `ack_delay`.
    let config = Config {
        ack_mode: AckMode::Manual,
        ack_every: 8,
        ack_delay: Duration::from_millis(400),
        ..test_config()
    };
    let mut net = Net::connected(config, 8);
    net.clients[0].app.stalled = true;
    net.server_sends(0, 8, 10);
    net.run_for(Duration::from_millis(50));
    let now = net.now;
    let s = &mut net.clients[0].session;
    while s.poll_event().is_some() {}
    s.ack(6).unwrap(); // 7 acked: fewer than ack_every, so the ack may wait
    assert!(s.poll_timeout().is_some_and(|t| t > now));
    s.ack(7).unwrap(); // 8 acked: owed at once
    assert!(s.poll_timeout().is_some_and(|t| t <= now));
    let writes = net.client_writes;
    net.run_for(Duration::ZERO);
    assert_eq!(net.client_writes, writes + 1, "the ack goes out at the next transmit");
}

#[test]
fn manual_ack_confirms_only_acked_messages() {
    let config = Config { ack_mode: AckMode::Manual, ..test_config() };
    let mut net = Net::connected(config, 6);
    net.clients[0].app.stalled = true;
    net.server_sends(0, 10, 10);
    net.run_for(Duration::from_millis(100));
    let s = &mut net.clients[0].session;
    let mut delivered = Vec::new();
    while let Some(e) = s.poll_event() {
        if let tether_core::Event::Messages(d) = e {
            delivered.extend(d.map(|m| m.0));
        }
    }
    assert_eq!(delivered.len(), 10);
    assert_eq!(s.ack(10), Err(AckError::NotDelivered { seq: 10, delivered: 10 }));
    s.ack(3).unwrap();
    s.ack(1).unwrap(); // behind: harmless
    net.run_for(Duration::from_millis(100));
    assert_eq!(net.server_app(0).unwrap().confirmed, Some(3));
}

#[test]
fn stats_report_rtt_traffic_and_buffers() {
    let mut net = Net::connected(test_config(), 7);
    net.client_sends(0, 100, 64);
    net.server_sends(0, 50, 32);
    assert!(net.run_until(LIMIT, |n| n.clients[0].app.confirmed == Some(99)
        && n.server_app(0).unwrap().confirmed == Some(49)));
    net.run_for(Duration::from_secs(1)); // a few heartbeats
    let st = net.clients[0].session.stats();
    let rtt = st.rtt.expect("rtt measured");
    // Link latency is 5 ms each way.
    assert!(rtt >= Duration::from_millis(10) && rtt <= Duration::from_millis(25), "{rtt:?}");
    assert!(st.rtt_var.is_some());
    assert_eq!((st.messages_sent, st.bytes_sent), (100, 6400));
    assert_eq!((st.messages_received, st.bytes_received), (50, 1600));
    assert_eq!((st.unconfirmed_messages, st.unconfirmed_bytes), (0, 0));
    assert_eq!((st.buffered_receive_messages, st.buffered_receive_bytes), (0, 0));
    assert_eq!((st.reconnects, st.disconnects, st.replayed_messages), (0, 0, 0));
    net.reset(0);
    assert!(net.run_until(LIMIT, |n| n.clients[0].session.stats().reconnects == 1));
    assert_eq!(net.clients[0].session.stats().disconnects, 1);
}

#[test]
fn peer_message_limit_is_learned_in_the_handshake() {
    // The server accepts smaller messages than the client: send() learns the smaller limit.
    let mut net = Net::new(test_config(), 1, 8);
    net.config = test_config();
    assert!(net.run_until(LIMIT, |n| n.server_app(0).is_some()));
    assert_eq!(net.clients[0].session.max_message_size(), test_config().max_message_size);
    let small = Config { max_message_size: 1000, max_frame_size: 1100, ..test_config() };
    let mut net = Net::with_server_config(test_config(), small, 1, 8);
    assert!(net.run_until(LIMIT, |n| n.server_app(0).is_some()));
    assert_eq!(net.clients[0].session.max_message_size(), 1000);
    let r = net.clients[0].session.send(net.now, Bytes::from(vec![1u8; 1001]));
    assert!(matches!(r, Err(SendError::TooLarge { max: 1000, .. })));
}

#[test]
fn a_queued_message_the_peer_can_never_accept_ends_the_session() {
    // Queued before the handshake told the client the server's smaller limit.
    let small = Config { max_message_size: 1000, max_frame_size: 1100, ..test_config() };
    let mut net = Net::with_server_config(test_config(), small, 1, 9);
    let now = net.now;
    net.clients[0].session.send(now, Bytes::from(vec![1u8; 2000])).unwrap();
    assert!(net.run_until(LIMIT, |n| n.clients[0].app.ended()));
    let (reason, unconfirmed) = net.clients[0].app.lost().unwrap();
    assert_eq!(*reason, tether_core::Reason::MessageTooLarge);
    assert_eq!(unconfirmed.len(), 1);
}

/// Manual-ack mode: messages the application took but has not acked still count against the
/// receive window, so an application (or an adapter inbox) that never acks slows the sender to a
/// stop instead of holding more than the window.
#[test]
fn manual_ack_window_counts_taken_but_unacked_messages() {
    let config = Config {
        ack_mode: AckMode::Manual,
        receive_window_messages: 8,
        max_unconfirmed_messages: 1000,
        ..test_config()
    };
    let mut net = Net::connected(config, 11);
    net.clients[0].app.stalled = true;
    net.server_sends(0, 100, 10);
    net.run_for(Duration::from_millis(200));
    let s = &mut net.clients[0].session;
    let taken: usize = std::iter::from_fn(|| s.poll_event())
        .map(|e| if let tether_core::Event::Messages(d) = e { d.len() } else { 0 })
        .sum();
    assert_eq!(taken, 8, "the window bounds messages taken but not acked");
    net.run_for(Duration::from_millis(200));
    let s = &mut net.clients[0].session;
    assert!(s.poll_event().is_none(), "nothing more until acked");
    s.ack(7).unwrap();
    net.run_for(Duration::from_millis(200));
    let s = &mut net.clients[0].session;
    let more: usize = std::iter::from_fn(|| s.poll_event())
        .map(|e| if let tether_core::Event::Messages(d) = e { d.len() } else { 0 })
        .sum();
    assert_eq!(more, 8);
}
