//! The runtime boundary: everything the async layer needs from an async runtime, and nothing else.
//!
//! A binding (tether-tokio, tether-smol) implements [`Runtime`] for its runtime and wraps its
//! streams in [`ByteStream`]; the driver, handles, reconnect loop and server routing are written
//! once against these traits. Datagram mode will add a datagram socket trait beside [`ByteStream`],
//! reached the same way.

use std::fmt::Debug;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::BytesMut;

/// A future the runtime runs to completion in the background.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// An async runtime as tether uses it: its clock, its timers, and spawning.
///
/// Time comes only from here. A binding reads its runtime's clock (tokio's, which paused time and
/// turmoil drive; async-io's on smol), so a session behaves the same in a simulation as on real
/// sockets, and nothing in tether reads the wall clock or runs a thread of its own.
pub trait Runtime: Send + Sync + Debug + 'static {
    /// The runtime's current time. Never goes backwards.
    fn now(&self) -> Instant;

    /// A timer that fires once `deadline` (of [`now`](Self::now)'s clock) has passed.
    fn new_timer(&self, deadline: Instant) -> Pin<Box<dyn Timer>>;

    /// Runs `task` in the background on this runtime.
    fn spawn(&self, task: Task);

    /// How many tasks can run at once (worker threads): a server splits its sessions over this
    /// many shards, each driven by a task of its own. The default is one.
    fn parallelism(&self) -> usize {
        1
    }
}

/// A runtime's timer: armed for one deadline at a time.
pub trait Timer: Send + Debug {
    /// Re-arms the timer for `deadline`, replacing the previous one (fired or not).
    fn reset(self: Pin<&mut Self>, deadline: Instant);

    /// Ready once the deadline has passed (and again on every poll until it is reset); otherwise
    /// the waker of the latest poll is woken then. The driver relies on that: after arming the
    /// timer it polls it once, and again only at or after the deadline or when its task's waker
    /// changed.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()>;
}

/// A byte stream a session runs over (TCP, TLS, a Unix socket, an in-memory pipe), as the driver
/// uses it. Bindings implement it for their runtime's I/O traits; applications use the bindings'
/// own entry points and never need to name it.
pub trait ByteStream: Send + Unpin + 'static {
    /// Reads into the spare capacity of `buf` (appending; never more than its spare capacity).
    /// `Ok(0)` is the end of the stream.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>>;

    /// Writes from `buf`; `Ok(n)` bytes were taken.
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;

    /// Writes from several buffers in order, as one write where the stream can.
    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>>;

    /// True if [`poll_write_vectored`](Self::poll_write_vectored) writes more than the first
    /// buffer; otherwise the driver writes one contiguous copy instead.
    fn is_write_vectored(&self) -> bool;

    /// Flushes what was written.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Shuts down the writing half (flushing first).
    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// A connection attempt in progress.
pub type Connecting = Pin<Box<dyn Future<Output = io::Result<Box<dyn ByteStream>>> + Send>>;

/// How a client opens transport connections: called once per attempt.
pub type Connect = Box<dyn FnMut() -> Connecting + Send>;

/// Opens transport connections for a client: called once per connection attempt.
///
/// Implemented for every `FnMut() -> impl Future<Output = io::Result<S>>`; a binding accepts the
/// connectors whose `Stream` is one of its runtime's streams (`AsyncRead + AsyncWrite` in its
/// terms: TCP, TLS, a Unix socket, a simulated network, an in-memory pipe, ...).
///
/// A connector keeps state across attempts; here it fails over between servers, each attempt
/// trying the next one:
///
/// ```no_run
/// use std::future::Future;
/// use std::io;
/// # use tether_async::Connector;
///
/// fn round_robin<S, F>(
///     addrs: Vec<String>,
///     open: impl Fn(String) -> F + Send + 'static,
/// ) -> impl Connector<Stream = S>
/// where
///     S: Send + 'static,
///     F: Future<Output = io::Result<S>> + Send + 'static,
/// {
///     let mut attempt = 0;
///     move || {
///         let addr = addrs[attempt % addrs.len()].clone();
///         attempt += 1;
///         open(addr)
///     }
/// }
/// // With tether-tokio:
/// // tether_tokio::connect_with(round_robin(addrs, tokio::net::TcpStream::connect), config)
/// ```
pub trait Connector: Send + 'static {
    /// The stream a successful attempt yields.
    type Stream: Send + 'static;
    /// The attempt.
    type Future: Future<Output = io::Result<Self::Stream>> + Send + 'static;
    /// Starts one connection attempt.
    fn connect(&mut self) -> Self::Future;
}

impl<F, Fut, S> Connector for F
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = io::Result<S>> + Send + 'static,
    S: Send + 'static,
{
    type Stream = S;
    type Future = Fut;

    fn connect(&mut self) -> Fut {
        self()
    }
}

/// `connector`'s attempts, each stream boxed by `wrap` (the binding's [`ByteStream`]).
pub fn connect_from<C: Connector>(
    mut connector: C,
    wrap: fn(C::Stream) -> Box<dyn ByteStream>,
) -> Connect {
    Box::new(move || {
        let attempt = connector.connect();
        Box::pin(async move { attempt.await.map(wrap) })
    })
}

/// A listener's accept in progress, borrowing the listener.
pub type Accepting<'a, S> = Pin<Box<dyn Future<Output = io::Result<S>> + Send + 'a>>;

/// An accept in progress; it owns the listener and hands it back with the result.
type Owning<L> = Pin<Box<dyn Future<Output = (L, io::Result<Box<dyn ByteStream>>)> + Send>>;

/// Polls a listener for its next connection.
type PollAccept = Box<dyn FnMut(&mut Context<'_>) -> Poll<io::Result<Box<dyn ByteStream>>> + Send>;

/// Where a server's connections come from: a listener and the async function that accepts one
/// connection from it (the binding's `Listener::accept`, then its socket options).
pub struct Accept {
    poll: PollAccept,
}

impl Debug for Accept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Accept")
    }
}

impl Accept {
    /// Accepts from `listener` with `accept`, which takes the listener and gives it back with
    /// the connection (so a listener whose `accept` needs `&mut self` works as well as one that
    /// only needs `&self`). One accept is in flight at a time.
    pub fn new<L, F, Fut>(listener: L, accept: F) -> Accept
    where
        L: Send + 'static,
        F: Fn(L) -> Fut + Send + 'static,
        Fut: Future<Output = (L, io::Result<Box<dyn ByteStream>>)> + Send + 'static,
    {
        let mut idle = Some(listener);
        let mut pending: Option<Owning<L>> = None;
        let poll = move |cx: &mut Context<'_>| {
            if let Some(listener) = idle.take() {
                pending = Some(Box::pin(accept(listener)));
            }
            let Some(fut) = pending.as_mut() else {
                return Poll::Pending; // unreachable: one of the two is always set
            };
            let (listener, result) = std::task::ready!(fut.as_mut().poll(cx));
            pending = None;
            idle = Some(listener);
            Poll::Ready(result)
        };
        Accept { poll: Box::new(poll) }
    }

    /// Accepts from a binding's `listener`: `accept` is its async accept (boxed), and `prepare`
    /// readies each stream (socket options) and boxes it as a [`ByteStream`].
    pub fn from_listener<L, S, P>(
        listener: L,
        accept: for<'a> fn(&'a mut L) -> Accepting<'a, S>,
        prepare: P,
    ) -> Accept
    where
        L: Send + 'static,
        S: Send + 'static,
        P: Fn(&L, S) -> Box<dyn ByteStream> + Send + Sync + 'static,
    {
        let prepare = std::sync::Arc::new(prepare);
        Accept::new(listener, move |mut listener: L| {
            let prepare = prepare.clone();
            async move {
                let accepted = accept(&mut listener).await;
                let stream = accepted.map(|s| prepare(&listener, s));
                (listener, stream)
            }
        })
    }

    /// Polls for the next connection.
    pub(crate) fn poll_accept(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<Box<dyn ByteStream>>> {
        (self.poll)(cx)
    }
}
