//! One logical session: sequencing, acknowledgement, flow control, liveness, resumption and close,
//! across any number of transport connections.

mod close;
mod input;
mod output;
mod timers;

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use bytes::{Bytes, BytesMut};

use crate::backoff::Backoff;
use crate::config::{AckMode, Config, ConfigError, FirstConnect};
use crate::error::{AckError, CloseError, SendError};
use crate::event::{Event, Stats};
use crate::reason::Reason;
use crate::recv_buf::ReceiveBuffer;
use crate::rtt::RttEstimator;
use crate::send_buf::SendBuffer;
use crate::time::Instant;
use crate::wire::{Decoder, Frame, Hello, Positions, Secret, PROTOCOL_VERSION};

pub(crate) use close::CloseState;

/// Identifies one transport connection. The adapter chooses it; it must not reuse an id while the
/// core may still refer to it (a counter is enough).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// Identifies a session; issued by the server at session start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u64);

/// Which end of the session this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Opens connections and resumes; owns the reconnect backoff.
    Client,
    /// Accepts connections through an [`Endpoint`](crate::Endpoint).
    Server,
}

/// What `poll_transmit` asks of the adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Transmit {
    /// Bytes were appended to the buffer: write them to connection `ConnId`.
    Write(ConnId),
    /// Write whatever this call appended to the buffer (possibly nothing) to connection `ConnId`,
    /// then close it. The core has forgotten the connection; further input on it is ignored.
    Close(ConnId),
}

/// A coarse view of where a session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// No connection, or a connection whose handshake has not completed.
    Detached,
    /// Attached to an established connection.
    Connected,
    /// Ended: `Closed` or `Lost` was (or is about to be) reported.
    Ended,
}

/// The counters of `Stats` that are not derived from other state.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) messages_sent: u64,
    pub(crate) bytes_sent: u64,
    pub(crate) messages_received: u64,
    pub(crate) bytes_received: u64,
    pub(crate) replayed_messages: u64,
    pub(crate) reconnects: u64,
    pub(crate) disconnects: u64,
}

/// A connection the session is attached to.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) id: ConnId,
    pub(crate) decoder: Decoder,
    /// Handshake completed on this connection.
    pub(crate) established: bool,
    pub(crate) started: Instant,
    pub(crate) last_recv: Instant,
    pub(crate) last_send: Instant,
    /// Start of the current ack-progress period (see `Config::ack_timeout`).
    pub(crate) progress_since: Instant,
    /// A handshake frame (Hello or Welcome) still has to be written.
    pub(crate) handshake_pending: bool,
    pub(crate) pong_pending: Option<u64>,
    pub(crate) ping_in_flight: Option<(u64, Instant)>,
    pub(crate) sent_close: bool,
    pub(crate) sent_close_ack: bool,
}

impl Conn {
    fn new(id: ConnId, decoder: Decoder, now: Instant) -> Self {
        Conn {
            id,
            decoder,
            established: false,
            started: now,
            last_recv: now,
            last_send: now,
            progress_since: now,
            handshake_pending: true,
            pong_pending: None,
            ping_in_flight: None,
            sent_close: false,
            sent_close_ack: false,
        }
    }
}

/// A connection being closed: an optional last frame, then the close request.
#[derive(Debug)]
pub(crate) struct Retired {
    pub(crate) id: ConnId,
    pub(crate) last_frame: Option<Frame>,
}

/// One end of a tether session, sans-IO: it never reads a clock, touches a socket or spawns.
///
/// # Driving contract
///
/// The adapter owns the transport and the timer, and drives the session like this:
///
/// 1. **Inputs.** Report a new transport connection with [`handle_connected`](Self::handle_connected)
///    (client side; the server side gets connections through an [`Endpoint`](crate::Endpoint)),
///    the bytes read with [`handle_input_buf`](Self::handle_input_buf) (in place in the adapter's
///    own read buffer, the zero-copy way) or [`handle_input`](Self::handle_input) (owned chunks,
///    any chunking; simpler, but a frame cut across chunks is copied), and
///    the transport's end (EOF, reset, error) with [`handle_disconnected`](Self::handle_disconnected).
///    Application calls are [`send`](Self::send), [`ack`](Self::ack), [`close`](Self::close) and
///    [`abort`](Self::abort). Every input takes `now`, the current [`Instant`]; time must not go
///    backwards between calls.
/// 2. **After any input or application call** (and after `poll_event`, which may open the receive
///    window), drain the outputs: call [`poll_transmit`](Self::poll_transmit) until it returns `None`,
///    writing each batch to the connection it names (and closing it when told), and call
///    [`poll_event`](Self::poll_event) until it returns `None`.
/// 3. **Then re-arm the timer** for [`poll_timeout`](Self::poll_timeout) and, when it fires, call
///    [`handle_timeout`](Self::handle_timeout) and drain again. Calling `handle_timeout` early, late
///    or repeatedly is harmless.
/// 4. **Client reconnects.** When [`poll_connect`](Self::poll_connect) returns true, open a new
///    transport connection and report it with `handle_connected`, or report failure with
///    [`handle_connect_failed`](Self::handle_connect_failed). The backoff between attempts is the
///    session's; `poll_timeout` includes the next attempt's time. `poll_connect` returns false
///    while a retired connection's `Transmit::Close` has not been taken from `poll_transmit`: an
///    adapter that stops pulling output when its write buffer is full must keep pulling while
///    [`has_close_pending`](Self::has_close_pending) is true.
///
/// The session ends with exactly one of [`Event::Closed`] or [`Event::Lost`]; nothing follows it.
/// Every message accepted by `send` is either confirmed (see [`Event::Confirmed`]) or returned in
/// `Lost`, never both.
#[derive(Debug)]
pub struct Session {
    pub(crate) config: Arc<Config>,
    pub(crate) role: Role,
    pub(crate) id: Option<SessionId>,
    pub(crate) secret: Secret,
    pub(crate) conn: Option<Conn>,
    pub(crate) retiring: VecDeque<Retired>,
    pub(crate) send: SendBuffer,
    pub(crate) recv: ReceiveBuffer,
    /// Control events (everything but messages and the terminal event), in order.
    pub(crate) events: VecDeque<Event>,
    /// `Closed` or `Lost`, reported once every received message has been delivered.
    pub(crate) terminal: Option<Event>,
    pub(crate) ended: bool,
    /// The session ended with `Closed`.
    pub(crate) closed_cleanly: bool,
    /// What the peer last told us about its receiving side.
    pub(crate) peer: Positions,
    /// What the peer knows of our positions: all four from our last `Ack` or handshake frame;
    /// `acked` (and `received`, up to it) also from the `ack` of our last `Data` frame.
    pub(crate) told: Positions,
    /// Since when our positions differ from `told` (the delayed-ack clock).
    pub(crate) ack_pending_since: Option<Instant>,
    pub(crate) close: CloseState,
    pub(crate) rtt: RttEstimator,
    pub(crate) backoff: Backoff,
    pub(crate) reconnect_at: Option<Instant>,
    pub(crate) detached_since: Option<Instant>,
    pub(crate) ever_established: bool,
    pub(crate) stats: Counters,
    pub(crate) next_ping_token: u64,
    /// Protocol version spoken on the current connection.
    pub(crate) version: u16,
    /// Largest message the peer accepts (its `max_message_size`), once a handshake told us.
    pub(crate) peer_max_message: u32,
    /// The latest `now` seen, for calls that take none (`poll_event`, `ack`).
    pub(crate) last_now: Instant,
}

impl Session {
    /// A client session that will connect as soon as the adapter asks [`poll_connect`](Self::poll_connect).
    /// `seed` drives the reconnect jitter (any value; the OS RNG in production, fixed in tests).
    pub fn client(config: Config, seed: u64, now: Instant) -> Result<Session, ConfigError> {
        config.validate()?;
        let mut s = Session::new(Arc::new(config), Role::Client, seed, now);
        s.reconnect_at = Some(now);
        Ok(s)
    }

    fn new(config: Arc<Config>, role: Role, seed: u64, now: Instant) -> Session {
        let backoff = Backoff::new(seed);
        Session {
            config,
            role,
            id: None,
            secret: [0; 16],
            conn: None,
            retiring: VecDeque::new(),
            send: SendBuffer::default(),
            recv: ReceiveBuffer::default(),
            events: VecDeque::new(),
            terminal: None,
            ended: false,
            closed_cleanly: false,
            peer: Positions::default(),
            told: Positions::default(),
            ack_pending_since: None,
            close: CloseState::default(),
            rtt: RttEstimator::default(),
            backoff,
            reconnect_at: None,
            detached_since: Some(now),
            ever_established: false,
            stats: Counters::default(),
            next_ping_token: 0,
            version: PROTOCOL_VERSION,
            peer_max_message: u32::MAX,
            last_now: now,
        }
    }

    /// A server session accepted by the endpoint on `conn`, which sent `hello` (a new-session hello).
    pub(crate) fn server_new(
        config: Arc<Config>,
        id: SessionId,
        secret: Secret,
        now: Instant,
        conn: ConnId,
        decoder: Decoder,
        hello: &Hello,
    ) -> Session {
        let mut s = Session::new(config, Role::Server, id.0, now);
        s.id = Some(id);
        s.secret = secret;
        s.attach_server(now, conn, decoder, hello);
        s
    }

    /// Resumes this server session on `conn`; the previous connection, if any, is replaced.
    /// Fails (and changes nothing) if the client's stated positions are impossible.
    pub(crate) fn server_resume(
        &mut self,
        now: Instant,
        conn: ConnId,
        decoder: Decoder,
        hello: &Hello,
    ) -> Result<(), Reason> {
        self.check_resume_positions(&hello.positions)?;
        if let Some(old) = self.conn.take() {
            self.retiring.push_back(Retired {
                id: old.id,
                last_frame: Some(Frame::ConnClose { reason: Reason::Replaced }),
            });
            if old.established {
                self.push_event(Event::Disconnected { reason: Reason::Replaced });
                self.stats.disconnects += 1;
            }
        }
        self.attach_server(now, conn, decoder, hello);
        Ok(())
    }

    fn attach_server(&mut self, now: Instant, conn: ConnId, decoder: Decoder, hello: &Hello) {
        self.last_now = now;
        // The endpoint checked that the version ranges overlap: speak the highest common one.
        self.version = hello.max_version.min(PROTOCOL_VERSION);
        let mut c = Conn::new(conn, decoder, now);
        c.established = true;
        self.conn = Some(c);
        self.on_established(now, hello.positions, hello.max_message_size);
        self.process_frames(now, None);
    }

    /// The session's id, once the server has issued it.
    pub fn id(&self) -> Option<SessionId> {
        self.id
    }

    /// Client or server.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Where the session is.
    pub fn state(&self) -> SessionState {
        match &self.conn {
            _ if self.ended => SessionState::Ended,
            Some(c) if c.established => SessionState::Connected,
            _ => SessionState::Detached,
        }
    }

    /// The configuration the session runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters and estimates so far.
    pub fn stats(&self) -> Stats {
        let (queued, queued_bytes) = self.recv.queued();
        Stats {
            rtt: self.rtt.srtt(),
            rtt_var: self.rtt.rttvar(),
            unconfirmed_messages: self.send.len(),
            unconfirmed_bytes: self.send.bytes(),
            buffered_receive_messages: queued,
            buffered_receive_bytes: queued_bytes,
            messages_sent: self.stats.messages_sent,
            bytes_sent: self.stats.bytes_sent,
            messages_received: self.stats.messages_received,
            bytes_received: self.stats.bytes_received,
            replayed_messages: self.stats.replayed_messages,
            reconnects: self.stats.reconnects,
            disconnects: self.stats.disconnects,
        }
    }

    /// Queues `payload` for delivery and returns its sequence number.
    ///
    /// Accepted messages are kept until confirmed, across reconnects. Fails without side effects
    /// (handing the message back) when the unconfirmed buffer is full ([`SendError::Backpressure`]:
    /// retry after a `Confirmed` event), the message is too large, or the session is closing or ended.
    pub fn send(&mut self, now: Instant, payload: Bytes) -> Result<u64, SendError> {
        self.last_now = now;
        if self.ended {
            return Err(SendError::Ended(payload));
        }
        if self.close.is_closing() {
            return Err(SendError::Closing(payload));
        }
        let max = self.max_message_size();
        if payload.len() as u64 > u64::from(max) {
            return Err(SendError::TooLarge { payload, max });
        }
        let len = payload.len() as u64;
        if self.send.len() >= u64::from(self.config.max_unconfirmed_messages)
            || self.send.bytes() + len > self.config.max_unconfirmed_bytes
        {
            return Err(SendError::Backpressure(payload));
        }
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += len;
        Ok(self.send.push(payload))
    }

    /// Largest message `send` accepts: ours, or the peer's if smaller (known after a handshake).
    pub fn max_message_size(&self) -> u32 {
        self.config.max_message_size.min(self.peer_max_message)
    }

    /// True when `send` would accept a message of `len` bytes now.
    pub fn can_send(&self, len: usize) -> bool {
        !self.ended
            && !self.close.is_closing()
            && len as u64 <= u64::from(self.max_message_size())
            && self.send.len() < u64::from(self.config.max_unconfirmed_messages)
            && self.send.bytes() + len as u64 <= self.config.max_unconfirmed_bytes
    }

    /// In [`AckMode::Manual`], acknowledges every delivered message up to and including `seq`.
    /// Only acknowledged messages are confirmed to the peer. Acking twice is harmless.
    pub fn ack(&mut self, seq: u64) -> Result<(), AckError> {
        if self.config.ack_mode != AckMode::Manual {
            return Err(AckError::NotManual);
        }
        if !self.recv.ack(seq) {
            return Err(AckError::NotDelivered { seq, delivered: self.recv.delivered() });
        }
        self.note_positions_changed();
        Ok(())
    }

    /// The next event, if any. Messages come in sequence order, a data frame's new messages in one
    /// [`Event::Messages`]; `Closed`/`Lost` comes last, after every received message. In
    /// [`AckMode::OnDelivery`], returning a delivery acknowledges its messages.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(e) = self.events.pop_front() {
            return Some(e);
        }
        if let Some(delivery) = self.recv.deliver(self.config.ack_mode) {
            self.note_positions_changed();
            return Some(Event::Messages(delivery));
        }
        self.terminal.take()
    }

    /// Starts a clean close: no new sends; once every message of both directions is delivered and
    /// acknowledged, the close handshake runs and the session ends with [`Event::Closed`]. If that
    /// takes longer than `close_timeout` it ends with [`Event::Lost`]. Calling it again is harmless.
    pub fn close(&mut self, now: Instant) -> Result<(), CloseError> {
        self.last_now = now;
        if self.ended {
            return Err(CloseError::Ended);
        }
        self.close.request(now, self.config.close_timeout);
        Ok(())
    }

    /// Ends the session at once: an `Abort` frame is sent if a connection is up, and the session
    /// reports [`Event::Lost`] with every unconfirmed message. Harmless after the end.
    pub fn abort(&mut self, now: Instant) {
        self.last_now = now;
        self.end_lost(Reason::ApplicationAbort, true);
    }

    /// Client side: a new transport connection `conn` is open. The handshake starts on it. A
    /// connection already attached is forgotten (the adapter should have closed it).
    pub fn handle_connected(&mut self, now: Instant, conn: ConnId) {
        self.last_now = now;
        if self.ended || self.role != Role::Client {
            self.retiring.push_back(Retired { id: conn, last_frame: None });
            return;
        }
        if let Some(established) = self.conn.as_ref().map(|c| c.established) {
            self.detach_telling(now, Reason::Replaced, established);
        }
        self.reconnect_at = None;
        self.conn = Some(Conn::new(conn, Decoder::new(self.config.max_frame_size), now));
    }

    /// Client side: the connection attempt that `poll_connect` asked for failed.
    /// Before the first handshake, with [`FirstConnect::Fail`](crate::FirstConnect::Fail), this
    /// ends the session as lost with [`Reason::ConnectFailed`].
    pub fn handle_connect_failed(&mut self, now: Instant) {
        self.last_now = now;
        if !self.ended && self.conn.is_none() {
            self.retry_or_fail(now, Reason::ConnectFailed);
        }
    }

    /// True while a retired connection waits for its [`Transmit::Close`] from
    /// [`poll_transmit`](Self::poll_transmit), which hands those out before any other output. An
    /// adapter that stops pulling output while a connection's write buffer is full should still
    /// pull while this is true: the session reconnects only after the old connection is closed.
    pub fn has_close_pending(&self) -> bool {
        !self.retiring.is_empty()
    }

    /// Client side: true when the adapter should open a new transport connection now.
    #[must_use]
    pub fn poll_connect(&mut self, now: Instant) -> bool {
        match self.reconnect_at {
            Some(at)
                if at <= now && !self.ended && self.conn.is_none() && self.retiring.is_empty() =>
            {
                self.reconnect_at = None;
                true
            }
            _ => false,
        }
    }

    /// Bytes read from connection `conn`, as an owned chunk. Input for any other connection is
    /// ignored (it is stale). Any chunking works; a frame cut across chunks is copied once to join
    /// it (an adapter that reads into its own buffer avoids that with
    /// [`handle_input_buf`](Self::handle_input_buf)).
    pub fn handle_input(&mut self, now: Instant, conn: ConnId, bytes: Bytes) {
        self.last_now = now;
        let Some(c) = self.conn.as_mut().filter(|c| c.id == conn) else {
            return;
        };
        c.decoder.push(bytes);
        self.process_frames(now, None);
    }

    /// Bytes read from connection `conn`, decoded in place in the caller's buffer: every whole
    /// frame at the front of `buf` is split off and handled (delivered payloads are zero-copy
    /// slices of `buf`'s memory), and the start of a frame not yet whole stays in `buf`, where
    /// the adapter appends its next read from `conn`. Nothing is copied, and `buf` never holds
    /// more than one incomplete frame (at most `max_frame_size` + 8 bytes); the core reserves
    /// nothing on a frame's declared length, so the adapter decides how much room to offer a read.
    ///
    /// Returns how many more bytes the frame left in `buf` needs (0 when `buf` is empty), which
    /// an adapter may use to size its next read. Input for any other connection is stale: `buf`
    /// is cleared, as it is when the connection ends on bad input. Keep one `buf` per
    /// connection, and use either this or [`handle_input`](Self::handle_input) on a connection.
    pub fn handle_input_buf(&mut self, now: Instant, conn: ConnId, buf: &mut BytesMut) -> usize {
        self.last_now = now;
        if self.conn.as_ref().is_none_or(|c| c.id != conn) {
            buf.clear();
            return 0;
        }
        self.process_frames(now, Some(buf))
    }

    /// Connection `conn` ended on its own (EOF, reset, error). The session detaches and, on the
    /// client side, schedules a reconnect. Other connection ids are ignored.
    pub fn handle_disconnected(&mut self, now: Instant, conn: ConnId) {
        self.last_now = now;
        if let Some(c) = self.conn.take_if(|c| c.id == conn) {
            self.on_detached(now, Reason::TransportLost, c.established);
        }
    }

    /// Detached sessions: since when. `None` while attached or ended.
    pub(crate) fn detached_since(&self) -> Option<Instant> {
        if self.ended || self.conn.as_ref().is_some_and(|c| c.established) {
            None
        } else {
            self.detached_since
        }
    }

    /// Ended and nothing more to report or write: the endpoint may drop it.
    pub(crate) fn is_finished(&self) -> bool {
        self.ended
            && self.retiring.is_empty()
            && self.events.is_empty()
            && self.terminal.is_none()
            && self.recv.queued().0 == 0
    }

    /// Our positions changed (message received, delivered or acked): start the delayed-ack clock.
    pub(crate) fn note_positions_changed(&mut self) {
        if self.ack_pending_since.is_none() {
            self.ack_pending_since = Some(self.last_now);
        }
    }

    /// The delay before the next connection attempt (exponential with full jitter).
    fn next_backoff(&mut self) -> crate::time::Duration {
        let (initial, max) =
            (self.config.reconnect_backoff_initial, self.config.reconnect_backoff_max);
        self.backoff.next_delay(initial, max)
    }

    /// Queues a control event, folding repeated `Confirmed` and a `Resumed` undone by a new `Disconnected`.
    pub(crate) fn push_event(&mut self, event: Event) {
        match (self.events.back_mut(), &event) {
            (Some(Event::Confirmed { up_to }), Event::Confirmed { up_to: new }) => *up_to = *new,
            (Some(Event::Resumed), Event::Disconnected { .. }) => {
                self.events.pop_back();
            }
            _ => self.events.push_back(event),
        }
    }

    /// The current connection is unusable: close it (telling the peer `reason` where it can) and detach.
    pub(crate) fn detach(&mut self, now: Instant, reason: Reason) {
        self.detach_telling(now, reason, true);
    }

    /// Like [`detach`](Self::detach), sending `ConnClose` only if `tell` (not after a `Reject`, nor
    /// to a server still waiting for our `Hello`).
    pub(crate) fn detach_telling(&mut self, now: Instant, reason: Reason, tell: bool) {
        if let Some(c) = self.conn.take() {
            let last_frame = tell.then_some(Frame::ConnClose { reason });
            self.retiring.push_back(Retired { id: c.id, last_frame });
            self.on_detached(now, reason, c.established);
        }
    }

    fn on_detached(&mut self, now: Instant, reason: Reason, was_established: bool) {
        if self.ended {
            return;
        }
        self.release_idle_memory();
        if was_established {
            self.push_event(Event::Disconnected { reason });
            self.stats.disconnects += 1;
            self.detached_since = Some(now);
        }
        if self.role == Role::Client {
            self.retry_or_fail(now, reason);
        }
    }

    /// Client: schedules the next connection attempt, or ends the session with `reason` when no
    /// handshake ever completed and the config says a first connection that fails is final. A
    /// connection `Replaced` by a newer one did not fail.
    fn retry_or_fail(&mut self, now: Instant, reason: Reason) {
        let first = !self.ever_established && reason != Reason::Replaced;
        if first && self.config.first_connect == FirstConnect::Fail {
            self.end_lost(reason, false);
        } else {
            self.reconnect_at = Some(now + self.next_backoff());
        }
    }

    /// The handshake completed on the current connection; `peer` is the peer's receive state.
    pub(crate) fn on_established(&mut self, now: Instant, peer: Positions, peer_max_message: u32) {
        let resumed = self.ever_established;
        self.peer_max_message = peer_max_message;
        self.ever_established = true;
        self.detached_since = None;
        self.backoff.reset();
        self.confirm_up_to(peer.acked);
        self.send.rewind(peer.received);
        self.peer = peer;
        // `told` is not reset here: it is what our handshake frame carried (set when written).
        // Positions that moved since (delivery or acks during the handshake) are still pending.
        if let Some(c) = self.conn.as_mut() {
            c.established = true;
            c.progress_since = now;
            c.last_recv = now;
        }
        if resumed {
            self.stats.reconnects += 1;
            self.push_event(Event::Resumed);
        } else {
            self.push_event(Event::Connected);
        }
        // A message queued before the peer's limit was known, that the peer would refuse on every
        // connection: the session cannot succeed, so end it now rather than loop.
        if self.send.largest() > u64::from(peer_max_message) {
            self.end_lost(Reason::MessageTooLarge, true);
        }
    }

    /// A resume position is possible: `acked <= received`, nothing confirmed is un-acked, nothing
    /// unsent is claimed received.
    pub(crate) fn check_resume_positions(&self, p: &Positions) -> Result<(), Reason> {
        if p.acked > p.received
            || p.acked < self.send.confirmed()
            || p.received > self.send.high_water()
        {
            return Err(Reason::InvalidResumePosition);
        }
        Ok(())
    }

    /// Releases messages below `up_to` and reports them confirmed.
    pub(crate) fn confirm_up_to(&mut self, up_to: u64) {
        if up_to > self.send.confirmed() {
            self.send.confirm(up_to);
            self.push_event(Event::Confirmed { up_to: up_to - 1 });
        }
    }

    /// Ends the session as lost with `reason`, sending `Abort` on the current connection if `notify`.
    pub(crate) fn end_lost(&mut self, reason: Reason, notify: bool) {
        if self.ended {
            return;
        }
        let unconfirmed = self.send.drain_unconfirmed();
        let frame = notify.then_some(Frame::Abort { reason });
        self.finish(Event::Lost { reason, unconfirmed }, frame);
    }

    /// Ends the session cleanly, sending `last_frame` (e.g. `CloseDone`) if a connection is up.
    pub(crate) fn end_closed(&mut self, last_frame: Option<Frame>) {
        if !self.ended {
            self.closed_cleanly = true;
            self.finish(Event::Closed, last_frame);
        }
    }

    fn finish(&mut self, terminal: Event, last_frame: Option<Frame>) {
        self.ended = true;
        self.terminal = Some(terminal);
        self.reconnect_at = None;
        self.ack_pending_since = None;
        if let Some(c) = self.conn.take() {
            let last_frame = if c.established { last_frame } else { None };
            self.retiring.push_back(Retired { id: c.id, last_frame });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_is_send_and_small() {
        fn assert_send<T: Send>() {}
        assert_send::<Session>();
        // The struct plus its Arc<Config> (about 200 B) and, at rest, no other heap: at most 1 KiB.
        let size = core::mem::size_of::<Session>() + core::mem::size_of::<Config>();
        assert!(size <= 1024, "{size}");
    }
}
