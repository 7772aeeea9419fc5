//! The nodes the simulator drives: a client end and a server end, each an application plus the
//! protocol under test. [`TetherClient`] and [`TetherServer`] drive a core `Session` and `Endpoint`
//! through the sans-IO driving contract exactly as a real adapter does; the naive baseline
//! ([`crate::naive`]) implements the same traits with write-and-forget.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use tether_core::{
    AckMode, Config, ConnId, Endpoint, Event, Instant, Session, SessionId, Stats, Transmit,
};

use crate::app::{
    event_name, payload_tagged, payloads, push_decimal, push_hex, App, Behaviour, ReadPolicy,
};
use crate::trace::Trace;

/// One output of a node: bytes to write on a connection, then maybe close it.
#[derive(Debug)]
pub struct Out {
    /// The connection.
    pub conn: ConnId,
    /// Bytes to write (possibly empty).
    pub bytes: Bytes,
    /// Close the connection after writing.
    pub close: bool,
}

/// A client end, as the simulator's adapter sees it.
pub trait ClientNode {
    /// True when the node wants a new transport connection now.
    fn poll_connect(&mut self, now: Instant) -> bool;
    /// The connection it asked for is open.
    fn connected(&mut self, now: Instant, conn: ConnId);
    /// The connection it asked for could not be opened.
    fn connect_failed(&mut self, now: Instant);
    /// Bytes read from `conn`.
    fn input(&mut self, now: Instant, conn: ConnId, bytes: Bytes);
    /// `conn` ended (EOF or reset); the adapter has closed its side.
    fn disconnected(&mut self, now: Instant, conn: ConnId);
    /// The node's wakeup time came.
    fn timeout(&mut self, now: Instant);
    /// When the node next needs [`timeout`](Self::timeout) (only times after `now`).
    fn wakeup(&self, now: Instant) -> Option<Instant>;
    /// Runs the application and drains every output into `out`.
    fn pump(&mut self, now: Instant, out: &mut Vec<Out>, trace: &mut Trace);
    /// The node has nothing more to do (its session ended).
    fn finished(&self) -> bool;
}

/// A server end (one listening process), as the simulator's adapter sees it.
pub trait ServerNode {
    /// A connection was accepted.
    fn connected(&mut self, now: Instant, conn: ConnId);
    /// Bytes read from `conn`.
    fn input(&mut self, now: Instant, conn: ConnId, bytes: Bytes);
    /// `conn` ended (EOF or reset); the adapter has closed its side.
    fn disconnected(&mut self, now: Instant, conn: ConnId);
    /// The node's wakeup time came.
    fn timeout(&mut self, now: Instant);
    /// When the node next needs [`timeout`](Self::timeout) (only times after `now`).
    fn wakeup(&self, now: Instant) -> Option<Instant>;
    /// Runs the applications and drains every output into `out`.
    fn pump(&mut self, now: Instant, out: &mut Vec<Out>, trace: &mut Trace);
    /// Every session ended and nothing more to do.
    fn finished(&self) -> bool;
}

/// Largest values seen of the resources the config bounds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peaks {
    /// Unconfirmed messages.
    pub unconfirmed_messages: u64,
    /// Unconfirmed payload bytes.
    pub unconfirmed_bytes: u64,
    /// Received messages waiting for the application.
    pub buffered_messages: u64,
    /// Received payload bytes waiting for the application.
    pub buffered_bytes: u64,
}

impl Peaks {
    /// Folds in one session's stats; returns a violation if a configured limit was exceeded.
    pub fn observe(&mut self, s: &Stats, c: &Config) -> Option<String> {
        self.unconfirmed_messages = self.unconfirmed_messages.max(s.unconfirmed_messages);
        self.unconfirmed_bytes = self.unconfirmed_bytes.max(s.unconfirmed_bytes);
        self.buffered_messages = self.buffered_messages.max(s.buffered_receive_messages);
        self.buffered_bytes = self.buffered_bytes.max(s.buffered_receive_bytes);
        let over = s.unconfirmed_messages > u64::from(c.max_unconfirmed_messages)
            || s.unconfirmed_bytes > c.max_unconfirmed_bytes
            || s.buffered_receive_messages > u64::from(c.receive_window_messages)
            || s.buffered_receive_bytes > c.receive_window_bytes;
        over.then(|| format!("buffer above its configured limit: {s:?}"))
    }
}

/// Message `k` of client `i`: tag `c{i}-{k}`; the server parses nothing from it.
pub fn client_payload(i: usize, k: u64, size: usize) -> Bytes {
    payload_tagged(size, |v| write_client_tag(v, i, k))
}

/// The `n` messages client `i` sends, sizes in `lo..=hi` ([`client_payload`], in one buffer).
pub fn client_payloads(i: usize, n: u64, lo: usize, hi: usize) -> Vec<Bytes> {
    payloads(n, |k| size_for(k, i as u64, lo, hi), |v, k| write_client_tag(v, i, k))
}

fn write_client_tag(v: &mut Vec<u8>, i: usize, k: u64) {
    v.push(b'c');
    push_decimal(v, i as u64);
    v.push(b'-');
    push_decimal(v, k);
}

/// Message `k` of the application of session `id` on server generation `g`: tag
/// `s{g}-{id:x}-{k}`.
pub fn server_payload(g: u32, id: SessionId, k: u64, size: usize) -> Bytes {
    payload_tagged(size, |v| write_server_tag(v, g, id, k))
}

/// The `n` messages the application of session `id` on server generation `g` sends, sizes in
/// `lo..=hi` ([`server_payload`], in one buffer).
pub fn server_payloads(g: u32, id: SessionId, n: u64, lo: usize, hi: usize) -> Vec<Bytes> {
    payloads(n, |k| size_for(k, id.0, lo, hi), |v, k| write_server_tag(v, g, id, k))
}

fn write_server_tag(v: &mut Vec<u8>, g: u32, id: SessionId, k: u64) {
    v.push(b's');
    push_decimal(v, u64::from(g));
    v.push(b'-');
    push_hex(v, id.0);
    v.push(b'-');
    push_decimal(v, k);
}

/// A size in `lo..=hi` derived from `k` (deterministic, no RNG draw needed).
pub fn size_for(k: u64, salt: u64, lo: usize, hi: usize) -> usize {
    let x = (k ^ salt.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    lo + (x % (hi - lo + 1) as u64) as usize
}

/// A client application over a tether `Session`.
#[derive(Debug)]
pub struct TetherClient {
    /// Index of this client in the simulation.
    pub index: usize,
    /// The session under test.
    pub session: Session,
    /// What the application did and saw.
    pub app: App,
    /// How it behaves.
    pub behaviour: Behaviour,
    /// This side starts the clean close.
    pub closes: bool,
    /// The connection the adapter currently has open for the session.
    pub conn: Option<ConnId>,
    /// The connection on which the session was first established (tells the server generation).
    pub established_on: Option<ConnId>,
    /// Resource peaks seen.
    pub peaks: Peaks,
    /// Limit violations seen.
    pub limit_violations: Vec<String>,
    buf: BytesMut,
}

impl TetherClient {
    /// A client `index` whose application will send `outbox` and expects `expect` messages back.
    pub fn new(
        index: usize,
        session: Session,
        outbox: Vec<Bytes>,
        expect: u64,
        behaviour: Behaviour,
        closes: bool,
        start: Instant,
    ) -> Self {
        let mut app = App { expect_from_peer: expect, ..App::default() };
        app.schedule_sends(outbox, start, behaviour.send_interval);
        TetherClient {
            index,
            session,
            app,
            behaviour,
            closes,
            conn: None,
            established_on: None,
            peaks: Peaks::default(),
            limit_violations: Vec::new(),
            buf: BytesMut::with_capacity(16 * 1024),
        }
    }
}

impl ClientNode for TetherClient {
    fn poll_connect(&mut self, now: Instant) -> bool {
        self.session.poll_connect(now)
    }
    fn connected(&mut self, now: Instant, conn: ConnId) {
        self.conn = Some(conn);
        self.session.handle_connected(now, conn);
    }
    fn connect_failed(&mut self, now: Instant) {
        self.session.handle_connect_failed(now);
    }
    fn input(&mut self, now: Instant, conn: ConnId, bytes: Bytes) {
        self.session.handle_input(now, conn, bytes);
        if self.established_on.is_none() && self.session.id().is_some() {
            // The Welcome arrived on this connection: it names the server process.
            self.established_on = Some(conn);
        }
    }
    fn disconnected(&mut self, now: Instant, conn: ConnId) {
        if self.conn == Some(conn) {
            self.conn = None;
        }
        self.session.handle_disconnected(now, conn);
    }
    fn timeout(&mut self, now: Instant) {
        self.session.handle_timeout(now);
    }
    fn wakeup(&self, now: Instant) -> Option<Instant> {
        let a = self.app.wakeup(&self.behaviour, self.closes, now);
        earliest(self.session.poll_timeout(), a)
    }
    fn pump(&mut self, now: Instant, out: &mut Vec<Out>, trace: &mut Trace) {
        let manual = self.session.config().ack_mode == AckMode::Manual;
        let mut first = true;
        loop {
            let mut moved = false;
            if !self.app.ended() {
                moved |= self.app.feed(&mut self.session, now);
                while let Some(&(at, seq)) = self.app.pending_acks.front() {
                    if at > now {
                        break;
                    }
                    self.app.pending_acks.pop_front();
                    let _ = self.session.ack(seq);
                    moved = true;
                }
                if self.closes && self.app.close_due(&self.behaviour, now) {
                    self.app.close_requested = true;
                    let _ = self.session.close(now);
                    trace.line(now, || format!("c{} app close()", self.index));
                    moved = true;
                }
            }
            loop {
                self.buf.clear();
                let Some(t) = self.session.poll_transmit(now, &mut self.buf) else {
                    break;
                };
                moved = true;
                let bytes = self.buf.split().freeze();
                let (conn, close) = match t {
                    Transmit::Write(c) => (c, false),
                    Transmit::Close(c) => (c, true),
                };
                if close && self.conn == Some(conn) {
                    self.conn = None;
                }
                out.push(Out { conn, bytes, close });
            }
            let mut allowance = self.app.read_allowance(&self.behaviour, now);
            let mut read = 0;
            while read < allowance {
                let Some(e) = self.session.poll_event() else {
                    break;
                };
                read = read.saturating_add(reads(&e));
                moved = true;
                if let (true, Event::Messages(d)) = (manual, &e) {
                    let last = d.next_seq() + d.len() as u64 - 1;
                    self.app.pending_acks.push_back((now + self.behaviour.ack_lag, last));
                }
                if !matches!(e, Event::Messages(_) | Event::Confirmed { .. }) {
                    trace.line(now, || format!("c{} event {}", self.index, event_name(&e)));
                }
                self.app.record(e, self.behaviour.plant);
            }
            if let ReadPolicy::Slow { .. } = self.behaviour.read {
                allowance = allowance.saturating_sub(read);
                self.app.read_budget.0 = allowance;
            }
            // A pass where nothing moved left the session as the previous pass saw it.
            if first || moved {
                if let Some(v) = self.peaks.observe(&self.session.stats(), self.session.config()) {
                    self.limit_violations.push(v);
                }
            }
            if !moved {
                return;
            }
            first = false;
        }
    }
    fn finished(&self) -> bool {
        self.app.ended()
    }
}

/// A server application (one per session) over a tether `Endpoint`.
#[derive(Debug)]
pub struct TetherServer {
    /// Which server process this is (0, then one more per restart or failover).
    pub generation: u32,
    /// The endpoint under test.
    pub endpoint: Endpoint,
    /// One application record per session it accepted.
    pub apps: BTreeMap<SessionId, App>,
    /// How every session's application behaves.
    pub behaviour: Behaviour,
    /// This side starts the clean close.
    pub closes: bool,
    /// Messages each session's application sends, and their size range.
    pub send_plan: (u64, usize, usize),
    /// Messages each session's application expects from its client.
    pub expect: u64,
    /// Resource peaks seen.
    pub peaks: Peaks,
    /// Limit violations seen.
    pub limit_violations: Vec<String>,
    /// Largest number of connections the endpoint held at once.
    pub peak_connections: usize,
    read_budget: (u32, Instant),
    buf: BytesMut,
    /// Sessions acted on in the current pass of `pump` (kept to reuse its allocation).
    changed: Vec<SessionId>,
    /// Bytes were read since every session's stats were last sampled.
    input_since_sample: bool,
}

impl TetherServer {
    /// A server process `generation` with `endpoint`.
    pub fn new(
        generation: u32,
        endpoint: Endpoint,
        behaviour: Behaviour,
        closes: bool,
        send_plan: (u64, usize, usize),
        expect: u64,
    ) -> Self {
        TetherServer {
            generation,
            endpoint,
            apps: BTreeMap::new(),
            behaviour,
            closes,
            send_plan,
            expect,
            peaks: Peaks::default(),
            limit_violations: Vec::new(),
            peak_connections: 0,
            read_budget: (0, Instant::ZERO),
            buf: BytesMut::with_capacity(16 * 1024),
            changed: Vec::new(),
            input_since_sample: false,
        }
    }

    fn allowance(&mut self, now: Instant) -> u32 {
        self.behaviour.read.allowance(&mut self.read_budget, now)
    }
}

impl TetherServer {
    /// Runs every application with something due (messages ready to send, acks, a close) against
    /// its session; pushes the sessions it acted on to `changed`. Returns whether anything moved.
    fn run_apps(&mut self, now: Instant, trace: &mut Trace, changed: &mut Vec<SessionId>) -> bool {
        let g = self.generation;
        let mut moved = false;
        for (id, app) in self.apps.iter_mut() {
            if app.ended() {
                continue;
            }
            let acks_due = app.pending_acks.front().is_some_and(|(at, _)| *at <= now)
                || app.later.front().is_some_and(|(at, _)| *at <= now);
            let close_due = self.closes && app.close_due(&self.behaviour, now);
            if app.outbox.is_empty() && !acks_due && !close_due {
                continue;
            }
            let Some(s) = self.endpoint.session_mut(*id) else {
                continue;
            };
            changed.push(*id);
            moved |= app.feed(s, now);
            while let Some(&(at, seq)) = app.pending_acks.front() {
                if at > now {
                    break;
                }
                app.pending_acks.pop_front();
                let _ = s.ack(seq);
                moved = true;
            }
            if close_due {
                app.close_requested = true;
                let _ = s.close(now);
                trace.line(now, || format!("s{g} app close() session {:x}", id.0));
                moved = true;
            }
        }
        moved
    }

    /// Writes every batch the endpoint has into `out`. Returns whether there was any.
    fn drain_transmits(&mut self, now: Instant, out: &mut Vec<Out>) -> bool {
        let mut moved = false;
        loop {
            self.buf.clear();
            let Some(t) = self.endpoint.poll_transmit(now, &mut self.buf) else {
                return moved;
            };
            moved = true;
            let bytes = self.buf.split().freeze();
            let (conn, close) = match t {
                Transmit::Write(c) => (c, false),
                Transmit::Close(c) => (c, true),
            };
            out.push(Out { conn, bytes, close });
        }
    }

    /// Reads as many events as the applications' read policy allows, creating a session's
    /// application on its first event; pushes the sessions read from to `changed`. Returns
    /// whether any event was read.
    fn read_events(
        &mut self,
        now: Instant,
        trace: &mut Trace,
        changed: &mut Vec<SessionId>,
    ) -> bool {
        let manual = self.endpoint.config().ack_mode == AckMode::Manual;
        let g = self.generation;
        let allowance = self.allowance(now);
        let mut read = 0;
        while read < allowance {
            let Some((id, e)) = self.endpoint.poll_event() else {
                break;
            };
            read = read.saturating_add(reads(&e));
            changed.push(id);
            let app = self.apps.entry(id).or_insert_with(|| {
                new_server_app(g, id, self.send_plan, self.expect, &self.behaviour, now)
            });
            if let (true, Event::Messages(d)) = (manual, &e) {
                let last = d.next_seq() + d.len() as u64 - 1;
                app.pending_acks.push_back((now + self.behaviour.ack_lag, last));
            }
            if !matches!(e, Event::Messages(_) | Event::Confirmed { .. }) {
                trace.line(now, || format!("s{g} session {:x} event {}", id.0, event_name(&e)));
            }
            app.record(e, self.behaviour.plant);
        }
        if let ReadPolicy::Slow { .. } = self.behaviour.read {
            self.read_budget.0 = allowance.saturating_sub(read);
        }
        read > 0
    }

    /// Folds the stats of the sessions `ids` (all if `None`) into the peaks, recording any limit
    /// violation.
    fn observe_sessions(&mut self, ids: Option<&[SessionId]>) {
        let endpoint = &self.endpoint;
        let mut observe = |id: SessionId| {
            if let Some(s) = endpoint.session(id) {
                if let Some(v) = self.peaks.observe(&s.stats(), s.config()) {
                    self.limit_violations.push(v);
                }
            }
        };
        match ids {
            Some(ids) => ids.iter().copied().for_each(&mut observe),
            None => endpoint.session_ids().for_each(&mut observe),
        }
    }
}

/// The application of session `id` on server generation `g`, created on the session's first
/// event: it sends `send_plan.0` messages (sizes in `send_plan.1..=send_plan.2`) and expects
/// `expect`.
fn new_server_app(
    g: u32,
    id: SessionId,
    send_plan: (u64, usize, usize),
    expect: u64,
    behaviour: &Behaviour,
    now: Instant,
) -> App {
    let (n, lo, hi) = send_plan;
    let mut app = App { expect_from_peer: expect, ..App::default() };
    let msgs = server_payloads(g, id, n, lo, hi);
    app.schedule_sends(msgs, now, behaviour.send_interval);
    app
}

impl ServerNode for TetherServer {
    fn connected(&mut self, now: Instant, conn: ConnId) {
        self.endpoint.handle_connected(now, conn);
    }
    fn input(&mut self, now: Instant, conn: ConnId, bytes: Bytes) {
        self.endpoint.handle_input(now, conn, bytes);
        self.input_since_sample = true;
    }
    fn disconnected(&mut self, now: Instant, conn: ConnId) {
        self.endpoint.handle_disconnected(now, conn);
    }
    fn timeout(&mut self, now: Instant) {
        self.endpoint.handle_timeout(now);
    }
    fn wakeup(&self, now: Instant) -> Option<Instant> {
        let mut t = self.endpoint.poll_timeout();
        for a in self.apps.values() {
            t = earliest(t, a.wakeup(&self.behaviour, self.closes, now));
        }
        if let ReadPolicy::Slow { .. } = self.behaviour.read {
            if self.read_budget.0 == 0 && self.read_budget.1 > now {
                t = earliest(t, Some(self.read_budget.1));
            }
        }
        if let ReadPolicy::Stopped { until, .. } = self.behaviour.read {
            if until > now {
                t = earliest(t, Some(until));
            }
        }
        t
    }
    fn pump(&mut self, now: Instant, out: &mut Vec<Out>, trace: &mut Trace) {
        let mut changed = std::mem::take(&mut self.changed);
        loop {
            changed.clear();
            let mut moved = self.run_apps(now, trace, &mut changed);
            moved |= self.drain_transmits(now, out);
            moved |= self.read_events(now, trace, &mut changed);
            // Only samples that could show a new peak or a new limit violation are taken. The
            // counters the limits bound grow only in `send` (the applications' sessions, in
            // `changed`) and when bytes are read (`handle_input`: any session, hence all of them
            // after input); every other sample would be at most the session's previous one.
            if std::mem::take(&mut self.input_since_sample) {
                self.observe_sessions(None);
            } else if moved {
                changed.sort_unstable();
                changed.dedup();
                self.observe_sessions(Some(&changed));
            }
            self.peak_connections = self.peak_connections.max(self.endpoint.connection_count());
            if !moved {
                break;
            }
        }
        self.changed = changed;
    }
    fn finished(&self) -> bool {
        self.endpoint.session_count() == 0 && self.apps.values().all(|a| a.ended())
    }
}

/// The earlier of two optional instants.
pub fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// What an event costs a slow reader's allowance: one per message of a delivery (a read takes a
/// whole delivery, so it may overdraw the tick), one per other event.
fn reads(e: &Event) -> u32 {
    match e {
        Event::Messages(d) => u32::try_from(d.len()).unwrap_or(u32::MAX),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::payload;

    #[test]
    fn batches_are_the_single_payloads() {
        let c = client_payloads(5, 40, 1, 4096);
        let s = server_payloads(1, SessionId(0xabc), 40, 16, 1024);
        for k in 0..40 {
            assert_eq!(c[k as usize], client_payload(5, k, size_for(k, 5, 1, 4096)));
            assert_eq!(
                s[k as usize],
                server_payload(1, SessionId(0xabc), k, size_for(k, 0xabc, 16, 1024))
            );
        }
    }

    #[test]
    fn tags_are_the_formatted_ones() {
        for (i, k, size) in [(0, 0, 1), (3, 17, 64), (23, 599, 4096)] {
            assert_eq!(client_payload(i, k, size), payload(&format!("c{i}-{k}"), size));
        }
        for (g, id, k) in [(0, 0, 0), (2, 0x9f3a_2b00_ffee, 41), (1, u64::MAX, 7)] {
            let want = payload(&format!("s{g}-{id:x}-{k}"), 300);
            assert_eq!(server_payload(g, SessionId(id), k, 300), want);
        }
    }
}
