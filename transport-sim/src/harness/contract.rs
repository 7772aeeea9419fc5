//! The end-to-end half of the contract, checked at the end of a harness run (the event-level half
//! is checked as events arrive, by [`App::record`]).

use bytes::Bytes;
use tether_core::Event;

use super::{App, Net};

/// Checks one direction of one session: `from` sent, `to` (if known) received.
pub fn check_direction(label: &str, from: &App, to: Option<&App>) {
    let empty = App::default();
    let to = to.unwrap_or(&empty);
    // 1. Delivered is a gap-free, duplicate-free, byte-identical prefix of sent.
    assert!(to.delivered.len() <= from.sent.len(), "{label}: delivered more than sent");
    for (k, (seq, p)) in to.delivered.iter().enumerate() {
        assert_eq!(*seq, k as u64, "{label}: gap or duplicate at {k}");
        assert_eq!(p, &from.sent[k].1, "{label}: payload {k} differs from what was sent");
    }
    for (k, (seq, _)) in from.sent.iter().enumerate() {
        assert_eq!(*seq, k as u64, "{label}: send sequence numbers not consecutive");
    }
    // 2. Confirmed only what the peer delivered (and, in manual mode, acked).
    let confirmed = from.confirmed_count();
    assert!(
        confirmed <= to.delivered.len(),
        "{label}: confirmed {confirmed} but only {} delivered",
        to.delivered.len()
    );
    // 3. Lost hands back exactly the unconfirmed suffix; Closed means everything confirmed.
    if let Some((_, unconfirmed)) = from.lost() {
        let expected: Vec<(u64, Bytes)> = from.sent[confirmed..].to_vec();
        let got: Vec<(u64, Bytes)> =
            unconfirmed.iter().map(|m| (m.seq, m.payload.clone())).collect();
        assert_eq!(got, expected, "{label}: Lost must return exactly the unconfirmed suffix");
    }
    if from.closed() {
        assert_eq!(confirmed, from.sent.len(), "{label}: Closed with unconfirmed messages");
        assert_eq!(
            to.delivered.len(),
            from.sent.len(),
            "{label}: Closed but the peer lacks messages"
        );
    }
    // 4. At most one terminal event, and it is last (of the recorded events).
    let terminals = from.count(|e| matches!(e, Event::Closed | Event::Lost { .. }));
    assert!(terminals <= 1, "{label}: {terminals} terminal events");
    if terminals == 1 {
        assert!(
            matches!(from.events.last(), Some(Event::Closed | Event::Lost { .. })),
            "{label}: event after end"
        );
    }
}

/// Checks both directions of every client's session against its server side (found in whichever
/// endpoint generation created it).
pub fn check_contract(net: &Net) {
    for (i, c) in net.clients.iter().enumerate() {
        if c.session.id().is_none() {
            // Never accepted: whatever was sent comes back with `Lost`.
            assert!(c.app.sent.len() == c.app.lost().map_or(c.app.sent.len(), |l| l.1.len()));
            continue;
        }
        let server = net.server_side(i);
        check_direction(&format!("client {i} -> server"), &c.app, server);
        if let Some(s) = server {
            check_direction(&format!("server -> client {i}"), s, Some(&c.app));
        }
    }
}
