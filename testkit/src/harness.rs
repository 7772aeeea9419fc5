//! [`Harness`]: what the test bodies need from a runtime binding, and the runtime-agnostic
//! [`Task`], [`Timeout`] and [`Within`] built on it.

use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tether_async::{Error, Server, Session, Settings};

use crate::util::oneshot;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One runtime binding, as the test bodies use it: a TCP server and client of the binding, and
/// the runtime's spawn and clock. Implemented in each binding's test file, e.g. for tokio:
///
/// ```ignore
/// #[derive(Clone, Copy, Debug)]
/// struct Tokio;
///
/// impl Harness for Tokio {
///     fn bind(&self, settings: Settings) -> BoxFuture<'static, Result<Server, Error>> {
///         Box::pin(async move {
///             tether_tokio::Server::bind("127.0.0.1:0", settings).await.map(Into::into)
///         })
///     }
///     fn connect(&self, addr: SocketAddr, settings: Settings) -> BoxFuture<'static, Result<Session, Error>> {
///         Box::pin(tether_tokio::connect(addr, settings))
///     }
///     fn spawn_detached(&self, task: BoxFuture<'static, ()>) {
///         drop(tokio::spawn(task));
///     }
///     fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
///         Box::pin(tokio::time::sleep(duration))
///     }
/// }
/// ```
///
/// The bodies call these from within the runtime (the `block_on` given to
/// [`runtime_tests!`](crate::runtime_tests) runs them there).
pub trait Harness: Clone + Send + Sync + 'static {
    /// Binds a TCP server of the binding on `127.0.0.1:0` (the binding's `Server::bind`); its
    /// [`local_addr`](Server::local_addr) must be set. Errors (an invalid config) are the
    /// binding's, unchanged.
    fn bind(&self, settings: Settings) -> BoxFuture<'static, Result<Server, Error>>;

    /// Connects a client of the binding over TCP (the binding's `connect(addr, settings)`).
    fn connect(
        &self,
        addr: SocketAddr,
        settings: Settings,
    ) -> BoxFuture<'static, Result<Session, Error>>;

    /// Runs `task` on the runtime. It runs to its end whether or not anyone waits for it (like
    /// a dropped tokio `JoinHandle`; on smol, a `Task` that is `detach`ed).
    fn spawn_detached(&self, task: BoxFuture<'static, ()>);

    /// Waits `duration` on the runtime's clock.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;

    /// Runs `future` on the runtime; the [`Task`] resolves to its output (a panic in it is
    /// resumed in whoever awaits the task). Dropping the task detaches it.
    fn spawn<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.spawn_detached(Box::pin(async move {
            tx.send(CatchUnwind(Box::pin(future)).await);
        }));
        Task(rx)
    }

    /// `Some(output)` if `future` finishes within `duration`, else `None` (and `future` is
    /// dropped), like `tokio::time::timeout`.
    fn timeout<F: Future>(&self, duration: Duration, future: F) -> Timeout<F> {
        Timeout { future: Box::pin(future), sleep: self.sleep(duration) }
    }

    /// `future`'s output; fails the test if it takes more than `secs` seconds (instead of
    /// hanging).
    fn within<F: Future>(&self, secs: u64, future: F) -> Within<F> {
        Within(self.timeout(Duration::from_secs(secs), future))
    }
}

/// A task started by [`Harness::spawn`]: resolves to its output.
#[derive(Debug)]
#[must_use = "a task is detached when dropped; await it for its output"]
pub struct Task<T>(oneshot::Receiver<std::thread::Result<T>>);

impl<T> Future for Task<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match Pin::new(&mut self.0).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(output))) => Poll::Ready(output),
            Poll::Ready(Some(Err(payload))) => panic::resume_unwind(payload),
            Poll::Ready(None) => panic!("the task was dropped before it finished (runtime gone?)"),
        }
    }
}

/// Polls a future, catching a panic in it (so that a [`Task`] can hand it to its awaiter).
struct CatchUnwind<T>(BoxFuture<'static, T>);

impl<T> Future for CatchUnwind<T> {
    type Output = Result<T, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = &mut self.0;
        match panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// The future of [`Harness::timeout`].
#[must_use = "futures do nothing unless awaited"]
pub struct Timeout<F: Future> {
    future: Pin<Box<F>>,
    sleep: BoxFuture<'static, ()>,
}

impl<F: Future> std::fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Timeout")
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The future first, as tokio does: one ready at the deadline still counts.
        if let Poll::Ready(output) = self.future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The future of [`Harness::within`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Within<F: Future>(Timeout<F>);

impl<F: Future> Future for Within<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        match Pin::new(&mut self.0).poll(cx) {
            Poll::Ready(Some(output)) => Poll::Ready(output),
            Poll::Ready(None) => panic!("test timed out"),
            Poll::Pending => Poll::Pending,
        }
    }
}
