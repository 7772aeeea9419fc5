//! One test per contract point of DESIGN.md section 2, driven through the pair harness.

mod common;

use common::*;
use tether_core::{Duration, Event, Reason};

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
            .filter(|e| !matches!(e, Event::Message { .. }))
            .collect::<Vec<_>>()
    );
    net.clients[0].session.close(net.now).unwrap();
    assert!(net.run_to_end(LIMIT), "did not end");
    check_contract(&net);
    assert!(
        net.clients[0].app.closed(),
        "{:?}",
        net.clients[0].app.lost().map(|l| *l.0)
    );
    assert!(net.server_app(0).unwrap().closed());
    let stats = net.clients[0].session.stats();
    assert!(
        stats.reconnects >= 1,
        "the fault never took effect: {stats:?}"
    );
    net
}

#[test]
fn survives_resets() {
    for seed in 0..20 {
        exchange_with_fault(seed, |n| n.reset(0));
    }
}

#[test]
fn survives_blackholes() {
    for seed in 0..20 {
        exchange_with_fault(seed, |n| n.blackhole(0));
    }
}

#[test]
fn survives_suffix_loss() {
    for seed in 0..20 {
        exchange_with_fault(seed, |n| n.lose_suffix_then_reset(0));
    }
}

#[test]
fn server_restart_loses_session_with_exact_unconfirmed() {
    let mut net = Net::new(test_config(), 1, 3);
    connected(&mut net);
    net.client_sends(0, 50, 10);
    net.run_for(Duration::from_millis(6));
    net.restart_server();
    assert!(net.run_until(LIMIT, |n| n.clients[0].app.ended()));
    let (reason, _) = net.clients[0].app.lost().expect("lost");
    assert_eq!(*reason, Reason::UnknownSession);
    check_contract(&net);
}
