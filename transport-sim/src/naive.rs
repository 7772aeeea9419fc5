//! The naive baseline: write-and-forget over the same simulated stream, the way the incidents'
//! authors first did it. Messages are framed (`len | id`), written, and assumed delivered. On a
//! connection error it notices, it reconnects and (optionally) resends what it wrote on that
//! connection; it never hears of silent deaths, never closes a half-open socket, and a slow
//! application's bounded queue drops what does not fit.

use std::collections::{BTreeMap, VecDeque};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tether_core::{ConnId, Duration, Instant};

use crate::app::ReadPolicy;
use crate::node::{ClientNode, Out, ServerNode};
use crate::trace::Trace;

const HELLO: u64 = 1 << 63;
const RECONNECT: Duration = Duration::from_millis(100);

fn put(buf: &mut BytesMut, id: u64) {
    buf.put_u32(8);
    buf.put_u64(id);
}

fn parse(buf: &mut BytesMut, mut f: impl FnMut(u64)) {
    while buf.len() >= 12 {
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len != 8 {
            // Garbage (corruption): a naive reader has no checksum; it takes what it gets.
            buf.advance(4);
            continue;
        }
        buf.advance(4);
        f(buf.get_u64());
    }
}

/// A naive client: writes each message once, assumes it arrived.
#[derive(Debug, Default)]
pub struct NaiveClient {
    /// Index of this client.
    pub index: usize,
    /// Messages not yet due, with their time.
    pub later: VecDeque<(Instant, u64)>,
    /// Messages due and not yet written.
    pub outbox: VecDeque<u64>,
    /// Every message written successfully (as far as the application knows), in order.
    pub written: Vec<u64>,
    /// Messages received from the server.
    pub received: Vec<u64>,
    /// Resend what was written on a connection that failed (at-least-once by hand).
    pub resend_on_error: bool,
    /// Close the connection once everything is written (short-lived connections).
    pub one_shot: bool,
    /// Connection errors the application noticed.
    pub noticed_errors: u64,
    on_conn: Vec<u64>,
    conn: Option<ConnId>,
    connecting: bool,
    reconnect_at: Option<Instant>,
    done: bool,
    rx: BytesMut,
    buf: BytesMut,
}

impl NaiveClient {
    /// A client that will write `msgs` (ids), spaced by `interval` from `start`.
    pub fn new(index: usize, msgs: Vec<u64>, start: Instant, interval: Duration) -> Self {
        let mut t = start;
        let mut later = VecDeque::new();
        for m in msgs {
            later.push_back((t, m));
            t = t + interval;
        }
        NaiveClient { index, later, reconnect_at: Some(start), ..NaiveClient::default() }
    }
}

impl ClientNode for NaiveClient {
    fn poll_connect(&mut self, now: Instant) -> bool {
        if self.conn.is_none()
            && !self.connecting
            && !self.done
            && self.reconnect_at.is_some_and(|t| t <= now)
        {
            self.connecting = true;
            self.reconnect_at = None;
            return true;
        }
        false
    }
    fn connected(&mut self, _now: Instant, conn: ConnId) {
        self.connecting = false;
        self.conn = Some(conn);
        self.on_conn.clear();
        self.buf.clear();
        put(&mut self.buf, HELLO | self.index as u64);
    }
    fn connect_failed(&mut self, now: Instant) {
        self.connecting = false;
        self.reconnect_at = Some(now + RECONNECT);
    }
    fn input(&mut self, _now: Instant, conn: ConnId, bytes: Bytes) {
        if self.conn == Some(conn) {
            self.rx.extend_from_slice(&bytes);
            let received = &mut self.received;
            parse(&mut self.rx, |id| received.push(id));
        }
    }
    fn disconnected(&mut self, now: Instant, conn: ConnId) {
        if self.conn == Some(conn) {
            self.conn = None;
            self.rx.clear();
            self.noticed_errors += 1;
            if self.resend_on_error {
                for id in self.on_conn.drain(..).rev() {
                    self.outbox.push_front(id);
                }
            }
            self.reconnect_at = Some(now + RECONNECT);
        }
    }
    fn timeout(&mut self, _now: Instant) {}
    fn wakeup(&self, now: Instant) -> Option<Instant> {
        let a = self.reconnect_at.filter(|t| *t > now);
        let b = self.later.front().map(|x| x.0).filter(|t| *t > now);
        crate::node::earliest(a, b)
    }
    fn pump(&mut self, now: Instant, out: &mut Vec<Out>, _trace: &mut Trace) {
        while self.later.front().is_some_and(|(t, _)| *t <= now) {
            let (_, id) = self.later.pop_front().expect("checked");
            self.outbox.push_back(id);
        }
        let Some(conn) = self.conn else { return };
        for id in self.outbox.drain(..) {
            put(&mut self.buf, id);
            self.written.push(id);
            self.on_conn.push(id);
        }
        let close = self.one_shot && self.later.is_empty();
        if !self.buf.is_empty() || close {
            out.push(Out { conn, bytes: self.buf.split().freeze(), close });
        }
        if close {
            self.conn = None;
            self.done = true;
        }
    }
    fn finished(&self) -> bool {
        self.later.is_empty() && self.outbox.is_empty()
    }
}

#[derive(Debug, Default)]
struct NaiveConn {
    client: Option<usize>,
    rx: BytesMut,
    written: Vec<u64>,
}

/// A naive server: reads what arrives, writes each client's messages once, never closes a
/// connection the network did not close for it.
#[derive(Debug, Default)]
pub struct NaiveServer {
    /// Messages received, per client.
    pub received: BTreeMap<usize, Vec<u64>>,
    /// Messages still to write, per client.
    pub to_send: BTreeMap<usize, VecDeque<u64>>,
    /// Messages written, per client.
    pub written: BTreeMap<usize, Vec<u64>>,
    /// Messages each client gets when it first says hello.
    pub per_client: u64,
    /// Resend what was written on a connection that failed.
    pub resend_on_error: bool,
    /// Close a connection right after writing the client's messages (half-close style).
    pub close_after_send: bool,
    /// The application queue limit: messages beyond it are dropped (socket buffer overflow).
    pub queue_limit: Option<usize>,
    /// How the application reads.
    pub read: ReadPolicy,
    /// Which server process this is (its message ids differ from the others').
    pub generation: u32,
    /// Messages dropped on overflow.
    pub dropped: u64,
    queue: VecDeque<(usize, u64)>,
    conns: BTreeMap<ConnId, NaiveConn>,
    budget: (u32, Instant),
}

impl NaiveServer {
    fn write_pending(&mut self, conn: ConnId, out: &mut Vec<Out>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(client) = c.client else { return };
        let q = self.to_send.entry(client).or_default();
        if q.is_empty() && !self.close_after_send {
            return;
        }
        let mut b = BytesMut::new();
        for id in q.drain(..) {
            put(&mut b, id);
            c.written.push(id);
            self.written.entry(client).or_default().push(id);
        }
        out.push(Out { conn, bytes: b.freeze(), close: self.close_after_send });
        if self.close_after_send {
            self.conns.remove(&conn);
        }
    }
}

impl ServerNode for NaiveServer {
    fn connected(&mut self, _now: Instant, conn: ConnId) {
        self.conns.insert(conn, NaiveConn::default());
    }
    fn input(&mut self, _now: Instant, conn: ConnId, bytes: Bytes) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.rx.extend_from_slice(&bytes);
        let mut ids = Vec::new();
        parse(&mut c.rx, |id| ids.push(id));
        for id in ids {
            if id & HELLO != 0 {
                let client = (id & !HELLO) as usize;
                c.client = Some(client);
                if let std::collections::btree_map::Entry::Vacant(e) = self.received.entry(client) {
                    e.insert(Vec::new());
                    let base = (client as u64) << 32 | 1 << 31 | u64::from(self.generation) << 20;
                    self.to_send.insert(client, (0..self.per_client).map(|k| base | k).collect());
                }
            } else if let Some(client) = c.client {
                if self.queue_limit.is_some_and(|l| self.queue.len() >= l) {
                    self.dropped += 1;
                } else {
                    self.queue.push_back((client, id));
                }
            }
        }
    }
    fn disconnected(&mut self, _now: Instant, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            if let (true, Some(client)) = (self.resend_on_error, c.client) {
                let q = self.to_send.entry(client).or_default();
                for id in c.written.into_iter().rev() {
                    q.push_front(id);
                }
            }
        }
    }
    fn timeout(&mut self, _now: Instant) {}
    fn wakeup(&self, now: Instant) -> Option<Instant> {
        match &self.read {
            ReadPolicy::Slow { .. } if !self.queue.is_empty() => {
                Some(self.budget.1.max(now + Duration::from_nanos(1)))
            }
            ReadPolicy::Stopped { until, .. } if *until > now => Some(*until),
            _ => None,
        }
    }
    fn pump(&mut self, now: Instant, out: &mut Vec<Out>, _trace: &mut Trace) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in ids {
            self.write_pending(conn, out);
        }
        let allowance = self.read.allowance(&mut self.budget, now) as usize;
        let n = allowance.min(self.queue.len());
        for (client, id) in self.queue.drain(..n) {
            self.received.entry(client).or_default().push(id);
        }
        if let ReadPolicy::Slow { .. } = self.read {
            self.budget.0 -= n as u32;
        }
    }
    fn finished(&self) -> bool {
        true
    }
}

/// What the baseline lost or duplicated without noticing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BaselineReport {
    /// Messages the applications wrote (distinct).
    pub written: u64,
    /// Written, believed delivered, never received.
    pub lost: u64,
    /// Received more than once.
    pub duplicated: u64,
    /// Sockets still open at the end (half-open leaks).
    pub leaked_sockets: u64,
}

impl BaselineReport {
    /// Tallies one direction: `written` ids against `received` ids.
    pub fn tally(&mut self, written: &[u64], received: &[u64]) {
        use std::collections::BTreeSet;
        let w: BTreeSet<u64> = written.iter().copied().collect();
        let r: BTreeSet<u64> = received.iter().copied().collect();
        self.written += w.len() as u64;
        self.lost += w.difference(&r).count() as u64;
        self.duplicated += (received.len() - r.len()) as u64;
    }

    /// Adds another report.
    pub fn add(&mut self, o: &BaselineReport) {
        self.written += o.written;
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.leaked_sockets += o.leaked_sockets;
    }
}
