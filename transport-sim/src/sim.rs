//! The simulation engine: a virtual clock, an event queue, one seeded RNG, stream connections with
//! per-direction link elements, connection-level faults, and the adapter loop that drives client
//! and server nodes through the sans-IO contract (inputs, then drain outputs, then re-arm timers).
//!
//! No wall clock, no threads: a run is a pure function of its seed and scenario.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use bytes::{Bytes, BytesMut};
use tether_core::wire::Decoder;
use tether_core::{ConnId, Duration, Instant};

use crate::link::{LinkSpec, StreamPath};
use crate::node::{ClientNode, Out, ServerNode};
use crate::rng::SimRng;
use crate::trace::{count_frames, tap_frames, Trace};

/// Every class of fault the simulator injects, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultClass {
    /// Both ends learn (each at its own time) that the connection was reset.
    Reset,
    /// Silent death: writes succeed, nothing arrives, nobody is told.
    Blackhole,
    /// An unknown suffix of written bytes is lost, then the connection resets (RST after FIN).
    SuffixLoss,
    /// One end forgets the connection; the other still thinks it is open.
    HalfOpen,
    /// A connect attempt is refused.
    ConnectRefused,
    /// A connect attempt takes long (SYN retransmissions) or longer than the connect timeout.
    ConnectSlow,
    /// A connect attempt times out.
    ConnectTimeout,
    /// A partition: links hold their bytes, connects time out, for a chosen length.
    Partition,
    /// A chunk corrupted in flight.
    Corruption,
    /// The server process dies; a fresh one takes the address (session table lost).
    ServerRestart,
    /// The address moves to a fresh server; the old one lives on, unreachable (VIP failover).
    Failover,
    /// An application that reads slowly.
    SlowReader,
    /// An application that stops reading for a while.
    StoppedReader,
    /// A manual-ack application that acks late.
    LateAck,
}

impl FaultClass {
    /// Every class, in table order.
    pub const ALL: [FaultClass; 14] = [
        FaultClass::Reset,
        FaultClass::Blackhole,
        FaultClass::SuffixLoss,
        FaultClass::HalfOpen,
        FaultClass::ConnectRefused,
        FaultClass::ConnectSlow,
        FaultClass::ConnectTimeout,
        FaultClass::Partition,
        FaultClass::Corruption,
        FaultClass::ServerRestart,
        FaultClass::Failover,
        FaultClass::SlowReader,
        FaultClass::StoppedReader,
        FaultClass::LateAck,
    ];

    /// Short column name.
    pub fn short(self) -> &'static str {
        match self {
            FaultClass::Reset => "reset",
            FaultClass::Blackhole => "blackh",
            FaultClass::SuffixLoss => "suffix",
            FaultClass::HalfOpen => "halfop",
            FaultClass::ConnectRefused => "refuse",
            FaultClass::ConnectSlow => "slowc",
            FaultClass::ConnectTimeout => "ctmo",
            FaultClass::Partition => "part",
            FaultClass::Corruption => "corrupt",
            FaultClass::ServerRestart => "restart",
            FaultClass::Failover => "failov",
            FaultClass::SlowReader => "slowrd",
            FaultClass::StoppedReader => "stoprd",
            FaultClass::LateAck => "lateack",
        }
    }
}

/// Which end of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The client's socket.
    Client,
    /// The server's socket.
    Server,
}

/// Which directions a fault applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dirs {
    /// Client to server.
    Up,
    /// Server to client.
    Down,
    /// Both.
    Both,
}

/// How connection attempts behave.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectSpec {
    /// Probability an attempt is refused (after one round trip).
    pub refuse: f64,
    /// Probability an attempt times out (after `timeout`).
    pub timeout_p: f64,
    /// Probability an attempt is slow, taking `slow` extra (failing if beyond `timeout`).
    pub slow_p: f64,
    /// Extra time of a slow connect.
    pub slow: (Duration, Duration),
    /// The adapter's connect timeout.
    pub timeout: Duration,
    /// Time between the connection reaching the server's kernel and the process accepting it.
    pub accept_delay: (Duration, Duration),
    /// Refused, timed-out and slow connects happen only before this (the network heals).
    pub faults_until: Instant,
}

impl Default for ConnectSpec {
    fn default() -> Self {
        ConnectSpec {
            refuse: 0.0,
            timeout_p: 0.0,
            slow_p: 0.0,
            slow: (Duration::from_millis(200), Duration::from_millis(3000)),
            timeout: Duration::from_millis(1000),
            accept_delay: (Duration::ZERO, Duration::ZERO),
            faults_until: Instant::from_nanos(u64::MAX),
        }
    }
}

/// Counters of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Faults injected, per class.
    pub faults: BTreeMap<FaultClass, u64>,
    /// Whole frames written into links that carried them.
    pub frames: u64,
    /// Bytes written into links that carried them.
    pub bytes: u64,
    /// Reads delivered to nodes.
    pub reads: u64,
    /// Connection attempts.
    pub connects: u64,
    /// Scheduler steps (distinct instants processed).
    pub steps: u64,
    /// Writes a node issued on a connection whose side was already closed.
    pub writes_to_closed: u64,
    /// Largest number of open server-side sockets at once.
    pub peak_server_sockets: usize,
}

impl SimStats {
    /// Counts one fault of `class`.
    pub fn fault(&mut self, class: FaultClass) {
        *self.faults.entry(class).or_default() += 1;
    }
}

#[derive(Debug)]
enum Chunk {
    Data(Bytes),
    Fin,
}

#[derive(Debug)]
struct Dir {
    path: StreamPath,
    inflight: VecDeque<(Instant, Chunk)>,
    blackholed: bool,
    read_pending: bool,
    split: bool,
    coalesce: Duration,
    base: Duration,
    tap: Option<Decoder>,
}

/// A simulated stream connection.
#[derive(Debug)]
struct Conn {
    client: usize,
    server: usize,
    client_open: bool,
    server_open: bool,
    /// The server process has been told about it.
    accepted: bool,
    /// Reset: further writes vanish.
    dead: bool,
    /// The address now belongs to a host that does not know this connection: the client's next
    /// write is answered with a reset (VIP failover).
    rst_on_client_write: bool,
    dirs: [Dir; 2],
}

#[derive(Debug)]
enum Ev {
    ClientConnected(ConnId),
    ServerAccept(ConnId),
    ConnectFailed(usize),
    Read(ConnId, usize),
    Rst(ConnId, Side),
}

#[derive(Debug)]
struct Scheduled {
    at: Instant,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap, we want the earliest first.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// An open socket left behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenSide {
    /// The connection.
    pub conn: ConnId,
    /// Which side is still open.
    pub side: Side,
    /// Its client.
    pub client: usize,
    /// Its server generation.
    pub server: usize,
}

/// The simulated world: clients, server processes, connections, clock and RNG.
#[derive(Debug)]
pub struct Sim<C, S> {
    /// Virtual time.
    pub now: Instant,
    /// The one RNG every random choice comes from.
    pub rng: SimRng,
    /// Client nodes.
    pub clients: Vec<C>,
    /// Server processes, by generation; the last is the one holding the address.
    pub servers: Vec<S>,
    /// Whether each server process is running (a restarted one is not).
    pub server_alive: Vec<bool>,
    /// Link behaviour of each client's connections.
    pub links: Vec<LinkSpec>,
    /// Connect behaviour.
    pub connect: ConnectSpec,
    /// Counters.
    pub stats: SimStats,
    /// Trace and its hash.
    pub trace: Trace,
    /// Engine-level failures (livelock).
    pub violations: Vec<String>,
    /// `(client, server generation)` of every connection ever made, by `ConnId - 1`.
    pub conn_info: Vec<(usize, usize)>,
    /// Decode frames for the readable trace (tether runs only).
    pub decode_frames: bool,
    /// Stop after this many steps at one instant (livelock guard).
    pub max_steps_per_instant: u64,
    conns: BTreeMap<ConnId, Conn>,
    client_conn: Vec<Option<ConnId>>,
    queue: BinaryHeap<Scheduled>,
    seq: u64,
    client_wake: Vec<Option<Instant>>,
    server_wake: Vec<Option<Instant>>,
    client_dirty: Vec<bool>,
    server_dirty: Vec<bool>,
    partitions: Vec<(Option<usize>, Instant)>,
    /// Connections whose server side is open, by server generation.
    open_server_sockets: Vec<usize>,
    out: Vec<Out>,
    same_instant: u64,
    /// The run stopped on a livelock.
    pub stalled: bool,
}

/// Marks the server side of `c` closed, keeping the count of open server sockets.
fn close_server_socket(c: &mut Conn, open_server_sockets: &mut [usize]) {
    if c.server_open {
        c.server_open = false;
        open_server_sockets[c.server] -= 1;
    }
}

impl<C: ClientNode, S: ServerNode> Sim<C, S> {
    /// A world at `now` with `clients` (each with its link spec) and one server process.
    pub fn new(
        rng: SimRng,
        now: Instant,
        clients: Vec<C>,
        links: Vec<LinkSpec>,
        server: S,
        connect: ConnectSpec,
    ) -> Self {
        let n = clients.len();
        assert_eq!(links.len(), n, "one link spec per client");
        Sim {
            now,
            rng,
            clients,
            servers: vec![server],
            server_alive: vec![true],
            links,
            connect,
            stats: SimStats::default(),
            trace: Trace::default(),
            violations: Vec::new(),
            conn_info: Vec::new(),
            decode_frames: false,
            max_steps_per_instant: 100_000,
            conns: BTreeMap::new(),
            client_conn: vec![None; n],
            queue: BinaryHeap::new(),
            seq: 0,
            client_wake: vec![Some(now); n],
            server_wake: vec![Some(now)],
            client_dirty: vec![true; n],
            server_dirty: vec![true],
            partitions: Vec::new(),
            open_server_sockets: vec![0],
            out: Vec::new(),
            same_instant: 0,
            stalled: false,
        }
    }

    /// The server process holding the address.
    pub fn active(&self) -> usize {
        self.servers.len() - 1
    }

    fn schedule(&mut self, at: Instant, ev: Ev) {
        self.seq += 1;
        let (tag, a, b) = match &ev {
            Ev::ClientConnected(c) => (1, c.0, 0),
            Ev::ServerAccept(c) => (2, c.0, 0),
            Ev::ConnectFailed(i) => (3, *i as u64, 0),
            Ev::Read(c, d) => (4, c.0, *d as u64),
            Ev::Rst(c, s) => (5, c.0, *s as u64),
        };
        self.trace.mix(tag, at.as_nanos(), a, b);
        self.queue.push(Scheduled { at, seq: self.seq, ev });
    }

    fn partitioned(&self, client: usize) -> Option<Instant> {
        self.partitions
            .iter()
            .filter(|(c, until)| *until > self.now && c.is_none_or(|c| c == client))
            .map(|(_, u)| *u)
            .max()
    }

    // ----- running -----

    /// Runs until `stop` holds (checked whenever nothing is left to do at the current instant) or
    /// virtual time reaches `end`. Returns whether `stop` held.
    pub fn run_until(&mut self, end: Instant, mut stop: impl FnMut(&Self) -> bool) -> bool {
        loop {
            self.pump_dirty();
            if stop(self) {
                return true;
            }
            if self.stalled {
                return false;
            }
            let wake = self.earliest_wake();
            let Some(next) = crate::node::earliest(self.queue.peek().map(|s| s.at), wake) else {
                self.now = self.now.max(end);
                return false;
            };
            if next > end {
                self.now = self.now.max(end);
                return false;
            }
            if next <= self.now {
                self.same_instant += 1;
                if self.same_instant > self.max_steps_per_instant {
                    self.violations.push(format!(
                        "livelock: {} steps at virtual time {:?} without time advancing",
                        self.same_instant, self.now
                    ));
                    self.stalled = true;
                    return false;
                }
            } else {
                self.same_instant = 0;
                self.now = next;
            }
            self.stats.steps += 1;
            self.step(wake);
        }
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_until(end, |_| false);
    }

    /// The earliest wakeup any node asked for.
    fn earliest_wake(&self) -> Option<Instant> {
        self.client_wake.iter().chain(self.server_wake.iter()).flatten().min().copied()
    }

    /// Handles every event due now, then wakes every node whose wakeup came. `earliest_wake` is
    /// [`Self::earliest_wake`] (events do not change wakeups): when it is later than now, no node
    /// is due and the nodes are not looked at.
    fn step(&mut self, earliest_wake: Option<Instant>) {
        let now = self.now;
        while self.queue.peek().is_some_and(|s| s.at <= now) {
            let s = self.queue.pop().expect("peeked");
            self.handle(s.ev);
        }
        if earliest_wake.is_some_and(|w| w <= now) {
            self.wake_due_nodes();
        }
    }

    /// Calls `timeout` on every node whose wakeup is at or before now (clients, then servers).
    fn wake_due_nodes(&mut self) {
        let now = self.now;
        for i in 0..self.clients.len() {
            if self.client_wake[i].is_some_and(|w| w <= now) {
                self.clients[i].timeout(now);
                self.client_wake[i] = None;
                self.client_dirty[i] = true;
            }
        }
        for g in 0..self.servers.len() {
            if self.server_alive[g] && self.server_wake[g].is_some_and(|w| w <= now) {
                self.servers[g].timeout(now);
                self.server_wake[g] = None;
                self.server_dirty[g] = true;
            }
        }
    }

    /// Pumps every node that had input, then routes what they wrote.
    fn pump_dirty(&mut self) {
        let now = self.now;
        let mut out = std::mem::take(&mut self.out);
        for i in 0..self.clients.len() {
            if !self.client_dirty[i] {
                continue;
            }
            self.client_dirty[i] = false;
            self.clients[i].pump(now, &mut out, &mut self.trace);
            for o in out.drain(..) {
                self.route(Side::Client, o);
            }
            if self.clients[i].poll_connect(now) {
                self.start_connect(i);
            }
            self.client_wake[i] = self.clients[i].wakeup(now);
        }
        for g in 0..self.servers.len() {
            if !self.server_dirty[g] || !self.server_alive[g] {
                continue;
            }
            self.server_dirty[g] = false;
            self.servers[g].pump(now, &mut out, &mut self.trace);
            for o in out.drain(..) {
                self.route(Side::Server, o);
            }
            self.server_wake[g] = self.servers[g].wakeup(now);
        }
        self.out = out;
        let sockets = self.open_server_sockets[self.active()];
        debug_assert_eq!(
            sockets,
            self.conns.values().filter(|c| c.server_open && c.server == self.active()).count()
        );
        self.stats.peak_server_sockets = self.stats.peak_server_sockets.max(sockets);
    }

    fn start_connect(&mut self, i: usize) {
        let now = self.now;
        self.stats.connects += 1;
        let mut spec = self.connect.clone();
        if now >= spec.faults_until {
            (spec.refuse, spec.timeout_p, spec.slow_p) = (0.0, 0.0, 0.0);
        }
        let link = self.links[i].clone();
        let rtt = link.rtt();
        if self.partitioned(i).is_some() {
            self.schedule(now + spec.timeout, Ev::ConnectFailed(i));
            self.trace.line(now, || format!("c{i} connect: times out (partition)"));
            return;
        }
        if self.rng.chance(spec.refuse) {
            self.stats.fault(FaultClass::ConnectRefused);
            self.schedule(now + rtt, Ev::ConnectFailed(i));
            self.trace.line(now, || format!("c{i} FAULT connect refused"));
            return;
        }
        if self.rng.chance(spec.timeout_p) {
            self.stats.fault(FaultClass::ConnectTimeout);
            self.schedule(now + spec.timeout, Ev::ConnectFailed(i));
            self.trace.line(now, || format!("c{i} FAULT connect times out"));
            return;
        }
        let mut extra = Duration::ZERO;
        if self.rng.chance(spec.slow_p) {
            self.stats.fault(FaultClass::ConnectSlow);
            extra = self.rng.duration(spec.slow.0, spec.slow.1);
            if rtt + extra > spec.timeout {
                self.schedule(now + spec.timeout, Ev::ConnectFailed(i));
                self.trace.line(now, || format!("c{i} FAULT connect slower than the timeout"));
                return;
            }
        }
        let id = ConnId(self.conn_info.len() as u64 + 1);
        let server = self.active();
        self.conn_info.push((i, server));
        let dir = |spec: &crate::link::DirSpec, decode: bool| Dir {
            path: StreamPath::new(spec),
            inflight: VecDeque::new(),
            blackholed: false,
            read_pending: false,
            split: spec.split_reads,
            coalesce: spec.coalesce,
            base: spec.base_delay(),
            tap: decode.then(|| Decoder::new(u32::MAX)),
        };
        let decode = self.decode_frames && self.trace.enabled;
        let conn = Conn {
            client: i,
            server,
            client_open: true,
            server_open: true,
            accepted: false,
            dead: false,
            rst_on_client_write: false,
            dirs: [dir(&link.up, decode), dir(&link.down, decode)],
        };
        self.conns.insert(id, conn);
        self.open_server_sockets[server] += 1;
        self.client_conn[i] = Some(id);
        let accept = self.rng.duration(spec.accept_delay.0, spec.accept_delay.1);
        self.schedule(now + rtt + extra, Ev::ClientConnected(id));
        self.schedule(now + link.up.base_delay() + extra + accept, Ev::ServerAccept(id));
        self.trace.line(now, || {
            format!(
                "c{i} connect #{} -> s{server}{}",
                id.0,
                if extra.is_zero() {
                    String::new()
                } else {
                    format!(" (FAULT slow connect +{extra:?})")
                }
            )
        });
    }

    fn handle(&mut self, ev: Ev) {
        let now = self.now;
        match ev {
            Ev::ConnectFailed(i) => {
                self.clients[i].connect_failed(now);
                self.client_dirty[i] = true;
            }
            Ev::ClientConnected(id) => {
                let Some(c) = self.conns.get(&id) else {
                    let i = self.conn_info[id.0 as usize - 1].0;
                    self.clients[i].connect_failed(now);
                    self.client_dirty[i] = true;
                    return;
                };
                let i = c.client;
                if c.client_open {
                    self.clients[i].connected(now, id);
                    self.schedule_read(id, 1);
                } else {
                    self.clients[i].connect_failed(now);
                }
                self.client_dirty[i] = true;
            }
            Ev::ServerAccept(id) => {
                let Some(c) = self.conns.get_mut(&id) else {
                    return;
                };
                if !c.server_open || c.accepted || !self.server_alive[c.server] {
                    return;
                }
                c.accepted = true;
                let g = c.server;
                self.servers[g].connected(now, id);
                self.server_dirty[g] = true;
                self.schedule_read(id, 0);
            }
            Ev::Read(id, d) => self.read(id, d),
            Ev::Rst(id, side) => self.notify_reset(id, side),
        }
    }

    fn schedule_read(&mut self, id: ConnId, d: usize) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let dir = &mut c.dirs[d];
        if dir.read_pending {
            return;
        }
        let Some((at, _)) = dir.inflight.front() else {
            return;
        };
        let at = (*at).max(self.now);
        let coalesce = dir.coalesce;
        dir.read_pending = true;
        let lag = self.rng.duration(Duration::ZERO, coalesce);
        self.schedule(at + lag, Ev::Read(id, d));
    }

    fn read(&mut self, id: ConnId, d: usize) {
        let now = self.now;
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        c.dirs[d].read_pending = false;
        let reader_open = if d == 0 { c.server_open && c.accepted } else { c.client_open };
        if !reader_open {
            if (d == 0 && !c.server_open) || (d == 1 && !c.client_open) {
                c.dirs[d].inflight.clear();
            }
            return;
        }
        let dir = &mut c.dirs[d];
        // Whole arrived data chunks, up to a FIN.
        let mut avail = 0usize;
        let mut n_chunks = 0;
        let mut fin = false;
        for (at, ch) in dir.inflight.iter() {
            if *at > now {
                break;
            }
            match ch {
                Chunk::Data(b) => {
                    avail += b.len();
                    n_chunks += 1;
                }
                Chunk::Fin => {
                    fin = true;
                    break;
                }
            }
        }
        let mut take = avail;
        if dir.split && avail > 1 && self.rng.chance(0.5) {
            take = 1 + self.rng.index(avail);
        }
        let mut data = Bytes::new();
        if take > 0 {
            let first_len = match dir.inflight.front() {
                Some((_, Chunk::Data(b))) => b.len(),
                _ => 0,
            };
            if take <= first_len {
                let Some((_, Chunk::Data(b))) = dir.inflight.front_mut() else {
                    unreachable!("front is data")
                };
                data = b.split_to(take);
                if b.is_empty() {
                    dir.inflight.pop_front();
                }
            } else {
                let mut m = BytesMut::with_capacity(take);
                let mut left = take;
                while left > 0 {
                    let Some((_, Chunk::Data(b))) = dir.inflight.front_mut() else {
                        break;
                    };
                    let n = left.min(b.len());
                    m.extend_from_slice(&b.split_to(n));
                    left -= n;
                    if b.is_empty() {
                        dir.inflight.pop_front();
                    }
                }
                data = m.freeze();
            }
        }
        let _ = n_chunks;
        let eof = fin && take == avail;
        if eof {
            dir.inflight.pop_front();
            dir.inflight.clear();
        }
        let (client, server) = (c.client, c.server);
        if !data.is_empty() {
            self.stats.reads += 1;
            let len = data.len() as u64;
            self.trace.mix(6, now.as_nanos(), id.0 << 1 | d as u64, len);
            self.trace.line(now, || {
                if d == 0 {
                    format!("s{server} <- c{client} #{} read {len} B", id.0)
                } else {
                    format!("c{client} <- s{server} #{} read {len} B", id.0)
                }
            });
            if d == 0 {
                self.servers[server].input(now, id, data);
                self.server_dirty[server] = true;
            } else {
                self.clients[client].input(now, id, data);
                self.client_dirty[client] = true;
            }
        }
        if eof {
            self.trace.line(now, || {
                format!(
                    "{} #{} EOF",
                    if d == 0 { format!("s{server}") } else { format!("c{client}") },
                    id.0
                )
            });
            self.close_side(id, if d == 0 { Side::Server } else { Side::Client }, true);
        } else {
            self.schedule_read(id, d);
        }
    }

    /// Closes one side's socket; tells its node if `notify`.
    fn close_side(&mut self, id: ConnId, side: Side, notify: bool) {
        let now = self.now;
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let (client, server) = (c.client, c.server);
        match side {
            Side::Client if c.client_open => {
                c.client_open = false;
                c.dirs[1].inflight.clear();
                if notify {
                    self.clients[client].disconnected(now, id);
                    self.client_dirty[client] = true;
                }
            }
            Side::Server if c.server_open => {
                close_server_socket(c, &mut self.open_server_sockets);
                c.dirs[0].inflight.clear();
                if notify && c.accepted && self.server_alive[server] {
                    self.servers[server].disconnected(now, id);
                    self.server_dirty[server] = true;
                }
            }
            _ => {}
        }
        self.gc(id);
    }

    fn gc(&mut self, id: ConnId) {
        if self.conns.get(&id).is_some_and(|c| !c.client_open && !c.server_open) {
            self.conns.remove(&id);
        }
    }

    fn notify_reset(&mut self, id: ConnId, side: Side) {
        let now = self.now;
        self.trace.line(now, || format!("#{} {side:?} learns of the reset", id.0));
        self.close_side(id, side, true);
    }

    fn route(&mut self, from: Side, o: Out) {
        let now = self.now;
        let Some(c) = self.conns.get_mut(&o.conn) else {
            if !o.bytes.is_empty() {
                self.stats.writes_to_closed += 1;
            }
            return;
        };
        let open = match from {
            Side::Client => c.client_open,
            Side::Server => c.server_open,
        };
        if !open {
            if !o.bytes.is_empty() {
                self.stats.writes_to_closed += 1;
            }
            return;
        }
        let d = if from == Side::Client { 0 } else { 1 };
        let (client, server) = (c.client, c.server);
        let mut rst_now = false;
        if from == Side::Client && c.rst_on_client_write && !c.dead && !o.bytes.is_empty() {
            c.dead = true;
            rst_now = true;
        }
        let dropped = c.dead || c.dirs[d].blackholed;
        if self.trace.enabled {
            let desc = match &mut c.dirs[d].tap {
                Some(tap) if !o.bytes.is_empty() => tap_frames(tap, &o.bytes),
                _ => format!("{} B", o.bytes.len()),
            };
            let what = if o.bytes.is_empty() { String::new() } else { desc };
            let arrow = if d == 0 {
                format!("c{client} -> s{server}")
            } else {
                format!("s{server} -> c{client}")
            };
            let note = match (dropped, o.close) {
                (true, true) => " +close [vanishes]",
                (true, false) => " [vanishes]",
                (false, true) => " +close",
                (false, false) => "",
            };
            self.trace.line(now, || format!("{arrow} #{} {what}{note}", o.conn.0));
        }
        self.trace.mix(
            7,
            now.as_nanos(),
            o.conn.0 << 2 | (d as u64) << 1 | u64::from(o.close),
            o.bytes.len() as u64,
        );
        if !dropped {
            let held = self.partitioned(client);
            let c = self.conns.get_mut(&o.conn).expect("present");
            let dir = &mut c.dirs[d];
            if !o.bytes.is_empty() {
                self.stats.frames += count_frames(&o.bytes);
                self.stats.bytes += o.bytes.len() as u64;
                let before = dir.path.corrupted;
                if let Some(until) = held {
                    dir.path.hold_until(until + dir.base);
                }
                let (at, bytes) = dir.path.send(now, o.bytes, &mut self.rng);
                if dir.path.corrupted > before {
                    self.stats.fault(FaultClass::Corruption);
                    self.trace.line(now, || format!("#{} FAULT a bit flipped in flight", o.conn.0));
                }
                dir.inflight.push_back((at, Chunk::Data(bytes)));
            }
            if o.close {
                if let Some(until) = held {
                    dir.path.hold_until(until + dir.base);
                }
                let at = dir.path.last_arrival().max(now + dir.base);
                dir.inflight.push_back((at, Chunk::Fin));
            }
            self.schedule_read(o.conn, d);
        }
        if rst_now {
            let rtt = self.links[client].rtt();
            self.stats.fault(FaultClass::Reset);
            self.trace.line(now, || format!("#{} the new host answers with a reset", o.conn.0));
            self.schedule(now + rtt, Ev::Rst(o.conn, Side::Client));
        }
        if o.close {
            let c = self.conns.get_mut(&o.conn).expect("present");
            match from {
                Side::Client => c.client_open = false,
                Side::Server => close_server_socket(c, &mut self.open_server_sockets),
            }
            self.gc(o.conn);
        }
    }

    // ----- faults -----

    /// Client `i`'s newest connection, if it still exists.
    pub fn current_conn(&self, i: usize) -> Option<ConnId> {
        self.client_conn[i].filter(|c| self.conns.contains_key(c))
    }

    /// Reset of client `i`'s connection: bytes in flight are lost; each side learns at its own time.
    pub fn reset(&mut self, i: usize) -> bool {
        let Some(id) = self.current_conn(i) else {
            return false;
        };
        self.stats.fault(FaultClass::Reset);
        self.trace.line(self.now, || format!("FAULT reset #{} (c{i})", id.0));
        let c = self.conns.get_mut(&id).expect("present");
        c.dead = true;
        for d in &mut c.dirs {
            d.inflight.clear();
        }
        let (up, down) = (self.links[i].up.base_delay(), self.links[i].down.base_delay());
        let tc = self.rng.duration(Duration::ZERO, down * 2);
        let ts = self.rng.duration(Duration::ZERO, up * 2);
        self.schedule(self.now + tc, Ev::Rst(id, Side::Client));
        self.schedule(self.now + ts, Ev::Rst(id, Side::Server));
        true
    }

    /// Silent death of client `i`'s connection in `dirs`: writes succeed, nothing arrives, nobody
    /// is told; what was in flight is lost.
    pub fn blackhole(&mut self, i: usize, dirs: Dirs) -> bool {
        let Some(id) = self.current_conn(i) else {
            return false;
        };
        self.stats.fault(FaultClass::Blackhole);
        self.trace.line(self.now, || format!("FAULT blackhole {dirs:?} #{} (c{i})", id.0));
        let c = self.conns.get_mut(&id).expect("present");
        for (k, d) in c.dirs.iter_mut().enumerate() {
            if dirs == Dirs::Both || (k == 0) == (dirs == Dirs::Up) {
                d.blackholed = true;
                d.inflight.clear();
            }
        }
        true
    }

    /// An unknown suffix of the bytes in flight (each direction) is lost, then the connection
    /// resets; each side learns of the reset after the prefix it does get (RST after FIN).
    pub fn lose_suffix_then_reset(&mut self, i: usize) -> bool {
        let Some(id) = self.current_conn(i) else {
            return false;
        };
        self.stats.fault(FaultClass::SuffixLoss);
        let now = self.now;
        let mut notify = [now, now];
        let mut kept_total = [0usize; 2];
        {
            let c = self.conns.get_mut(&id).expect("present");
            c.dead = true;
            for (k, d) in c.dirs.iter_mut().enumerate() {
                let total: usize = d
                    .inflight
                    .iter()
                    .map(|(_, ch)| match ch {
                        Chunk::Data(b) => b.len(),
                        Chunk::Fin => 0,
                    })
                    .sum();
                let mut keep = self.rng.index(total + 1);
                kept_total[k] = keep;
                let mut kept = VecDeque::new();
                for (at, ch) in d.inflight.drain(..) {
                    if let Chunk::Data(mut b) = ch {
                        if keep == 0 {
                            break;
                        }
                        let n = keep.min(b.len());
                        let piece = b.split_to(n);
                        keep -= n;
                        notify[k] = notify[k].max(at);
                        kept.push_back((at, Chunk::Data(piece)));
                    }
                }
                d.inflight = kept;
            }
        }
        self.trace.line(now, || {
            format!(
                "FAULT suffix loss then reset #{} (c{i}): kept {} B up, {} B down",
                id.0, kept_total[0], kept_total[1]
            )
        });
        let gap = Duration::from_micros(10);
        self.schedule(notify[0] + gap, Ev::Rst(id, Side::Server));
        self.schedule(notify[1] + gap, Ev::Rst(id, Side::Client));
        true
    }

    /// Half-open: `forgets` learns its connection failed (and reconnects); the other side is told
    /// nothing and nothing reaches it any more, so it still thinks it is connected.
    pub fn half_open(&mut self, i: usize, forgets: Side) -> bool {
        let Some(id) = self.current_conn(i) else {
            return false;
        };
        self.stats.fault(FaultClass::HalfOpen);
        self.trace
            .line(self.now, || format!("FAULT half-open #{} (c{i}): {forgets:?} forgets", id.0));
        let c = self.conns.get_mut(&id).expect("present");
        c.dead = true;
        for d in &mut c.dirs {
            d.inflight.clear();
            d.blackholed = true;
        }
        self.close_side(id, forgets, true);
        true
    }

    /// A partition of `clients` (all if `None`) for `d`: bytes are held until it heals (TCP keeps
    /// retransmitting), connects time out.
    pub fn partition(&mut self, clients: Option<usize>, d: Duration) {
        let until = self.now + d;
        self.stats.fault(FaultClass::Partition);
        self.trace.line(self.now, || format!("FAULT partition of {clients:?} for {d:?}"));
        self.partitions.push((clients, until));
        for c in self.conns.values_mut() {
            if clients.is_some_and(|x| x != c.client) {
                continue;
            }
            for dir in &mut c.dirs {
                for (at, _) in dir.inflight.iter_mut() {
                    *at = (*at).max(until);
                }
                dir.path.hold_until(until);
            }
        }
    }

    /// Flips a bit in one chunk in flight on client `i`'s connection (no effect if none).
    pub fn corrupt_in_flight(&mut self, i: usize) -> bool {
        let Some(id) = self.current_conn(i) else {
            return false;
        };
        let c = self.conns.get_mut(&id).expect("present");
        let cands: Vec<(usize, usize)> = (0..2)
            .flat_map(|d| {
                c.dirs[d]
                    .inflight
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, ch))| matches!(ch, Chunk::Data(b) if !b.is_empty()))
                    .map(move |(k, _)| (d, k))
            })
            .collect();
        if cands.is_empty() {
            return false;
        }
        let (d, k) = cands[self.rng.index(cands.len())];
        let Chunk::Data(b) = &mut c.dirs[d].inflight[k].1 else {
            return false;
        };
        let mut m = BytesMut::from(&b[..]);
        let at = self.rng.index(m.len());
        m[at] ^= 1 << self.rng.below(8);
        *b = m.freeze();
        self.stats.fault(FaultClass::Corruption);
        self.trace.line(self.now, || format!("FAULT bit flip in flight #{} dir {d}", id.0));
        true
    }

    /// The server process dies and `fresh` takes the address: every connection of the old one is
    /// reset by its kernel (clients learn after a one-way delay); its session table is gone.
    pub fn restart_server(&mut self, fresh: S) {
        let old = self.active();
        self.stats.fault(FaultClass::ServerRestart);
        self.trace.line(self.now, || {
            format!("FAULT server s{old} crashes; s{} takes the address", old + 1)
        });
        self.server_alive[old] = false;
        self.server_wake[old] = None;
        let ids: Vec<ConnId> =
            self.conns.iter().filter(|(_, c)| c.server == old).map(|(id, _)| *id).collect();
        for id in ids {
            let c = self.conns.get_mut(&id).expect("present");
            close_server_socket(c, &mut self.open_server_sockets);
            c.dead = true;
            c.dirs[0].inflight.clear();
            let client = c.client;
            let d = self.links[client].down.base_delay();
            let blackholed = c.dirs[1].blackholed;
            if !blackholed && self.partitioned(client).is_none() {
                self.schedule(self.now + d, Ev::Rst(id, Side::Client));
            }
            self.gc(id);
        }
        self.add_server(fresh);
    }

    /// VIP failover: `fresh` takes the address; the old server keeps running but cannot reach its
    /// clients (its writes vanish, it is told nothing), and a client's next write on an old
    /// connection is answered with a reset by the new host.
    pub fn failover(&mut self, fresh: S) {
        let old = self.active();
        self.stats.fault(FaultClass::Failover);
        self.trace.line(self.now, || {
            format!("FAULT failover: s{} takes the address from s{old}", old + 1)
        });
        for c in self.conns.values_mut().filter(|c| c.server == old) {
            c.rst_on_client_write = true;
            c.dirs[1].blackholed = true;
            c.dirs[1].inflight.clear();
            c.dirs[0].blackholed = true;
            c.dirs[0].inflight.clear();
        }
        self.add_server(fresh);
    }

    fn add_server(&mut self, fresh: S) {
        self.servers.push(fresh);
        self.server_alive.push(true);
        self.server_wake.push(Some(self.now));
        self.server_dirty.push(true);
        self.open_server_sockets.push(0);
    }

    /// Every socket still open, either side.
    pub fn open_sides(&self) -> Vec<OpenSide> {
        let mut v = Vec::new();
        for (id, c) in &self.conns {
            if c.client_open {
                v.push(OpenSide {
                    conn: *id,
                    side: Side::Client,
                    client: c.client,
                    server: c.server,
                });
            }
            if c.server_open && self.server_alive[c.server] {
                v.push(OpenSide {
                    conn: *id,
                    side: Side::Server,
                    client: c.client,
                    server: c.server,
                });
            }
        }
        v
    }

    /// Sockets open while the other end is gone: the peer closed, the connection was reset or
    /// went silent (what leaks file descriptors).
    pub fn half_open_sides(&self) -> Vec<OpenSide> {
        self.open_sides()
            .into_iter()
            .filter(|o| {
                let c = &self.conns[&o.conn];
                let peer_open = match o.side {
                    Side::Client => c.server_open && self.server_alive[c.server],
                    Side::Server => c.client_open,
                };
                !peer_open || c.dead || c.dirs.iter().any(|d| d.blackholed)
            })
            .collect()
    }

    /// All clients and running servers have finished.
    pub fn all_finished(&self) -> bool {
        self.clients.iter().all(|c| c.finished())
            && self.servers.iter().zip(&self.server_alive).all(|(s, alive)| !alive || s.finished())
    }

    /// Marks every node as needing a pump (after the caller changed one directly).
    pub fn touch_all(&mut self) {
        self.client_dirty.iter_mut().for_each(|d| *d = true);
        self.server_dirty.iter_mut().for_each(|d| *d = true);
    }
}
