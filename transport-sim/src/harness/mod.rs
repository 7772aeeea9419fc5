//! The pair harness: one [`Endpoint`] and any number of client [`Session`]s over in-memory stream
//! links with faults, raw ("hostile") connections a test or fuzzer writes to, a clock that jumps
//! to the next deadline or delivery, and an [`App`] on each end of each session.
//!
//! Unlike [`Sim`](crate::sim::Sim), which runs whole randomised scenarios from a seed, the harness
//! is driven step by step by its caller (the core's integration tests, the `pair` and `endpoint`
//! fuzz targets): queue messages, inject one fault, run until a condition holds, look at the
//! sessions and applications, check the contract ([`check_contract`]). It drives both ends through
//! the sans-IO driving contract documented on `Session` and checks, as it goes, that:
//! - no session or the endpoint exceeds a configured limit ([`Net::pump`] after each round);
//! - nobody writes to a connection after closing it or being told it ended, and no `Write` is
//!   empty;
//! - every event is plausible given the ones before ([`App::record`]);
//! - virtual time never stands still for ever and outputs settle (no livelock).

mod app;
mod contract;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::{Bytes, BytesMut};
use tether_core::wire::{Decoder, Frame, FrameType, Welcome, HANDSHAKE_FRAME_LIMIT};
use tether_core::{
    AckMode, Config, ConnId, Duration, Endpoint, Instant, Session, SessionId, Transmit,
};

pub use app::{payload, App, Side};
pub use contract::{check_contract, check_direction};

/// Who is on the client end of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Client session number `.0`.
    Client(usize),
    /// A raw connection the caller writes ([`Net::hostile_connect`]).
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
    /// Read buffers when connections are read in place ([`Net::read_in_place`]): the start of a
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

/// The whole simulated world.
#[derive(Debug)]
pub struct Net {
    /// Virtual time.
    pub now: Instant,
    /// The server.
    pub server: Endpoint,
    /// The client sessions.
    pub clients: Vec<Client>,
    /// Server-side applications, by endpoint generation and session.
    pub server_apps: BTreeMap<(u32, SessionId), App>,
    /// Incremented by each server restart.
    pub generation: u32,
    /// The configuration of every client session.
    pub config: Config,
    /// The configuration of the endpoint (and of a restarted one).
    pub server_config: Config,
    links: BTreeMap<ConnId, Link>,
    in_flight: VecDeque<InFlight>,
    next_conn: u64,
    rng: u64,
    /// One-way latency of every link.
    pub latency: Duration,
    /// Deliver each write in random pieces.
    pub split_reads: bool,
    /// Hand received bytes to the core in place in a per-connection read buffer
    /// (`handle_input_buf`) instead of as owned chunks (`handle_input`).
    pub read_in_place: bool,
    /// Until then, connects fail and every connection is blackholed.
    pub partitioned_until: Option<Instant>,
    /// Server applications stop reading.
    pub server_stalled: bool,
    /// Call `handle_timeout` at every step even when nothing is due (spurious calls must be
    /// harmless).
    pub spurious_timeouts: bool,
    /// Keep every event in [`App::events`] (on by default; off saves a copy of each event).
    pub record_events: bool,
    /// Every message is sent through an [`App`]'s outbox (nobody calls `Session::send` directly),
    /// so `Confirmed`, `Closed` and `Lost` are also checked against [`App::sent`] as they arrive.
    /// Off by default.
    pub apps_send_all: bool,
    /// Largest buffered-receive bytes seen anywhere.
    pub max_buffered_receive: u64,
    /// Largest unconfirmed bytes seen anywhere.
    pub max_unconfirmed: u64,
    /// Steps taken (jumps of the clock).
    pub steps: u64,
    /// Every `Welcome` the server wrote (they carry the session's secret: tests can forge
    /// resumes).
    pub welcomes: Vec<Welcome>,
    /// Transmits returned by client sessions.
    pub client_writes: u64,
    /// Transmits returned by the server.
    pub server_writes: u64,
    /// Connections the server closed or was told ended.
    server_dead: BTreeSet<ConnId>,
    /// Hostile connections and what the server said on them.
    pub hostile: BTreeMap<ConnId, HostileRx>,
    buf: BytesMut,
}

impl Net {
    /// A world with `clients` client sessions (not connected yet), all running `config`.
    pub fn new(config: Config, clients: usize, seed: u64) -> Net {
        Net::with_server_config(config.clone(), config, clients, seed)
    }

    /// One client running `config` against a server running it too, run until the server has
    /// accepted the client's session (failing the test if that takes a minute of virtual time).
    pub fn connected(config: Config, seed: u64) -> Net {
        let mut net = Net::new(config, 1, seed);
        let accepted = net.run_until(Duration::from_secs(60), |n| n.server_app(0).is_some());
        assert!(accepted, "the client's session was not accepted within a minute");
        net
    }

    /// Clients run `config`, the server `server_config`.
    pub fn with_server_config(
        config: Config,
        server_config: Config,
        clients: usize,
        seed: u64,
    ) -> Net {
        let now = Instant::from_millis(1_000);
        let server = Endpoint::new(server_config.clone(), key(seed, 0), now).expect("valid config");
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
            server_config,
            links: BTreeMap::new(),
            in_flight: VecDeque::new(),
            next_conn: 1,
            rng: seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1,
            latency: Duration::from_millis(5),
            split_reads: false,
            read_in_place: false,
            partitioned_until: None,
            server_stalled: false,
            spurious_timeouts: false,
            record_events: true,
            apps_send_all: false,
            max_buffered_receive: 0,
            max_unconfirmed: 0,
            steps: 0,
            welcomes: Vec::new(),
            client_writes: 0,
            server_writes: 0,
            server_dead: BTreeSet::new(),
            hostile: BTreeMap::new(),
            buf: BytesMut::new(),
        }
    }

    /// The harness's random number generator (xorshift; seeded by [`Net::new`]).
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

    /// The server-side application of client `i`'s session in the current generation.
    pub fn server_app_mut(&mut self, i: usize) -> Option<&mut App> {
        let id = self.clients[i].session.id()?;
        self.server_apps.get_mut(&(self.generation, id))
    }

    /// The server-side application of client `i`'s session, in whichever generation created it.
    pub fn server_side(&self, i: usize) -> Option<&App> {
        let id = self.clients[i].session.id()?;
        self.server_apps.iter().find(|((_, sid), _)| *sid == id).map(|(_, a)| a)
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
    pub fn blackhole(&mut self, i: usize) {
        if let Some(conn) = self.current(i) {
            self.in_flight.retain(|f| f.conn != conn);
            if let Some(l) = self.links.get_mut(&conn) {
                l.blackholed = true;
            }
        }
    }

    /// Only the client-to-server direction of client `i`'s connection goes silent.
    pub fn blackhole_to_server(&mut self, i: usize) {
        if let Some(conn) = self.current(i) {
            self.in_flight.retain(|f| !(f.conn == conn && f.to_server));
            if let Some(l) = self.links.get_mut(&conn) {
                l.blackholed_to_server = true;
            }
        }
    }

    /// Flips one random bit of one random chunk in flight on client `i`'s connection; false if
    /// nothing (or only an end of stream) was in flight.
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
        let Chunk::Bytes(b) = &self.in_flight[k].chunk else {
            return false;
        };
        let at = (r as usize) % b.len();
        self.flip(k, at, 1 << ((r >> 32) % 8));
        true
    }

    /// XORs `mask` (at least 1) into byte `at` (modulo its length) of the first chunk in flight on
    /// client `i`'s connection, if it is data.
    pub fn corrupt_at(&mut self, i: usize, at: u16, mask: u8) {
        let Some(conn) = self.current(i) else { return };
        let Some(k) = self.in_flight.iter().position(|f| f.conn == conn) else { return };
        if let Chunk::Bytes(b) = &self.in_flight[k].chunk {
            let at = usize::from(at) % b.len();
            self.flip(k, at, mask.max(1));
        }
    }

    fn flip(&mut self, k: usize, at: usize, mask: u8) {
        if let Chunk::Bytes(b) = &mut self.in_flight[k].chunk {
            let mut v = b.to_vec();
            v[at] ^= mask;
            *b = Bytes::from(v);
        }
    }

    /// Client `i` alone learns its connection died; the server keeps a half-open connection, and
    /// whatever was in flight towards the server still arrives later, after the client resumed.
    pub fn half_open(&mut self, i: usize) {
        let Some(conn) = self.current(i) else { return };
        for f in self.in_flight.iter_mut().filter(|f| f.conn == conn) {
            f.at = f.at + Duration::from_millis(300);
        }
        if let Some(l) = self.links.get_mut(&conn) {
            l.client_open = false;
        }
        let c = &mut self.clients[i];
        c.conn = None;
        c.dead.insert(conn);
        c.session.handle_disconnected(self.now, conn);
    }

    /// Writes raw bytes to the server on client `i`'s connection, as if the client sent them.
    pub fn inject_to_server(&mut self, i: usize, bytes: Bytes) {
        if let Some(conn) = self.current(i) {
            self.send_chunk(conn, true, Chunk::Bytes(bytes));
        }
    }

    /// Puts `chunk` in flight on `conn`, arriving after the latency.
    fn send_chunk(&mut self, conn: ConnId, to_server: bool, chunk: Chunk) {
        let at = self.now + self.latency;
        self.in_flight.push_back(InFlight { at, conn, to_server, chunk });
    }

    /// Opens an extra connection to the server that nobody writes to or reads from (not a client
    /// session: what the server writes on it is dropped) and returns its id.
    pub fn raw_connect(&mut self) -> ConnId {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.server.handle_connected(self.now, conn);
        conn
    }

    /// An unknown (random) suffix of the bytes in flight on client `i`'s connection is lost, then
    /// it resets.
    pub fn lose_suffix_then_reset(&mut self, i: usize) {
        let Some(conn) = self.current(i) else { return };
        let mine = self.in_flight.iter().filter(|f| f.conn == conn).count();
        let keep = if mine == 0 { 0 } else { (self.rand() as usize) % (mine + 1) };
        self.lose_suffix_keeping(i, keep);
    }

    /// The first `keep` chunks in flight on client `i`'s connection arrive, the rest are lost,
    /// then the connection resets.
    pub fn lose_suffix_keeping(&mut self, i: usize, keep: usize) {
        let Some(conn) = self.current(i) else { return };
        let mut deliver = Vec::new();
        let mut k = 0;
        while k < self.in_flight.len() {
            if self.in_flight[k].conn == conn {
                let f = self.in_flight.remove(k).expect("index in range");
                if deliver.len() < keep {
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
        self.server = Endpoint::new(self.server_config.clone(), k, self.now).expect("valid config");
    }

    /// Opens a raw connection to the server whose client end the caller plays
    /// ([`Net::hostile_write`], [`Net::hostile_close`]); what the server writes on it is decoded
    /// into [`Net::hostile`] at once. Returns its id.
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
            self.send_chunk(conn, true, Chunk::Bytes(bytes));
        }
    }

    /// The hostile side closes its connection (an end of stream after what is in flight).
    pub fn hostile_close(&mut self, conn: ConnId) {
        if let Some(l) = self.links.get_mut(&conn).filter(|l| l.client_open) {
            l.client_open = false;
            self.send_chunk(conn, true, Chunk::Fin);
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
                self.pump();
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

    /// Jumps to the next deadline or delivery (at most `end`), delivers and fires timers. False
    /// (with the clock at `end`) if there is none by `end`.
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
        let Some(next) = next.filter(|n| *n <= end) else {
            self.now = self.now.max(end);
            return false;
        };
        self.now = self.now.max(next);
        if self.partitioned_until.is_some_and(|t| t <= self.now) {
            self.partitioned_until = None;
        }
        self.steps += 1;
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
        let in_place = self.read_in_place;
        match (f.chunk, f.to_server) {
            (Chunk::Bytes(b), true) if l.server_open && in_place => {
                l.server_buf.extend_from_slice(&b);
                let missing = self.server.handle_input_buf(now, f.conn, &mut l.server_buf);
                // A connection still in its handshake reads with the protocol's own limit.
                let limit = self.server_config.max_frame_size.max(HANDSHAKE_FRAME_LIMIT);
                check_read_buf(&l.server_buf, missing, limit);
            }
            (Chunk::Bytes(b), false) if l.client_open && in_place => {
                if let Owner::Client(i) = l.owner {
                    l.client_buf.extend_from_slice(&b);
                    let session = &mut self.clients[i].session;
                    let missing = session.handle_input_buf(now, f.conn, &mut l.client_buf);
                    check_read_buf(&l.client_buf, missing, self.config.max_frame_size);
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

    /// Drains every output, event and connect request until nothing moves, then checks every
    /// limit. Once per pump, not per pass: every delivery and timer is followed by a pump, and
    /// within one the buffers only shrink or take sends, which the core refuses beyond its
    /// limits; a check per pass cost a tenth of the fuzzers' executions.
    ///
    /// Each node settles on its own, clients first: what one writes is in flight until the next
    /// [`advance`](Self::advance), so it cannot give another node work within a pump. Polling
    /// every node again whenever any one moved made `exec_rate` 3-7% slower on `pair` and 7-27%
    /// on `endpoint` (up to four nodes, most of them idle in a step).
    pub fn pump(&mut self) {
        for i in 0..self.clients.len() {
            self.settle(|net| net.pump_client(i));
        }
        self.settle(Self::pump_server);
        self.check_limits();
    }

    /// Runs `pump_node` until it reports that nothing moved.
    fn settle(&mut self, mut pump_node: impl FnMut(&mut Self) -> bool) {
        for _ in 0..10_000 {
            if !pump_node(self) {
                return;
            }
        }
        panic!("outputs never settle: livelock between a session and the harness");
    }

    /// Leaves room in the transmit buffer for a whole batch: each transmit is split off a shared
    /// region allocated now and then, instead of a fresh buffer grown by reallocation each time.
    fn make_room(&mut self) {
        let batch = |c: &Config| c.transmit_batch_bytes as usize + c.max_frame_size as usize;
        let need = batch(&self.config).max(batch(&self.server_config));
        if self.buf.capacity() < need {
            self.buf = BytesMut::with_capacity(4 * need);
        }
    }

    /// Every session and the endpoint within their configured limits; records the largest
    /// buffers seen.
    fn check_limits(&mut self) {
        let server = self.server.sessions().map(|(_, s)| (s, &self.server_config));
        let clients = self.clients.iter().map(|c| (&c.session, &self.config));
        for (s, c) in clients.chain(server) {
            let st = s.stats();
            self.max_buffered_receive = self.max_buffered_receive.max(st.buffered_receive_bytes);
            self.max_unconfirmed = self.max_unconfirmed.max(st.unconfirmed_bytes);
            assert!(st.buffered_receive_bytes <= c.receive_window_bytes, "receive window bytes");
            assert!(st.buffered_receive_messages <= u64::from(c.receive_window_messages));
            assert!(st.unconfirmed_bytes <= c.max_unconfirmed_bytes, "unconfirmed bytes");
            assert!(st.unconfirmed_messages <= u64::from(c.max_unconfirmed_messages));
        }
        let (e, c) = (&self.server, &self.server_config);
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
            self.client_writes += 1;
            let c = &mut self.clients[i];
            match t {
                Transmit::Write(conn) => {
                    assert!(!c.dead.contains(&conn), "client {i} wrote to {conn:?} after it ended");
                    assert!(!bytes.is_empty(), "client {i}: Write with no bytes");
                }
                Transmit::Close(conn) => {
                    c.dead.insert(conn);
                }
            }
            self.route(t, true, bytes);
        }
        let manual = self.config.ack_mode == AckMode::Manual;
        let (keep, strict) = (self.record_events, self.apps_send_all);
        let c = &mut self.clients[i];
        if !c.app.stalled {
            while let Some(e) = c.session.poll_event() {
                moved = true;
                if let (true, Some(last)) = (manual, c.app.record(Side::Client(i), e, keep, strict))
                {
                    c.session.ack(last).expect("ack of a delivered message");
                }
            }
        }
        moved
    }

    fn pump_server(&mut self) -> bool {
        let now = self.now;
        let mut moved = false;
        let manual = self.server_config.ack_mode == AckMode::Manual;
        // Application sends first, so they go out in this round.
        let generation = self.generation;
        for (key, app) in self.server_apps.range_mut((generation, SessionId(0))..) {
            if key.0 != generation || app.outbox.is_empty() {
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
            self.server_writes += 1;
            match t {
                Transmit::Write(conn) => {
                    assert!(
                        !self.server_dead.contains(&conn),
                        "server wrote to {conn:?} after it ended"
                    );
                    assert!(!bytes.is_empty(), "server: Write with no bytes");
                }
                Transmit::Close(conn) => {
                    self.server_dead.insert(conn);
                }
            }
            self.capture_welcome(&bytes);
            self.route(t, false, bytes);
        }
        if !self.server_stalled {
            let (keep, strict) = (self.record_events, self.apps_send_all);
            while let Some((id, e)) = self.server.poll_event() {
                moved = true;
                let app = self.server_apps.entry((self.generation, id)).or_default();
                if let (true, Some(last)) = (manual, app.record(Side::Server(id), e, keep, strict))
                {
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
            // The hostile side reads what the server says at once (latency aside).
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
        if !bytes.is_empty() {
            if self.split_reads && bytes.len() > 1 {
                let mut rest = bytes;
                while !rest.is_empty() {
                    let n = 1 + (self.rand() as usize) % rest.len();
                    self.send_chunk(conn, from_client, Chunk::Bytes(rest.split_to(n)));
                }
            } else {
                self.send_chunk(conn, from_client, Chunk::Bytes(bytes));
            }
        }
        if close {
            self.send_chunk(conn, from_client, Chunk::Fin);
        }
    }

    /// Keeps a `Welcome` that starts a server write (only such writes are decoded).
    fn capture_welcome(&mut self, bytes: &Bytes) {
        if bytes.get(4) != Some(&(FrameType::Welcome as u8)) {
            return;
        }
        let mut d = Decoder::new(1 << 21);
        d.push(bytes.clone());
        if let Ok(Some(Frame::Welcome(w))) = d.next_frame() {
            self.welcomes.push(w);
        }
    }

    /// Connections the harness still considers open on either side.
    pub fn open_connections(&self) -> usize {
        self.links.len()
    }

    /// Fails if the endpoint holds connections beyond one per session and its handshakes: leaked
    /// ones.
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

/// Endpoint key material from a seed and an endpoint generation.
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
