//! Helpers shared by the integration tests: a test config, numbered payloads, bounded waits, one
//! side of an exchange (send N, receive everything, end) with its checks, and a stream wrapper
//! the test can cut.
#![allow(dead_code, reason = "each test file uses a different part")]

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_io::{AsyncRead, AsyncWrite};
use tether_smol::Session;

/// Short timers so faults are detected and healed in well under a second.
#[allow(unused_imports, reason = "each test file uses a different part")]
pub use tether_testkit::support::config;

/// Message `i` from `tag`: recognisable and of varying length; one in 50 is over 20 KB, so
/// large payloads (queued by reference and written vectored, or flattened for streams without
/// vectored writes) are exercised too.
pub fn payload(tag: &str, i: u64) -> Bytes {
    let pad = match i % 50 {
        7 => 20_000 + (i as usize % 1_000),
        _ => (i % 97) as usize,
    };
    let fill = char::from(b'a' + (i % 26) as u8).to_string().repeat(pad);
    Bytes::from(format!("{tag}-{i}-{fill}"))
}

/// Runs `f` to completion on this thread (tether's drivers run on smol's global executor), or
/// fails the test after `secs` seconds instead of hanging.
pub fn within<T>(secs: u64, f: impl Future<Output = T>) -> T {
    smol::block_on(smol::future::or(f, async move {
        smol::Timer::after(Duration::from_secs(secs)).await;
        panic!("test timed out after {secs} s");
    }))
}

/// `f`'s output, or `None` if it takes longer than `limit`.
pub async fn timeout<T>(limit: Duration, f: impl Future<Output = T>) -> Option<T> {
    smol::future::or(async { Some(f.await) }, async {
        smol::Timer::after(limit).await;
        None
    })
    .await
}

/// `f`'s output, or a test failure naming `what` after `limit`.
pub async fn expect_within<T>(limit: Duration, what: &str, f: impl Future<Output = T>) -> T {
    match timeout(limit, f).await {
        Some(t) => t,
        None => panic!("{what}: nothing within {limit:?}"),
    }
}

#[allow(unused_imports, reason = "each test file uses a different part")]
pub use tether_testkit::support::Outcome;

#[path = "../harness/mod.rs"]
mod harness;

/// tether-testkit's [`run_side`](tether_testkit::support::run_side) on smol, with this file's
/// [`payload`] (large messages included).
pub async fn run_side(
    s: Session,
    tag: &'static str,
    n: u64,
    close: bool,
    pace: Duration,
) -> Outcome {
    run_side_gated(s, tag, n, close.then_some(std::future::ready(())), pace).await
}

/// [`run_side`], closing (if `close_after` is given) only once that future has completed too.
pub async fn run_side_gated(
    s: Session,
    tag: &'static str,
    n: u64,
    close_after: Option<impl Future<Output = ()>>,
    pace: Duration,
) -> Outcome {
    let h = harness::Smol;
    tether_testkit::support::run_side_with(h, s, tag, n, close_after, pace, payload).await
}

/// Every message of `tag` arrived exactly once, in order, unmodified.
pub fn assert_all(received: &[Bytes], tag: &str, n: u64) {
    tether_testkit::support::assert_all_with(received, tag, n, payload);
}

/// How a [`Switch`] breaks the streams it controls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Every read and write fails (`ConnectionReset` / `BrokenPipe`), the way a connection dies
    /// under an application.
    Error,
    /// Reads see the end of the stream; writes fail.
    Eof,
}

/// Breaks the streams wrapped with it, at once (waking whoever waits on them).
#[derive(Debug, Default)]
pub struct Switch {
    /// 0: intact; 1: `Cut::Error`; 2: `Cut::Eof`.
    state: AtomicU8,
    wakers: Mutex<[Option<Waker>; 2]>,
}

impl Switch {
    pub fn new() -> Arc<Switch> {
        Arc::new(Switch::default())
    }

    /// Breaks every stream of this switch, now and later.
    pub fn cut(&self, how: Cut) {
        self.state.store(if how == Cut::Error { 1 } else { 2 }, Ordering::SeqCst);
        for w in self.wakers.lock().unwrap().iter_mut().filter_map(Option::take) {
            w.wake();
        }
    }

    pub fn is_cut(&self) -> bool {
        self.state.load(Ordering::SeqCst) != 0
    }

    fn broken(&self) -> Option<Cut> {
        match self.state.load(Ordering::SeqCst) {
            0 => None,
            1 => Some(Cut::Error),
            _ => Some(Cut::Eof),
        }
    }

    /// Remembers who waits on direction `dir` (0 read, 1 write), so a cut wakes it.
    fn register(&self, dir: usize, cx: &Context<'_>) {
        let mut wakers = self.wakers.lock().unwrap();
        if !wakers[dir].as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            wakers[dir] = Some(cx.waker().clone());
        }
    }
}

/// A stream that works until its [`Switch`] is cut.
pub struct Cuttable<S> {
    pub inner: S,
    pub switch: Arc<Switch>,
}

impl<S> Cuttable<S> {
    pub fn new(inner: S, switch: Arc<Switch>) -> Cuttable<S> {
        Cuttable { inner, switch }
    }
}

fn reset<T>() -> Poll<io::Result<T>> {
    Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionReset, "cut by the test")))
}

fn broken_pipe<T>() -> Poll<io::Result<T>> {
    Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "cut by the test")))
}

impl<S: AsyncRead + Unpin> AsyncRead for Cuttable<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.switch.broken() {
            Some(Cut::Error) => return reset(),
            Some(Cut::Eof) => return Poll::Ready(Ok(0)),
            None => {}
        }
        self.switch.register(0, cx);
        // A cut between the check and the registration is seen by the next poll: re-check.
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if polled.is_pending() && self.switch.is_cut() {
            cx.waker().wake_by_ref();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Cuttable<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.switch.is_cut() {
            return broken_pipe();
        }
        self.switch.register(1, cx);
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.switch.is_cut() {
            return broken_pipe();
        }
        self.switch.register(1, cx);
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.switch.is_cut() {
            return broken_pipe();
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.switch.is_cut() {
            return broken_pipe();
        }
        Pin::new(&mut self.inner).poll_close(cx)
    }
}
