//! A connection's bytes waiting to be written, with large payloads kept by reference.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tether_core::FrameSink;

use crate::runtime::ByteStream;

/// Payloads this large or larger are queued as the sender's own `Bytes` (one reference count)
/// and written from there by a vectored write; smaller ones are copied, which costs less than a
/// separate piece. (Copying every 64 KiB payload into the write buffer was 7% of the CPU time of
/// a 64 KiB stream.)
const BY_REFERENCE: usize = 8 * 1024;

/// Pieces per vectored write.
const MAX_SLICES: usize = 32;

/// Frames waiting to be written: sealed `pieces`, oldest first, then `tail`, which small frames
/// and the bytes around large payloads are copied into. What [`poll_write`](Self::poll_write)
/// writes is exactly what was put, in order; to a stream without vectored writes it writes one
/// contiguous copy, as a plain write buffer would.
#[derive(Debug, Default)]
pub(crate) struct WriteQueue {
    pieces: VecDeque<Bytes>,
    /// Bytes in `pieces`.
    pieces_len: usize,
    tail: BytesMut,
}

impl FrameSink for WriteQueue {
    fn bytes(&mut self) -> &mut BytesMut {
        &mut self.tail
    }

    fn put_payload(&mut self, payload: &Bytes) {
        if payload.len() < BY_REFERENCE {
            return self.tail.extend_from_slice(payload);
        }
        self.seal_tail();
        self.pieces_len += payload.len();
        self.pieces.push_back(payload.clone());
    }

    fn len(&self) -> usize {
        self.pieces_len + self.tail.len()
    }
}

impl WriteQueue {
    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            self.pieces_len += self.tail.len();
            self.pieces.push_back(self.tail.split().freeze());
        }
    }

    /// Moves everything in `other` to the end of this queue, leaving `other` empty (with its
    /// memory, when this queue was empty and took `other`'s place).
    pub(crate) fn append(&mut self, other: &mut WriteQueue) {
        if self.is_empty() {
            std::mem::swap(self, other);
        } else {
            if !other.pieces.is_empty() {
                self.seal_tail();
                self.pieces_len += other.pieces_len;
                self.pieces.append(&mut other.pieces);
            }
            self.tail.extend_from_slice(&other.tail);
        }
        other.clear();
    }

    /// Forgets everything queued.
    pub(crate) fn clear(&mut self) {
        self.pieces.clear();
        self.pieces_len = 0;
        self.tail.clear();
    }

    /// One vectored write of the queue's front; `Ok(n)` bytes were written and removed.
    pub(crate) fn poll_write<S: ByteStream + ?Sized>(
        &mut self,
        stream: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        if !self.pieces.is_empty() && !stream.is_write_vectored() {
            // Such a stream writes the first slice only: a frame's head, then its payload, then
            // its CRC would each become a write of their own (tiny segments, tiny TLS records).
            self.flatten();
        }
        let n = if self.pieces.is_empty() {
            std::task::ready!(stream.poll_write(cx, &self.tail))?
        } else {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            for (slot, piece) in slices.iter_mut().zip(self.pieces.iter()) {
                *slot = IoSlice::new(piece);
                count += 1;
            }
            if count < MAX_SLICES && !self.tail.is_empty() {
                slices[count] = IoSlice::new(&self.tail);
                count += 1;
            }
            std::task::ready!(stream.poll_write_vectored(cx, &slices[..count]))?
        };
        self.advance(n);
        Poll::Ready(Ok(n))
    }

    /// Copies every piece, then the tail, into one contiguous tail.
    fn flatten(&mut self) {
        let mut flat = BytesMut::with_capacity(self.len());
        for piece in self.pieces.drain(..) {
            flat.extend_from_slice(&piece);
        }
        flat.extend_from_slice(&self.tail);
        self.tail = flat;
        self.pieces_len = 0;
    }

    /// Removes the first `n` bytes (written).
    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.pieces.front_mut() else {
                self.tail.advance(n);
                return;
            };
            if n < front.len() {
                front.advance(n);
                self.pieces_len -= n;
                return;
            }
            n -= front.len();
            self.pieces_len -= front.len();
            self.pieces.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `max` bytes per call and records each call's size; with
    /// `vectored` false it has no vectored writes (as tokio's `DuplexStream` and many TLS
    /// wrappers: the default `poll_write_vectored` writes the first slice only).
    struct Recorder {
        out: Vec<u8>,
        writes: Vec<usize>,
        max: usize,
        vectored: bool,
    }

    impl Recorder {
        fn new(max: usize, vectored: bool) -> Recorder {
            Recorder { out: Vec::new(), writes: Vec::new(), max, vectored }
        }

        fn take(&mut self, bufs: &[IoSlice<'_>]) -> usize {
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.max - n);
                self.out.extend_from_slice(&b[..take]);
                n += take;
                if n == self.max {
                    break;
                }
            }
            self.writes.push(n);
            n
        }
    }

    impl ByteStream for Recorder {
        fn poll_read(&mut self, _: &mut Context<'_>, _: &mut BytesMut) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(0))
        }

        fn poll_write(&mut self, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(self.take(&[IoSlice::new(buf)])))
        }

        fn poll_write_vectored(
            &mut self,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let n = if self.vectored { bufs.len() } else { 1 };
            Poll::Ready(Ok(self.take(&bufs[..n.min(bufs.len())])))
        }

        fn is_write_vectored(&self) -> bool {
            self.vectored
        }

        fn poll_flush(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Writes everything queued to `w`, checking the queue's length after each write.
    fn drain(q: &mut WriteQueue, w: &mut Recorder) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        while !q.is_empty() {
            let before = q.len();
            let Poll::Ready(Ok(n)) = q.poll_write(w, &mut cx) else { panic!("stalled") };
            assert_eq!(q.len(), before - n);
        }
    }

    #[test]
    fn writes_exactly_what_was_put_in_order_whatever_the_write_sizes() {
        let big = Bytes::from((0..BY_REFERENCE * 2).map(|i| i as u8).collect::<Vec<u8>>());
        for max in [1, 7, 100, BY_REFERENCE + 3, usize::MAX] {
            let mut q = WriteQueue::default();
            let mut expected = Vec::new();
            for round in 0..40u8 {
                q.bytes().extend_from_slice(&[round; 5]);
                expected.extend_from_slice(&[round; 5]);
                let payload =
                    if round % 3 == 0 { big.clone() } else { Bytes::from(vec![round; 9]) };
                q.put_payload(&payload);
                expected.extend_from_slice(&payload);
                let mut other = WriteQueue::default();
                other.bytes().extend_from_slice(&[round, round]);
                other.put_payload(&big.slice(round as usize..));
                expected.extend_from_slice(&[round, round]);
                expected.extend_from_slice(&big[round as usize..]);
                q.append(&mut other);
                assert!(other.is_empty());
            }
            assert_eq!(q.len(), expected.len());
            let mut w = Recorder::new(max, true);
            drain(&mut q, &mut w);
            assert_eq!(w.out, expected, "max {max}");
        }
    }

    /// Two large frames queued for a stream without vectored writes go out in one write, not as
    /// five (head, payload, CRC + head, payload, CRC).
    #[test]
    fn a_stream_without_vectored_writes_gets_one_contiguous_write() {
        let big = Bytes::from(vec![7u8; BY_REFERENCE + 808]);
        let mut q = WriteQueue::default();
        for _ in 0..2 {
            q.bytes().extend_from_slice(&[1u8; 21]);
            q.put_payload(&big);
            q.bytes().extend_from_slice(&[2u8; 4]);
        }
        let total = q.len();
        let mut w = Recorder::new(usize::MAX, false);
        drain(&mut q, &mut w);
        assert_eq!(w.writes, [total]);
    }

    #[test]
    fn large_payloads_are_not_copied() {
        let big = Bytes::from(vec![1u8; BY_REFERENCE]);
        let mut q = WriteQueue::default();
        q.bytes().extend_from_slice(b"head");
        q.put_payload(&big);
        q.bytes().extend_from_slice(b"crc!");
        assert!(q.pieces.iter().any(|p| p.as_ptr() == big.as_ptr()));
        let small = Bytes::from(vec![2u8; BY_REFERENCE - 1]);
        q.put_payload(&small);
        assert!(q.pieces.iter().all(|p| p.as_ptr() != small.as_ptr()));
    }
}
