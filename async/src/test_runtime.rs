//! A minimal runtime for the unit tests of the handles: tokio's clock, timers and spawning, and
//! in-memory pipes of this module as connections. (The real tokio binding is tether-tokio, which
//! depends on this crate; these tests cannot use it.)

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::BytesMut;
use tokio::sync::mpsc;

use crate::runtime::{Accept, ByteStream, Connect, Runtime, Task, Timer};
use crate::{Config, Server, Session};

#[derive(Debug)]
struct TestRuntime;

#[derive(Debug)]
struct TestTimer(Pin<Box<tokio::time::Sleep>>);

impl Runtime for TestRuntime {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn new_timer(&self, deadline: Instant) -> Pin<Box<dyn Timer>> {
        Box::pin(TestTimer(Box::pin(tokio::time::sleep_until(deadline.into()))))
    }

    fn spawn(&self, task: Task) {
        tokio::spawn(task);
    }
}

impl Timer for TestTimer {
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        self.0.as_mut().reset(deadline.into());
    }

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let poll = std::future::Future::poll(self.0.as_mut(), cx);
        if poll.is_ready() {
            TIMER_FIRES.set(TIMER_FIRES.get() + 1);
        }
        poll
    }
}

std::thread_local! {
    /// Timers of this runtime seen to fire on this thread (a current-thread test's own count).
    static TIMER_FIRES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many of this runtime's timers fired on this thread so far: on a current-thread tokio
/// runtime, the count of the test running on it.
pub(crate) fn timer_fires() -> usize {
    TIMER_FIRES.get()
}

/// One direction of an in-memory pipe.
#[derive(Default)]
struct Half {
    bytes: BytesMut,
    closed: bool,
    reader: Option<Waker>,
}

/// One end of an in-memory byte pipe (unbounded: the sessions' own limits bound it).
struct Pipe {
    incoming: Arc<Mutex<Half>>,
    outgoing: Arc<Mutex<Half>>,
    /// Most bytes one read returns.
    max_read: usize,
}

fn pipe(max_read: usize) -> (Pipe, Pipe) {
    let (a, b) = (Arc::new(Mutex::new(Half::default())), Arc::new(Mutex::new(Half::default())));
    (
        Pipe { incoming: a.clone(), outgoing: b.clone(), max_read },
        Pipe { incoming: b, outgoing: a, max_read },
    )
}

impl ByteStream for Pipe {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        let mut half = self.incoming.lock().unwrap();
        let n = half.bytes.len().min(buf.capacity() - buf.len()).min(self.max_read);
        if n > 0 {
            buf.extend_from_slice(&half.bytes.split_to(n));
            return Poll::Ready(Ok(n));
        }
        if half.closed {
            return Poll::Ready(Ok(0));
        }
        half.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        &mut self,
        _: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut half = self.outgoing.lock().unwrap();
        if half.closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        for b in bufs {
            half.bytes.extend_from_slice(b);
        }
        let written = bufs.iter().map(|b| b.len()).sum();
        if let Some(w) = half.reader.take() {
            w.wake();
        }
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        close(&self.outgoing);
        Poll::Ready(Ok(()))
    }
}

fn close(half: &Mutex<Half>) {
    let mut half = half.lock().unwrap();
    half.closed = true;
    if let Some(w) = half.reader.take() {
        w.wake();
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        close(&self.incoming);
        close(&self.outgoing);
    }
}

/// A server and a connected client over in-memory pipes, on the current tokio runtime.
pub(crate) async fn pair(server: Config, client: Config) -> (Server, Session) {
    let (server, mut clients) = server_and_clients(server, client, 1, usize::MAX).await;
    (server, clients.remove(0))
}

/// `f`, failing the test with `what` if it takes more than 20 s.
pub(crate) async fn within<F: std::future::Future>(f: F, what: &str) -> F::Output {
    tokio::time::timeout(std::time::Duration::from_secs(20), f).await.expect(what)
}

/// Closes every connection opened so far, as a transport failure would (both ends see the end of
/// the stream).
#[derive(Clone, Default)]
pub(crate) struct Cut(Arc<Mutex<Vec<[Shared; 2]>>>);

/// One direction of a pipe, as both of its ends hold it.
type Shared = Arc<Mutex<Half>>;

impl Cut {
    pub(crate) fn cut(&self) {
        for halves in self.0.lock().unwrap().drain(..) {
            halves.iter().for_each(|half| close(half));
        }
    }
}

/// A server and a connected client over in-memory pipes, and the [`Cut`] that breaks them.
pub(crate) async fn cuttable_pair(server: Config, client: Config) -> (Server, Session, Cut) {
    let cut = Cut::default();
    let (server, mut clients) = clients_of(server, client, 1, usize::MAX, Some(cut.clone())).await;
    (server, clients.remove(0), cut)
}

/// A server and `n` connected clients over in-memory pipes whose reads return at most `max_read`
/// bytes, on the current tokio runtime.
pub(crate) async fn server_and_clients(
    server: Config,
    client: Config,
    n: usize,
    max_read: usize,
) -> (Server, Vec<Session>) {
    clients_of(server, client, n, max_read, None).await
}

async fn clients_of(
    server: Config,
    client: Config,
    n: usize,
    max_read: usize,
    cut: Option<Cut>,
) -> (Server, Vec<Session>) {
    let (server, dialer) = server_and_dialer(server, max_read, cut);
    let mut clients = Vec::new();
    for _ in 0..n {
        clients.push(dialer.connect(client.clone()).await.unwrap());
    }
    (server, clients)
}

/// Opens client connections to one in-memory server, at any time.
pub(crate) struct Dialer {
    runtime: Arc<dyn Runtime>,
    tx: mpsc::UnboundedSender<Pipe>,
    max_read: usize,
    cut: Option<Cut>,
}

impl Dialer {
    /// A client session over a new pipe to the server (as `connect` does over TCP).
    pub(crate) async fn connect(&self, config: Config) -> Result<Session, crate::Error> {
        self.connect_wrapped(config, |near| near).await
    }

    /// As [`connect`](Self::connect), with the client's end of each pipe wrapped by `wrap` (a
    /// test's misbehaving stream).
    pub(crate) async fn connect_wrapped(
        &self,
        config: Config,
        wrap: fn(Box<dyn ByteStream>) -> Box<dyn ByteStream>,
    ) -> Result<Session, crate::Error> {
        let (tx, max_read, cut) = (self.tx.clone(), self.max_read, self.cut.clone());
        let connect: Connect = Box::new(move || {
            let (near, far) = pipe(max_read);
            if let Some(cut) = &cut {
                cut.0.lock().unwrap().push([near.incoming.clone(), near.outgoing.clone()]);
            }
            let sent = tx.send(far);
            Box::pin(async move {
                sent.map_err(|_| io::Error::from(io::ErrorKind::ConnectionRefused))?;
                Ok(wrap(Box::new(near)))
            })
        });
        crate::client::connect(self.runtime.clone(), connect, config).await
    }
}

/// A server over in-memory pipes (reads of at most `max_read` bytes, cut by `cut` if given), on the
/// current tokio runtime, and the [`Dialer`] that connects clients to it.
pub(crate) fn server_and_dialer(
    server: Config,
    max_read: usize,
    cut: Option<Cut>,
) -> (Server, Dialer) {
    let runtime: Arc<dyn Runtime> = Arc::new(TestRuntime);
    let (tx, rx) = mpsc::unbounded_channel::<Pipe>();
    let accept = Accept::new(rx, |mut rx| async move {
        let next = rx.recv().await.map(|s| Box::new(s) as Box<dyn ByteStream>);
        (rx, next.ok_or_else(|| io::Error::other("no more pipes")))
    });
    let server = Server::start(runtime.clone(), accept, server, None).unwrap();
    (server, Dialer { runtime, tx, max_read, cut })
}
