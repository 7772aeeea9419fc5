//! The state shared by session handles and the driver task, behind one mutex.
//!
//! Handles call into the core directly under the lock (`send`, `ack`, `close`, `abort`) and then
//! *kick* the driver, which drains the core's transmits and events. The driver moves events into
//! per-session [`Slot`]s and wakes whoever waits on them. Nothing here touches a socket or a timer,
//! so the whole module is model-checked with loom (see `tests` at the bottom).
//!
//! Receive-side flow control: the core runs in [`AckMode::Manual`] whatever the application chose.
//! The driver moves delivered messages into the slot's inbox, and a message is acknowledged to the
//! peer only when the application takes it from the inbox (or, in manual mode, acks it). So the
//! peer's unconfirmed-buffer limit bounds the inbox, and an application that stops reading produces
//! backpressure on the peer's sender instead of unbounded memory here.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use tether_core::{
    AckError, Endpoint, Event, FrameSink, Instant, Reason, SendError, SessionId, SessionState,
    Stats, Transmit, UnconfirmedMessage,
};

use crate::inbox::{held_memory_cap, Inbox};
use crate::runtime::{ByteStream, Runtime};
use crate::sync::{lock, Arc, AtomicU64, Mutex, MutexGuard};
use std::sync::atomic::Ordering::SeqCst;

/// The key of the client's only slot (a client session has no id until the server issues one).
pub(crate) const CLIENT_KEY: SessionId = SessionId(0);

/// Link events kept for `next_link_event` before the oldest are dropped.
const MAX_LINK_EVENTS: usize = 64;

/// A message received from the peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Its sequence number in the peer's sending direction (0, 1, 2, ... without gaps).
    pub seq: u64,
    /// The payload, exactly as the peer sent it.
    pub payload: Bytes,
}

/// How a session ended: what [`close`](crate::Session::close) and
/// [`ended`](crate::Session::ended) return.
///
/// ```no_run
/// # async fn demo(session: tether_async::Session) {
/// let end = session.close().await;
/// if !end.is_closed() {
///     eprintln!("{end}"); // e.g. "session lost (CloseTimeout (49)); 3 messages unconfirmed"
/// }
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// Clean close: every message of both directions was delivered and acknowledged.
    Closed,
    /// The session ended without a clean close.
    Lost {
        /// Why it ended.
        reason: Reason,
        /// Exactly the messages this side sent that the peer never confirmed, in order.
        /// Unconfirmed is not "not arrived": the peer may have received some of them.
        unconfirmed: Vec<UnconfirmedMessage>,
    },
}

impl End {
    /// True for a clean close.
    pub fn is_closed(&self) -> bool {
        matches!(self, End::Closed)
    }
}

/// "session closed", or "session lost (reason); N messages unconfirmed".
impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Closed => f.write_str("session closed"),
            End::Lost { reason, unconfirmed } => {
                write!(f, "session lost ({reason}); {} messages unconfirmed", unconfirmed.len())
            }
        }
    }
}

/// A change of the session's transport connection, for applications that want to observe it.
/// More kinds may come (failover, datagram paths).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkEvent {
    /// The connection was lost; the session is detached and resumes on a new one.
    Disconnected {
        /// Why the connection ended.
        reason: Reason,
    },
    /// The session runs on a new connection again; unconfirmed messages are replayed.
    Resumed,
}

/// Who waits: one token per waiting future (a `recv()` in progress, say), or per handle for the
/// handle's poll methods (`Stream`, `Sink`, `poll_recv`). A future that is dropped while it waits
/// withdraws its token, so abandoned waits (a `recv` under a timeout) leave nothing behind.
pub(crate) type Waiter = u64;

/// A token no other waiter has. Threads take blocks of 2^16 from one 64-bit counter (which never
/// wraps) and count within them: a shared counter per token was a cache line bouncing between the
/// threads of every `send` and `recv`. The top bit is set, so these tokens never equal an address
/// (the tokens of `handle::Wait`).
pub(crate) fn new_waiter() -> Waiter {
    const BLOCK: u64 = 1 << 16;
    static BLOCKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    thread_local! {
        /// The next token and the end of this thread's block.
        static NEXT: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
    }
    NEXT.with(|next| {
        let (mut token, mut end) = next.get();
        if token == end {
            token = BLOCKS.fetch_add(BLOCK, std::sync::atomic::Ordering::Relaxed);
            end = token + BLOCK;
        }
        next.set((token + 1, end));
        token | 1 << 63
    })
}

/// The waiters waiting for one thing, each with its task's waker.
#[derive(Debug, Default)]
pub(crate) struct Wakers(Vec<(Waiter, Waker)>);

impl Wakers {
    /// Keeps `w` to wake for `who` when the thing happens (once per waiter and task).
    pub(crate) fn register(&mut self, who: Waiter, w: &Waker) {
        if !self.0.iter().any(|(t, x)| *t == who && x.will_wake(w)) {
            self.0.push((who, w.clone()));
        }
    }

    /// Withdraws `who`'s wait (its future was dropped, or its handle).
    pub(crate) fn forget(&mut self, who: Waiter) {
        if !self.0.is_empty() {
            self.0.retain(|(t, _)| *t != who);
        }
    }

    pub(crate) fn take_into(&mut self, out: &mut Vec<Waker>) {
        if !self.0.is_empty() {
            out.extend(self.0.drain(..).map(|(_, w)| w));
        }
    }
}

/// The sans-IO core the driver runs: a client session or a server endpoint.
#[derive(Debug)]
pub(crate) enum Core {
    /// A client session.
    Client(Box<tether_core::Session>),
    /// A server endpoint with all its sessions.
    Server(Box<Endpoint>),
}

impl Core {
    pub(crate) fn session(&self, key: SessionId) -> Option<&tether_core::Session> {
        match self {
            Core::Client(s) => Some(s),
            Core::Server(e) => e.session(key),
        }
    }

    pub(crate) fn session_mut(&mut self, key: SessionId) -> Option<&mut tether_core::Session> {
        match self {
            Core::Client(s) => Some(s),
            Core::Server(e) => e.session_mut(key),
        }
    }

    pub(crate) fn config(&self) -> &tether_core::Config {
        match self {
            Core::Client(s) => s.config(),
            Core::Server(e) => e.config(),
        }
    }

    pub(crate) fn handle_connected(&mut self, now: Instant, conn: tether_core::ConnId) {
        match self {
            Core::Client(s) => s.handle_connected(now, conn),
            Core::Server(e) => e.handle_connected(now, conn),
        }
    }

    /// Decodes in place (see `Session::handle_input_buf`); returns what the frame left in `buf`
    /// still needs.
    pub(crate) fn handle_input_buf(
        &mut self,
        now: Instant,
        conn: tether_core::ConnId,
        buf: &mut BytesMut,
    ) -> usize {
        match self {
            Core::Client(s) => s.handle_input_buf(now, conn, buf),
            Core::Server(e) => e.handle_input_buf(now, conn, buf),
        }
    }

    pub(crate) fn handle_disconnected(&mut self, now: Instant, conn: tether_core::ConnId) {
        match self {
            Core::Client(s) => s.handle_disconnected(now, conn),
            Core::Server(e) => e.handle_disconnected(now, conn),
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        match self {
            Core::Client(s) => s.handle_timeout(now),
            Core::Server(e) => e.handle_timeout(now),
        }
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Core::Client(s) => s.poll_timeout(),
            Core::Server(e) => e.poll_timeout(),
        }
    }

    fn poll_transmit<B: FrameSink>(&mut self, now: Instant, buf: &mut B) -> Option<Transmit> {
        match self {
            Core::Client(s) => s.poll_transmit(now, buf),
            Core::Server(e) => e.poll_transmit(now, buf),
        }
    }

    fn poll_event(&mut self) -> Option<(SessionId, Event)> {
        match self {
            Core::Client(s) => s.poll_event().map(|e| (CLIENT_KEY, e)),
            Core::Server(e) => e.poll_event(),
        }
    }
}

/// Hashes a [`SessionId`] as itself: ids are issued by the server's keyed random generator, so
/// they are already uniformly spread and no peer can choose them (a message costs one slot lookup,
/// and SipHash was a visible share of that).
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The slots by session id.
pub(crate) type Slots = HashMap<SessionId, Slot, BuildHasherDefault<IdHasher>>;

/// What the handles of one session share with the driver.
#[derive(Debug)]
pub(crate) struct Slot {
    inbox: Inbox,
    links: VecDeque<LinkEvent>,
    end: Option<End>,
    final_stats: Option<Stats>,
    /// Established at least once.
    connected: bool,
    close_requested: bool,
    /// Live handles; a server slot waiting in the accept queue has none yet.
    handles: usize,
    /// Waiting in the server's accept queue.
    queued: bool,
    recv_wakers: Wakers,
    send_wakers: Wakers,
    end_wakers: Wakers,
    link_wakers: Wakers,
    /// Takes from the handles' batch for the driver to acknowledge.
    taken: Arc<Taken>,
    pub(crate) span: tracing::Span,
}

impl Slot {
    pub(crate) fn new(handles: usize, span: tracing::Span) -> Slot {
        Slot {
            inbox: Inbox::default(),
            links: VecDeque::new(),
            end: None,
            final_stats: None,
            connected: false,
            close_requested: false,
            handles,
            queued: false,
            recv_wakers: Wakers::default(),
            send_wakers: Wakers::default(),
            end_wakers: Wakers::default(),
            link_wakers: Wakers::default(),
            taken: Arc::new(Taken::new()),
            span,
        }
    }

    /// The read memory its waiting deliveries are estimated to hold (see `inbox`; for tests).
    #[cfg(all(test, not(tether_loom)))]
    pub(crate) fn inbox_held_memory(&self) -> usize {
        self.inbox.held_memory()
    }

    /// Messages waiting in the inbox (for tests).
    #[cfg(all(test, not(tether_loom)))]
    pub(crate) fn inbox_len(&self) -> usize {
        self.inbox.len()
    }

    /// Link events waiting for the application (for tests).
    #[cfg(all(test, not(tether_loom)))]
    pub(crate) fn links_len(&self) -> usize {
        self.links.len()
    }

    fn wake_all(&mut self, out: &mut Vec<Waker>) {
        self.recv_wakers.take_into(out);
        self.send_wakers.take_into(out);
        self.end_wakers.take_into(out);
        self.link_wakers.take_into(out);
    }

    fn forget(&mut self, who: Waiter) {
        self.recv_wakers.forget(who);
        self.send_wakers.forget(who);
        self.end_wakers.forget(who);
        self.link_wakers.forget(who);
    }
}

/// Messages the handles of one session took from its inbox in one go, shared by every clone of
/// the handle (so clones see one order). Only handles lock it, never the driver; a handle holding
/// it may take the session's lock or the [`Posts`] lock (never the other way round).
#[derive(Debug)]
pub(crate) struct Batch {
    msgs: Inbox,
    taken: Arc<Taken>,
}

impl Batch {
    /// An empty batch whose takes are acknowledged through `taken` (the session slot's).
    pub(crate) fn new(taken: Arc<Taken>) -> Batch {
        Batch { msgs: Inbox::default(), taken }
    }
}

/// The last message the application took from a [`Batch`] without the session's lock, for the
/// driver to acknowledge: each take stores it, and the first take since the driver last looked
/// also posts the session to the driver ([`Posts`]) and wakes it. So a stream of messages costs
/// one atomic exchange per message and one acknowledgement and wake-up per driver pass, not a lock
/// of the session per message; and every take is acknowledged by the driver's next pass without
/// the application doing more.
///
/// One word, so that a take and the driver's look are each one atomic operation: one past the
/// sequence number of the last message taken (0: none yet), shifted left by one, with the low bit
/// set while the session is posted (the driver's next pass reads the word and clears the bit).
#[derive(Debug)]
pub(crate) struct Taken(AtomicU64);

impl Taken {
    fn new() -> Taken {
        Taken(AtomicU64::new(0))
    }

    /// `seq` was taken; true if the session must be posted (it was not).
    fn take(&self, seq: u64) -> bool {
        self.0.swap(((seq + 1) << 1) | 1, SeqCst) & 1 == 0
    }

    /// Driver: unposts the session and returns the last message taken, if any.
    fn look(&self) -> Option<u64> {
        (self.0.fetch_and(!1, SeqCst) >> 1).checked_sub(1)
    }
}

/// Sessions with takes to acknowledge (see [`Taken`]), and the driver's waker. A leaf lock: its
/// holder takes no other.
#[derive(Debug, Default)]
struct Posts {
    keys: Vec<SessionId>,
    driver: Option<Waker>,
}

/// Everything behind the lock.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) core: Core,
    pub(crate) slots: Slots,
    accept_queue: VecDeque<SessionId>,
    accept_wakers: Wakers,
    /// The server's acceptor (`Server`) still exists.
    pub(crate) acceptor_alive: bool,
    /// The application acks by hand (`AckMode::Manual` in its config).
    manual_ack: bool,
    /// The read memory a session's inbox may hold (`inbox::held_memory_cap` of the config).
    inbox_cap: usize,
    driver_waker: Option<Waker>,
    kicked: bool,
    /// The latest time given to the core (see [`Inner::advance`]).
    now: Instant,
    /// The core deadline as of the driver's last pass: its timer wakes it by then.
    armed: Option<Instant>,
    /// The driver has stopped (finished, or its runtime dropped it).
    driver_done: bool,
    /// The last message acknowledged because the application took it (for tests).
    pub(crate) taken_acked: Option<u64>,
    /// Connections handed to this shard by another (a server of several shards).
    pub(crate) incoming: Vec<Incoming>,
    /// Why the client's latest connection attempt failed, in the OS's words: what `connect`
    /// reports when that failure ended the session (`FirstConnect::Fail`).
    pub(crate) connect_error: Option<std::io::Error>,
}

/// A connection handed to a server shard, with the bytes it sent so far.
pub(crate) struct Incoming {
    pub(crate) stream: Box<dyn ByteStream>,
    pub(crate) bytes: Vec<Bytes>,
}

impl Incoming {
    pub(crate) fn new(stream: Box<dyn ByteStream>, bytes: Vec<Bytes>) -> Incoming {
        Incoming { stream, bytes }
    }
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming").field("bytes", &self.bytes.len()).finish_non_exhaustive()
    }
}

/// The state shared by handles and the driver, plus the clock both read.
#[derive(Debug)]
pub(crate) struct Shared {
    inner: Mutex<Inner>,
    pub(crate) clock: Clock,
    posts: Mutex<Posts>,
    /// The application acks by hand (as `Inner::manual_ack`, readable without the lock).
    manual_ack: bool,
}

/// Maps the runtime's clock onto the core's [`Instant`] (nanoseconds since the session or server
/// started). Time never comes from anywhere else.
#[derive(Clone, Debug)]
pub(crate) struct Clock {
    origin: std::time::Instant,
    runtime: std::sync::Arc<dyn Runtime>,
}

impl Clock {
    pub(crate) fn new(runtime: std::sync::Arc<dyn Runtime>) -> Clock {
        Clock { origin: runtime.now(), runtime }
    }

    pub(crate) fn now(&self) -> Instant {
        let since = self.runtime.now().saturating_duration_since(self.origin);
        Instant::from_nanos(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
    }

    /// The runtime's instant of a core deadline.
    pub(crate) fn to_runtime(&self, t: Instant) -> std::time::Instant {
        self.origin + std::time::Duration::from_nanos(t.as_nanos())
    }

    /// The runtime this clock reads.
    pub(crate) fn runtime(&self) -> &std::sync::Arc<dyn Runtime> {
        &self.runtime
    }
}

/// The driver should run again; wake it after releasing the lock.
#[must_use]
pub(crate) struct Kick(Option<Waker>);

impl Kick {
    /// This kick, or `other` if this one wakes nobody.
    fn or(self, other: Kick) -> Kick {
        Kick(self.0.or(other.0))
    }

    pub(crate) fn wake(self) {
        if let Some(w) = self.0 {
            w.wake();
        }
    }
}

impl Inner {
    fn kick(&mut self) -> Kick {
        if self.kicked {
            return Kick(None);
        }
        self.kicked = true;
        Kick(self.driver_waker.clone())
    }

    fn slot(&mut self, key: SessionId) -> Option<&mut Slot> {
        self.slots.get_mut(&key)
    }

    /// The time to give the core: `clock`, or the latest time it was given if that is later
    /// (a handle may read the clock, then wait for the lock while the driver passes a later one),
    /// so time never goes backwards between calls, as the driving contract requires.
    pub(crate) fn advance(&mut self, clock: Instant) -> Instant {
        self.now = self.now.max(clock);
        self.now
    }

    /// `Session::send` on `key`, refused as `Ended` once the driver has stopped (nothing could
    /// carry or confirm the message any more).
    ///
    /// It gives the core the latest time it has seen instead of reading the clock: `send` only
    /// records it as the session's latest time (which can only make a later delayed ack go out
    /// sooner), and a clock read per message was 5% of a 64 B stream's profile.
    fn send(&mut self, key: SessionId, p: Bytes) -> Result<u64, SendError> {
        let now = self.now;
        match self.core.session_mut(key) {
            Some(s) if !self.driver_done => s.send(now, p),
            _ => Err(SendError::Ended(p)),
        }
    }

    /// Acknowledges the messages up to `seq` that the application just took from `key`'s inbox
    /// (unless acks are manual), and says whether the driver must run for it: only when the ack
    /// arms a core deadline earlier than the one the driver's timer waits for. That covers an ack
    /// the core owes at once (after `ack_every` messages, or once half the window reopened: the
    /// core then reports it due now) and the first ack after one went out (`ack_delay`).
    /// Otherwise the driver's next pass or its timer sends the ack: waking it for every message
    /// taken cost a driver pass per message.
    fn ack_taken(&mut self, key: SessionId, seq: u64) -> Kick {
        if self.manual_ack {
            return Kick(None);
        }
        let Some(s) = self.core.session_mut(key) else { return Kick(None) };
        // Cannot fail: the messages were delivered by the core.
        let _ = s.ack(seq);
        self.taken_acked = self.taken_acked.max(Some(seq));
        if s.poll_timeout().is_some_and(|t| self.armed.is_none_or(|armed| t < armed)) {
            self.kick()
        } else {
            Kick(None)
        }
    }

    /// A close under way: moves `key`'s unread messages into `batch` while it holds less than one
    /// receive window; the last sequence number moved, to acknowledge.
    fn drain_for_close(&mut self, key: SessionId, batch: &mut Inbox) -> Option<u64> {
        let config = self.core.config();
        let max_len = config.receive_window_messages as usize;
        let max_bytes = config.receive_window_bytes;
        let slot = self.slots.get_mut(&key)?;
        batch.move_from(&mut slot.inbox, max_len, max_bytes)
    }

    /// Nothing to take: `None` once the session has ended (or the driver stopped), otherwise
    /// `cx` (if any) is registered to be woken when a message arrives.
    fn wait_to_recv(
        &mut self,
        key: SessionId,
        cx: Option<(&mut Context<'_>, Waiter)>,
    ) -> Poll<Option<Message>> {
        let driver_done = self.driver_done;
        let Some(slot) = self.slot(key) else { return Poll::Ready(None) };
        if slot.end.is_some() || driver_done {
            return Poll::Ready(None);
        }
        if let Some((cx, who)) = cx {
            slot.recv_wakers.register(who, cx.waker());
        }
        Poll::Pending
    }

    /// Wakes `cx` for `who` when confirmations free room in `key`'s unconfirmed buffer.
    fn wait_to_send(&mut self, key: SessionId, cx: &Context<'_>, who: Waiter) {
        if let Some(slot) = self.slot(key) {
            slot.send_wakers.register(who, cx.waker());
        }
    }

    /// `who` is done waiting to send: withdraws a wait left by an earlier poll (a refusal as
    /// closing or ended comes without the wake-up that would have emptied the list).
    fn stop_waiting_to_send(&mut self, key: SessionId, who: Waiter) {
        if let Some(slot) = self.slot(key) {
            slot.send_wakers.forget(who);
        }
    }

    /// The end a handle should see: the recorded one, or a loss if the driver is gone.
    fn end_of(&self, key: SessionId) -> Option<End> {
        match self.slots.get(&key) {
            Some(slot) if slot.end.is_some() => slot.end.clone(),
            _ if self.driver_done => {
                Some(End::Lost { reason: Reason::TransportLost, unconfirmed: Vec::new() })
            }
            None => Some(End::Lost { reason: Reason::ApplicationAbort, unconfirmed: Vec::new() }),
            Some(_) => None,
        }
    }

    // ----- driver side -----

    /// Start of a driver pass: remember its waker and take the pending kick. True if the waker
    /// is not the one of the last pass (what the driver registered with its timer may be stale).
    pub(crate) fn begin_pass(&mut self, waker: &Waker) -> bool {
        self.kicked = false;
        if self.driver_waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            return false;
        }
        self.driver_waker = Some(waker.clone());
        true
    }

    /// End of a driver pass: its timer wakes it by `deadline` (the core's) at the latest.
    pub(crate) fn end_pass(&mut self, deadline: Option<Instant>) {
        self.armed = deadline;
    }

    /// The core's deadline as of the driver's last pass.
    pub(crate) fn armed(&self) -> Option<Instant> {
        self.armed
    }

    /// Drains the core's transmits while `out` returns true (false: the adapter's write buffers
    /// are full; the core keeps the rest until the next pass). Each transmit's bytes are all of
    /// `buf`, which `out` must take (e.g. by appending it to a write queue) or clear.
    pub(crate) fn drain_transmits<B: FrameSink>(
        &mut self,
        now: Instant,
        buf: &mut B,
        mut out: impl FnMut(Transmit, &mut B) -> bool,
    ) {
        debug_assert!(buf.is_empty());
        while let Some(t) = self.core.poll_transmit(now, buf) {
            if !out(t, buf) {
                break;
            }
        }
    }

    /// Drains the core's events into the slots, collecting the wakers to wake after unlocking.
    /// True if dispatching acted on the core (its transmits must be drained again).
    pub(crate) fn drain_events(&mut self, now: Instant, wake: &mut Vec<Waker>) -> bool {
        let mut acted = false;
        while let Some((id, event)) = self.core.poll_event() {
            acted |= self.dispatch(now, id, event, wake);
        }
        acted
    }

    /// Routes one event; true if it acted on the core.
    fn dispatch(
        &mut self,
        now: Instant,
        id: SessionId,
        event: Event,
        wake: &mut Vec<Waker>,
    ) -> bool {
        match event {
            Event::Connected => {
                if matches!(self.core, Core::Server(_)) {
                    let span = tracing::info_span!("tether_session", role = "server", id = id.0);
                    span.in_scope(|| tracing::info!("session accepted"));
                    let mut slot = Slot::new(0, span);
                    slot.connected = true;
                    if self.acceptor_alive {
                        slot.queued = true;
                        self.slots.insert(id, slot);
                        self.accept_queue.push_back(id);
                        self.accept_wakers.take_into(wake);
                    } else if let Some(s) = self.core.session_mut(id) {
                        // Nobody can accept it: refuse it the only way left.
                        s.abort(now);
                        return true;
                    }
                } else if let Some(slot) = self.slots.get_mut(&id) {
                    if let Core::Client(s) = &self.core {
                        slot.span.record("id", s.id().map(|id| id.0));
                    }
                    slot.span.in_scope(|| tracing::info!("connected"));
                    slot.connected = true;
                    slot.end_wakers.take_into(wake);
                }
            }
            Event::Messages(delivery) => match self.slots.get_mut(&id) {
                Some(slot) => {
                    slot.inbox.push(delivery, self.inbox_cap);
                    slot.recv_wakers.take_into(wake);
                }
                None => {
                    // Its handles are gone (the session is being aborted): consume it.
                    let last = delivery.next_seq() + delivery.len() as u64 - 1;
                    if let Some(s) = self.core.session_mut(id) {
                        let _ = s.ack(last);
                        return true;
                    }
                }
            },
            Event::Confirmed { .. } => {
                if let Some(slot) = self.slots.get_mut(&id) {
                    slot.send_wakers.take_into(wake);
                }
            }
            Event::Disconnected { reason } => {
                self.link_event(id, LinkEvent::Disconnected { reason }, wake)
            }
            Event::Resumed => self.link_event(id, LinkEvent::Resumed, wake),
            Event::Closed | Event::Lost { .. } => {
                let stats = self.core.session(id).map(|s| s.stats());
                let end = match event {
                    Event::Lost { reason, unconfirmed } => End::Lost { reason, unconfirmed },
                    _ => End::Closed,
                };
                if let Some(slot) = self.slots.get_mut(&id) {
                    slot.span.in_scope(|| match &end {
                        End::Closed => tracing::info!("session closed cleanly"),
                        End::Lost { reason, unconfirmed } => tracing::warn!(
                            %reason,
                            unconfirmed = unconfirmed.len(),
                            "session lost"
                        ),
                    });
                    slot.end = Some(end);
                    slot.final_stats = stats;
                    slot.wake_all(wake);
                }
            }
        }
        false
    }

    fn link_event(&mut self, id: SessionId, event: LinkEvent, wake: &mut Vec<Waker>) {
        if let Some(slot) = self.slots.get_mut(&id) {
            slot.span.in_scope(|| match event {
                LinkEvent::Disconnected { reason } => tracing::info!(%reason, "disconnected"),
                LinkEvent::Resumed => tracing::info!("resumed"),
            });
            if slot.links.len() == MAX_LINK_EVENTS {
                slot.links.pop_front();
            }
            slot.links.push_back(event);
            slot.link_wakers.take_into(wake);
        }
    }

    /// True when the client session has ended and reported it.
    pub(crate) fn client_finished(&self) -> bool {
        match &self.core {
            Core::Client(s) => {
                s.state() == SessionState::Ended
                    && self.slots.get(&CLIENT_KEY).is_none_or(|slot| slot.end.is_some())
            }
            Core::Server(_) => false,
        }
    }

    /// True when the server has nothing left to serve: no acceptor, no session.
    pub(crate) fn server_finished(&self) -> bool {
        match &self.core {
            Core::Server(e) => {
                !self.acceptor_alive && self.slots.is_empty() && e.session_count() == 0
            }
            Core::Client(_) => false,
        }
    }

    /// The driver stops: it finished, or it was dropped with its runtime. A session still running
    /// can no longer move a byte: it is aborted, so its handles get `Lost` with exactly the
    /// messages that were not confirmed (reason `ApplicationAbort`: the application stopped what
    /// ran it; the peer is not told, as nothing is written any more). With `after_panic` (the
    /// driver is dropped while a panic unwinds) the core is left alone: it may be half-way
    /// through an update, and a second panic now would abort the process; handles then see
    /// `Lost` with reason `TransportLost` and no unconfirmed list. Either way later sends are
    /// refused as `Ended` and every waiter is woken.
    pub(crate) fn driver_stopped(
        &mut self,
        now: Instant,
        after_panic: bool,
        wake: &mut Vec<Waker>,
    ) {
        if !after_panic {
            let now = self.advance(now);
            let keys: Vec<SessionId> = self.slots.keys().copied().collect();
            for key in keys {
                if let Some(s) = self.core.session_mut(key) {
                    s.abort(now);
                }
            }
            self.drain_events(now, wake);
        }
        self.driver_done = true;
        for slot in self.slots.values_mut() {
            slot.wake_all(wake);
        }
        self.accept_wakers.take_into(wake);
    }
}

impl Shared {
    pub(crate) fn new(core: Core, manual_ack: bool, clock: Clock) -> Arc<Shared> {
        let inbox_cap = held_memory_cap(core.config().receive_window_bytes);
        Arc::new(Shared {
            posts: Mutex::new(Posts::default()),
            inner: Mutex::new(Inner {
                core,
                inbox_cap,
                slots: Slots::default(),
                accept_queue: VecDeque::new(),
                accept_wakers: Wakers::default(),
                acceptor_alive: true,
                manual_ack,
                driver_waker: None,
                kicked: false,
                now: clock.now(),
                armed: None,
                driver_done: false,
                taken_acked: None,
                incoming: Vec::new(),
                connect_error: None,
            }),
            clock,
            manual_ack,
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// Runs `f` on the session (with the current time) under the lock and kicks the driver.
    fn with_session<R>(
        &self,
        key: SessionId,
        f: impl FnOnce(Option<&mut tether_core::Session>, Instant) -> R,
    ) -> R {
        let mut inner = self.lock();
        let now = inner.advance(self.clock.now());
        let r = f(inner.core.session_mut(key), now);
        let kick = inner.kick();
        drop(inner);
        kick.wake();
        r
    }

    // ----- handle side -----

    /// Sends `payload` (taken from the option) or, on backpressure, puts it back and registers
    /// `cx` (if any) to be woken when confirmations arrive.
    pub(crate) fn poll_send(
        &self,
        key: SessionId,
        cx: Option<(&mut Context<'_>, Waiter)>,
        payload: &mut Option<Bytes>,
    ) -> Poll<Result<u64, SendError>> {
        let Some(p) = payload.take() else {
            return Poll::Ready(Err(SendError::Ended(Bytes::new())));
        };
        let mut inner = self.lock();
        match inner.send(key, p) {
            Err(SendError::Backpressure(p)) if cx.is_some() => {
                *payload = Some(p);
                if let Some((cx, who)) = cx {
                    inner.wait_to_send(key, cx, who);
                }
                Poll::Pending
            }
            result => {
                // A send that waited and is now accepted was woken by the confirmations that
                // emptied the list; a refusal may come without them.
                if let (Some((_, who)), Err(_)) = (cx, &result) {
                    inner.stop_waiting_to_send(key, who);
                }
                let kick = if result.is_ok() { inner.kick() } else { Kick(None) };
                drop(inner);
                kick.wake();
                Poll::Ready(result)
            }
        }
    }

    /// Sends messages from the front of `queue` under one lock until it is empty (`Ready(Ok)`),
    /// the core refuses one for a reason other than backpressure (`Ready(Err)` with that message;
    /// the rest stay queued), or the unconfirmed buffer is full (`Pending`, `cx` registered).
    /// `last` is set to the sequence number of each message sent.
    pub(crate) fn poll_send_many(
        &self,
        key: SessionId,
        (cx, who): (&mut Context<'_>, Waiter),
        queue: &mut VecDeque<Bytes>,
        last: &mut Option<u64>,
    ) -> Poll<Result<(), SendError>> {
        let mut inner = self.lock();
        let mut sent = false;
        let poll = loop {
            let Some(p) = queue.pop_front() else { break Poll::Ready(Ok(())) };
            match inner.send(key, p) {
                Ok(seq) => {
                    *last = Some(seq);
                    sent = true;
                }
                Err(SendError::Backpressure(p)) => {
                    queue.push_front(p);
                    inner.wait_to_send(key, cx, who);
                    break Poll::Pending;
                }
                Err(e) => break Poll::Ready(Err(e)),
            }
        };
        if let Poll::Ready(Err(_)) = poll {
            inner.stop_waiting_to_send(key, who);
        }
        let kick = if sent { inner.kick() } else { Kick(None) };
        drop(inner);
        kick.wake();
        poll
    }

    /// True when a message of `len` bytes would be accepted now; otherwise registers `cx`.
    pub(crate) fn poll_send_ready(
        &self,
        key: SessionId,
        (cx, who): (&mut Context<'_>, Waiter),
        len: usize,
    ) -> bool {
        let mut inner = self.lock();
        let closing = inner.slots.get(&key).is_some_and(|slot| slot.close_requested);
        // Ready when a send would be accepted, or refused for a reason waiting cannot change.
        let ready = inner.driver_done
            || closing
            || inner.end_of(key).is_some()
            || inner.core.session(key).is_none_or(|s| {
                s.can_send(len)
                    || s.state() == SessionState::Ended
                    || len as u64 > u64::from(s.max_message_size())
            });
        if ready {
            inner.stop_waiting_to_send(key, who);
        } else {
            inner.wait_to_send(key, cx, who);
        }
        ready
    }

    /// The next message, `None` once the session has ended and every message was taken.
    ///
    /// Messages come from the handles' shared `batch` while it has some, without the session's
    /// lock (their acknowledgement goes through [`Taken`]); an empty batch takes the whole inbox
    /// in one go and acknowledges its first message at once, as a take of one message always was.
    pub(crate) fn poll_recv(
        &self,
        key: SessionId,
        batch: &Mutex<Batch>,
        cx: Option<(&mut Context<'_>, Waiter)>,
    ) -> Poll<Option<Message>> {
        let mut b = lock(batch);
        if let Some((seq, payload)) = b.msgs.pop() {
            self.took_unlocked(key, &b, seq);
            return Poll::Ready(Some(Message { seq, payload }));
        }
        let mut inner = self.lock();
        let Some(slot) = inner.slots.get_mut(&key) else { return Poll::Ready(None) };
        std::mem::swap(&mut b.msgs, &mut slot.inbox);
        let Some((seq, payload)) = b.msgs.pop() else {
            return inner.wait_to_recv(key, cx);
        };
        let kick = inner.ack_taken(key, seq);
        drop(inner);
        drop(b);
        kick.wake();
        Poll::Ready(Some(Message { seq, payload }))
    }

    /// `seq` went to the application from the batch `b` (locked) without the session's lock: the
    /// driver's next pass acknowledges it (unless acks are manual); the first such take since
    /// the driver last looked posts the session and wakes the driver.
    fn took_unlocked(&self, key: SessionId, b: &Batch, seq: u64) {
        if self.manual_ack {
            return;
        }
        if b.taken.take(seq) {
            let mut posts = lock(&self.posts);
            posts.keys.push(key);
            let driver = posts.driver.clone();
            drop(posts);
            if let Some(w) = driver {
                w.wake();
            }
        }
    }

    /// Moves up to `limit` waiting messages into `out` (from the handles' `batch` first, then from
    /// the inbox under one lock), acknowledging them in one go unless acks are manual. `Ready(0)`
    /// once the session has ended and every message was taken (or `limit` is 0); `Pending` with
    /// `cx` registered while none is waiting.
    pub(crate) fn poll_recv_many(
        &self,
        key: SessionId,
        batch: &Mutex<Batch>,
        (cx, who): (&mut Context<'_>, Waiter),
        out: &mut Vec<Message>,
        limit: usize,
    ) -> Poll<usize> {
        if limit == 0 {
            return Poll::Ready(0);
        }
        let mut b = lock(batch);
        let staged = b.msgs.take(limit, out, |(seq, payload)| Message { seq, payload });
        let mut inner = self.lock();
        let mut n = staged;
        if let Some(slot) = inner.slots.get_mut(&key) {
            n += slot.inbox.take(limit - n, out, |(seq, payload)| Message { seq, payload });
        }
        if n == 0 {
            return inner.wait_to_recv(key, Some((cx, who))).map(|_| 0);
        }
        let kick = inner.ack_taken(key, out.last().map_or(0, |m| m.seq));
        drop(inner);
        drop(b);
        kick.wake();
        Poll::Ready(n)
    }

    /// Driver, at the start of a pass (lock held): remembers its waker for [`Taken`] posts and
    /// acknowledges what the posted sessions' applications took.
    pub(crate) fn apply_posted(&self, inner: &mut Inner, waker: &Waker, keys: &mut Vec<SessionId>) {
        let mut posts = lock(&self.posts);
        if !posts.driver.as_ref().is_some_and(|w| w.will_wake(waker)) {
            posts.driver = Some(waker.clone());
        }
        std::mem::swap(keys, &mut posts.keys);
        drop(posts);
        for key in keys.drain(..) {
            let Some(slot) = inner.slots.get(&key) else { continue };
            if let (Some(seq), Some(s)) = (slot.taken.look(), inner.core.session_mut(key)) {
                // A take already acknowledged under the lock makes this a no-op.
                let _ = s.ack(seq);
                inner.taken_acked = inner.taken_acked.max(Some(seq));
            }
        }
    }

    /// The batch for a new handle to `key`: acknowledged through its slot's [`Taken`].
    pub(crate) fn new_batch(&self, key: SessionId) -> Batch {
        let taken = self.lock().slot(key).map(|s| s.taken.clone());
        Batch::new(taken.unwrap_or_else(|| Arc::new(Taken::new())))
    }

    /// Manual-ack mode: acknowledges every received message up to and including `seq`.
    pub(crate) fn ack(&self, key: SessionId, seq: u64) -> Result<(), AckError> {
        if !self.lock().manual_ack {
            return Err(AckError::NotManual);
        }
        self.with_session(key, |s, _| match s {
            Some(s) => s.ack(seq),
            // Ended: nothing to acknowledge any more; acking is harmless.
            None => Ok(()),
        })
    }

    /// Starts a clean close (once), then waits for the end.
    ///
    /// Unless acks are manual, the peer's messages the application has not taken are moved into
    /// the handles' `batch` and acknowledged: they are the application's now, and `recv` returns
    /// them after the close. So a close never waits for a `recv` nobody makes. At most one receive
    /// window (messages and bytes) waits in the batch this way; beyond it the close waits for the
    /// application to take some, and `cx` is woken when more messages arrive.
    pub(crate) fn poll_close(
        &self,
        key: SessionId,
        batch: &Mutex<Batch>,
        (cx, who): (&mut Context<'_>, Waiter),
    ) -> Poll<End> {
        let mut b = lock(batch);
        let mut inner = self.lock();
        let now = inner.advance(self.clock.now());
        let requested = inner.slot(key).is_some_and(|s| s.close_requested);
        let mut kick = Kick(None);
        if !requested && inner.end_of(key).is_none() {
            if let Some(s) = inner.core.session_mut(key) {
                let _ = s.close(now);
            }
            let manual = self.manual_ack;
            if let Some(slot) = inner.slot(key) {
                slot.close_requested = true;
                let unread = slot.inbox.len() + b.msgs.len();
                slot.span.in_scope(|| tracing::info!("close requested"));
                if manual && unread > 0 {
                    slot.span.in_scope(|| {
                        tracing::warn!(
                            unread,
                            "close waits for the application to take and ack the peer's \
                             messages (manual acks), at most close_timeout"
                        )
                    });
                }
            }
            kick = inner.kick();
        }
        if inner.end_of(key).is_none() && !self.manual_ack {
            if let Some(last) = inner.drain_for_close(key, &mut b.msgs) {
                kick = kick.or(inner.ack_taken(key, last));
            }
            if let Some(slot) = inner.slot(key) {
                slot.recv_wakers.register(who, cx.waker());
            }
        }
        let polled = Self::poll_end_locked(&mut inner, key, (cx, who));
        drop(inner);
        drop(b);
        kick.wake();
        polled
    }

    /// Waits for the session's end.
    pub(crate) fn poll_end(&self, key: SessionId, cx: (&mut Context<'_>, Waiter)) -> Poll<End> {
        let mut inner = self.lock();
        Self::poll_end_locked(&mut inner, key, cx)
    }

    fn poll_end_locked(
        inner: &mut Inner,
        key: SessionId,
        (cx, who): (&mut Context<'_>, Waiter),
    ) -> Poll<End> {
        if let Some(end) = inner.end_of(key) {
            return Poll::Ready(end);
        }
        if let Some(slot) = inner.slot(key) {
            slot.end_wakers.register(who, cx.waker());
        }
        Poll::Pending
    }

    /// Client: waits for the first handshake (`Ok`) or the end (`Err`).
    pub(crate) fn poll_connected(
        &self,
        key: SessionId,
        (cx, who): (&mut Context<'_>, Waiter),
    ) -> Poll<Result<(), End>> {
        let mut inner = self.lock();
        if inner.slots.get(&key).is_some_and(|s| s.connected) {
            return Poll::Ready(Ok(()));
        }
        if let Some(end) = inner.end_of(key) {
            return Poll::Ready(Err(end));
        }
        if let Some(slot) = inner.slot(key) {
            slot.end_wakers.register(who, cx.waker());
        }
        Poll::Pending
    }

    /// The next connection change, `None` once the session has ended and all were taken.
    pub(crate) fn poll_link(
        &self,
        key: SessionId,
        (cx, who): (&mut Context<'_>, Waiter),
    ) -> Poll<Option<LinkEvent>> {
        let mut inner = self.lock();
        let done = inner.end_of(key).is_some();
        let Some(slot) = inner.slot(key) else {
            return Poll::Ready(None);
        };
        if let Some(e) = slot.links.pop_front() {
            return Poll::Ready(Some(e));
        }
        if done {
            return Poll::Ready(None);
        }
        slot.link_wakers.register(who, cx.waker());
        Poll::Pending
    }

    /// Ends the session at once (`Lost` with reason `ApplicationAbort` on both sides).
    pub(crate) fn abort(&self, key: SessionId) {
        self.with_session(key, |s, now| {
            if let Some(s) = s {
                s.abort(now);
            }
        });
    }

    /// The session's counters (its last ones after it ended), with the messages waiting for
    /// the application (in the inbox and in the handles' `batch`) counted as buffered.
    pub(crate) fn stats(&self, key: SessionId, batch: &Mutex<Batch>) -> Stats {
        let b = lock(batch);
        let inner = self.lock();
        let slot = inner.slots.get(&key);
        let mut stats = match slot.and_then(|s| s.final_stats.clone()) {
            Some(stats) => stats,
            None => inner.core.session(key).map(|s| s.stats()).unwrap_or_default(),
        };
        for waiting in std::iter::once(&b.msgs).chain(slot.map(|s| &s.inbox)) {
            stats.buffered_receive_messages += waiting.len() as u64;
            stats.buffered_receive_bytes += waiting.bytes();
        }
        stats
    }

    /// Where the session is.
    pub(crate) fn state(&self, key: SessionId) -> SessionState {
        let inner = self.lock();
        if inner.end_of(key).is_some() {
            return SessionState::Ended;
        }
        inner.core.session(key).map_or(SessionState::Ended, |s| s.state())
    }

    /// The session's id, once issued.
    pub(crate) fn session_id(&self, key: SessionId) -> Option<SessionId> {
        match &self.lock().core {
            Core::Client(s) => s.id(),
            Core::Server(_) => Some(key),
        }
    }

    /// One more handle to `key`.
    pub(crate) fn add_handle(&self, key: SessionId) {
        if let Some(slot) = self.lock().slot(key) {
            slot.handles += 1;
        }
    }

    /// How many waits are registered on `key` (for tests): to receive, to send, for the end and
    /// for link events.
    #[cfg(all(test, not(tether_loom)))]
    pub(crate) fn waits(&self, key: SessionId) -> [usize; 4] {
        let mut inner = self.lock();
        let slot = inner.slot(key).expect("a session slot");
        [&slot.recv_wakers, &slot.send_wakers, &slot.end_wakers, &slot.link_wakers]
            .map(|w| w.0.len())
    }

    /// Withdraws `who`'s waits: on `key`'s lists (if given) and for new sessions.
    pub(crate) fn forget(&self, key: Option<SessionId>, who: Waiter) {
        let mut inner = self.lock();
        inner.accept_wakers.forget(who);
        if let Some(slot) = key.and_then(|key| inner.slot(key)) {
            slot.forget(who);
        }
    }

    /// A handle to `key` was dropped (`who`: the waiter of its poll methods); the last one aborts
    /// the session (if it has not ended).
    pub(crate) fn drop_handle(&self, key: SessionId, who: Waiter) {
        let mut inner = self.lock();
        let now = inner.advance(self.clock.now());
        let Some(slot) = inner.slot(key) else { return };
        slot.forget(who);
        slot.handles = slot.handles.saturating_sub(1);
        if slot.handles > 0 || slot.queued {
            return;
        }
        let ended = slot.end.is_some();
        if !ended {
            slot.span.in_scope(|| tracing::info!("last handle dropped: aborting"));
            if let Some(s) = inner.core.session_mut(key) {
                s.abort(now);
            }
        }
        if matches!(inner.core, Core::Server(_)) {
            inner.slots.remove(&key);
        }
        let kick = inner.kick();
        drop(inner);
        kick.wake();
    }

    /// Server: the next accepted session's key (its slot now has one handle), `None` once the
    /// driver has stopped.
    pub(crate) fn poll_accept(
        &self,
        (cx, who): (&mut Context<'_>, Waiter),
    ) -> Poll<Option<SessionId>> {
        let mut inner = self.lock();
        while let Some(id) = inner.accept_queue.pop_front() {
            if let Some(slot) = inner.slot(id) {
                slot.queued = false;
                slot.handles += 1;
                return Poll::Ready(Some(id));
            }
        }
        if inner.driver_done {
            return Poll::Ready(None);
        }
        inner.accept_wakers.register(who, cx.waker());
        Poll::Pending
    }

    /// Server shard: takes a connection from another shard, or gives it back if this shard's
    /// driver has stopped.
    pub(crate) fn hand_over(&self, incoming: Incoming) -> Result<(), Incoming> {
        let mut inner = self.lock();
        if inner.driver_done {
            return Err(incoming);
        }
        inner.incoming.push(incoming);
        let kick = inner.kick();
        drop(inner);
        kick.wake();
        Ok(())
    }

    /// Server: the acceptor is gone. Queued sessions nobody accepted are aborted.
    pub(crate) fn drop_acceptor(&self) {
        let mut inner = self.lock();
        let now = inner.advance(self.clock.now());
        inner.acceptor_alive = false;
        while let Some(id) = inner.accept_queue.pop_front() {
            inner.slots.remove(&id);
            if let Some(s) = inner.core.session_mut(id) {
                s.abort(now);
            }
        }
        let kick = inner.kick();
        drop(inner);
        kick.wake();
    }
}

#[cfg(all(test, tether_loom))]
mod loom_tests;
