//! The invariant checker, applied after every run, per session and direction (DESIGN.md §2, §6).
//!
//! It reads only what the applications recorded and what the simulator saw on its sockets, so a
//! bug anywhere (core, link, application model) that breaks the contract shows up here. The tests
//! in `tests/planted.rs` plant such bugs to prove it fails when it should.

use std::collections::{BTreeSet, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use tether_core::SessionId;

use crate::app::{App, Terminal};
use crate::node::{TetherClient, TetherServer};
use crate::sim::Sim;

/// What a run promises beyond the always-on invariants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expect {
    /// The network healed within `session_timeout` and nobody lost state: every message must be
    /// delivered and every session must end with a clean close on both sides.
    pub complete: bool,
}

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant (a short, stable name).
    pub kind: &'static str,
    /// Where and what.
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}", self.kind, self.detail)
    }
}

/// Hashes a payload by its length and first [`TagHasher::PREFIX`] bytes only: the simulator's
/// payloads differ within their tag, and hashing every byte of every payload was the checker's
/// largest cost. Equal payloads still hash equal, so a set using it is exact.
#[derive(Default)]
struct TagHasher(u64);

impl TagHasher {
    /// Bytes of a payload hashed.
    const PREFIX: usize = 32;

    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for TagHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes[..bytes.len().min(Self::PREFIX)].chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

fn v(out: &mut Vec<Violation>, kind: &'static str, detail: String) {
    out.push(Violation { kind, detail });
}

/// Checks one direction of one session: `from` sent, `to` (if any) received. `from_alive` is false
/// for an application whose process crashed (it cannot end its session).
pub fn check_direction(
    label: &str,
    from: &App,
    to: Option<&App>,
    from_alive: bool,
    out: &mut Vec<Violation>,
) {
    let empty = App::default();
    let to = to.unwrap_or(&empty);
    for (k, (seq, _)) in from.sent.iter().enumerate() {
        if *seq != k as u64 {
            v(out, "send-seq", format!("{label}: send #{k} got sequence {seq}"));
            break;
        }
    }
    if to.delivered.len() > from.sent.len() {
        v(
            out,
            "prefix",
            format!("{label}: delivered {} but only {} sent", to.delivered.len(), from.sent.len()),
        );
    }
    let mut seen: HashSet<&[u8], BuildHasherDefault<TagHasher>> =
        HashSet::with_capacity_and_hasher(to.delivered.len(), BuildHasherDefault::default());
    for (k, (seq, p)) in to.delivered.iter().enumerate() {
        if !seen.insert(&p[..]) {
            v(
                out,
                "duplicate",
                format!("{label}: message delivered twice (at position {k}, seq {seq})"),
            );
            break;
        }
        if *seq != k as u64 {
            v(out, "gap", format!("{label}: position {k} delivered seq {seq} (gap or reordering)"));
            break;
        }
        match from.sent.get(k) {
            Some((_, sent)) if sent == p => {}
            Some(_) => {
                v(
                    out,
                    "payload",
                    format!("{label}: payload of seq {k} differs from what was sent"),
                );
                break;
            }
            None => break,
        }
    }
    let confirmed = from.confirmed.map_or(0, |c| c + 1) as usize;
    if confirmed > from.sent.len() {
        v(out, "confirm", format!("{label}: confirmed {confirmed} of {} sent", from.sent.len()));
    }
    if confirmed > to.delivered.len() {
        v(
            out,
            "confirm",
            format!(
                "{label}: confirmed {confirmed} but the peer application got only {}",
                to.delivered.len()
            ),
        );
    }
    match &from.terminal {
        Some(Terminal::Lost(_, unconfirmed)) => {
            let got: Vec<(u64, &[u8])> =
                unconfirmed.iter().map(|m| (m.seq, &m.payload[..])).collect();
            let want: Vec<(u64, &[u8])> =
                from.sent.iter().skip(confirmed).map(|(s, p)| (*s, &p[..])).collect();
            if got != want {
                v(
                    out,
                    "lost-set",
                    format!(
                        "{label}: Lost returned {} messages (seqs {:?}..), the unconfirmed suffix is {} (seqs {:?}..)",
                        got.len(),
                        got.first().map(|x| x.0),
                        want.len(),
                        want.first().map(|x| x.0)
                    ),
                );
            }
        }
        Some(Terminal::Closed) => {
            if confirmed != from.sent.len() {
                v(
                    out,
                    "closed-unconfirmed",
                    format!("{label}: Closed with {} of {} confirmed", confirmed, from.sent.len()),
                );
            }
            if to.delivered.len() != from.sent.len() {
                v(
                    out,
                    "closed-undelivered",
                    format!(
                        "{label}: Closed but the peer got {} of {}",
                        to.delivered.len(),
                        from.sent.len()
                    ),
                );
            }
        }
        None if from_alive => {
            v(out, "never-ended", format!("{label}: the session never ended (hang)"))
        }
        None => {}
    }
}

/// Checks a finished tether run. `expect` says what the scenario promised.
pub fn check_run(sim: &Sim<TetherClient, TetherServer>, expect: Expect) -> Vec<Violation> {
    let mut out = Vec::new();
    for e in &sim.violations {
        v(&mut out, "engine", e.clone());
    }
    let mut matched: BTreeSet<(usize, SessionId)> = BTreeSet::new();
    for (i, c) in sim.clients.iter().enumerate() {
        for e in &c.app.violations {
            v(&mut out, "events", format!("c{i}: {e}"));
        }
        if let Some(e) = c.limit_violations.first() {
            v(&mut out, "limits", format!("c{i}: {e}"));
        }
        let server = match (c.session.id(), c.established_on) {
            (Some(id), Some(conn)) => {
                let g = sim.conn_info[conn.0 as usize - 1].1;
                matched.insert((g, id));
                sim.servers[g].apps.get(&id).map(|a| (g, a))
            }
            _ => None,
        };
        let g = server.map_or(0, |s| s.0);
        let alive = server.is_none_or(|(g, _)| sim.server_alive[g]);
        check_direction(&format!("c{i} -> s{g}"), &c.app, server.map(|s| s.1), true, &mut out);
        if let Some((g, s)) = server {
            check_direction(&format!("s{g} -> c{i}"), s, Some(&c.app), alive, &mut out);
        }
        if expect.complete {
            let ok = c.app.closed()
                && server
                    .is_some_and(|(_, s)| s.closed() && s.outbox.is_empty() && s.later.is_empty())
                && c.app.outbox.is_empty()
                && c.app.later.is_empty();
            if !ok {
                v(
                    &mut out,
                    "incomplete",
                    format!(
                        "c{i}: the network healed but the session did not close cleanly with everything delivered (client {:?}, sent {} delivered {}; server {:?})",
                        c.app.terminal.as_ref().map(short),
                        c.app.sent.len(),
                        c.app.delivered.len(),
                        server.map(|(_, s)| (s.terminal.as_ref().map(short), s.sent.len(), s.delivered.len()))
                    ),
                );
            }
        }
    }
    for (g, s) in sim.servers.iter().enumerate() {
        if let Some(e) = s.limit_violations.first() {
            v(&mut out, "limits", format!("s{g}: {e}"));
        }
        for (id, app) in &s.apps {
            for e in &app.violations {
                v(&mut out, "events", format!("s{g} session {:x}: {e}", id.0));
            }
            if matched.contains(&(g, *id)) {
                continue;
            }
            // A session whose client never learned of it (its Welcome was lost).
            if !app.delivered.is_empty() {
                v(
                    &mut out,
                    "orphan",
                    format!("s{g} session {:x}: delivered messages from an unknown client", id.0),
                );
            }
            check_direction(
                &format!("s{g} session {:x} -> (no client)", id.0),
                app,
                None,
                sim.server_alive[g],
                &mut out,
            );
        }
        if sim.server_alive[g] && s.endpoint.connection_count() > 0 && sim.all_finished() {
            v(
                &mut out,
                "leak",
                format!(
                    "s{g}: endpoint still holds {} connections after every session ended",
                    s.endpoint.connection_count()
                ),
            );
        }
    }
    if sim.all_finished() {
        for o in sim.open_sides() {
            v(
                &mut out,
                "leak",
                format!(
                    "conn #{} ({:?} side, c{} / s{}) left open after its session ended",
                    o.conn.0, o.side, o.client, o.server
                ),
            );
        }
    }
    out
}

fn short(t: &Terminal) -> String {
    match t {
        Terminal::Closed => "Closed".into(),
        Terminal::Lost(r, u) => format!("Lost({r:?}, {} unconfirmed)", u.len()),
    }
}
