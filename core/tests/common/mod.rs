//! Pair harness: one `Endpoint` and any number of client `Session`s over in-memory stream links
//! with faults, a clock that jumps to the next deadline, and an application model on each side.
//! The contract checker at the bottom is what every test ends with.
#![allow(dead_code, reason = "each test file uses a different part of the harness")]

pub mod raw;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::{Bytes, BytesMut};
use tether_core::{
    AckMode, Config, ConnId, Duration, Endpoint, Event, Instant, Reason, SendError, Session,
    SessionId, Transmit, UnconfirmedMessage,
};

/// What the application on one end of one session did and saw.
#[derive(Debug, Default)]
pub struct App {
    /// Messages waiting to be sent (retried on backpressure).
    pub outbox: VecDeque<Bytes>,
    /// Messages accepted by `send`, with their sequence numbers.
    pub sent: Vec<(u64, Bytes)>,
    /// Messages delivered by `poll_event`.
    pub delivered: Vec<(u64, Bytes)>,
    /// Every event, in order.
    pub events: Vec<Event>,
    /// Highest `Confirmed { up_to }` seen.
    pub confirmed: Option<u64>,
    /// The application stopped reading (models a stalled consumer).
    pub stalled: bool,
    /// Times `send` reported backpressure.
    pub backpressure_hits: u64,
}

impl App {
    pub fn ended(&self) -> bool {
        self.events.iter().any(|e| matches!(e, Event::Closed | Event::Lost { .. }))
    }
    pub fn closed(&self) -> bool {
        self.events.iter().any(|e| matches!(e, Event::Closed))
    }
    pub fn lost(&self) -> Option<(&Reason, &Vec<UnconfirmedMessage>)> {
        self.events.iter().find_map(|e| match e {
            Event::Lost { reason, unconfirmed } => Some((reason, unconfirmed)),
            _ => None,
        })
    }
    pub fn count(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|e| f(e)).count()
    }
}

#[derive(Debug)]
struct LinkConn {
    client: usize,
    /// Writes are accepted and dropped; nothing arrives; nobody is told.
    blackholed: bool,
    /// Only the client-to-server direction is silent.
    blackholed_to_server: bool,
    client_open: bool,
    server_open: bool,
    /// With `read_in_place`: each end's read buffer for this connection (the unconsumed start
    /// of a frame, to which the next chunk is appended).
    server_buf: BytesMut,
    client_buf: BytesMut,
}

#[derive(Debug)]
enum Chunk {
    Bytes(Bytes),
    Fin,
}

#[derive(Debug)]
struct InFlight {
    at: Instant,
    conn: ConnId,
    to_server: bool,
    chunk: Chunk,
}

/// One client end.
#[derive(Debug)]
pub struct Client {
    pub session: Session,
    pub conn: Option<ConnId>,
    pub app: App,
}

/// The whole simulated world.
pub struct Net {
    pub now: Instant,
    pub server: Endpoint,
    pub clients: Vec<Client>,
    /// Server-side applications, per endpoint generation and session.
    pub server_apps: BTreeMap<(u32, SessionId), App>,
    pub generation: u32,
    pub config: Config,
    conns: BTreeMap<ConnId, LinkConn>,
    in_flight: VecDeque<InFlight>,
    next_conn: u64,
    rng: u64,
    /// One-way latency of every link.
    pub latency: Duration,
    /// Deliver each write in random pieces, and merge queued ones.
    pub split_reads: bool,
    /// Hand received bytes to the core in place in a per-connection read buffer
    /// (`handle_input_buf`) instead of as owned chunks (`handle_input`).
    pub read_in_place: bool,
    /// Largest frame each side accepts (bounds what an in-place read buffer may keep).
    max_frame: (u32, u32),
    /// Until then, connects fail and every connection is blackholed.
    pub partitioned_until: Option<Instant>,
    /// Server applications stop reading.
    pub server_stalled: bool,
    /// Call `handle_timeout` at every step even when nothing is due (spurious calls must be harmless).
    pub spurious_timeouts: bool,
    /// Largest buffered-receive bytes seen anywhere.
    pub max_buffered_receive: u64,
    /// Largest unconfirmed bytes seen anywhere.
    pub max_unconfirmed: u64,
    buf: BytesMut,
    pub steps: u64,
    /// Every `Welcome` the server wrote (they carry the session's secret: tests can forge resumes).
    pub welcomes: Vec<tether_core::wire::Welcome>,
    /// Transmits returned by client sessions and by the server.
    pub client_writes: u64,
    pub server_writes: u64,
}

impl Net {
    pub fn new(config: Config, clients: usize, seed: u64) -> Net {
        Net::with_server_config(config.clone(), config, clients, seed)
    }

    /// Clients run `config`, the server `server_config`.
    pub fn with_server_config(
        config: Config,
        server_config: Config,
        clients: usize,
        seed: u64,
    ) -> Net {
        let now = Instant::from_millis(1_000);
        let max_frame = (config.max_frame_size, server_config.max_frame_size);
        let server = Endpoint::new(server_config, key(seed, 0), now).unwrap();
        let clients = (0..clients)
            .map(|i| Client {
                session: Session::client(config.clone(), seed ^ ((i as u64 + 1) * 0x9E37), now)
                    .unwrap(),
                conn: None,
                app: App::default(),
            })
            .collect();
        Net {
            now,
            server,
            clients,
            server_apps: BTreeMap::new(),
            generation: 0,
            config,
            conns: BTreeMap::new(),
            in_flight: VecDeque::new(),
            next_conn: 1,
            rng: seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1,
            latency: Duration::from_millis(5),
            split_reads: false,
            read_in_place: false,
            max_frame,
            partitioned_until: None,
            server_stalled: false,
            spurious_timeouts: false,
            max_buffered_receive: 0,
            max_unconfirmed: 0,
            buf: BytesMut::new(),
            steps: 0,
            welcomes: Vec::new(),
            client_writes: 0,
            server_writes: 0,
        }
    }

    pub fn rand(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// The server-side application of client `i`'s session in the current generation.
    pub fn server_app(&self, i: usize) -> Option<&App> {
        let id = self.clients[i].session.id()?;
        self.server_apps.get(&(self.generation, id))
    }

    pub fn server_app_mut(&mut self, i: usize) -> Option<&mut App> {
        let id = self.clients[i].session.id()?;
        self.server_apps.get_mut(&(self.generation, id))
    }

    /// Queues `n` numbered messages from client `i` (payload: "c{i}-{k}" padded to `size`).
    pub fn client_sends(&mut self, i: usize, n: usize, size: usize) {
        let base = self.clients[i].app.outbox.len() + self.clients[i].app.sent.len();
        for k in base..base + n {
            self.clients[i].app.outbox.push_back(payload(&format!("c{i}-{k}"), size));
        }
    }

    /// Queues `n` numbered messages from the server to client `i`'s session.
    pub fn server_sends(&mut self, i: usize, n: usize, size: usize) {
        let app = self.server_app_mut(i).expect("session not accepted yet");
        let base = app.outbox.len() + app.sent.len();
        for k in base..base + n {
            app.outbox.push_back(payload(&format!("s{i}-{k}"), size));
        }
    }

    // ----- faults -----

    fn current(&self, i: usize) -> Option<ConnId> {
        self.clients[i].conn.filter(|c| self.conns.contains_key(c))
    }

    /// Both ends learn at once that client `i`'s connection was reset; bytes in flight are lost.
    pub fn reset(&mut self, i: usize) {
        if let Some(conn) = self.current(i) {
            self.in_flight.retain(|f| f.conn != conn);
            self.kill(conn);
        }
    }

    /// Client `i`'s connection goes silent: writes succeed, nothing arrives, nobody is told.
    pub fn blackhole(&mut self, i: usize) {
        if let Some(conn) = self.current(i) {
            self.in_flight.retain(|f| f.conn != conn);
            if let Some(c) = self.conns.get_mut(&conn) {
                c.blackholed = true;
            }
        }
    }

    /// Only the client-to-server direction of client `i`'s connection goes silent.
    pub fn blackhole_to_server(&mut self, i: usize) {
        if let Some(conn) = self.current(i) {
            self.in_flight.retain(|f| !(f.conn == conn && f.to_server));
            if let Some(c) = self.conns.get_mut(&conn) {
                c.blackholed_to_server = true;
            }
        }
    }

    /// Flips one bit of one chunk in flight on client `i`'s connection (if any is in flight).
    pub fn corrupt(&mut self, i: usize) -> bool {
        let Some(conn) = self.current(i) else {
            return false;
        };
        let mine: Vec<usize> =
            (0..self.in_flight.len()).filter(|k| self.in_flight[*k].conn == conn).collect();
        if mine.is_empty() {
            return false;
        }
        let k = mine[(self.rand() as usize) % mine.len()];
        let r = self.rand();
        let f = &mut self.in_flight[k];
        let Chunk::Bytes(b) = &f.chunk else {
            return false;
        };
        let mut v = b.to_vec();
        let at = (r as usize) % v.len();
        v[at] ^= 1 << ((r >> 32) % 8);
        f.chunk = Chunk::Bytes(Bytes::from(v));
        true
    }

    /// Client `i` alone learns its connection died; the server keeps a half-open connection, and
    /// whatever was in flight towards the server still arrives later, after the client resumed.
    pub fn half_open(&mut self, i: usize) {
        if let Some(conn) = self.current(i) {
            for f in self.in_flight.iter_mut().filter(|f| f.conn == conn) {
                f.at = f.at + Duration::from_millis(300);
            }
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            c.client_open = false;
            self.clients[i].conn = None;
            self.clients[i].session.handle_disconnected(self.now, conn);
        }
    }

    /// Writes raw bytes to the server on client `i`'s connection, as if the client sent them.
    pub fn inject_to_server(&mut self, i: usize, bytes: Bytes) {
        if let Some(conn) = self.current(i) {
            let at = self.now + self.latency;
            self.in_flight.push_back(InFlight {
                at,
                conn,
                to_server: true,
                chunk: Chunk::Bytes(bytes),
            });
        }
    }

    /// Opens an extra raw connection to the server (not a client session) and returns its id.
    pub fn raw_connect(&mut self) -> ConnId {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.server.handle_connected(self.now, conn);
        conn
    }

    /// An unknown suffix of the bytes in flight on client `i`'s connection is lost, then it resets.
    pub fn lose_suffix_then_reset(&mut self, i: usize) {
        if let Some(conn) = self.current(i) {
            let mine: Vec<usize> =
                (0..self.in_flight.len()).filter(|k| self.in_flight[*k].conn == conn).collect();
            let keep = if mine.is_empty() { 0 } else { (self.rand() as usize) % (mine.len() + 1) };
            // Deliver the kept prefix now, drop the rest.
            let mut deliver = Vec::new();
            for (n, k) in mine.iter().enumerate().rev() {
                let f = self.in_flight.remove(*k).unwrap();
                if n < keep {
                    deliver.push(f);
                }
            }
            for f in deliver.into_iter().rev() {
                self.deliver(f);
            }
            self.kill(conn);
        }
    }

    /// Every connection goes silent and connects fail for `d`.
    pub fn partition(&mut self, d: Duration) {
        self.partitioned_until = Some(self.now + d);
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in ids {
            self.in_flight.retain(|f| f.conn != conn);
            self.conns.get_mut(&conn).unwrap().blackholed = true;
        }
    }

    /// The server process dies and a fresh one takes the address: its session table is gone.
    pub fn restart_server(&mut self) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in ids {
            self.in_flight.retain(|f| f.conn != conn);
            let c = self.conns.get_mut(&conn).unwrap();
            c.server_open = false;
            self.kill(conn);
        }
        self.generation += 1;
        self.server =
            Endpoint::new(self.config.clone(), key(self.rng, self.generation), self.now).unwrap();
    }

    fn kill(&mut self, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if c.server_open {
            self.server.handle_disconnected(self.now, conn);
        }
        if c.client_open {
            let client = &mut self.clients[c.client];
            client.session.handle_disconnected(self.now, conn);
            if client.conn == Some(conn) {
                client.conn = None;
            }
        }
    }

    // ----- running -----

    /// Runs until `done` holds (checked between steps) or `limit` of virtual time passes.
    /// Returns whether `done` held.
    ///
    /// Fails (instead of spinning for ever) when virtual time stands still for a million steps:
    /// a deadline that stays due after `handle_timeout`, i.e. a timer that is never acted on.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Net) -> bool) -> bool {
        let end = self.now + limit;
        let mut still = (self.now, 0u32);
        loop {
            self.pump();
            if done(self) {
                return true;
            }
            if !self.advance(end) {
                return done(self);
            }
            still = if self.now == still.0 { (still.0, still.1 + 1) } else { (self.now, 0) };
            assert!(
                still.1 < 1_000_000,
                "virtual time stands still at {:?}: a deadline stays due after handle_timeout",
                self.now
            );
        }
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(d, |_| false);
    }

    /// Runs until every client session and its server session have ended (or `limit`).
    pub fn run_to_end(&mut self, limit: Duration) -> bool {
        self.run_until(limit, |n| {
            n.clients.iter().all(|c| c.app.ended())
                && n.server_apps
                    .iter()
                    .filter(|((g, _), _)| *g == n.generation)
                    .all(|(_, a)| a.ended())
        })
    }

    /// Jumps to the next deadline or delivery (at most `end`), delivers and fires timers.
    fn advance(&mut self, end: Instant) -> bool {
        let mut next = self.in_flight.iter().map(|f| f.at).min();
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n: Instant| n.min(t)));
            }
        };
        consider(self.server.poll_timeout());
        for c in &self.clients {
            consider(c.session.poll_timeout());
        }
        consider(self.partitioned_until);
        let Some(next) = next else { return false };
        if next > end {
            self.now = end;
            return false;
        }
        self.now = self.now.max(next);
        if self.partitioned_until.is_some_and(|t| t <= self.now) {
            self.partitioned_until = None;
        }
        self.steps += 1;
        while let Some(k) = self.in_flight.iter().position(|f| f.at <= self.now) {
            let f = self.in_flight.remove(k).unwrap();
            self.deliver(f);
        }
        let now = self.now;
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if self.spurious_timeouts || due(self.server.poll_timeout()) {
            self.server.handle_timeout(now);
        }
        for c in &mut self.clients {
            if self.spurious_timeouts || due(c.session.poll_timeout()) {
                c.session.handle_timeout(now);
            }
        }
        true
    }

    fn deliver(&mut self, f: InFlight) {
        let Some(c) = self.conns.get_mut(&f.conn) else {
            return;
        };
        if c.blackholed || (c.blackholed_to_server && f.to_server) {
            return;
        }
        let now = self.now;
        match (f.chunk, f.to_server) {
            (Chunk::Bytes(b), true) if c.server_open && self.read_in_place => {
                c.server_buf.extend_from_slice(&b);
                let missing = self.server.handle_input_buf(now, f.conn, &mut c.server_buf);
                check_read_buf(&c.server_buf, missing, self.max_frame.1);
            }
            (Chunk::Bytes(b), false) if c.client_open && self.read_in_place => {
                c.client_buf.extend_from_slice(&b);
                let session = &mut self.clients[c.client].session;
                let missing = session.handle_input_buf(now, f.conn, &mut c.client_buf);
                check_read_buf(&c.client_buf, missing, self.max_frame.0);
            }
            (Chunk::Bytes(b), true) if c.server_open => self.server.handle_input(now, f.conn, b),
            (Chunk::Bytes(b), false) if c.client_open => {
                self.clients[c.client].session.handle_input(now, f.conn, b)
            }
            (Chunk::Fin, true) if c.server_open => {
                c.server_open = false;
                self.server.handle_disconnected(now, f.conn);
            }
            (Chunk::Fin, false) if c.client_open => {
                c.client_open = false;
                let client = c.client;
                self.clients[client].session.handle_disconnected(now, f.conn);
                if self.clients[client].conn == Some(f.conn) {
                    self.clients[client].conn = None;
                }
            }
            _ => {}
        }
        if let Some(c) = self.conns.get(&f.conn) {
            if !c.client_open && !c.server_open {
                self.conns.remove(&f.conn);
            }
        }
    }

    /// Drains every output, event and connect request until nothing moves.
    pub fn pump(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.clients.len() {
                moved |= self.pump_client(i);
            }
            moved |= self.pump_server();
            self.observe_limits();
            if !moved {
                return;
            }
        }
    }

    fn observe_limits(&mut self) {
        let mut stats: Vec<_> = self.clients.iter().map(|c| c.session.stats()).collect();
        let ids: Vec<SessionId> = self.server.session_ids().collect();
        stats.extend(ids.iter().filter_map(|id| self.server.session(*id)).map(|s| s.stats()));
        for s in stats {
            self.max_buffered_receive = self.max_buffered_receive.max(s.buffered_receive_bytes);
            self.max_unconfirmed = self.max_unconfirmed.max(s.unconfirmed_bytes);
            assert!(s.buffered_receive_bytes <= self.config.receive_window_bytes);
            assert!(s.buffered_receive_messages <= u64::from(self.config.receive_window_messages));
            assert!(s.unconfirmed_bytes <= self.config.max_unconfirmed_bytes);
            assert!(s.unconfirmed_messages <= u64::from(self.config.max_unconfirmed_messages));
        }
    }

    fn pump_client(&mut self, i: usize) -> bool {
        let now = self.now;
        let mut moved = false;
        if self.clients[i].session.poll_connect(now) {
            moved = true;
            if self.partitioned_until.is_some() {
                self.clients[i].session.handle_connect_failed(now);
            } else {
                let conn = ConnId(self.next_conn);
                self.next_conn += 1;
                self.conns.insert(
                    conn,
                    LinkConn {
                        client: i,
                        blackholed: false,
                        blackholed_to_server: false,
                        client_open: true,
                        server_open: true,
                        server_buf: BytesMut::new(),
                        client_buf: BytesMut::new(),
                    },
                );
                self.clients[i].conn = Some(conn);
                self.clients[i].session.handle_connected(now, conn);
                self.server.handle_connected(now, conn);
            }
        }
        let c = &mut self.clients[i];
        moved |= feed(&mut c.session, &mut c.app, now);
        loop {
            self.buf.clear();
            let Some(t) = self.clients[i].session.poll_transmit(now, &mut self.buf) else {
                break;
            };
            moved = true;
            let bytes = self.buf.split().freeze();
            self.client_writes += 1;
            self.route(t, true, bytes);
        }
        let manual = self.config.ack_mode == AckMode::Manual;
        let c = &mut self.clients[i];
        if !c.app.stalled {
            while let Some(e) = c.session.poll_event() {
                moved = true;
                if let (true, Some(last)) = (manual, record(&mut c.app, e)) {
                    c.session.ack(last).unwrap();
                }
            }
        }
        moved
    }

    fn pump_server(&mut self) -> bool {
        let now = self.now;
        let mut moved = false;
        let manual = self.config.ack_mode == AckMode::Manual;
        // Application sends first, so they go out in this round.
        let keys: Vec<(u32, SessionId)> =
            self.server_apps.keys().copied().filter(|(g, _)| *g == self.generation).collect();
        for key in keys {
            let app = self.server_apps.get_mut(&key).unwrap();
            if let Some(s) = self.server.session_mut(key.1) {
                moved |= feed(s, app, now);
            }
        }
        loop {
            self.buf.clear();
            let Some(t) = self.server.poll_transmit(now, &mut self.buf) else {
                break;
            };
            moved = true;
            let bytes = self.buf.split().freeze();
            self.server_writes += 1;
            self.capture_welcome(&bytes);
            self.route(t, false, bytes);
        }
        if !self.server_stalled {
            while let Some((id, e)) = self.server.poll_event() {
                moved = true;
                let app = self.server_apps.entry((self.generation, id)).or_default();
                if let (true, Some(last)) = (manual, record(app, e)) {
                    self.server.session_mut(id).unwrap().ack(last).unwrap();
                }
            }
        } else {
            // A stalled server application still notices new sessions (to have an App to check).
        }
        moved
    }

    fn route(&mut self, t: Transmit, from_client: bool, bytes: Bytes) {
        let (conn, close) = match t {
            Transmit::Write(c) => (c, false),
            Transmit::Close(c) => (c, true),
        };
        let Some(link) = self.conns.get_mut(&conn) else {
            return;
        };
        let open = if from_client { link.client_open } else { link.server_open };
        if !open {
            return;
        }
        if close {
            if from_client {
                link.client_open = false;
            } else {
                link.server_open = false;
            }
        }
        let (client, blackholed) = (link.client, link.blackholed);
        let both_closed = !link.client_open && !link.server_open;
        if close && from_client && self.clients[client].conn == Some(conn) {
            self.clients[client].conn = None;
        }
        if blackholed {
            if both_closed {
                self.conns.remove(&conn);
            }
            return;
        }
        let at = self.now + self.latency;
        let to_server = from_client;
        if !bytes.is_empty() {
            if self.split_reads && bytes.len() > 1 {
                let mut rest = bytes;
                while !rest.is_empty() {
                    let n = 1 + (self.rand() as usize) % rest.len();
                    let piece = rest.split_to(n);
                    self.in_flight.push_back(InFlight {
                        at,
                        conn,
                        to_server,
                        chunk: Chunk::Bytes(piece),
                    });
                }
            } else {
                self.in_flight.push_back(InFlight {
                    at,
                    conn,
                    to_server,
                    chunk: Chunk::Bytes(bytes),
                });
            }
        }
        if close {
            self.in_flight.push_back(InFlight { at, conn, to_server, chunk: Chunk::Fin });
        }
    }

    fn capture_welcome(&mut self, bytes: &Bytes) {
        let mut d = tether_core::wire::Decoder::new(1 << 21);
        d.push(bytes.clone());
        if let Ok(Some(tether_core::wire::Frame::Welcome(w))) = d.next_frame() {
            self.welcomes.push(w);
        }
    }

    /// Total connections the harness still considers open on either side.
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }
}

/// Sends from the outbox until backpressure.
fn feed(session: &mut Session, app: &mut App, now: Instant) -> bool {
    let mut moved = false;
    while let Some(p) = app.outbox.pop_front() {
        match session.send(now, p.clone()) {
            Ok(seq) => {
                moved = true;
                app.sent.push((seq, p));
            }
            Err(SendError::Backpressure(p)) => {
                app.backpressure_hits += 1;
                app.outbox.push_front(p);
                break;
            }
            Err(e) => {
                app.outbox.push_front(e.into_payload());
                break;
            }
        }
    }
    moved
}

/// Records an event; for delivered messages returns the last one's sequence number.
fn record(app: &mut App, e: Event) -> Option<u64> {
    assert!(!app.ended(), "event {e:?} after the session ended");
    app.events.push(e.clone());
    match e {
        Event::Messages(d) => {
            app.delivered.extend(d);
            return app.delivered.last().map(|m| m.0);
        }
        Event::Confirmed { up_to } => {
            assert!(app.confirmed.is_none_or(|c| c < up_to), "Confirmed went backwards");
            app.confirmed = Some(up_to);
        }
        _ => {}
    }
    None
}

pub fn payload(tag: &str, size: usize) -> Bytes {
    let mut v = tag.as_bytes().to_vec();
    while v.len() < size {
        v.push(b'.');
    }
    Bytes::from(v)
}

pub fn key(seed: u64, generation: u32) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..8].copy_from_slice(&seed.to_le_bytes());
    k[8..12].copy_from_slice(&generation.to_le_bytes());
    k
}

/// A fast config for tests: short timers so faults resolve in little virtual time.
pub fn test_config() -> Config {
    Config {
        heartbeat_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(500),
        ack_timeout: Duration::from_millis(1_000),
        handshake_timeout: Duration::from_millis(500),
        session_timeout: Duration::from_secs(10),
        close_timeout: Duration::from_secs(5),
        reconnect_backoff_initial: Duration::from_millis(20),
        reconnect_backoff_max: Duration::from_millis(400),
        ..Config::default()
    }
}

// ----- the contract checker -----

/// Checks one direction of one session: `from` sent, `to` received.
pub fn check_direction(label: &str, from: &App, to: Option<&App>) {
    let empty = App::default();
    let to = to.unwrap_or(&empty);
    // 1. Delivered is a gap-free, duplicate-free, byte-identical prefix of sent.
    assert!(to.delivered.len() <= from.sent.len(), "{label}: delivered more than sent");
    for (k, (seq, p)) in to.delivered.iter().enumerate() {
        assert_eq!(*seq, k as u64, "{label}: gap or duplicate at {k}");
        assert_eq!(p, &from.sent[k].1, "{label}: payload {k} differs");
    }
    for (k, (seq, _)) in from.sent.iter().enumerate() {
        assert_eq!(*seq, k as u64, "{label}: send sequence numbers not consecutive");
    }
    // 2. Confirmed only what the peer delivered (and, in manual mode, acked).
    let confirmed = from.confirmed.map_or(0, |c| c + 1) as usize;
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
    // 4. At most one terminal event, and it is last.
    let terminals = from.count(|e| matches!(e, Event::Closed | Event::Lost { .. }));
    assert!(terminals <= 1, "{label}: {terminals} terminal events");
    if terminals == 1 {
        assert!(
            matches!(from.events.last(), Some(Event::Closed | Event::Lost { .. })),
            "{label}: event after end"
        );
    }
}

/// Checks both directions of every client's session against the server side.
pub fn check_contract(net: &Net) {
    let mut seen = BTreeSet::new();
    for (i, c) in net.clients.iter().enumerate() {
        let Some(id) = c.session.id() else {
            assert!(c.app.sent.len() == c.app.lost().map_or(c.app.sent.len(), |l| l.1.len()));
            continue;
        };
        // The server app of this session lives in the generation in which it was created.
        let server = net.server_apps.iter().find(|((_, sid), _)| *sid == id).map(|(_, a)| a);
        seen.insert(id);
        check_direction(&format!("client {i} -> server"), &c.app, server);
        if let Some(s) = server {
            check_direction(&format!("server -> client {i}"), s, Some(&c.app));
        }
    }
}

/// What `handle_input_buf` leaves behind: at most one incomplete frame, and `missing` says
/// whether there is one.
fn check_read_buf(buf: &BytesMut, missing: usize, max_frame: u32) {
    assert!(buf.len() <= max_frame as usize + 8, "read buffer kept {} bytes", buf.len());
    assert_eq!(missing == 0, buf.is_empty(), "missing {missing} with {} bytes kept", buf.len());
}
