//! The background task that moves bytes and time between the OS and the core.
//!
//! One driver per client session and one per server (for all its sessions). It is a hand-written
//! future: each pass reads what the connections have (without the lock), feeds it to the core with
//! the lock held, drains the core's transmits and events, then writes (without the lock) and re-arms
//! one timer for the core's next deadline. It never looks inside a frame.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration as StdDuration;

use bytes::BytesMut;
use tether_core::{ConnId, FrameSink, Handoff, Instant, Transmit};

use crate::acceptor::Shards;
use crate::read_buf::ReadBuf;
use crate::runtime::{ByteStream, Connect, Connecting, Timer};
use crate::shared::{Core, Incoming, Inner, Shared};
use crate::sync::Arc;
use crate::write_queue::WriteQueue;

type BoxStream = Box<dyn ByteStream>;

/// Reads per connection per pass, so one busy connection cannot starve the others.
const READS_PER_PASS: usize = 8;
/// A client stops pulling frames from the core while this much waits to be written.
const CLIENT_WRITE_CAP: usize = 1024 * 1024;
/// How long a closed connection may take to flush its last bytes and see the peer's EOF.
const LINGER: StdDuration = StdDuration::from_secs(2);
/// Frames pulled from the core per pass before they are written: writing starts while the core
/// still has more, and handles are not locked out for a whole send window's worth of encoding.
const PASS_TRANSMIT_BYTES: usize = 64 * 1024;
/// Passes per poll before yielding to the runtime.
const PASSES_PER_POLL: usize = 32;
/// A timer armed early is moved to the later deadline once it is this close to firing (see
/// `rearm_at`). Tokio's timers tick in milliseconds.
const PUSH_BACK_WITHIN: StdDuration = StdDuration::from_millis(1);

/// One transport connection.
struct ConnIo {
    stream: BoxStream,
    /// What the core left of the input: the start of a frame not yet whole, to which the next
    /// read appends (see `ReadBuf`).
    tail: BytesMut,
    /// How many more bytes that frame needs, as the core said.
    missing: usize,
    wbuf: WriteQueue,
    /// Written since the last flush.
    unflushed: bool,
    /// The core closed it: flush, shut down, wait for EOF until this deadline, then drop.
    closing: Option<Instant>,
    shut_down: bool,
}

impl ConnIo {
    fn new(stream: BoxStream) -> ConnIo {
        ConnIo {
            stream,
            tail: BytesMut::new(),
            missing: 0,
            wbuf: WriteQueue::default(),
            unflushed: false,
            closing: None,
            shut_down: false,
        }
    }
}

/// What happened on the I/O side since the last pass.
enum IoEvent {
    Connected(ConnId),
    ConnectFailed(std::io::Error),
    /// Bytes were appended to the connection's tail.
    Input(ConnId),
    /// The connection ended; what it read last and the core has not seen is fed first.
    Lost(ConnId, BytesMut),
}

/// How the driver obtains connections.
pub(crate) enum Source {
    /// A client: connects when the core says so, giving up on an attempt after `timeout`.
    Client { connect: Connect, connecting: Option<(Connecting, Instant)>, timeout: StdDuration },
    /// One shard of a server: takes the connections the acceptor and other shards hand to it,
    /// and hands over those that resume a session of another shard.
    Server { shards: std::sync::Arc<Shards> },
}

enum Pass {
    Again,
    Idle,
    Done,
}

/// The driver future; spawn it.
pub(crate) struct Driver {
    shared: Arc<Shared>,
    source: Source,
    conns: BTreeMap<ConnId, ConnIo>,
    /// Where every connection's reads go.
    rbuf: ReadBuf,
    next_conn: u64,
    /// The runtime's timer, made at the first deadline.
    timer: Option<Pin<Box<dyn Timer>>>,
    /// What `timer` is armed for.
    timer_at: Option<Instant>,
    /// `timer` was polled (with this task's waker) since it was last armed.
    timer_polled: bool,
    scratch: WriteQueue,
    io: Vec<IoEvent>,
    wake: Vec<Waker>,
    /// Sessions whose applications took messages to acknowledge (reused between passes).
    posted: Vec<tether_core::SessionId>,
    /// Draining stopped because a write buffer was full.
    capped: bool,
    finished: bool,
}

impl Driver {
    /// A driver for `shared`.
    pub(crate) fn new(shared: Arc<Shared>, source: Source) -> Driver {
        let receive_window = shared.lock().core.config().receive_window_bytes;
        Driver {
            shared,
            source,
            conns: BTreeMap::new(),
            rbuf: ReadBuf::new(receive_window),
            next_conn: 0,
            timer: None,
            timer_at: None,
            timer_polled: false,
            scratch: WriteQueue::default(),
            io: Vec::new(),
            wake: Vec::new(),
            posted: Vec::new(),
            capped: false,
            finished: false,
        }
    }

    fn new_conn(&mut self, stream: BoxStream) -> ConnId {
        add_conn(&mut self.conns, &mut self.next_conn, &mut self.io, stream)
    }

    /// Completes a connect (client).
    fn poll_sources(&mut self, cx: &mut Context<'_>, now: Instant) {
        match &mut self.source {
            Source::Server { .. } => {}
            Source::Client { connecting, timeout, .. } => {
                if let Some((fut, give_up)) = connecting {
                    let polled = match fut.as_mut().poll(cx) {
                        Poll::Pending if *give_up <= now => Poll::Ready(Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("connect timed out after {timeout:?} (handshake_timeout)"),
                        ))),
                        polled => polled,
                    };
                    if let Poll::Ready(result) = polled {
                        *connecting = None;
                        match result {
                            Ok(stream) => {
                                let id = self.new_conn(stream);
                                tracing::debug!(conn = id.0, "connected");
                            }
                            Err(e) => {
                                tracing::debug!(error = %e, "connect failed");
                                self.io.push(IoEvent::ConnectFailed(e));
                            }
                        }
                    }
                }
            }
        }
    }

    /// Reads what every connection has, each connection's reads appended after its tail. True
    /// if a connection may have more (it used up its reads or its room for this pass); otherwise
    /// every connection's read is registered with the runtime.
    fn poll_reads(&mut self, cx: &mut Context<'_>) -> bool {
        let mut more = false;
        let mut gone = Vec::new();
        let rbuf = &mut self.rbuf;
        for (&id, c) in self.conns.iter_mut() {
            let ConnIo { stream, tail, missing, closing, .. } = c;
            let room = rbuf.room(tail, *missing);
            let (mut read_any, mut ended) = (false, false);
            for attempt in 1..=READS_PER_PASS {
                if room.len() == room.capacity() {
                    // Full: the core makes room (or says how much more the frame needs) first.
                    more = true;
                    break;
                }
                match stream.poll_read(cx, room) {
                    Poll::Ready(Ok(n)) if n > 0 => {
                        more |= attempt == READS_PER_PASS;
                        read_any = true;
                    }
                    Poll::Ready(result) => {
                        if let Err(e) = result {
                            tracing::debug!(conn = id.0, error = %e, "read failed");
                        } else {
                            tracing::debug!(conn = id.0, "end of stream");
                        }
                        ended = true;
                        break;
                    }
                    Poll::Pending => break,
                }
            }
            rbuf.take(tail);
            if closing.is_some() {
                // Closed by the core: what still arrives is dropped.
                *tail = BytesMut::new();
            }
            if ended {
                gone.push(id);
            } else if read_any && closing.is_none() {
                self.io.push(IoEvent::Input(id));
            }
        }
        for id in gone {
            self.drop_conn(id);
        }
        more
    }

    /// Forgets a connection (closing its socket); the core is told unless it closed it itself.
    fn drop_conn(&mut self, id: ConnId) {
        if let Some(c) = self.conns.remove(&id) {
            if c.closing.is_none() {
                self.io.push(IoEvent::Lost(id, c.tail));
            }
        }
    }

    /// Writes, flushes and shuts down. True if the next pass has work: a connection was shut
    /// down or dropped, or a full write buffer drained below the cap.
    fn poll_writes(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let mut progress = false;
        let mut gone = Vec::new();
        for (&id, c) in self.conns.iter_mut() {
            let before = c.wbuf.len();
            let mut failed = false;
            while !c.wbuf.is_empty() {
                match c.wbuf.poll_write(&mut *c.stream, cx) {
                    Poll::Ready(Ok(n)) if n > 0 => c.unflushed = true,
                    Poll::Ready(result) => {
                        if let Err(e) = result {
                            tracing::debug!(conn = id.0, error = %e, "write failed");
                        }
                        failed = true;
                        break;
                    }
                    Poll::Pending => break,
                }
            }
            if !failed && c.unflushed {
                match c.stream.poll_flush(cx) {
                    Poll::Ready(Ok(())) => c.unflushed = false,
                    Poll::Ready(Err(_)) => failed = true,
                    Poll::Pending => {}
                }
            }
            if !failed && c.closing.is_some() && c.wbuf.is_empty() && !c.unflushed && !c.shut_down {
                match c.stream.poll_close(cx) {
                    Poll::Ready(_) => {
                        c.shut_down = true;
                        progress = true;
                    }
                    Poll::Pending => {}
                }
            }
            if failed || c.closing.is_some_and(|t| t <= now) {
                gone.push(id);
                progress = true;
            }
            if self.capped && before >= CLIENT_WRITE_CAP && c.wbuf.len() < CLIENT_WRITE_CAP {
                progress = true;
            }
        }
        for id in gone {
            self.drop_conn(id);
        }
        progress
    }

    /// One pass: I/O in, the core, I/O out, the timer.
    fn pass(&mut self, cx: &mut Context<'_>) -> Pass {
        let now = self.shared.clock.now();
        self.poll_sources(cx, now);
        let mut again = self.poll_reads(cx);

        let mut inner = self.shared.lock();
        let now = inner.advance(now);
        let waker_changed = inner.begin_pass(cx.waker());
        self.shared.apply_posted(&mut inner, cx.waker(), &mut self.posted);
        // Connections handed over by other shards: read from the next pass on.
        again |= !inner.incoming.is_empty();
        for Incoming { stream, bytes } in inner.incoming.drain(..) {
            let id = add_conn(&mut self.conns, &mut self.next_conn, &mut self.io, stream);
            tracing::debug!(conn = id.0, "connection handed over");
            if let Some(c) = self.conns.get_mut(&id) {
                // What it sent so far (a `Hello` and little else): copied once, at handover.
                bytes.iter().for_each(|b| c.tail.extend_from_slice(b));
                self.io.push(IoEvent::Input(id));
            }
        }
        feed(&mut inner, &mut self.io, &mut self.conns, now);
        let handoffs = take_handoffs(&mut inner);
        // The core's deadline as of the end of the last pass: what handles did since can only
        // arm later deadlines (or ones this pass's end arms the timer for).
        let timed_out = inner.armed().is_some_and(|t| t <= now);
        if timed_out {
            inner.core.handle_timeout(now);
            self.rbuf.trim();
        }
        let cap = match self.source {
            Source::Client { .. } => CLIENT_WRITE_CAP,
            Source::Server { .. } => usize::MAX,
        };
        let (capped, out_of_budget) =
            pull_transmits(&mut inner, &mut self.conns, &mut self.scratch, now, cap);
        self.capped = capped;
        // Out of budget (not out of room): write what we have, then come back for more.
        again |= out_of_budget;
        let mut connect_now = false;
        if let (Core::Client(s), Source::Client { connecting: None, .. }) =
            (&mut inner.core, &self.source)
        {
            connect_now = s.poll_connect(now);
        }
        // Dispatching an event can act on the core (abort a session nobody can accept, ack a
        // message nobody will take): its output goes out in the next pass.
        again |= inner.drain_events(now, &mut self.wake);
        let finished = match &self.source {
            Source::Client { .. } => inner.client_finished(),
            Source::Server { .. } => inner.server_finished(),
        };
        let deadline = inner.core.poll_timeout();
        inner.end_pass(deadline);
        drop(inner);
        for w in self.wake.drain(..) {
            w.wake();
        }
        again |= self.hand_over(handoffs);

        if connect_now {
            self.start_connect(now);
            again = true;
        }
        again |= self.poll_writes(cx, now);
        again |= !self.io.is_empty();

        if finished {
            self.finished = true;
            // Dropping the remaining connections closes them; the core has nothing more to say.
            if self.conns.values().all(|c| c.wbuf.is_empty()) || self.conns.is_empty() {
                return Pass::Done;
            }
        }

        again |= self.arm_timer(cx, now, deadline, timed_out && !again, waker_changed);
        if again {
            Pass::Again
        } else {
            Pass::Idle
        }
    }

    /// Moves connections that resume a session of another shard there, with what they sent.
    fn hand_over(&mut self, handoffs: Vec<Handoff>) -> bool {
        let Source::Server { shards, .. } = &self.source else { return false };
        let moved = !handoffs.is_empty();
        for h in handoffs {
            if let Some(mut c) = self.conns.remove(&h.conn) {
                tracing::debug!(conn = h.conn.0, shard = h.shard, "resume handed to its shard");
                // The endpoint took what the connection sent; anything read after it follows.
                let mut bytes = h.bytes;
                if !c.tail.is_empty() {
                    bytes.push(c.tail.split().freeze());
                }
                // A shard whose driver stopped holds no session: closing the connection makes
                // the client try again.
                let _ = shards.all[h.shard as usize].hand_over(Incoming::new(c.stream, bytes));
            }
        }
        moved
    }

    /// Starts the connect the core asked for, bounded by the connect timeout.
    fn start_connect(&mut self, now: Instant) {
        if let Source::Client { connect, connecting, timeout } = &mut self.source {
            *connecting = Some((connect(), now + *timeout));
        }
    }

    /// Arms the timer for the earliest of the core's `deadline`, a lingering close and the end
    /// of a connect attempt; true if it has fired (the next pass handles it). `idle_after_timeout`:
    /// this pass only handled a timeout, so a deadline still in the past is not re-armed at once
    /// (no spinning on a core that asks to be woken in the past).
    fn arm_timer(
        &mut self,
        cx: &mut Context<'_>,
        now: Instant,
        deadline: Option<Instant>,
        idle_after_timeout: bool,
        waker_changed: bool,
    ) -> bool {
        let mut next = deadline;
        for c in self.conns.values() {
            next = earliest(next, c.closing);
        }
        if let Source::Client { connecting: Some((_, give_up)), .. } = &self.source {
            next = earliest(next, Some(*give_up));
        }
        if idle_after_timeout && next.is_some_and(|t| t <= now) {
            next = Some(now + StdDuration::from_millis(1));
        }
        if let Some(t) = rearm_at(self.timer_at, next, now) {
            self.timer_at = Some(t);
            self.timer_polled = false;
            let at = self.shared.clock.to_runtime(t);
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(at),
                None => self.timer = Some(self.shared.clock.runtime().new_timer(at)),
            }
        }
        let Some(armed) = self.timer_at else { return false };
        // Polled since it was armed, with this task's waker: it wakes the task when it fires
        // (the `Timer` contract), so polling again before the deadline would only register the
        // same waker again. That was a tokio timer registration per pass, 4 per round trip.
        if self.timer_polled && now < armed && !waker_changed {
            return false;
        }
        let Some(timer) = self.timer.as_mut() else { return false };
        self.timer_polled = true;
        if timer.as_mut().poll(cx).is_ready() {
            self.timer_at = None;
            return true;
        }
        false
    }
}

/// When to re-arm a timer armed for `armed` so that it fires by `next`, the earliest deadline
/// now; `None` leaves it as it is.
///
/// It is moved earlier at once. It is moved later only when it is about to fire (within
/// `PUSH_BACK_WITHIN` of `now`, or already due). Most passes move the core's deadline later
/// (every write pushes the heartbeat back, every reply carries the ack a delayed-ack deadline was
/// armed for), and re-arming on each would cost a timer reset per pass. But a timer left early
/// fires for nothing: a pass, and on a multi-thread runtime often a parked worker woken for it.
/// In a request-response exchange that was the delayed-ack deadline, armed when a request arrived
/// and answered by the reply, firing every `ack_delay`: on tokio's multi-thread runtime it set the
/// round trip's p99 (BENCHMARKS.md). Pushed back once it is close, it fires only when due.
fn rearm_at(armed: Option<Instant>, next: Option<Instant>, now: Instant) -> Option<Instant> {
    let next = next?;
    match armed {
        Some(armed) if next > armed && armed > now + PUSH_BACK_WITHIN => None,
        Some(armed) if next == armed => None,
        _ => Some(next),
    }
}

/// Moves the core's transmits into the connections' write buffers, at most `PASS_TRANSMIT_BYTES`
/// per pass and none for a connection whose buffer holds `cap` bytes or more. Returns whether a
/// buffer is at its cap and whether the budget ran out.
///
/// A client whose write buffer is already full pulls nothing until it drains, except while the
/// core holds the Close of a retired connection (after a timeout, an abort, a protocol error):
/// the core hands those out first, and reconnects only after them. What comes with it is one
/// more transmit, bounded like everything the core emits.
fn pull_transmits(
    inner: &mut Inner,
    conns: &mut BTreeMap<ConnId, ConnIo>,
    scratch: &mut WriteQueue,
    now: Instant,
    cap: usize,
) -> (bool, bool) {
    let mut capped = conns.values().any(|c| c.closing.is_none() && c.wbuf.len() >= cap);
    let close_pending = matches!(&inner.core, Core::Client(s) if s.has_close_pending());
    let mut budget = PASS_TRANSMIT_BYTES;
    if capped && !close_pending {
        return (true, false);
    }
    inner.drain_transmits(now, scratch, |t, bytes| {
        let (Transmit::Write(id) | Transmit::Close(id)) = t;
        budget = budget.saturating_sub(bytes.len());
        let Some(c) = conns.get_mut(&id) else {
            bytes.clear();
            return true;
        };
        c.wbuf.append(bytes);
        if let Transmit::Close(_) = t {
            tracing::debug!(conn = id.0, "closing connection");
            c.closing = Some(now + LINGER);
            return true;
        }
        let more = c.wbuf.len() < cap;
        capped |= !more;
        more && budget > 0
    });
    (capped, budget == 0 && !capped)
}

/// Feeds what happened on the I/O side to the core. Input is decoded in place in each
/// connection's tail: the core splits whole frames off (zero-copy) and leaves the start of the
/// next one there for the next read to append to, so no frame is ever copied to be joined. What
/// a pass read is fed whole: cutting it into slices (to hand the first messages to the
/// application sooner) measured slower at every message size.
fn feed(
    inner: &mut Inner,
    io: &mut Vec<IoEvent>,
    conns: &mut BTreeMap<ConnId, ConnIo>,
    now: Instant,
) {
    for event in io.drain(..) {
        match event {
            IoEvent::Connected(id) => inner.core.handle_connected(now, id),
            IoEvent::ConnectFailed(e) => {
                inner.connect_error = Some(e);
                if let Core::Client(s) = &mut inner.core {
                    s.handle_connect_failed(now);
                }
            }
            IoEvent::Input(id) => {
                if let Some(c) = conns.get_mut(&id) {
                    c.missing = inner.core.handle_input_buf(now, id, &mut c.tail);
                    if c.tail.is_empty() {
                        // An empty view still holds its buffer: let go of it.
                        c.tail = BytesMut::new();
                    }
                }
            }
            IoEvent::Lost(id, mut rest) => {
                if !rest.is_empty() {
                    inner.core.handle_input_buf(now, id, &mut rest);
                }
                inner.core.handle_disconnected(now, id);
            }
        }
    }
}

/// Registers a new connection and reports it to the core.
fn add_conn(
    conns: &mut BTreeMap<ConnId, ConnIo>,
    next_conn: &mut u64,
    io: &mut Vec<IoEvent>,
    stream: BoxStream,
) -> ConnId {
    *next_conn += 1;
    let id = ConnId(*next_conn);
    conns.insert(id, ConnIo::new(stream));
    io.push(IoEvent::Connected(id));
    id
}

/// The connections the core gave up to other shards (none for a client or a single shard).
fn take_handoffs(inner: &mut Inner) -> Vec<Handoff> {
    let mut handoffs = Vec::new();
    if let Core::Server(e) = &mut inner.core {
        while let Some(h) = e.poll_handoff() {
            handoffs.push(h);
        }
    }
    handoffs
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.finished && self.conns.is_empty() {
            return Poll::Ready(());
        }
        for _ in 0..PASSES_PER_POLL {
            match self.pass(cx) {
                Pass::Again => {}
                Pass::Idle => return Poll::Pending,
                Pass::Done => {
                    tracing::debug!("driver finished");
                    return Poll::Ready(());
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let mut wake = Vec::new();
        let now = self.shared.clock.now();
        self.shared.lock().driver_stopped(now, std::thread::panicking(), &mut wake);
        for w in wake {
            w.wake();
        }
        if let Source::Server { shards } = &self.source {
            shards.driver_finished();
        }
    }
}

#[cfg(all(test, not(tether_loom)))]
mod tests {
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll, Wake, Waker};

    use bytes::Bytes;

    use crate::runtime::{Runtime, Task, Timer};
    use crate::test_runtime::server_and_clients;
    use crate::Config;

    /// A runtime whose one spawned task the test polls by hand, with a timer that counts its
    /// polls and keeps the latest waker.
    #[derive(Default)]
    struct HandRuntime {
        task: Mutex<Option<Task>>,
        timer: Arc<Mutex<TimerLog>>,
        origin: std::sync::OnceLock<std::time::Instant>,
    }

    #[derive(Debug, Default)]
    struct TimerLog {
        polls: usize,
        waker: Option<Waker>,
    }

    #[derive(Debug)]
    struct HandTimer(Arc<Mutex<TimerLog>>);

    impl Timer for HandTimer {
        fn reset(self: Pin<&mut Self>, _: std::time::Instant) {}

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let mut log = self.0.lock().unwrap();
            log.polls += 1;
            log.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    impl std::fmt::Debug for HandRuntime {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("HandRuntime")
        }
    }

    impl Runtime for HandRuntime {
        /// Time stands still: no deadline passes during the test.
        fn now(&self) -> std::time::Instant {
            *self.origin.get_or_init(std::time::Instant::now)
        }

        fn new_timer(&self, _: std::time::Instant) -> Pin<Box<dyn Timer>> {
            Box::pin(HandTimer(self.timer.clone()))
        }

        fn spawn(&self, task: Task) {
            *self.task.lock().unwrap() = Some(task);
        }
    }

    struct NoopWake;

    impl Wake for NoopWake {
        fn wake(self: Arc<Self>) {}
    }

    /// The driver polls its timer once after arming it, not again on every pass (a timer
    /// registration per pass was a measurable share of a round trip), and again when its task's
    /// waker changes, so the timer always wakes the task as it is now.
    #[test]
    fn the_timer_is_polled_once_per_arming_and_again_for_a_new_waker() {
        let runtime = Arc::new(HandRuntime::default());
        // A connection attempt that never completes: its give-up deadline arms the timer.
        let connect: crate::runtime::Connect = Box::new(|| Box::pin(std::future::pending()));
        let session = crate::client::start(runtime.clone(), connect, Config::default()).unwrap();
        let mut driver = runtime.task.lock().unwrap().take().expect("the driver was spawned");
        let (a, b) = (Waker::from(Arc::new(NoopWake)), Waker::from(Arc::new(NoopWake)));
        let polls = || runtime.timer.lock().unwrap().polls;

        assert!(driver.as_mut().poll(&mut Context::from_waker(&a)).is_pending());
        assert_eq!(polls(), 1, "armed and polled once");
        for _ in 0..3 {
            assert!(driver.as_mut().poll(&mut Context::from_waker(&a)).is_pending());
        }
        assert_eq!(polls(), 1, "nothing re-armed the timer, the waker is the same");

        assert!(driver.as_mut().poll(&mut Context::from_waker(&b)).is_pending());
        assert_eq!(polls(), 2, "a new waker is registered with the timer");
        let registered = runtime.timer.lock().unwrap().waker.clone().unwrap();
        assert!(registered.will_wake(&b));
        drop(session);
    }

    /// The timer moves earlier at once, and later only when it is about to fire for a deadline
    /// that has since moved later (a delayed ack the reply carried): left early, it would wake
    /// the driver for nothing.
    #[test]
    fn a_timer_moves_earlier_at_once_and_later_only_when_about_to_fire() {
        use super::rearm_at;
        use tether_core::Instant;
        let ms = Instant::from_millis;
        let now = ms(100);
        assert_eq!(rearm_at(None, Some(ms(150)), now), Some(ms(150)), "first deadline");
        assert_eq!(rearm_at(Some(ms(150)), Some(ms(120)), now), Some(ms(120)), "earlier");
        assert_eq!(rearm_at(Some(ms(150)), Some(ms(150)), now), None, "unchanged");
        assert_eq!(rearm_at(Some(ms(110)), Some(ms(1100)), now), None, "later, 10 ms off: kept");
        assert_eq!(rearm_at(Some(ms(101)), Some(ms(1100)), now), Some(ms(1100)), "about to fire");
        assert_eq!(rearm_at(Some(ms(90)), Some(ms(1100)), now), Some(ms(1100)), "already due");
        assert_eq!(rearm_at(Some(ms(150)), None, now), None, "no deadline: left as it is");
    }

    /// A request-response exchange answers each delayed ack with its reply, so no driver's timer
    /// fires for one. Left armed for an answered ack, the timer woke the driver every
    /// `ack_delay` (10 ms) on both ends.
    #[tokio::test(start_paused = true)]
    async fn answered_delayed_acks_fire_no_timer() {
        let (server, client) =
            crate::test_runtime::pair(Config::default(), Config::default()).await;
        let session = server.accept().await.unwrap();
        let echo = tokio::spawn(async move {
            while let Some(m) = session.recv().await {
                session.send(m.payload).await.unwrap();
            }
        });
        client.send(Bytes::from_static(b"hello")).await.unwrap();
        client.recv().await.unwrap();
        let before = crate::test_runtime::timer_fires();
        // 100 ms of requests, one every 100 µs: ten delayed-ack periods.
        for _ in 0..1_000 {
            client.send(Bytes::from_static(b"ping")).await.unwrap();
            assert_eq!(&client.recv().await.unwrap().payload[..], b"ping");
            tokio::time::advance(std::time::Duration::from_micros(100)).await;
        }
        assert_eq!(crate::test_runtime::timer_fires() - before, 0, "a timer fired");
        drop(client);
        echo.abort();
    }

    /// Payload `i` of client `c`: sizes around and past the read buffer's reserve and room, so
    /// frames are completed in place, from the reserve, moved to the next buffer and to buffers
    /// of their own; every byte says who sent it.
    fn payload(c: usize, i: usize) -> Bytes {
        let sizes = [65_536, 100, 70_000, 300_000, 1, 65_000, 140_000, 5_000];
        let len = sizes[(i + c) % sizes.len()];
        Bytes::from((0..len).map(|k| (c * 31 + i * 7 + k) as u8).collect::<Vec<u8>>())
    }

    /// Several clients send large and small messages at once to one server whose reads are cut
    /// at an odd size: the shard's connections interleave in its read buffer, tails are left
    /// behind and moved, and every message arrives whole and in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn interleaved_connections_with_cut_reads_deliver_every_message_intact() {
        let (clients, messages) = (4, 24);
        for max_read in [usize::MAX, 9_973] {
            let (server, sessions) =
                server_and_clients(Config::default(), Config::default(), clients, max_read).await;
            let senders: Vec<_> = sessions
                .into_iter()
                .enumerate()
                .map(|(c, s)| {
                    tokio::spawn(async move {
                        s.send(Bytes::from(vec![c as u8])).await.unwrap();
                        for i in 0..messages {
                            s.send(payload(c, i)).await.unwrap();
                        }
                        s
                    })
                })
                .collect();
            let mut receivers = Vec::new();
            for _ in 0..clients {
                let session = server.accept().await.unwrap();
                receivers.push(tokio::spawn(async move {
                    let c = session.recv().await.unwrap().payload[0] as usize;
                    for i in 0..messages {
                        let m = session.recv().await.unwrap();
                        assert_eq!(m.seq, i as u64 + 1);
                        assert!(m.payload == payload(c, i), "client {c} message {i} damaged");
                    }
                    c
                }));
            }
            let mut seen = Vec::new();
            for r in receivers {
                seen.push(r.await.unwrap());
            }
            seen.sort();
            assert_eq!(seen, (0..clients).collect::<Vec<_>>(), "max_read {max_read}");
            for s in senders {
                drop(s.await.unwrap());
            }
        }
    }
}

/// The driver over streams that cut reads, hold writes until a flush, take nothing, stay full
/// for a while, or are refused by the server, and with small writes for many connections.
#[cfg(all(test, not(tether_loom)))]
mod stream_tests;
