//! The application's handle to one session.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tether_core::{AckError, SendError, SessionId, SessionState, Stats};

use crate::shared::{new_waiter, Batch, End, LinkEvent, Message, Shared, Waiter};
use crate::sync::{Arc, Mutex};
use crate::Error;

/// A handle to one tether session (client or server side).
///
/// Handles are `Send + Sync` and cheap to clone; every clone refers to the same session. Messages go
/// out with [`send`](Self::send) (which waits while the unconfirmed buffer is full) or
/// [`try_send`](Self::try_send), come in with [`recv`](Self::recv), and the session ends with
/// [`close`](Self::close) (clean: everything delivered both ways) or [`abort`](Self::abort).
/// [`send_many`](Self::send_many) and [`recv_many`](Self::recv_many) move batches under one lock:
/// use them for many small messages.
/// [`Session`] also implements `futures` [`Stream`](futures_core::Stream) (of [`Message`]) and
/// [`Sink<Bytes>`](futures_sink::Sink), for code written against the `futures` traits:
///
/// ```no_run
/// # async fn demo(mut session: tether_async::Session) -> Result<(), tether_async::Error> {
/// use bytes::Bytes;
/// use futures_util::{stream, SinkExt, StreamExt};
///
/// // Sink: forward a stream of payloads (waiting on backpressure), then close cleanly;
/// // `SinkExt::close` fails with `Error::Ended` if anything was lost.
/// let mut payloads = stream::iter(["a", "b", "c"]).map(|s| Ok(Bytes::from(s)));
/// session.send_all(&mut payloads).await?;
/// SinkExt::close(&mut session).await?;
/// // Stream: the peer's messages, up to the end of the session.
/// let sizes: Vec<usize> = session.map(|m| m.payload.len()).collect().await;
/// # let _ = sizes;
/// # Ok(()) }
/// ```
///
/// Receiving acknowledges: a message is confirmed to the peer when the application takes it with
/// `recv` (or, with `AckMode::Manual`, when it calls [`ack`](Self::ack)), not when it reaches this
/// process. (`recv` takes every waiting message into a batch shared by the handle's clones and
/// hands them out one by one without locking the session; the session's driver acknowledges the
/// ones taken on its next pass.) An application that stops receiving therefore slows the peer's sender down through
/// backpressure; nothing piles up unbounded.
///
/// The examples on this page leave out the `use` lines of this layer's types (`End`,
/// `SendError`, `LinkEvent`, ...): import them from your binding (`tether_tokio::End`,
/// `tether_smol::End`), which re-exports them.
///
/// **Dropping**: when the last handle to a session is dropped before the session ended, the session
/// is *aborted*: the peer's application sees `Lost` with reason `ApplicationAbort`, and messages not
/// yet confirmed are discarded. To finish cleanly, `close().await` first. (A server session that
/// was never accepted is aborted when the `Server` is dropped.)
///
/// **The driver's runtime**: the session's driver task runs on the runtime `connect` or `bind` was
/// called on. If that runtime shuts down first, the session ends here as if aborted: `Lost` with
/// reason `ApplicationAbort` and every unconfirmed message, and later sends are refused. The peer
/// is not told (nothing is written any more): it sees the connection go and, after its
/// `session_timeout`, ends its side too.
#[derive(Debug)]
pub struct Session {
    shared: Arc<Shared>,
    key: SessionId,
    /// The waiter of this handle's poll methods (`Stream`, `Sink`, `poll_recv`, ...).
    who: Waiter,
    /// A message handed to the `Sink` and not yet taken by the core.
    sink_pending: Option<Bytes>,
    /// Received messages taken from the inbox in one go, shared with every clone.
    batch: Arc<Mutex<Batch>>,
}

/// One wait of an async method: its own waiter token, withdrawn if the future is dropped while it
/// waits (so a `recv` under a timeout leaves no waker behind).
///
/// The token is the wait's address at its first poll: a `Wait` lives in its async method's
/// (pinned) future, so no two live waits share it, and [`new_waiter`]'s tokens have the top bit
/// set, which no address has. (Taking a token from `new_waiter` for every `send` and `recv` was
/// a visible share of a 64 B stream's profile.)
pub(crate) struct Wait<'a> {
    shared: &'a Shared,
    key: Option<SessionId>,
    who: Option<Waiter>,
    waiting: bool,
}

impl<'a> Wait<'a> {
    pub(crate) fn new(shared: &'a Shared, key: Option<SessionId>) -> Wait<'a> {
        Wait { shared, key, who: None, waiting: false }
    }

    /// Polls `f` with this wait's token, remembering whether it left a registration behind.
    pub(crate) fn poll<T>(
        &mut self,
        cx: &mut Context<'_>,
        f: impl FnOnce((&mut Context<'_>, Waiter)) -> Poll<T>,
    ) -> Poll<T> {
        let address = std::ptr::from_ref(self) as usize as Waiter;
        let who = *self.who.get_or_insert(address);
        let poll = f((cx, who));
        self.waiting = poll.is_pending();
        poll
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(who) = self.who.filter(|_| self.waiting) {
            self.shared.forget(self.key, who);
        }
    }
}

impl Session {
    pub(crate) fn new(shared: Arc<Shared>, key: SessionId) -> Session {
        let batch = Arc::new(Mutex::new(shared.new_batch(key)));
        Session::with_batch(shared, key, batch)
    }

    fn with_batch(shared: Arc<Shared>, key: SessionId, batch: Arc<Mutex<Batch>>) -> Session {
        Session { shared, key, who: new_waiter(), sink_pending: None, batch }
    }

    /// A wait of one async method on this session.
    fn wait(&self) -> Wait<'_> {
        Wait::new(&self.shared, Some(self.key))
    }

    /// The session's id, once the server has issued it.
    pub fn id(&self) -> Option<SessionId> {
        self.shared.session_id(self.key)
    }

    /// Sends `payload`, waiting while the unconfirmed buffer is full. Returns its sequence number.
    ///
    /// Fails (handing the message back) if it is larger than the peer accepts, or the session is
    /// closing or has ended. Cancel-safe: if the future is dropped before it completes, the message
    /// was not sent.
    ///
    /// ```no_run
    /// # async fn demo(session: tether_async::Session) -> Result<(), tether_async::Error> {
    /// use bytes::Bytes;
    /// # use tether_async::SendError;
    ///
    /// let seq = session.send(Bytes::from_static(b"hello")).await?; // 0, 1, 2, ...
    /// let large = Bytes::from(vec![0; 64 << 20]);
    /// match session.send(large).await {
    ///     Ok(_) => {}
    ///     Err(SendError::TooLarge { payload, max }) => {
    ///         eprintln!("{} bytes is above {max}: split it", payload.len());
    ///     }
    ///     Err(e) => return Err(e.into()),
    /// }
    /// # let _ = seq;
    /// # Ok(()) }
    /// ```
    pub async fn send(&self, payload: Bytes) -> Result<u64, SendError> {
        let mut payload = Some(payload);
        let mut wait = self.wait();
        poll_fn(|cx| wait.poll(cx, |w| self.shared.poll_send(self.key, Some(w), &mut payload)))
            .await
    }

    /// Sends every message of `queue`, front first, waiting while the unconfirmed buffer is full;
    /// returns the sequence number of the last one sent (`None` if `queue` was empty). Takes the
    /// session's lock once per batch instead of once per message: the way to send many small
    /// messages fast.
    ///
    /// On return `queue` holds exactly the messages not sent: empty on success; on an error, the
    /// refused message is in the error and the ones after it are still queued. Cancel-safe in
    /// the same sense: if the future is dropped, the messages still in `queue` were not sent.
    ///
    /// ```no_run
    /// # async fn demo(session: tether_async::Session) -> Result<(), tether_async::Error> {
    /// use std::collections::VecDeque;
    /// use bytes::Bytes;
    ///
    /// let mut queue: VecDeque<Bytes> = (0..1000u32).map(|i| Bytes::from(i.to_string())).collect();
    /// let last = session.send_many(&mut queue).await?;
    /// assert!(queue.is_empty());
    /// # let _ = last;
    /// # Ok(()) }
    /// ```
    pub async fn send_many(&self, queue: &mut VecDeque<Bytes>) -> Result<Option<u64>, SendError> {
        let mut last = None;
        let mut wait = self.wait();
        poll_fn(|cx| wait.poll(cx, |w| self.shared.poll_send_many(self.key, w, queue, &mut last)))
            .await?;
        Ok(last)
    }

    /// Sends `payload` if the session takes it now; [`SendError::Backpressure`] hands it back
    /// when the unconfirmed buffer is full.
    ///
    /// ```no_run
    /// # fn demo(session: tether_async::Session) -> Result<(), tether_async::Error> {
    /// use bytes::Bytes;
    /// # use tether_async::SendError;
    ///
    /// // A sample that may be skipped when the peer falls behind (from a non-async context, say).
    /// match session.try_send(Bytes::from_static(b"sample")) {
    ///     Ok(_seq) => {}
    ///     Err(SendError::Backpressure(_skipped)) => {} // the next sample will do
    ///     Err(e) => return Err(e.into()),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn try_send(&self, payload: Bytes) -> Result<u64, SendError> {
        match self.shared.poll_send(self.key, None, &mut Some(payload)) {
            Poll::Ready(r) => r,
            Poll::Pending => unreachable_pending(),
        }
    }

    /// Polls for room to send a message of `len` bytes; `Ready` also when sending would fail for
    /// a reason waiting cannot change (closing, ended, `len` above the maximum message size): the
    /// following `send` reports it.
    pub fn poll_send_ready(&self, cx: &mut Context<'_>, len: usize) -> Poll<()> {
        if self.shared.poll_send_ready(self.key, (cx, self.who), len) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// The next message from the peer, in order; `None` once the session has ended and every
    /// message received before the end was taken. Cancel-safe.
    ///
    /// ```no_run
    /// # async fn demo(session: tether_async::Session) {
    /// while let Some(message) = session.recv().await {
    ///     println!("#{}: {} bytes", message.seq, message.payload.len());
    /// }
    /// // The session has ended: `ended()` says how.
    /// let end = session.ended().await;
    /// # let _ = end;
    /// # }
    /// ```
    pub async fn recv(&self) -> Option<Message> {
        let mut wait = self.wait();
        poll_fn(|cx| wait.poll(cx, |w| self.shared.poll_recv(self.key, &self.batch, Some(w)))).await
    }

    /// Waits for at least one message, then appends up to `limit` waiting messages to `out`, in
    /// order, and returns how many. Returns 0 once the session has ended and every message was
    /// taken (or if `limit` is 0). Acknowledges the whole batch at once (unless acks are manual):
    /// the way to receive many small messages fast. Cancel-safe.
    ///
    /// ```no_run
    /// # async fn demo(session: tether_async::Session) {
    /// let mut batch = Vec::with_capacity(256);
    /// while session.recv_many(&mut batch, 256).await > 0 {
    ///     for message in batch.drain(..) {
    ///         let _ = message.payload; // process
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn recv_many(&self, out: &mut Vec<Message>, limit: usize) -> usize {
        let mut wait = self.wait();
        let batch = &self.batch;
        poll_fn(|cx| wait.poll(cx, |w| self.shared.poll_recv_many(self.key, batch, w, out, limit)))
            .await
    }

    /// Polls for the next message (see [`recv`](Self::recv)).
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.shared.poll_recv(self.key, &self.batch, Some((cx, self.who)))
    }

    /// The next message if one is waiting (acknowledged as [`recv`](Self::recv)'s are); `None`
    /// if none is, or the session has ended.
    ///
    /// ```no_run
    /// # fn demo(session: tether_async::Session) {
    /// // Once per frame of a game loop, say: take what has arrived, never wait.
    /// while let Some(message) = session.try_recv() {
    ///     let _ = message.payload; // apply
    /// }
    /// # }
    /// ```
    pub fn try_recv(&self) -> Option<Message> {
        match self.shared.poll_recv(self.key, &self.batch, None) {
            Poll::Ready(m) => m,
            Poll::Pending => None,
        }
    }

    /// With `AckMode::Manual` in the config: acknowledges every received message up to and
    /// including `seq` (after the application has durably processed them). Only acknowledged
    /// messages are confirmed to the peer. Acks are cumulative: acknowledging a message
    /// acknowledges every one before it. Fails with [`AckError::NotManual`] without
    /// `AckMode::Manual`, and with [`AckError::NotDelivered`] for a message not received yet;
    /// after the end there is nothing to acknowledge, and it succeeds.
    ///
    /// ```no_run
    /// # async fn demo(session: tether_async::Session) -> Result<(), tether_async::Error> {
    /// # fn store(_: &[u8]) -> std::io::Result<()> { Ok(()) }
    /// // The session was started with `Config { ack_mode: AckMode::Manual, .. }`.
    /// while let Some(message) = session.recv().await {
    ///     store(&message.payload).expect("stored durably");
    ///     session.ack(message.seq)?; // only now is the message confirmed to the sender
    /// }
    /// # Ok(()) }
    /// ```
    pub fn ack(&self, seq: u64) -> Result<(), AckError> {
        self.shared.ack(self.key, seq)
    }

    /// Closes the session cleanly and waits for the end: [`End::Closed`] when every message of both
    /// directions was delivered and acknowledged, otherwise [`End::Lost`] with the unconfirmed
    /// messages (e.g. after `close_timeout`). No new sends are accepted once it started.
    ///
    /// The peer's messages that the application has not taken yet, and those still arriving, do
    /// not hold the close up: the close takes them into this handle (they count as delivered,
    /// and are acknowledged), and [`recv`](Self::recv) returns them, in order, after `close`
    /// returned, then `None`. Up to one receive window of them is held so; beyond it the close
    /// waits for `recv` to take some. With [`AckMode::Manual`](tether_core::AckMode::Manual) only
    /// the application's acks confirm messages, so the close waits for them (up to
    /// `close_timeout`): ack what was received, or abort.
    ///
    /// ```no_run
    /// # async fn demo(session: tether_async::Session) {
    /// # use tether_async::End;
    /// match session.close().await {
    ///     End::Closed => {
    ///         while let Some(m) = session.recv().await {
    ///             let _ = m; // the peer's last messages, delivered before the close completed
    ///         }
    ///     }
    ///     End::Lost { reason, unconfirmed } => {
    ///         eprintln!("{} messages may not have arrived ({reason})", unconfirmed.len());
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn close(&self) -> End {
        let mut wait = self.wait();
        poll_fn(|cx| wait.poll(cx, |w| self.shared.poll_close(self.key, &self.batch, w))).await
    }

    /// Ends the session at once. The end is [`End::Lost`] (reason `ApplicationAbort`) with every
    /// unconfirmed message; the peer learns of it if a connection is up.
    ///
    /// ```no_run
    /// # async fn demo(session: tether_async::Session) {
    /// # use tether_async::End;
    /// session.abort();
    /// if let End::Lost { reason, unconfirmed } = session.ended().await {
    ///     // `ApplicationAbort`, unless the session had ended otherwise before.
    ///     eprintln!("{reason}: {} messages were never confirmed", unconfirmed.len());
    /// }
    /// # }
    /// ```
    pub fn abort(&self) {
        self.shared.abort(self.key);
    }

    /// Waits until the session has ended (however it ended) and returns how; at once if it has.
    /// Every clone waiting gets the same answer.
    ///
    /// ```no_run
    /// # async fn demo(session: tether_async::Session, next: tether_async::Session) -> Result<(), tether_async::Error> {
    /// # use tether_async::End;
    /// if let End::Lost { reason, unconfirmed } = session.ended().await {
    ///     eprintln!("session lost: {reason}");
    ///     // Unconfirmed is not "not arrived": resend on a new session, idempotently.
    ///     for message in unconfirmed {
    ///         next.send(message.payload).await?;
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn ended(&self) -> End {
        let mut wait = self.wait();
        poll_fn(|cx| wait.poll(cx, |w| self.shared.poll_end(self.key, w))).await
    }

    /// The next change of transport connection ([`LinkEvent::Disconnected`] /
    /// [`LinkEvent::Resumed`]); `None` once the session ended. Up to 64 are kept; older ones are
    /// dropped if nobody takes them.
    ///
    /// ```no_run
    /// # async fn demo(session: tether_async::Session) {
    /// # use tether_async::LinkEvent;
    /// while let Some(event) = session.next_link_event().await {
    ///     match event {
    ///         LinkEvent::Disconnected { reason } => eprintln!("link down ({reason}), resuming"),
    ///         LinkEvent::Resumed => eprintln!("link up again"),
    ///         _ => {} // more kinds may come
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn next_link_event(&self) -> Option<LinkEvent> {
        let mut wait = self.wait();
        poll_fn(|cx| wait.poll(cx, |w| self.shared.poll_link(self.key, w))).await
    }

    /// Counters and estimates: rtt, bytes, replays, reconnects, unconfirmed messages. A snapshot;
    /// after the end, the session's last counters.
    ///
    /// ```no_run
    /// # fn demo(session: tether_async::Session) {
    /// let stats = session.stats();
    /// if let Some(rtt) = stats.rtt {
    ///     println!("rtt {rtt:?}, {} unconfirmed", stats.unconfirmed_messages);
    /// }
    /// println!("{} reconnects, {} messages replayed", stats.reconnects, stats.replayed_messages);
    /// # }
    /// ```
    pub fn stats(&self) -> Stats {
        self.shared.stats(self.key, &self.batch)
    }

    /// Connected, detached (reconnecting) or ended.
    ///
    /// ```no_run
    /// # fn demo(session: tether_async::Session) {
    /// # use tether_async::SessionState;
    /// let healthy = session.state() == SessionState::Connected; // for a health check, say
    /// # let _ = healthy;
    /// # }
    /// ```
    pub fn state(&self) -> SessionState {
        self.shared.state(self.key)
    }

    /// Client side: waits until the first handshake completed.
    /// Why the latest connection attempt failed, as the OS said (taken: asked once).
    pub(crate) fn take_connect_error(&self) -> Option<std::io::Error> {
        self.shared.lock().connect_error.take()
    }

    pub(crate) async fn connected(&self) -> Result<(), End> {
        let mut wait = self.wait();
        poll_fn(|cx| wait.poll(cx, |w| self.shared.poll_connected(self.key, w))).await
    }

    fn poll_sink_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.sink_pending.is_none() {
            return Poll::Ready(Ok(()));
        }
        match self.shared.poll_send(self.key, Some((cx, self.who)), &mut self.sink_pending) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(_)) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(Error::Send(e))),
        }
    }
}

fn unreachable_pending() -> Result<u64, SendError> {
    // poll_send without a context never returns Pending; keep a defined answer anyway.
    Err(SendError::Ended(Bytes::new()))
}

impl Clone for Session {
    fn clone(&self) -> Session {
        self.shared.add_handle(self.key);
        Session::with_batch(self.shared.clone(), self.key, self.batch.clone())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shared.drop_handle(self.key, self.who);
    }
}

impl futures_core::Stream for Session {
    type Item = Message;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.shared.poll_recv(self.key, &self.batch, Some((cx, self.who)))
    }
}

/// `poll_ready` waits for room (backpressure), `start_send` hands the message over, `poll_flush`
/// completes once the core has taken it (delivery is tracked by confirmations, not by flushing),
/// and `poll_close` closes the session cleanly: it fails with [`Error::Ended`] if the session ended
/// otherwise than `Closed`.
///
/// A message that met backpressure in `start_send` is held by this handle until a `poll_ready`,
/// `poll_flush` or `poll_close` hands it to the core: as with any `Sink`, flush (or close) before
/// dropping the handle, or that message is dropped with it without being sent.
impl futures_sink::Sink<Bytes> for Session {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_sink_pending(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Bytes) -> Result<(), Error> {
        let this = self.get_mut();
        let mut item = Some(item);
        match this.shared.poll_send(this.key, None, &mut item) {
            Poll::Ready(Ok(_)) => Ok(()),
            Poll::Ready(Err(SendError::Backpressure(p))) => {
                this.sink_pending = Some(p);
                Ok(())
            }
            Poll::Ready(Err(e)) => Err(Error::Send(e)),
            // Not returned without a context; the message would be back in `item`.
            Poll::Pending => {
                this.sink_pending = item;
                Ok(())
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_sink_pending(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        match this.poll_sink_pending(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        match this.shared.poll_close(this.key, &this.batch, (cx, this.who)) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(End::Closed) => Poll::Ready(Ok(())),
            Poll::Ready(end) => Poll::Ready(Err(Error::Ended(end))),
        }
    }
}

#[cfg(all(test, not(tether_loom)))]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;

    use bytes::Bytes;

    use super::inbox_holds;
    use crate::shared::new_waiter;
    use crate::test_runtime::{pair, within};
    use crate::{Config, SendError};

    #[test]
    fn waiter_tokens_are_unique_across_threads_and_blocks() {
        let per_thread = 70_000; // more than one block of 2^16
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(move || {
                    (0..per_thread).map(|_| new_waiter()).collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all = std::collections::HashSet::new();
        for t in threads {
            for token in t.join().unwrap() {
                assert!(all.insert(token), "token {token} handed out twice");
                // The top bit keeps them apart from `Wait`'s tokens, which are addresses.
                assert_ne!(token >> 63, 0, "token {token:#x} could equal an address");
            }
        }
    }

    /// A send waiting on backpressure that ends refused (the session started closing) leaves no
    /// wait behind, and `poll_send_ready` is ready whenever waiting cannot help: while closing,
    /// or for a message above the maximum size.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_send_leaves_no_wait_and_send_readiness_says_when_waiting_is_useless() {
        let cfg = Config { max_unconfirmed_messages: 2, ..Config::default() };
        let (server, client) = pair(Config::default(), cfg).await;
        let _unread = server.accept().await.unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        let too_large = 2 * 1024 * 1024;
        assert!(client.poll_send_ready(&mut cx, too_large).is_ready(), "too large: no use waiting");
        for i in 0..2u8 {
            client.send(Bytes::from(vec![i])).await.unwrap();
        }
        assert!(client.poll_send_ready(&mut cx, 1).is_pending(), "full: waits for room");
        let mut send = pin!(client.send(Bytes::from_static(b"waits")));
        assert!(send.as_mut().poll(&mut cx).is_pending());
        let closer = client.clone();
        let close = tokio::spawn(async move { closer.close().await });
        while !client.poll_send_ready(&mut cx, 1).is_ready() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let refused = send.as_mut().poll(&mut cx);
        assert!(matches!(refused, Poll::Ready(Err(SendError::Closing(_)))), "{refused:?}");
        // Nothing of the send or of poll_send_ready is left waiting to send.
        assert_eq!(client.shared.waits(client.key)[1], 0);
        close.abort();
    }

    /// Waits abandoned by their futures (each `recv` under a timeout, in a task of its own) leave
    /// no waker behind, and more live waiters than any small list would hold all get their
    /// message (no cap that makes them wake each other).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn abandoned_waits_leave_nothing_and_many_live_waits_all_complete() {
        let (server, client) = pair(Config::default(), Config::default()).await;
        let session = server.accept().await.unwrap();
        let abandoned: Vec<_> = (0..200)
            .map(|_| {
                let s = session.clone();
                tokio::spawn(async move {
                    tokio::time::timeout(Duration::from_millis(1), s.recv()).await.is_err()
                })
            })
            .collect();
        for t in abandoned {
            assert!(t.await.unwrap(), "nothing was sent, so every recv timed out");
        }
        assert_eq!(session.shared.waits(session.key), [0; 4]);

        let live: Vec<_> = (0..100)
            .map(|_| {
                let s = session.clone();
                tokio::spawn(async move { s.recv().await.map(|m| m.payload) })
            })
            .collect();
        // Every task waits, each registered once.
        let mut waits = 0;
        for _ in 0..1000 {
            waits = session.shared.waits(session.key)[0];
            if waits == 100 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(waits, 100);
        for i in 0..100u8 {
            client.send(Bytes::from(vec![i])).await.unwrap();
        }
        let mut got = Vec::new();
        for t in live {
            got.push(tokio::time::timeout(Duration::from_secs(10), t).await.unwrap().unwrap());
        }
        got.sort();
        assert_eq!(got, (0..100u8).map(|i| Some(Bytes::from(vec![i]))).collect::<Vec<_>>());
        assert_eq!(session.shared.waits(session.key), [0; 4]);
    }

    /// Clones of a handle share one batch of received messages: taken in turn, concurrently, or
    /// in batches, every message arrives once and each clone sees its messages in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clones_share_the_received_batch_in_order_and_lose_nothing() {
        let (server, client) = pair(Config::default(), Config::default()).await;
        let a = server.accept().await.unwrap();
        let b = a.clone();
        let n = 3000u32;
        for i in 0..n {
            client.send(Bytes::from(i.to_be_bytes().to_vec())).await.unwrap();
        }
        let seq = |m: crate::Message| u32::from_be_bytes(m.payload[..].try_into().unwrap());
        // In turn: a takes a batch's first message, b the next: one order.
        for i in 0..100 {
            let h = if i % 2 == 0 { &a } else { &b };
            assert_eq!(seq(h.recv().await.unwrap()), i);
        }
        // Concurrently, and with recv_many: every message once, each clone in order.
        let take = |h: crate::Session, many: bool| {
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut out = Vec::new();
                while got.len() < 1400 {
                    if many {
                        h.recv_many(&mut out, 7).await;
                        got.extend(out.drain(..).map(seq));
                    } else {
                        got.push(seq(h.recv().await.unwrap()));
                    }
                }
                (h, got)
            })
        };
        let (ta, tb) = (take(a, false), take(b, true));
        let (a, mut got) = ta.await.unwrap();
        let (_b, got_b) = tb.await.unwrap();
        assert!(got.windows(2).all(|w| w[0] < w[1]) && got_b.windows(2).all(|w| w[0] < w[1]));
        got.extend(got_b);
        while got.len() < (n - 100) as usize {
            got.push(seq(a.recv().await.unwrap()));
        }
        got.sort_unstable();
        assert_eq!(got, (100..n).collect::<Vec<_>>());
        assert!(a.try_recv().is_none());
    }

    /// Messages taken one by one from a batch are acknowledged without further takes: the peer's
    /// full window reopens by exactly what was taken while the rest waits in the batch, and once
    /// the rest is taken the peer's close completes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn taken_messages_are_acknowledged_while_the_rest_of_the_batch_waits() {
        let tight = Config { max_unconfirmed_messages: 8, ..Config::default() };
        let (server, client) = pair(Config::default(), tight).await;
        let session = server.accept().await.unwrap();
        for i in 0..8u8 {
            client.send(Bytes::from(vec![i])).await.unwrap();
        }
        let full = client.try_send(Bytes::from_static(b"full"));
        assert!(matches!(full, Err(SendError::Backpressure(_))), "{full:?}");
        // Wait until all 8 wait on this side, then take 3 of them (the batch keeps the other 5).
        inbox_holds(&session, 8).await;
        for i in 0..3u8 {
            assert_eq!(session.recv().await.unwrap().payload, Bytes::from(vec![i]));
        }
        // The 3 are acknowledged though nothing more is taken: the sender's window reopens.
        within(
            async {
                while client.stats().unconfirmed_messages > 5 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            },
            "the taken messages are acknowledged",
        )
        .await;
        assert_eq!(client.stats().unconfirmed_messages, 5);
        let closer = client.clone();
        let close = tokio::spawn(async move { closer.close().await });
        for i in 3..8u8 {
            assert_eq!(session.recv().await.unwrap().payload, Bytes::from(vec![i]));
        }
        let end = within(close, "the close completes").await.unwrap();
        assert_eq!(end, crate::End::Closed);
    }
}

/// Waits (at most 20 s) until `n` messages wait in `session`'s inbox, taken by no handle yet.
#[cfg(all(test, not(tether_loom)))]
async fn inbox_holds(session: &Session, n: usize) {
    crate::test_runtime::within(
        async {
            while session.shared.lock().slots.get(&session.key).map_or(0, |s| s.inbox_len()) < n {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        },
        "the messages arrive",
    )
    .await;
}

/// Tests of the shared state (`shared.rs`) through the handles.
#[cfg(all(test, not(tether_loom)))]
mod shared_tests;
