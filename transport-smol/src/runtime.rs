//! smol as a tether [`Runtime`]: async-io's clock and timers, smol's global executor, and
//! futures-io streams as [`ByteStream`]s.

use std::any::TypeId;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::BytesMut;
use futures_io::{AsyncRead, AsyncWrite};
use tether_async::{ByteStream, Runtime, Task, Timer};

/// Any byte stream a session can run over: TCP, TLS, a Unix socket, an in-memory pipe (any
/// `futures-io` `AsyncRead + AsyncWrite`).
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> AsyncStream for T {}

/// smol: async-io's clock and timers, tasks on smol's global executor.
#[derive(Debug)]
struct Smol;

/// The runtime. There is no "outside smol" to fail on: `smol::spawn` runs tasks on smol's global
/// executor (started on first use), and async-io's reactor runs wherever a task waits on it, so
/// a client or server can be started from any thread, inside `smol::block_on` or not.
pub(crate) fn current() -> Arc<dyn Runtime> {
    Arc::new(Smol)
}

impl Runtime for Smol {
    /// async-io's timers are set in `std::time::Instant`s: that is the runtime's own clock.
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn new_timer(&self, deadline: Instant) -> Pin<Box<dyn Timer>> {
        Box::pin(AsyncIoTimer { timer: async_io::Timer::at(deadline), fired: false })
    }

    fn spawn(&self, task: Task) {
        smol::spawn(task).detach();
    }

    /// The threads of smol's global executor: `SMOL_THREADS` (read as smol reads it), else one.
    fn parallelism(&self) -> usize {
        std::env::var("SMOL_THREADS").ok().and_then(|s| s.parse().ok()).unwrap_or(1).max(1)
    }
}

/// An async-io timer as the driver uses it. `async_io::Timer::at` is ready *once* when its
/// deadline passes and pending (with no wake-up) after that until `set_at` re-arms it; the
/// driver would cope (it never polls a fired timer again before resetting it), but `fired` makes
/// it keep the [`Timer`] contract exactly: ready on every poll until reset.
#[derive(Debug)]
struct AsyncIoTimer {
    timer: async_io::Timer,
    fired: bool,
}

impl Timer for AsyncIoTimer {
    fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        self.fired = false;
        self.timer.set_at(deadline);
    }

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if !self.fired && Pin::new(&mut self.timer).poll(cx).is_ready() {
            self.fired = true;
        }
        match self.fired {
            true => Poll::Ready(()),
            false => Poll::Pending,
        }
    }
}

/// The smallest read offered (and the first).
const MIN_OFFER: usize = 4 * 1024;

/// A futures-io stream as the driver uses it.
///
/// **Reads**: futures-io reads into an initialised `&mut [u8]`, and this crate has no unsafe
/// code, so a read zero-fills part of the buffer's spare capacity, reads into it and truncates
/// to what was read. The part offered adapts to the reads, so zeroing stays proportional to the
/// bytes read: it starts at 4 KiB, doubles when a read fills it (up to the spare capacity),
/// halves when a read used less than a quarter of it (never below 4 KiB). A 100-byte ping-pong
/// zeroes 4 KiB per read, not the driver's whole 64-256 KiB of room; a bulk transfer reads (and
/// zeroes) as much as the stream has.
///
/// **Vectored writes**: futures-io has no `is_write_vectored`, and its default
/// `poll_write_vectored` writes the first buffer only; a stream claiming vectored writes that
/// does that would send a large message's frame head, payload and CRC as three writes (three
/// segments under `TCP_NODELAY`, three TLS records). So a stream counts as vectored only if it
/// is a type known to write all of them: smol's (async-net's) `TcpStream` and async-io's
/// `Async<TcpStream>` / `Async<UnixStream>`. smol's `UnixStream` is not (async-net 2 uses the
/// default), nor is any other stream, which gets one contiguous copy of what is queued instead.
pub(crate) struct Stream<S> {
    inner: S,
    /// How much of the spare capacity the next read zero-fills and offers.
    offer: usize,
    vectored: bool,
}

impl<S: AsyncStream> Stream<S> {
    pub(crate) fn new(inner: S) -> Stream<S> {
        let vectored = [
            TypeId::of::<smol::net::TcpStream>(),
            TypeId::of::<async_io::Async<std::net::TcpStream>>(),
            #[cfg(unix)]
            TypeId::of::<async_io::Async<std::os::unix::net::UnixStream>>(),
        ]
        .contains(&TypeId::of::<S>());
        Stream { inner, offer: MIN_OFFER, vectored }
    }
}

impl<S: AsyncStream> ByteStream for Stream<S> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        let start = buf.len();
        if buf.capacity() == start {
            // The driver always offers room; a full buffer grows as tokio's `read_buf` does,
            // rather than reading zero bytes (which would mean end of stream).
            buf.reserve(MIN_OFFER);
        }
        let spare = buf.capacity() - start;
        let offer = self.offer.min(spare);
        buf.resize(start + offer, 0);
        let polled = Pin::new(&mut self.inner).poll_read(cx, &mut buf[start..]);
        let read = match polled {
            Poll::Ready(Ok(n)) => n.min(offer),
            _ => 0,
        };
        buf.truncate(start + read);
        if let Poll::Ready(Ok(_)) = polled {
            if read == offer {
                self.offer = (offer * 2).min(spare).max(MIN_OFFER);
            } else if read < offer / 4 {
                self.offer = (offer / 2).max(MIN_OFFER);
            }
        }
        polled.map_ok(|_| read)
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.vectored
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// Boxes `stream` for the driver.
pub(crate) fn boxed<S: AsyncStream>(stream: S) -> Box<dyn ByteStream> {
    Box::new(Stream::new(stream))
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::task::Waker;

    use super::*;

    /// A stream whose reads give the scripted chunks (as much of each as the reader offers),
    /// then `Pending` once, then the end of the stream. Records the room each read was offered.
    struct Script {
        chunks: VecDeque<Vec<u8>>,
        offered: Vec<usize>,
        pending_once: bool,
    }

    impl Script {
        fn new(sizes: &[usize]) -> Stream<Script> {
            let chunks = sizes.iter().enumerate().map(|(i, &n)| vec![i as u8 + 1; n]).collect();
            Stream::new(Script { chunks, offered: Vec::new(), pending_once: true })
        }
    }

    impl AsyncRead for Script {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            self.offered.push(buf.len());
            assert!(buf.iter().all(|&b| b == 0), "offered room is zeroed");
            let Some(chunk) = self.chunks.front_mut() else {
                if std::mem::take(&mut self.pending_once) {
                    return Poll::Pending;
                }
                return Poll::Ready(Ok(0));
            };
            let n = chunk.len().min(buf.len());
            buf[..n].copy_from_slice(&chunk[..n]);
            chunk.drain(..n);
            if chunk.is_empty() {
                self.chunks.pop_front();
            }
            Poll::Ready(Ok(n))
        }
    }

    impl AsyncWrite for Script {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            b: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(b.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// One read into a fresh 256 KiB buffer, as the driver's: what it returned and appended.
    fn read(s: &mut Stream<Script>) -> Poll<io::Result<BytesMut>> {
        let mut buf = BytesMut::with_capacity(256 * 1024);
        let mut cx = Context::from_waker(Waker::noop());
        s.poll_read(&mut cx, &mut buf).map_ok(|n| {
            assert_eq!(n, buf.len(), "the count is what was appended");
            buf
        })
    }

    fn read_len(s: &mut Stream<Script>) -> usize {
        match read(s) {
            Poll::Ready(Ok(buf)) => buf.len(),
            other => panic!("expected data, got {other:?}"),
        }
    }

    #[test]
    fn reads_exactly_what_the_stream_gives() {
        let mut s = Script::new(&[100, 3, 1000]);
        for (i, n) in [100, 3, 1000].into_iter().enumerate() {
            let Poll::Ready(Ok(buf)) = read(&mut s) else { panic!("no data") };
            assert_eq!(&buf[..], &vec![i as u8 + 1; n][..]);
        }
        assert!(read(&mut s).is_pending());
        assert!(matches!(read(&mut s), Poll::Ready(Ok(b)) if b.is_empty()), "end of stream");
    }

    #[test]
    fn a_read_appends_after_what_the_buffer_holds() {
        let mut s = Script::new(&[10]);
        let mut buf = BytesMut::with_capacity(64 * 1024);
        buf.extend_from_slice(b"head");
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(s.poll_read(&mut cx, &mut buf), Poll::Ready(Ok(10))));
        assert_eq!(&buf[..4], b"head");
        assert_eq!(&buf[4..], &[1u8; 10][..]);
    }

    #[test]
    fn the_offer_grows_with_full_reads_and_shrinks_with_small_ones() {
        // A bulk transfer: each read fills its offer, which doubles up to the spare capacity.
        // 4 + 8 + ... + 256 KiB, then two more reads at the cap.
        let bulk = (12..=18).map(|k| 1usize << k).sum::<usize>() + 2 * 262144;
        let mut s = Script::new(&[bulk, 100, 100, 100, 100, 100, 100, 100, 100]);
        let mut sizes = Vec::new();
        while sizes.iter().sum::<usize>() < bulk {
            sizes.push(read_len(&mut s));
        }
        assert_eq!(&sizes[..7], &[4096, 8192, 16384, 32768, 65536, 131072, 262144]);
        assert!(sizes[7..].iter().all(|&n| n == 262144), "capped at the spare capacity");
        // Small reads halve it, down to 4 KiB and no further.
        for _ in 0..7 {
            assert_eq!(read_len(&mut s), 100);
        }
        let offered = &s.inner.offered;
        let tail = &offered[offered.len() - 7..];
        assert_eq!(tail, &[262144, 131072, 65536, 32768, 16384, 8192, 4096]);
        assert_eq!(s.offer, MIN_OFFER);
        assert_eq!(read_len(&mut s), 100);
        assert_eq!(s.offer, MIN_OFFER);
    }

    #[test]
    fn the_offer_never_exceeds_the_spare_capacity() {
        let mut s = Script::new(&[1 << 20]);
        s.offer = 1 << 20;
        let mut buf = BytesMut::with_capacity(10_000);
        buf.extend_from_slice(&[9; 1000]);
        let spare = buf.capacity() - buf.len();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(s.poll_read(&mut cx, &mut buf), Poll::Ready(Ok(n)) if n == spare));
        assert_eq!(s.inner.offered, vec![spare]);
        assert_eq!(buf.len(), buf.capacity());
        // A full buffer grows instead of reading nothing (which would read as end of stream).
        assert!(matches!(s.poll_read(&mut cx, &mut buf), Poll::Ready(Ok(n)) if n > 0));
    }

    #[test]
    fn pending_and_errors_leave_the_buffer_as_it_was() {
        struct Failing;
        impl AsyncRead for Failing {
            fn poll_read(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
                _: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()))
            }
        }
        impl AsyncWrite for Failing {
            fn poll_write(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
                _: &[u8],
            ) -> Poll<io::Result<usize>> {
                Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
            }
            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
            fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let mut failing = Stream::new(Failing);
        let err = failing.poll_read(&mut cx, &mut buf);
        assert!(matches!(err, Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset));
        assert!(buf.is_empty());
        let mut s = Script::new(&[]);
        assert!(s.poll_read(&mut cx, &mut buf).is_pending());
        assert!(buf.is_empty());
    }

    #[test]
    fn only_streams_known_to_write_every_buffer_count_as_vectored() {
        assert!(!Script::new(&[]).is_write_vectored());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let std_stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let tcp = smol::net::TcpStream::try_from(std_stream).unwrap();
        assert!(boxed(tcp).is_write_vectored());
        #[cfg(unix)]
        {
            let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
            let unix = smol::net::unix::UnixStream::try_from(a).unwrap();
            assert!(!boxed(unix).is_write_vectored(), "async-net's UnixStream writes one buffer");
        }
    }

    #[test]
    fn a_fired_timer_stays_ready_until_reset() {
        smol::block_on(async {
            let mut timer = Smol.new_timer(Instant::now());
            let ready = std::future::poll_fn(|cx| Poll::Ready(timer.as_mut().poll(cx)));
            assert!(ready.await.is_ready());
            let again = std::future::poll_fn(|cx| Poll::Ready(timer.as_mut().poll(cx)));
            assert!(again.await.is_ready(), "ready again without a reset");
            timer.as_mut().reset(Instant::now() + std::time::Duration::from_secs(60));
            let later = std::future::poll_fn(|cx| Poll::Ready(timer.as_mut().poll(cx)));
            assert!(later.await.is_pending());
            timer.as_mut().reset(Instant::now() + std::time::Duration::from_millis(20));
            std::future::poll_fn(|cx| timer.as_mut().poll(cx)).await;
        });
    }
}
