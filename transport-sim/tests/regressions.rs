//! Every seed that ever failed, by name. The `found_*` ones were core bugs written up in FOUND.md,
//! now fixed in core; they stay as regression tests.

use tether_sim::scenario::{plan, replay_command, run_tether, Scale};

fn assert_passes(scenario: &str, seed: u64) {
    let p = plan(scenario, seed, Scale::Full).unwrap();
    let r = run_tether(&p, false);
    assert!(
        r.violations.is_empty(),
        "{}\n{}",
        replay_command(scenario, seed, Scale::Full),
        r.violations.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn found_2_ack_during_handshake_never_sent_mix_561() {
    assert_passes("mix", 561);
}

#[test]
fn found_2_same_signature_mix_499() {
    assert_passes("mix", 499);
}

#[test]
fn found_2_same_signature_mix_1971() {
    assert_passes("mix", 1971);
}

#[test]
fn found_3_simultaneous_close_mix_1564() {
    assert_passes("mix", 1564);
}

#[test]
fn found_3_simultaneous_close_mix_ci_1075() {
    let p = plan("mix", 1075, Scale::Ci).unwrap();
    assert!(run_tether(&p, false).violations.is_empty());
}

#[test]
fn found_4_corrupted_length_prefix_stalls_mix_727() {
    assert_passes("mix", 727);
}

#[test]
fn found_4_same_signature_mix_124() {
    assert_passes("mix", 124);
}

#[test]
fn found_5_unclassified_mix_32() {
    assert_passes("mix", 32);
}

#[test]
fn found_5_unclassified_mix_581() {
    assert_passes("mix", 581);
}

/// Simulator bugs found while building it (the checker named the wrong server session when a
/// client read `Connected` after its connection had already dropped).
#[test]
fn sim_connected_read_late_mix_236() {
    assert_passes("mix", 236);
    assert_passes("mix", 266);
    assert_passes("mix", 313);
    assert_passes("mix", 420);
}

/// Scenario bug found while building it: a slow half-close transfer hit the forced-close deadline.
#[test]
fn half_close_slow_transfer_13() {
    assert_passes("half-close", 13);
    assert_passes("half-close", 21);
}

/// Found by the 0..20000 sweep (FOUND.md #6): on a slow link the server's `Welcome` went out in
/// one write with the whole replay batch, so it arrived after the client's handshake timeout,
/// every time. Fixed in core: the handshake frame is a transmit of its own.
#[test]
fn found_6_welcome_behind_replay_batch_half_close() {
    for seed in [3626, 5738, 12232, 15272] {
        assert_passes("half-close", seed);
    }
}

/// Found by the 0..20000 sweep (FOUND.md #7): a server application reading a few events at a
/// time starved the highest-numbered session (the endpoint drained sessions in id order). Fixed
/// in core: round robin. The scenario also gives this slow reader's close time to drain.
#[test]
fn found_7_event_starvation_slow_receiver_9530() {
    assert_passes("slow-receiver", 9530);
}
