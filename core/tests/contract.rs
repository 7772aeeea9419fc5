//! One test per contract point of DESIGN.md section 2 (named after it), driven through the pair
//! harness. Each runs many seeds and ends with the contract checker.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use tether_core::wire::{Decoder, Frame, Hello, HelloKind, Positions};
use tether_core::{Config, Duration, Event, Reason};

const LIMIT: Duration = Duration::from_secs(120);

fn connected(net: &mut Net) {
    assert!(
        net.run_until(Duration::from_secs(5), |n| n.server_app(0).is_some()),
        "never connected"
    );
}

#[test]
fn smoke_both_directions_and_clean_close() {
    let mut net = Net::new(test_config(), 1, 1);
    connected(&mut net);
    net.client_sends(0, 100, 64);
    net.server_sends(0, 100, 64);
    net.run_until(LIMIT, |n| {
        n.clients[0].app.delivered.len() == 100 && n.server_app(0).unwrap().delivered.len() == 100
    });
    net.clients[0].session.close(net.now).unwrap();
    assert!(net.run_to_end(LIMIT));
    check_contract(&net);
    assert!(net.clients[0].app.closed());
    assert!(net.server_app(0).unwrap().closed());
}

fn exchange_with_fault(seed: u64, fault: impl Fn(&mut Net)) -> Net {
    let mut net = Net::new(test_config(), 1, seed);
    net.split_reads = true;
    net.read_in_place = seed % 2 == 1;
    connected(&mut net);
    net.client_sends(0, 300, 100);
    net.server_sends(0, 300, 100);
    for _ in 0..5 {
        net.run_for(Duration::from_millis(7));
        fault(&mut net);
    }
    assert!(
        net.run_until(LIMIT, |n| {
            n.clients[0].app.delivered.len() == 300
                && n.server_app(0).is_some_and(|a| a.delivered.len() == 300)
        }),
        "not everything delivered: {:?}",
        net.clients[0]
            .app
            .events
            .iter()
            .filter(|e| !matches!(e, Event::Messages(_)))
            .collect::<Vec<_>>()
    );
    let ended = format!("{:?}", net.clients[0].app.lost().map(|l| *l.0));
    net.clients[0].session.close(net.now).expect(&ended);
    assert!(net.run_to_end(LIMIT), "did not end");
    check_contract(&net);
    assert!(net.clients[0].app.closed(), "{:?}", net.clients[0].app.lost().map(|l| *l.0));
    assert!(net.server_app(0).unwrap().closed());
    let stats = net.clients[0].session.stats();
    assert!(stats.reconnects >= 1, "the fault never took effect: {stats:?}");
    net
}

/// Contract 1: exactly once, in order, unmodified — over split reads, resets, suffix losses and
/// corruption in flight (which the CRC must catch).
#[test]
fn contract_1_exactly_once_in_order_unmodified() {
    for seed in 0..20 {
        let net = exchange_with_fault(seed, |n| {
            match n.rand() % 3 {
                0 => n.reset(0),
                1 => n.lose_suffix_then_reset(0),
                _ => {
                    n.corrupt(0);
                }
            };
        });
        let c = &net.clients[0].app;
        assert_eq!(c.delivered.len(), 300);
    }
}

/// Contract 1: corruption is caught by the checksum and ends only the connection.
#[test]
fn contract_1_corruption_is_caught_and_the_session_resumes() {
    let mut caught = 0;
    for seed in 0..20 {
        let mut net = Net::new(test_config(), 1, seed);
        connected(&mut net);
        net.client_sends(0, 200, 300);
        net.run_for(Duration::from_millis(1));
        assert!(net.corrupt(0));
        assert!(net.run_until(LIMIT, |n| n.server_app(0).unwrap().delivered.len() == 200));
        let server = net.server_app(0).unwrap();
        caught += server
            .count(|e| matches!(e, Event::Disconnected { reason: Reason::ChecksumMismatch }))
            + net.clients[0]
                .app
                .count(|e| matches!(e, Event::Disconnected { reason: Reason::ChecksumMismatch }));
        check_contract(&net);
    }
    assert!(caught >= 15, "corruption should almost always be caught by the CRC: {caught}/20");
}

/// Contract 2: no silent loss — a session that cannot resume hands back exactly the unconfirmed
/// suffix, and every message is either confirmed or returned, never both.
#[test]
fn contract_2_no_silent_loss() {
    for seed in 0..30 {
        let mut net = Net::new(test_config(), 1, seed);
        connected(&mut net);
        net.client_sends(0, 100, 50);
        net.server_sends(0, 100, 50);
        net.run_for(Duration::from_micros(5_000 + seed * 700));
        net.restart_server();
        assert!(net.run_until(LIMIT, |n| n.clients[0].app.ended()));
        let client = &net.clients[0].app;
        let (reason, unconfirmed) = client.lost().expect("refused resume ends the session as Lost");
        assert_eq!(*reason, Reason::UnknownSession);
        let confirmed = client.confirmed.map_or(0, |c| c + 1) as usize;
        assert_eq!(
            confirmed + unconfirmed.len(),
            client.sent.len(),
            "confirmed and unconfirmed partition sent"
        );
        check_contract(&net);
    }
}

/// Contract 3: survives connection loss — resets, silent deaths, suffix losses; the application sees
/// at most one Disconnected/Resumed pair per fault, and everything arrives.
#[test]
fn contract_3_survives_connection_loss() {
    for seed in 0..20 {
        let net = exchange_with_fault(seed, |n| match n.rand() % 3 {
            0 => n.reset(0),
            1 => n.blackhole(0),
            _ => n.lose_suffix_then_reset(0),
        });
        let c = &net.clients[0].app;
        let disconnects = c.count(|e| matches!(e, Event::Disconnected { .. }));
        let resumes = c.count(|e| matches!(e, Event::Resumed));
        assert!(
            disconnects <= 5 && resumes <= disconnects,
            "{disconnects} disconnects, {resumes} resumes"
        );
    }
}

/// Contract 4: a silent connection is detected within `idle_timeout` (not TCP's minutes).
#[test]
fn contract_4_dead_peers_are_found_fast() {
    for seed in 0..20 {
        let mut net = Net::new(test_config(), 1, seed);
        connected(&mut net);
        net.run_for(Duration::from_millis(seed * 37 % 300));
        net.blackhole(0);
        let t0 = net.now;
        assert!(net.run_until(LIMIT, |n| n.clients[0]
            .app
            .count(|e| matches!(e, Event::Disconnected { .. }))
            == 1));
        let detected = net.now - t0;
        assert!(detected <= net.config.idle_timeout, "detected after {detected:?}");
        assert!(net.clients[0]
            .app
            .events
            .iter()
            .any(|e| *e == Event::Disconnected { reason: Reason::IdleTimeout }));
    }
}

/// Contract 4 and pitfall "heartbeats are not progress": when only one direction dies, the peer's
/// heartbeats keep arriving, but the ack-progress timeout still finds the dead path.
#[test]
fn contract_4_ack_timeout_finds_a_one_way_dead_path() {
    let config = Config { ack_timeout: Duration::from_millis(300), ..test_config() };
    let mut net = Net::new(config, 1, 5);
    connected(&mut net);
    net.blackhole_to_server(0);
    let t0 = net.now;
    net.client_sends(0, 10, 10);
    assert!(net
        .run_until(LIMIT, |n| n.clients[0].app.count(|e| matches!(e, Event::Disconnected { .. }))
            == 1));
    assert!(net.clients[0]
        .app
        .events
        .contains(&Event::Disconnected { reason: Reason::AckTimeout }));
    assert!(net.now - t0 <= Duration::from_millis(300) + net.config.heartbeat_interval);
    assert!(net.run_until(LIMIT, |n| n.server_app(0).unwrap().delivered.len() == 10));
    check_contract(&net);
}

/// Contract 5: `close()` completes only after both directions delivered and acknowledged
/// everything, under faults; a clean close and an abort are distinguishable on both sides.
#[test]
fn contract_5_clean_close_means_everything_arrived() {
    for seed in 0..20 {
        let mut net = Net::new(test_config(), 1, seed);
        net.split_reads = true;
        net.read_in_place = seed % 2 == 1;
        connected(&mut net);
        net.client_sends(0, 200, 80);
        net.server_sends(0, 200, 80);
        net.run_for(Duration::from_millis(6));
        // Close with messages still in flight both ways, then break the connection.
        net.clients[0].session.close(net.now).unwrap();
        net.run_for(Duration::from_millis(3));
        if seed % 2 == 0 {
            net.reset(0);
        } else {
            net.blackhole(0);
        }
        assert!(net.run_to_end(LIMIT));
        check_contract(&net);
        assert!(
            net.clients[0].app.closed(),
            "seed {seed}: {:?}",
            net.clients[0].app.lost().map(|l| *l.0)
        );
        assert!(net.server_app(0).unwrap().closed());
        assert_eq!(net.clients[0].app.delivered.len(), 200);
    }
}

#[test]
fn contract_5_abort_is_distinguishable_from_close() {
    let mut net = Net::new(test_config(), 1, 2);
    connected(&mut net);
    net.client_sends(0, 20, 10);
    net.run_for(Duration::from_millis(3));
    net.clients[0].session.abort(net.now);
    assert!(net.run_to_end(LIMIT));
    let (reason, _) = net.clients[0].app.lost().unwrap();
    assert_eq!(*reason, Reason::ApplicationAbort);
    let (reason, _) = net.server_app(0).unwrap().lost().unwrap();
    assert_eq!(*reason, Reason::ApplicationAbort);
    check_contract(&net);
    assert_eq!(net.server.session_count(), 0, "the aborted session is forgotten");
}

/// Contract 6: a server application that stops reading produces backpressure on the client; every
/// buffer stays within its limit (the harness asserts limits after every step).
#[test]
fn contract_6_bounded_resources_under_a_stalled_reader() {
    let config = Config {
        receive_window_messages: 64,
        receive_window_bytes: 64 * 1024,
        max_message_size: 1024,
        max_frame_size: 1024 + 64,
        max_unconfirmed_messages: 100,
        max_unconfirmed_bytes: 100 * 1024,
        ..test_config()
    };
    let mut net = Net::new(config, 1, 9);
    connected(&mut net);
    net.server_stalled = true;
    net.client_sends(0, 1000, 1000);
    net.run_for(Duration::from_secs(5));
    let app = &net.clients[0].app;
    assert!(app.backpressure_hits > 0, "backpressure never reached the sender");
    assert!(app.sent.len() <= 164 + 1, "sent {} while the reader is stalled", app.sent.len());
    assert!(net.max_buffered_receive <= 64 * 1024);
    assert_eq!(
        net.clients[0].session.stats().disconnects,
        0,
        "a stalled reader is not a dead peer"
    );
    net.server_stalled = false;
    assert!(net.run_until(LIMIT, |n| n.server_app(0).unwrap().delivered.len() == 1000));
    check_contract(&net);
}

/// Contract 7: hostile input ends that connection with a reason code, never a panic; the session
/// resumes and nothing confirmed is lost; other sessions are unaffected.
#[test]
fn contract_7_bad_input_is_an_error_never_a_panic() {
    for seed in 0..30u64 {
        let mut net = Net::new(test_config(), 2, seed);
        assert!(net.run_until(Duration::from_secs(5), |n| n.server_app(0).is_some()
            && n.server_app(1).is_some()));
        net.client_sends(0, 50, 20);
        net.client_sends(1, 50, 20);
        net.run_for(Duration::from_millis(2));
        let junk: Vec<u8> = (0..64).map(|_| net.rand() as u8).collect();
        net.inject_to_server(0, Bytes::from(junk));
        // Junk connections too.
        let raw = net.raw_connect();
        net.server.handle_input(net.now, raw, Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(net
            .run_until(LIMIT, |n| (0..2).all(|i| n.server_app(i).unwrap().delivered.len() == 50)));
        check_contract(&net);
        assert_eq!(net.clients[1].session.stats().disconnects, 0, "another session was affected");
    }
}

/// Contract 8: only the owner resumes — a wrong secret is refused and the session is untouched; a
/// resume replaces a stale (half-open) connection, which the server closes.
#[test]
fn contract_8_only_the_owner_resumes() {
    let mut net = Net::new(test_config(), 1, 4);
    connected(&mut net);
    let id = net.clients[0].session.id().unwrap();
    let raw = net.raw_connect();
    let forged = Frame::Hello(Hello {
        min_version: tether_core::wire::PROTOCOL_VERSION,
        max_version: tether_core::wire::PROTOCOL_VERSION,
        kind: HelloKind::Resume,
        session_id: id.0,
        secret: [0xAA; 16],
        positions: Positions::default(),
        max_message_size: 1 << 20,
    });
    let mut out = BytesMut::new();
    forged.encode(&mut out);
    net.server.handle_input(net.now, raw, out.freeze());
    let mut buf = BytesMut::new();
    let t = net.server.poll_transmit(net.now, &mut buf);
    assert_eq!(t, Some(tether_core::Transmit::Close(raw)));
    let mut d = Decoder::new(1024);
    d.push(buf.freeze());
    assert!(matches!(d.next_frame(), Ok(Some(Frame::Reject { reason: Reason::BadSecret, .. }))));
    net.client_sends(0, 10, 10);
    assert!(net.run_until(LIMIT, |n| n.server_app(0).unwrap().delivered.len() == 10));
    assert_eq!(net.clients[0].session.stats().disconnects, 0);

    // A half-open connection: the client alone saw it die and resumes on a new one.
    net.half_open(0);
    net.client_sends(0, 10, 10);
    assert!(net.run_until(LIMIT, |n| n.server_app(0).unwrap().delivered.len() == 20));
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.server.connection_count(), 1, "the stale connection must be closed, not kept");
    check_contract(&net);
}
