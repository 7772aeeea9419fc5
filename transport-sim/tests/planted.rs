//! A checker that cannot fail is worthless: plant bugs and watch it catch them.

use tether_core::Duration;
use tether_sim::app::AppPlant;
use tether_sim::check::Violation;
use tether_sim::link::{DirSpec, LinkSpec, StreamElement};
use tether_sim::scenario::{plan, plant_clients, run_tether, Fault, Plan, Scale, T0};

/// A calm plan: 2 clients, traffic both ways, no faults, clean close expected.
fn calm(seed: u64) -> Plan {
    let mut p = plan("partition", seed, Scale::Ci).unwrap();
    p.faults.clear();
    p.expect.complete = true;
    p.traffic.0 = p.traffic.0.max(10);
    p.traffic.1 = p.traffic.1.max(10);
    p
}

fn kinds(v: &[Violation]) -> Vec<&'static str> {
    v.iter().map(|v| v.kind).collect()
}

#[test]
fn calm_runs_pass() {
    for seed in 0..20 {
        let r = run_tether(&calm(seed), false);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
    }
}

#[test]
fn catches_a_link_that_duplicates_a_frame_past_the_crc() {
    let mut p = calm(1);
    let plant = |l: &mut DirSpec| l.elements.push(StreamElement::PlantDuplicateFrame { seq: 3 });
    plant(&mut p.links[0].up);
    let r = run_tether(&p, false);
    let k = kinds(&r.violations);
    assert!(k.contains(&"duplicate"), "{:?}", r.violations);
}

#[test]
fn catches_a_link_that_alters_a_payload_past_the_crc() {
    let mut p = calm(2);
    p.links[0] = LinkSpec::symmetric(Duration::from_millis(3));
    p.links[0].down.elements.push(StreamElement::PlantCorruptPastCrc { seq: 2 });
    let r = run_tether(&p, false);
    assert!(kinds(&r.violations).contains(&"payload"), "{:?}", r.violations);
}

#[test]
fn catches_a_receiver_that_skips_a_message() {
    let mut p = calm(3);
    plant_clients(&mut p, AppPlant::SkipDelivery(4));
    let r = run_tether(&p, false);
    assert!(kinds(&r.violations).contains(&"gap"), "{:?}", r.violations);
}

#[test]
fn catches_a_session_that_forgets_an_unconfirmed_message() {
    // The server restarts mid-exchange, so clients end Lost with unconfirmed messages; the
    // planted record drops one of them.
    let mut p = plan("restart", 4, Scale::Ci).unwrap();
    p.traffic.0 = 200;
    p.faults = vec![(T0 + Duration::from_millis(30), Fault::Restart)];
    let clean = run_tether(&p, false);
    assert!(clean.violations.is_empty(), "{:?}", clean.violations);
    assert!(clean.outcome.returned > 0, "the restart returned nothing");
    plant_clients(&mut p, AppPlant::ForgetUnconfirmed);
    let r = run_tether(&p, false);
    assert!(kinds(&r.violations).contains(&"lost-set"), "{:?}", r.violations);
}

#[test]
fn catches_an_exchange_that_never_completes() {
    // A blackhole both ways with no partition: tether recovers; but promise completion on a run
    // where the server dies, and the checker must object.
    let mut p = calm(5);
    p.faults = vec![(T0 + Duration::from_millis(100), Fault::Restart)];
    let r = run_tether(&p, false);
    assert!(kinds(&r.violations).contains(&"incomplete"), "{:?}", r.violations);
}
