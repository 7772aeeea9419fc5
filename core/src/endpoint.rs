//! The server side: accepts connections, routes each one's `Hello` to a new or existing session,
//! issues ids and secrets, and enforces the table limits.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::sync::Arc;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use subtle::ConstantTimeEq;

use crate::config::{Config, ConfigError};
use crate::deadlines::Deadlines;
use crate::event::Event;
use crate::reason::Reason;
use crate::session::{ConnId, Session, SessionId, Transmit};
use crate::shard::Shard;
use crate::time::{earliest, Instant};
use crate::wire::{
    Decoder, Frame, FrameSink, Hello, HelloKind, Secret, HANDSHAKE_FRAME_LIMIT,
    MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
};

/// A connection the endpoint knows about.
#[derive(Debug)]
enum ConnSlot {
    /// Waiting for its `Hello`.
    Handshaking { decoder: Decoder },
    /// Refused: a `Reject` frame (if any) is to be written, then the connection closed.
    Rejecting { frame: Option<Frame> },
    /// Attached to a session.
    Session(SessionId),
}

/// A connection whose `Hello` resumes a session of another shard: the adapter moves it there and
/// gives that shard's endpoint `bytes` as the connection's first input (see [`Shard`]).
#[derive(Debug)]
pub struct Handoff {
    /// The connection, already forgotten by this endpoint.
    pub conn: ConnId,
    /// The shard that owns the session.
    pub shard: u32,
    /// Everything the connection sent so far, in order: its `Hello` and what followed it,
    /// including what the adapter's read buffer held (`handle_input_buf` empties it).
    pub bytes: Vec<Bytes>,
}

/// The server end of tether: one per listening address, or one per shard of it.
///
/// It owns every server-side [`Session`]. Connections are identified by a [`ConnId`] the adapter
/// chooses. The driving contract is [`Session`]'s, with connection ids: report connections with
/// [`handle_connected`](Self::handle_connected), bytes with
/// [`handle_input_buf`](Self::handle_input_buf) (decoded in place in the adapter's per-connection
/// read buffer: the zero-copy way) or [`handle_input`](Self::handle_input) (owned chunks), their
/// end with [`handle_disconnected`](Self::handle_disconnected); then drain
/// [`poll_transmit`](Self::poll_transmit) (each result names its connection) and
/// [`poll_event`](Self::poll_event) (each event names its session; a session's first event is
/// [`Event::Connected`]), and re-arm the timer from [`poll_timeout`](Self::poll_timeout). Use
/// [`session_mut`](Self::session_mut) to send, ack, close or abort, then drain again.
///
/// Session ids and 128-bit resume secrets come from a ChaCha20 generator keyed by the 32 bytes of
/// key material given to [`Endpoint::new`] (from the OS RNG in production): unpredictable to an
/// observer, deterministic for a given key. Secrets are compared in constant time.
///
/// Cost: routing input and output, `poll_timeout` and `handle_timeout` are O(log n) (deadlines are
/// kept in a time-ordered index). Enforcing the detached-session limit and dropping an ended
/// session scan the session or connection table.
#[derive(Debug)]
pub struct Endpoint {
    config: Arc<Config>,
    rng: ChaCha20Rng,
    sessions: BTreeMap<SessionId, Session>,
    conns: BTreeMap<ConnId, ConnSlot>,
    /// This endpoint's handshakes in progress.
    handshakes: u32,
    shard: Shard,
    handoffs: VecDeque<Handoff>,
    /// Sessions that closed cleanly, with their secrets, remembered for `session_timeout` so a late
    /// resume learns the session closed (not "unknown").
    tombstones: BTreeMap<SessionId, Secret>,
    /// When each tombstone expires.
    tombstone_expiry: Deadlines<SessionId>,
    /// When each connection's handshake times out.
    handshake_expiry: Deadlines<ConnId>,
    /// Each session's `poll_timeout`, as of the last time it was drained (touched sessions may
    /// have moved since and are looked at directly).
    session_timers: Deadlines<SessionId>,
    /// Connections with a `Reject` to write.
    rejecting: VecDeque<ConnId>,
    /// Sessions that may have output to write.
    touched: BTreeSet<SessionId>,
    /// Sessions that may have events to report.
    eventful: BTreeSet<SessionId>,
    /// Round-robin positions: `poll_event` / `poll_transmit` look for the first marked session
    /// at or after these ids (wrapping), so no session is starved by a lower-numbered busy one.
    event_cursor: u64,
    transmit_cursor: u64,
    last_now: Instant,
}

impl Endpoint {
    /// An endpoint with `config` (validated) and 32 bytes of secret key material.
    pub fn new(config: Config, key: [u8; 32], now: Instant) -> Result<Endpoint, ConfigError> {
        Endpoint::sharded(config, key, now, Shard::single())
    }

    /// One shard of a server (see [`Shard`]); every shard of a server takes the same `key`, and
    /// each draws its own stream of ids and secrets from it.
    pub fn sharded(
        config: Config,
        key: [u8; 32],
        now: Instant,
        shard: Shard,
    ) -> Result<Endpoint, ConfigError> {
        config.validate()?;
        let mut rng = ChaCha20Rng::from_seed(key);
        rng.set_stream(u64::from(shard.index()));
        Ok(Endpoint {
            config: Arc::new(config),
            rng,
            sessions: BTreeMap::new(),
            conns: BTreeMap::new(),
            handshakes: 0,
            shard,
            handoffs: VecDeque::new(),
            tombstones: BTreeMap::new(),
            tombstone_expiry: Deadlines::default(),
            handshake_expiry: Deadlines::default(),
            session_timers: Deadlines::default(),
            rejecting: VecDeque::new(),
            touched: BTreeSet::new(),
            eventful: BTreeSet::new(),
            event_cursor: 0,
            transmit_cursor: 0,
            last_now: now,
        })
    }

    /// The configuration every session of this endpoint runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A session, to inspect it.
    pub fn session(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(&id)
    }

    /// A session, to send, ack, close or abort. Drain outputs afterwards.
    pub fn session_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        let s = self.sessions.get_mut(&id)?;
        self.touched.insert(id);
        self.eventful.insert(id);
        Some(s)
    }

    /// Ids of every session held, attached or detached.
    pub fn session_ids(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.sessions.keys().copied()
    }

    /// Every session held, attached or detached, with its id (to read their stats or state).
    pub fn sessions(&self) -> impl Iterator<Item = (SessionId, &Session)> + '_ {
        self.sessions.iter().map(|(id, s)| (*id, s))
    }

    /// Sessions held (attached or detached).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Sessions held without a connection.
    pub fn detached_count(&self) -> usize {
        self.sessions.values().filter(|s| s.detached_since().is_some()).count()
    }

    /// Connections whose handshake is in progress.
    pub fn handshake_count(&self) -> usize {
        self.handshakes as usize
    }

    /// Connections known (handshaking, rejecting or attached).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// A new transport connection was accepted. Beyond `max_handshakes` it is refused at once.
    pub fn handle_connected(&mut self, now: Instant, conn: ConnId) {
        self.last_now = now;
        if self.conns.contains_key(&conn) {
            return;
        }
        if !self.shard.try_take_handshake(self.config.max_handshakes) {
            self.reject(conn, Reason::TooManyHandshakes);
            return;
        }
        self.handshakes += 1;
        self.handshake_expiry.set(conn, Some(now + self.config.handshake_timeout));
        let decoder = Decoder::new(HANDSHAKE_FRAME_LIMIT);
        self.conns.insert(conn, ConnSlot::Handshaking { decoder });
    }

    /// Bytes read from `conn`, as an owned chunk (see [`Session::handle_input`]). Unknown
    /// connections are ignored.
    pub fn handle_input(&mut self, now: Instant, conn: ConnId, bytes: Bytes) {
        self.last_now = now;
        match self.conns.get_mut(&conn) {
            Some(ConnSlot::Session(id)) => {
                let id = *id;
                self.session_input(now, id, |s| {
                    s.handle_input(now, conn, bytes);
                    0
                });
            }
            Some(ConnSlot::Handshaking { decoder }) => {
                decoder.push(bytes);
                let next = decoder.next_frame();
                self.handshake_input(now, conn, next, None);
            }
            Some(ConnSlot::Rejecting { .. }) | None => {}
        }
    }

    /// Bytes read from `conn`, decoded in place in the caller's buffer (see
    /// [`Session::handle_input_buf`]: whole frames are split off the front of `buf`, the start of
    /// a frame not yet whole stays in it for the next read to append to). Returns how many more
    /// bytes that frame needs. Input for an unknown or refused connection is discarded (`buf`
    /// is cleared). Keep one `buf` per connection.
    pub fn handle_input_buf(&mut self, now: Instant, conn: ConnId, buf: &mut BytesMut) -> usize {
        self.last_now = now;
        if let Some(ConnSlot::Handshaking { decoder }) = self.conns.get_mut(&conn) {
            let next = decoder.next_frame_in(buf);
            if let Ok(None) = next {
                return decoder.missing(buf);
            }
            // Routed to a session, the rest of `buf` is that session's (below).
            self.handshake_input(now, conn, next, Some(buf));
        }
        match self.conns.get(&conn) {
            Some(&ConnSlot::Session(id)) => {
                self.session_input(now, id, |s| s.handle_input_buf(now, conn, buf))
            }
            _ => {
                buf.clear();
                0
            }
        }
    }

    /// Input for a connection attached to session `id`, handed to it by `input`.
    fn session_input(
        &mut self,
        now: Instant,
        id: SessionId,
        input: impl FnOnce(&mut Session) -> usize,
    ) -> usize {
        let Some(s) = self.sessions.get_mut(&id) else { return 0 };
        let missing = input(s);
        let detached = s.detached_since().is_some();
        self.touch(id);
        if detached {
            self.enforce_detached_limit(now);
        }
        missing
    }

    /// What a handshaking connection's decoder returned: a `Hello` is routed (`rest`: the
    /// caller's buffer, with what followed it), anything else ends the handshake.
    fn handshake_input(
        &mut self,
        now: Instant,
        conn: ConnId,
        next: Result<Option<Frame>, crate::wire::DecodeError>,
        rest: Option<&mut BytesMut>,
    ) {
        match next {
            Ok(None) => {}
            Ok(Some(Frame::Hello(hello))) => self.route(now, conn, hello, rest),
            Ok(Some(_)) => self.end_handshake(conn, Some(Reason::MalformedHandshake)),
            // A checksum failure is corruption in flight, not a bad client: it retries.
            Err(e) => self.end_handshake(conn, Some(e.reason())),
        }
    }

    /// `conn` ended on its own. Its session, if any, detaches and waits for a resume.
    pub fn handle_disconnected(&mut self, now: Instant, conn: ConnId) {
        self.last_now = now;
        match self.conns.remove(&conn) {
            Some(ConnSlot::Handshaking { .. }) => self.handshake_ended(conn),
            Some(ConnSlot::Session(id)) => {
                if let Some(s) = self.sessions.get_mut(&id) {
                    s.handle_disconnected(now, conn);
                    self.touch(id);
                }
                self.enforce_detached_limit(now);
            }
            Some(ConnSlot::Rejecting { .. }) => self.rejecting.retain(|c| *c != conn),
            None => {}
        }
    }

    /// Acts on every deadline at or before `now`: handshakes, sessions, tombstones.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        while let Some(conn) = self.handshake_expiry.pop_due(now) {
            self.end_handshake(conn, Some(Reason::HandshakeTimeout));
        }
        // Sessions whose indexed deadline passed, and touched ones (their index may be stale).
        let mut due: alloc::vec::Vec<SessionId> = self.touched.iter().copied().collect();
        while let Some(id) = self.session_timers.pop_due(now) {
            due.push(id);
        }
        for id in due {
            if let Some(s) = self.sessions.get_mut(&id) {
                s.handle_timeout(now);
                self.touch(id);
            }
        }
        while let Some(id) = self.tombstone_expiry.pop_due(now) {
            self.tombstones.remove(&id);
        }
        self.enforce_detached_limit(now);
    }

    /// The earliest deadline of any session, handshake or tombstone.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let indexed = earliest(
            self.session_timers.earliest(),
            earliest(self.handshake_expiry.earliest(), self.tombstone_expiry.earliest()),
        );
        // Sessions touched since they were last drained: ask them (usually none or few).
        self.touched
            .iter()
            .filter_map(|id| self.sessions.get(id))
            .fold(indexed, |acc, s| earliest(acc, s.poll_timeout()))
    }

    /// The next output: bytes for a connection appended to `buf` (a `BytesMut`, or any
    /// [`FrameSink`]), or a connection to close. Write or close as told, clear `buf` as you like,
    /// and call again until `None`.
    #[must_use]
    pub fn poll_transmit<B: FrameSink + ?Sized>(
        &mut self,
        now: Instant,
        buf: &mut B,
    ) -> Option<Transmit> {
        self.last_now = now;
        if let Some(conn) = self.rejecting.pop_front() {
            if let Some(ConnSlot::Rejecting { frame: Some(f) }) = self.conns.remove(&conn) {
                f.encode(buf);
            }
            return Some(Transmit::Close(conn));
        }
        while let Some(id) = next_from(&self.touched, self.transmit_cursor) {
            let Some(s) = self.sessions.get_mut(&id) else {
                self.touched.remove(&id);
                continue;
            };
            match s.poll_transmit(now, buf) {
                Some(t) => {
                    self.transmit_cursor = id.0.wrapping_add(1);
                    if let Transmit::Close(conn) = t {
                        if matches!(self.conns.get(&conn), Some(ConnSlot::Session(owner)) if *owner == id)
                        {
                            self.conns.remove(&conn);
                        }
                    }
                    return Some(t);
                }
                None => {
                    self.touched.remove(&id);
                    self.session_timers.set(id, s.poll_timeout());
                    self.reap(id);
                }
            }
        }
        None
    }

    /// The next event of any session. A session's first event is [`Event::Connected`]; after its
    /// `Closed` or `Lost` the session is forgotten (a cleanly closed one leaves a tombstone so a late
    /// resume is told `SessionClosed`).
    #[must_use]
    pub fn poll_event(&mut self) -> Option<(SessionId, Event)> {
        while let Some(id) = next_from(&self.eventful, self.event_cursor) {
            let Some(s) = self.sessions.get_mut(&id) else {
                self.eventful.remove(&id);
                continue;
            };
            match s.poll_event() {
                Some(event) => {
                    // Round robin: the next call starts after this session, so a caller that
                    // reads a few events at a time (a slow consumer) starves no session.
                    self.event_cursor = id.0.wrapping_add(1);
                    // Delivering a message may open the window or make an ack due. (Checked
                    // first: draining one session's messages finds it touched already.)
                    if !self.touched.contains(&id) {
                        self.touched.insert(id);
                    }
                    return Some((id, event));
                }
                None => {
                    self.eventful.remove(&id);
                    self.reap(id);
                }
            }
        }
        None
    }

    fn touch(&mut self, id: SessionId) {
        self.touched.insert(id);
        self.eventful.insert(id);
    }

    /// Drops a session that has ended and has nothing left to write or report.
    fn reap(&mut self, id: SessionId) {
        let Some(s) = self.sessions.get(&id) else {
            return;
        };
        if !s.is_finished() {
            return;
        }
        let secret = s.secret;
        let clean = s.closed_cleanly;
        self.sessions.remove(&id);
        self.shard.release_session();
        self.session_timers.set(id, None);
        self.conns.retain(|_, slot| !matches!(slot, ConnSlot::Session(owner) if *owner == id));
        if clean {
            let expires = self.last_now + self.config.session_timeout;
            self.tombstones.insert(id, secret);
            self.tombstone_expiry.set(id, Some(expires));
            while self.tombstones.len() > self.config.max_detached_sessions as usize {
                let Some(oldest) = self.tombstone_expiry.pop_earliest() else { break };
                self.tombstones.remove(&oldest);
            }
        }
    }

    /// Routes a `Hello` to a new session or the one it resumes. `rest`: the caller's buffer
    /// holding what followed the `Hello` (decoding in place), which a handoff takes along.
    fn route(&mut self, now: Instant, conn: ConnId, hello: Hello, rest: Option<&mut BytesMut>) {
        let Some(ConnSlot::Handshaking { mut decoder }) = self.conns.remove(&conn) else {
            return;
        };
        self.handshake_ended(conn);
        let owner = self.shard.owner_of(hello.session_id);
        if hello.kind == HelloKind::Resume && owner != self.shard.index() {
            // Everything the connection sent: the `Hello` (its encoding is canonical, so encoding
            // it again gives the bytes that came), then whatever followed it.
            let mut first = BytesMut::new();
            Frame::Hello(hello).encode(&mut first);
            let mut bytes: Vec<Bytes> = Vec::new();
            bytes.push(first.freeze());
            bytes.extend(decoder.take_buffered());
            if let Some(rest) = rest.filter(|r| !r.is_empty()) {
                bytes.push(rest.split().freeze());
            }
            self.handoffs.push_back(Handoff { conn, shard: owner, bytes });
            return;
        }
        decoder.set_max_frame_size(self.config.max_frame_size);
        let version_ok =
            hello.min_version <= PROTOCOL_VERSION && hello.max_version >= MIN_PROTOCOL_VERSION;
        let result = if !version_ok {
            Err(Reason::UnsupportedVersion)
        } else if hello.max_message_size == 0 || hello.min_version > hello.max_version {
            Err(Reason::MalformedHandshake)
        } else {
            match hello.kind {
                HelloKind::New => self.accept_new(now, conn, decoder, &hello),
                HelloKind::Resume => self.resume(now, conn, decoder, &hello),
            }
        };
        match result {
            Ok(id) => {
                self.conns.insert(conn, ConnSlot::Session(id));
                self.touch(id);
                // Frames that followed the Hello in the same read may already have detached it;
                // with other shards, a resume lowers the count they see.
                let detached = self.sessions.get(&id).is_some_and(|s| s.detached_since().is_some());
                if detached || self.shard.count() > 1 {
                    self.enforce_detached_limit(now);
                }
            }
            Err(reason) => self.reject(conn, reason),
        }
    }

    fn accept_new(
        &mut self,
        now: Instant,
        conn: ConnId,
        decoder: Decoder,
        hello: &Hello,
    ) -> Result<SessionId, Reason> {
        if hello.session_id != 0 || hello.positions.received != 0 || hello.positions.acked != 0 {
            return Err(Reason::MalformedHandshake);
        }
        if !self.shard.try_take_session(self.config.max_sessions) {
            return Err(Reason::ServerBusy);
        }
        let id = loop {
            let candidate = SessionId(self.rng.next_u64());
            if candidate.0 != 0
                && self.shard.owner_of(candidate.0) == self.shard.index()
                && !self.sessions.contains_key(&candidate)
                && !self.tombstones.contains_key(&candidate)
            {
                break candidate;
            }
        };
        let mut secret = [0u8; 16];
        self.rng.fill_bytes(&mut secret);
        let s = Session::server_new(self.config.clone(), id, secret, now, conn, decoder, hello);
        self.sessions.insert(id, s);
        Ok(id)
    }

    fn resume(
        &mut self,
        now: Instant,
        conn: ConnId,
        decoder: Decoder,
        hello: &Hello,
    ) -> Result<SessionId, Reason> {
        let id = SessionId(hello.session_id);
        let Some(s) = self.sessions.get_mut(&id) else {
            return Err(match self.tombstones.get(&id) {
                Some(secret) if bool::from(secret.ct_eq(&hello.secret)) => Reason::SessionClosed,
                Some(_) => Reason::BadSecret,
                None => Reason::UnknownSession,
            });
        };
        if !bool::from(s.secret.ct_eq(&hello.secret)) {
            return Err(Reason::BadSecret);
        }
        if s.state() == crate::SessionState::Ended {
            // Ended but not yet dropped (its last events are unread).
            return Err(if s.closed_cleanly {
                Reason::SessionClosed
            } else {
                Reason::UnknownSession
            });
        }
        s.server_resume(now, conn, decoder, hello)?;
        Ok(id)
    }

    /// Refuses `conn` with `reason`, then closes it.
    fn reject(&mut self, conn: ConnId, reason: Reason) {
        let frame = Frame::Reject {
            reason,
            min_version: MIN_PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
        };
        self.conns.insert(conn, ConnSlot::Rejecting { frame: Some(frame) });
        self.rejecting.push_back(conn);
    }

    /// Ends a connection still in its handshake, with a `Reject` if `reason` is given.
    fn end_handshake(&mut self, conn: ConnId, reason: Option<Reason>) {
        if let Some(ConnSlot::Handshaking { .. }) = self.conns.remove(&conn) {
            self.handshake_ended(conn);
        }
        match reason {
            Some(reason) => self.reject(conn, reason),
            None => {
                self.conns.insert(conn, ConnSlot::Rejecting { frame: None });
                self.rejecting.push_back(conn);
            }
        }
    }

    /// `conn`'s handshake is over (routed, refused, timed out or disconnected).
    fn handshake_ended(&mut self, conn: ConnId) {
        self.handshakes -= 1;
        self.shard.release_handshake();
        self.handshake_expiry.set(conn, None);
    }

    /// The next connection to move to the shard that owns the session it resumes. A server of
    /// one shard never has any.
    pub fn poll_handoff(&mut self) -> Option<Handoff> {
        self.handoffs.pop_front()
    }

    /// Gives up the longest-detached sessions beyond `max_detached_sessions` (counted over every
    /// shard: each shard gives up its own longest-detached ones while the server is over it).
    fn enforce_detached_limit(&mut self, now: Instant) {
        let max = self.config.max_detached_sessions as usize;
        if self.shard.count() == 1 && self.sessions.len() <= max {
            return;
        }
        loop {
            let detached: Vec<(Instant, SessionId)> = self
                .sessions
                .iter()
                .filter_map(|(id, s)| s.detached_since().map(|t| (t, *id)))
                .collect();
            if self.shard.publish_detached(detached.len()) <= max {
                return;
            }
            let Some(&(_, oldest)) = detached.iter().min() else {
                return;
            };
            if let Some(s) = self.sessions.get_mut(&oldest) {
                s.last_now = now;
                s.end_lost(Reason::Evicted, false);
            }
            self.touch(oldest);
        }
    }
}

/// The first id in `set` at or after `from`, wrapping around to the smallest.
fn next_from(set: &BTreeSet<SessionId>, from: u64) -> Option<SessionId> {
    if set.len() <= 1 {
        return set.first().copied();
    }
    set.range(SessionId(from)..).next().or_else(|| set.first()).copied()
}
