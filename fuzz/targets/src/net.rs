//! A small simulated world for the `pair` and `endpoint` targets: one [`Endpoint`], client
//! [`Session`]s over in-memory stream links with faults, raw ("hostile") connections the fuzzer
//! writes to, a clock that steps from deadline to deadline, and an [`App`] on each end of each
//! session. It follows the driving contract documented on `Session` and checks, as it routes
//! output, that nobody writes to a connection after closing it or being told it ended.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::{Bytes, BytesMut};
use tether_core::wire::{Decoder, Frame};
use tether_core::{
    AckMode, Config, ConnId, Duration, Endpoint, Event, Instant, Session, SessionId, Transmit,
};

use crate::model::App;

/// Who is on the client end of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Client session number `.0`.
    Client(usize),
    /// A raw connection the fuzzer writes.
    Hostile,
}

#[derive(Debug)]
struct Link {
    owner: Owner,
    /// Writes are accepted and dropped; nothing arrives; nobody is told.
    blackholed: bool,
    /// Only the client-to-server direction is silent.
    blackholed_to_server: bool,
    client_open: bool,
    server_open: bool,
    /// Read buffers when this connection is read in place (odd connection ids): the start of a
    /// frame not yet whole, which the next chunk is appended to.
    server_buf: BytesMut,
    client_buf: BytesMut,
}

impl Link {
    fn new(owner: Owner) -> Link {
        Link {
            owner,
            blackholed: false,
            blackholed_to_server: false,
            client_open: true,
            server_open: true,
            server_buf: BytesMut::new(),
            client_buf: BytesMut::new(),
        }
    }
}

/// Connections with odd ids are read in place (`handle_input_buf`, one buffer per end), the
/// others as owned chunks (`handle_input`): both ways run in every input that connects twice.
fn in_place(conn: ConnId) -> bool {
    conn.0 % 2 == 1
}

/// What `handle_input_buf` leaves: at most one incomplete frame, and `missing` says if there is.
fn check_read_buf(buf: &BytesMut, missing: usize, max_frame: u32) {
    assert!(buf.len() <= max_frame as usize + 8, "read buffer kept {} bytes", buf.len());
    assert_eq!(missing == 0, buf.is_empty(), "missing {missing} with {} bytes kept", buf.len());
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
    /// The session.
    pub session: Session,
    /// Its current connection, as the harness sees it.
    pub conn: Option<ConnId>,
    /// Its application.
    pub app: App,
    /// Connections it closed or was told ended.
    dead: BTreeSet<ConnId>,
}

/// What the server wrote to a hostile connection, decoded.
#[derive(Debug)]
pub struct HostileRx {
    decoder: Decoder,
    /// Frames received, most recent last (at most a few kept).
    pub frames: VecDeque<Frame>,
}

/// The world.
#[derive(Debug)]
pub struct Net {
    /// Virtual time.
    pub now: Instant,
    /// The server.
    pub server: Endpoint,
    /// The client sessions.
    pub clients: Vec<Client>,
    /// Server applications, by endpoint generation and session.
    pub server_apps: BTreeMap<(u32, SessionId), App>,
    /// Incremented by each server restart.
    pub generation: u32,
    /// The configuration of every session and the endpoint.
    pub config: Config,
    links: BTreeMap<ConnId, Link>,
    in_flight: VecDeque<InFlight>,
    next_conn: u64,
    rng: u64,
    /// One-way latency of every link.
    pub latency: Duration,
    /// Deliver each write in random pieces.
    pub split_reads: bool,
    /// Until then, connects fail.
    pub partitioned_until: Option<Instant>,
    /// Server applications stop reading.
    pub server_stalled: bool,
    /// Call `handle_timeout` at every step even when nothing is due.
    pub spurious_timeouts: bool,
    /// Connections the server closed or was told ended.
    server_dead: BTreeSet<ConnId>,
    /// Hostile connections and what the server said on them.
    pub hostile: BTreeMap<ConnId, HostileRx>,
    buf: BytesMut,
}

impl Net {
    /// A world with `clients` client sessions (not connected yet).
    pub fn new(config: Config, clients: usize, seed: u64) -> Net {
        let now = Instant::from_millis(1_000);
        let server = Endpoint::new(config.clone(), key(seed, 0), now).expect("valid config");
        let clients = (0..clients)
            .map(|i| Client {
                session: Session::client(config.clone(), seed ^ ((i as u64 + 1) * 0x9E37), now)
                    .expect("valid config"),
                conn: None,
                app: App::default(),
                dead: BTreeSet::new(),
            })
            .collect();
        Net {
            now,
            server,
            clients,
            server_apps: BTreeMap::new(),
            generation: 0,
            config,
            links: BTreeMap::new(),
            in_flight: VecDeque::new(),
            next_conn: 1,
            rng: seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1,
            latency: Duration::from_millis(5),
            split_reads: false,
            partitioned_until: None,
            server_stalled: false,
            spurious_timeouts: false,
            server_dead: BTreeSet::new(),
            hostile: BTreeMap::new(),
            buf: BytesMut::new(),
        }
    }

    fn rand(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// The server-side application of client `i`'s session in the current generation.
    pub fn server_app_mut(&mut self, i: usize) -> Option<&mut App> {
        let id = self.clients[i].session.id()?;
        self.server_apps.get_mut(&(self.generation, id))
    }

    // ----- faults -----

    fn current(&self, i: usize) -> Option<ConnId> {
        self.clients[i].conn.filter(|c| self.links.contains_key(c))
    }

    /// Both ends learn at once that client `i`'s connection was reset; bytes in flight are lost.
    pub fn reset(&mut self, i: usize) {
        if let Some(conn) = self.current(i) {
            self.in_flight.retain(|f| f.conn != conn);
            self.kill(conn);
        }
    }

    /// Client `i`'s connection goes silent: writes succeed, nothing arrives, nobody is told.
    pub fn blackhole(&mut self, i: usize, to_server_only: bool) {
        if let Some(conn) = self.current(i) {
            self.in_flight.retain(|f| f.conn != conn || (to_server_only && !f.to_server));
            if let Some(l) = self.links.get_mut(&conn) {
                if to_server_only {
                    l.blackholed_to_server = true;
                } else {
                    l.blackholed = true;
                }
            }
        }
    }

    /// Flips bits of one chunk in flight on client `i`'s connection.
    pub fn corrupt(&mut self, i: usize, at: u16, mask: u8) {
        let Some(conn) = self.current(i) else { return };
        let Some(f) = self.in_flight.iter_mut().find(|f| f.conn == conn) else { return };
        if let Chunk::Bytes(b) = &f.chunk {
            let mut v = b.to_vec();
            let n = v.len();
            v[usize::from(at) % n] ^= mask.max(1);
            f.chunk = Chunk::Bytes(Bytes::from(v));
        }
    }

    /// Client `i` alone learns its connection died; the server keeps a half-open connection, and
    /// what was in flight towards the server arrives later.
    pub fn half_open(&mut self, i: usize) {
        let Some(conn) = self.current(i) else { return };
        for f in self.in_flight.iter_mut().filter(|f| f.conn == conn) {
            f.at = f.at + Duration::from_millis(300);
        }
        if let Some(l) = self.links.get_mut(&conn) {
            l.client_open = false;
        }
        self.clients[i].conn = None;
        self.clients[i].dead.insert(conn);
        self.clients[i].session.handle_disconnected(self.now, conn);
    }

    /// A prefix of what is in flight on client `i`'s connection (`keep` chunks) arrives, the rest
    /// is lost, then the connection resets.
    pub fn lose_suffix_then_reset(&mut self, i: usize, keep: u8) {
        let Some(conn) = self.current(i) else { return };
        let mut kept = 0;
        let mut deliver = Vec::new();
        let mut k = 0;
        while k < self.in_flight.len() {
            if self.in_flight[k].conn == conn {
                let f = self.in_flight.remove(k).expect("index in range");
                if kept < keep {
                    kept += 1;
                    deliver.push(f);
                }
            } else {
                k += 1;
            }
        }
        for f in deliver {
            self.deliver(f);
        }
        self.kill(conn);
    }

    /// Every connection goes silent and connects fail for `d`.
    pub fn partition(&mut self, d: Duration) {
        self.partitioned_until = Some(self.now + d);
        self.in_flight.clear();
        for l in self.links.values_mut() {
            l.blackholed = true;
        }
    }

    /// The server process dies and a fresh one takes the address: its session table is gone.
    pub fn restart_server(&mut self) {
        let ids: Vec<ConnId> = self.links.keys().copied().collect();
        self.in_flight.clear();
        for conn in ids {
            if let Some(l) = self.links.get_mut(&conn) {
                l.server_open = false;
            }
            self.kill(conn);
        }
        self.generation += 1;
        self.server_dead.clear();
        let k = key(self.rng, self.generation);
        self.server = Endpoint::new(self.config.clone(), k, self.now).expect("valid config");
    }

    /// Opens a raw connection to the server; returns its id.
    pub fn hostile_connect(&mut self) -> ConnId {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.links.insert(conn, Link::new(Owner::Hostile));
        let max = u32::MAX;
        self.hostile
            .insert(conn, HostileRx { decoder: Decoder::new(max), frames: VecDeque::new() });
        self.server.handle_connected(self.now, conn);
        conn
    }

    /// Bytes from a hostile connection, arriving after the latency.
    pub fn hostile_write(&mut self, conn: ConnId, bytes: Bytes) {
        if self.links.get(&conn).is_some_and(|l| l.client_open) && !bytes.is_empty() {
            let at = self.now + self.latency;
            self.in_flight.push_back(InFlight {
                at,
                conn,
                to_server: true,
                chunk: Chunk::Bytes(bytes),
            });
        }
    }

    /// The hostile side closes its connection (a FIN after what is in flight).
    pub fn hostile_close(&mut self, conn: ConnId) {
        if let Some(l) = self.links.get_mut(&conn).filter(|l| l.client_open) {
            l.client_open = false;
            let at = self.now + self.latency;
            self.in_flight.push_back(InFlight { at, conn, to_server: true, chunk: Chunk::Fin });
        }
    }

    /// Open hostile connections.
    pub fn hostile_open(&self) -> Vec<ConnId> {
        self.hostile
            .keys()
            .copied()
            .filter(|c| self.links.get(c).is_some_and(|l| l.client_open))
            .collect()
    }

    fn kill(&mut self, conn: ConnId) {
        let Some(l) = self.links.remove(&conn) else { return };
        if l.server_open {
            self.server_dead.insert(conn);
            self.server.handle_disconnected(self.now, conn);
        }
        if let (true, Owner::Client(i)) = (l.client_open, l.owner) {
            let client = &mut self.clients[i];
            client.dead.insert(conn);
            client.session.handle_disconnected(self.now, conn);
            if client.conn == Some(conn) {
                client.conn = None;
            }
        }
    }

    // ----- running -----

    /// Runs until `done` holds (checked between steps) or `limit` of virtual time passes.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Net) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            self.pump();
            if done(self) {
                return true;
            }
            if !self.advance(end) {
                self.pump();
                return done(self);
            }
        }
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(d, |_| false);
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
        let Some(next) = next else {
            self.now = self.now.max(end);
            return false;
        };
        if next > end {
            self.now = self.now.max(end);
            return false;
        }
        self.now = self.now.max(next);
        if self.partitioned_until.is_some_and(|t| t <= self.now) {
            self.partitioned_until = None;
        }
        while let Some(k) = self.in_flight.iter().position(|f| f.at <= self.now) {
            let f = self.in_flight.remove(k).expect("index in range");
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
        let Some(l) = self.links.get_mut(&f.conn) else { return };
        if l.blackholed || (l.blackholed_to_server && f.to_server) {
            return;
        }
        let now = self.now;
        let max_frame = self.config.max_frame_size;
        match (f.chunk, f.to_server) {
            (Chunk::Bytes(b), true) if l.server_open && in_place(f.conn) => {
                l.server_buf.extend_from_slice(&b);
                let missing = self.server.handle_input_buf(now, f.conn, &mut l.server_buf);
                check_read_buf(&l.server_buf, missing, max_frame);
            }
            (Chunk::Bytes(b), false) if l.client_open && in_place(f.conn) => {
                if let Owner::Client(i) = l.owner {
                    l.client_buf.extend_from_slice(&b);
                    let session = &mut self.clients[i].session;
                    let missing = session.handle_input_buf(now, f.conn, &mut l.client_buf);
                    check_read_buf(&l.client_buf, missing, max_frame);
                }
            }
            (Chunk::Bytes(b), true) if l.server_open => self.server.handle_input(now, f.conn, b),
            (Chunk::Bytes(b), false) if l.client_open => {
                if let Owner::Client(i) = l.owner {
                    self.clients[i].session.handle_input(now, f.conn, b);
                }
            }
            (Chunk::Fin, true) if l.server_open => {
                l.server_open = false;
                self.server_dead.insert(f.conn);
                self.server.handle_disconnected(now, f.conn);
            }
            (Chunk::Fin, false) if l.client_open => {
                l.client_open = false;
                if let Owner::Client(i) = l.owner {
                    let c = &mut self.clients[i];
                    c.dead.insert(f.conn);
                    c.session.handle_disconnected(now, f.conn);
                    if c.conn == Some(f.conn) {
                        c.conn = None;
                    }
                }
            }
            _ => {}
        }
        if let Some(l) = self.links.get(&f.conn) {
            if !l.client_open && !l.server_open {
                self.links.remove(&f.conn);
            }
        }
    }

    /// Drains every output, event and connect request until nothing moves.
    pub fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            for i in 0..self.clients.len() {
                moved |= self.pump_client(i);
            }
            moved |= self.pump_server();
            self.check_limits();
            if !moved {
                return;
            }
        }
        panic!("outputs never settle: livelock between the sessions and the harness");
    }

    /// Leaves room in the transmit buffer for a whole batch: each transmit is split off a shared
    /// region allocated now and then, instead of a fresh buffer grown by reallocation each time.
    fn make_room(&mut self) {
        let need = self.config.transmit_batch_bytes as usize + self.config.max_frame_size as usize;
        if self.buf.capacity() < need {
            self.buf = BytesMut::with_capacity(4 * need);
        }
    }

    fn check_limits(&self) {
        let c = &self.config;
        let server = self.server.session_ids().filter_map(|id| self.server.session(id));
        for s in self.clients.iter().map(|c| &c.session).chain(server) {
            let st = s.stats();
            assert!(st.buffered_receive_bytes <= c.receive_window_bytes, "receive window bytes");
            assert!(st.buffered_receive_messages <= u64::from(c.receive_window_messages));
            assert!(st.unconfirmed_bytes <= c.max_unconfirmed_bytes, "unconfirmed bytes");
            assert!(st.unconfirmed_messages <= u64::from(c.max_unconfirmed_messages));
        }
        let e = &self.server;
        assert!(e.handshake_count() <= c.max_handshakes as usize, "handshakes over the limit");
        assert!(e.session_count() <= c.max_sessions as usize, "sessions over the limit");
        assert!(e.detached_count() <= c.max_detached_sessions as usize, "detached over the limit");
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
                let link = Link::new(Owner::Client(i));
                self.links.insert(conn, link);
                self.clients[i].conn = Some(conn);
                self.clients[i].session.handle_connected(now, conn);
                self.server.handle_connected(now, conn);
            }
        }
        let c = &mut self.clients[i];
        moved |= c.app.feed(&mut c.session, now);
        loop {
            self.make_room();
            let Some(t) = self.clients[i].session.poll_transmit(now, &mut self.buf) else {
                break;
            };
            moved = true;
            let bytes = self.buf.split().freeze();
            let c = &mut self.clients[i];
            if let Transmit::Write(conn) = t {
                assert!(!c.dead.contains(&conn), "client {i} wrote to {conn:?} after it ended");
                assert!(!bytes.is_empty(), "client {i}: Write with no bytes");
            } else if let Transmit::Close(conn) = t {
                c.dead.insert(conn);
            }
            self.route(t, true, bytes);
        }
        let manual = self.config.ack_mode == AckMode::Manual;
        let c = &mut self.clients[i];
        if !c.app.stalled {
            while let Some(e) = c.session.poll_event() {
                moved = true;
                c.app.record(&format!("client {i}"), &e);
                if let (true, Event::Messages(_)) = (manual, &e) {
                    let last = c.app.delivered.last().expect("a delivery is not empty").0;
                    c.session.ack(last).expect("ack of a delivered message");
                }
            }
        }
        moved
    }

    fn pump_server(&mut self) -> bool {
        let now = self.now;
        let mut moved = false;
        let manual = self.config.ack_mode == AckMode::Manual;
        let keys: Vec<(u32, SessionId)> =
            self.server_apps.keys().copied().filter(|(g, _)| *g == self.generation).collect();
        for key in keys {
            let app = self.server_apps.get_mut(&key).expect("key listed");
            if app.outbox.is_empty() {
                continue;
            }
            if let Some(s) = self.server.session_mut(key.1) {
                moved |= app.feed(s, now);
            }
        }
        loop {
            self.make_room();
            let Some(t) = self.server.poll_transmit(now, &mut self.buf) else { break };
            moved = true;
            let bytes = self.buf.split().freeze();
            if let Transmit::Write(conn) = t {
                assert!(
                    !self.server_dead.contains(&conn),
                    "server wrote to {conn:?} after it ended"
                );
                assert!(!bytes.is_empty(), "server: Write with no bytes");
            } else if let Transmit::Close(conn) = t {
                self.server_dead.insert(conn);
            }
            self.route(t, false, bytes);
        }
        if !self.server_stalled {
            while let Some((id, e)) = self.server.poll_event() {
                moved = true;
                let app = self.server_apps.entry((self.generation, id)).or_default();
                app.record(&format!("server session {id:?}"), &e);
                if let (true, Event::Messages(_)) = (manual, &e) {
                    let last = app.delivered.last().expect("a delivery is not empty").0;
                    let s = self.server.session_mut(id).expect("session with an event exists");
                    s.ack(last).expect("ack of a delivered message");
                }
            }
        }
        moved
    }

    fn route(&mut self, t: Transmit, from_client: bool, bytes: Bytes) {
        let (conn, close) = match t {
            Transmit::Write(c) => (c, false),
            Transmit::Close(c) => (c, true),
        };
        let Some(link) = self.links.get_mut(&conn) else { return };
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
        let (owner, blackholed) = (link.owner, link.blackholed);
        let both_closed = !link.client_open && !link.server_open;
        if let (true, true, Owner::Client(i)) = (close, from_client, owner) {
            if self.clients[i].conn == Some(conn) {
                self.clients[i].conn = None;
            }
        }
        if owner == Owner::Hostile && !from_client {
            // The fuzzer reads what the server says at once (for anchors), latency aside.
            if let Some(rx) = self.hostile.get_mut(&conn) {
                rx.decoder.push(bytes.clone());
                while let Ok(Some(f)) = rx.decoder.next_frame() {
                    if rx.frames.len() >= 8 {
                        rx.frames.pop_front();
                    }
                    rx.frames.push_back(f);
                }
            }
            if close {
                self.links.remove(&conn);
            }
            return;
        }
        if blackholed {
            if both_closed {
                self.links.remove(&conn);
            }
            return;
        }
        let at = self.now + self.latency;
        if !bytes.is_empty() {
            if self.split_reads && bytes.len() > 1 {
                let mut rest = bytes;
                while !rest.is_empty() {
                    let n = 1 + (self.rand() as usize) % rest.len();
                    let piece = rest.split_to(n);
                    let chunk = Chunk::Bytes(piece);
                    self.in_flight.push_back(InFlight { at, conn, to_server: from_client, chunk });
                }
            } else {
                let chunk = Chunk::Bytes(bytes);
                self.in_flight.push_back(InFlight { at, conn, to_server: from_client, chunk });
            }
        }
        if close {
            self.in_flight.push_back(InFlight {
                at,
                conn,
                to_server: from_client,
                chunk: Chunk::Fin,
            });
        }
    }

    /// Connections the endpoint holds beyond one per session and its handshakes: leaked ones.
    pub fn check_no_leaked_connections(&self) {
        let e = &self.server;
        assert!(
            e.connection_count() <= e.handshake_count() + e.session_count(),
            "endpoint holds {} connections for {} handshakes and {} sessions",
            e.connection_count(),
            e.handshake_count(),
            e.session_count()
        );
    }
}

/// Endpoint key material from a seed.
pub fn key(seed: u64, generation: u32) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..8].copy_from_slice(&seed.to_le_bytes());
    k[8..12].copy_from_slice(&generation.to_le_bytes());
    k
}
