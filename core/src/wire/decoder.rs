//! Incremental frame decoder: bytes in as they arrive, whole frames out.

use bytes::{Buf, Bytes, BytesMut};

use super::frame::{Head, DATA_RUN_AT};
use super::{Frame, FrameType, FRAME_OVERHEAD};
use crate::reason::Reason;

/// Why bytes could not be decoded. Every variant ends the connection that sent them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The length prefix exceeds the configured maximum; nothing of the frame was buffered.
    #[error("frame of {len} bytes exceeds max_frame_size {max}")]
    FrameTooLarge {
        /// Declared length (type byte and body).
        len: u32,
        /// Configured limit.
        max: u32,
    },
    /// The length prefix is zero, so there is not even a type byte.
    #[error("frame with empty length")]
    EmptyFrame,
    /// The CRC-32C did not match: the frame was corrupted in flight.
    #[error("frame checksum mismatch")]
    ChecksumMismatch,
    /// The type byte names no frame type.
    #[error("unknown frame type {0:#04x}")]
    UnknownFrameType(u8),
    /// The body length is wrong for the frame type.
    #[error("{frame_type:?} frame with a body of {len} bytes")]
    BadLength {
        /// The frame's type.
        frame_type: FrameType,
        /// Its body length.
        len: u32,
    },
    /// A flag or kind byte holds a value outside its domain.
    #[error("invalid {0:?} field")]
    BadField(FrameType),
}

impl DecodeError {
    /// The reason code sent to the peer when this error ends a connection.
    pub fn reason(&self) -> Reason {
        match self {
            DecodeError::FrameTooLarge { .. } => Reason::FrameTooLarge,
            DecodeError::ChecksumMismatch => Reason::ChecksumMismatch,
            _ => Reason::MalformedFrame,
        }
    }
}

/// Turns a byte stream into frames, in one of two ways (use one per stream):
///
/// - **In place** ([`next_frame_in`](Self::next_frame_in)): the caller reads into its own
///   `BytesMut` and the decoder splits each whole frame off its front, leaving the start of a frame
///   not yet whole where it is; the caller appends its next read after it. Nothing is ever copied:
///   payloads are zero-copy slices of the caller's buffer. The caller's buffer then holds at most
///   one incomplete frame (at most `max_frame_size` plus the 8 bytes of prefix and checksum); the
///   decoder reserves nothing for it, so a lying length costs only what the peer really sent.
/// - **Owned pieces** ([`push`](Self::push) then [`next_frame`](Self::next_frame)): for callers
///   that receive the stream as `Bytes` chunks (simulators, tests, a handed-over connection's first
///   bytes). Frames wholly inside one pushed `Bytes` are zero-copy slices of it; a frame split
///   across pushes is copied, once, into an internal buffer that grows with what arrives (never by
///   the declared length up front).
///
/// A declared length above the limit is an error before anything of that frame is buffered.
/// After an error the decoder stays failed and keeps nothing.
#[derive(Debug)]
pub struct Decoder {
    max_frame_size: u32,
    /// Owned pieces: bytes pushed and not yet consumed, starting at a frame boundary unless
    /// `partial` is non-empty.
    input: Bytes,
    /// Owned pieces: the beginning of a frame that spans pushes.
    partial: BytesMut,
    failed: Option<DecodeError>,
}

impl Decoder {
    /// A decoder that refuses frames whose length prefix exceeds `max_frame_size`.
    pub fn new(max_frame_size: u32) -> Self {
        Decoder { max_frame_size, input: Bytes::new(), partial: BytesMut::new(), failed: None }
    }

    /// Adds received bytes. Call [`Decoder::next_frame`] until it returns `Ok(None)` before pushing more,
    /// or the unconsumed bytes are copied once to keep them.
    pub fn push(&mut self, bytes: Bytes) {
        if self.failed.is_some() {
            // A failed decoder keeps nothing (fuzz finding F1: it used to grow without bound).
            return;
        }
        if self.input.is_empty() {
            self.input = bytes;
        } else if !bytes.is_empty() {
            let mut joined = BytesMut::with_capacity(self.input.len() + bytes.len());
            joined.extend_from_slice(&self.input);
            joined.extend_from_slice(&bytes);
            self.input = joined.freeze();
        }
    }

    /// Changes the frame size limit for frames not yet started (e.g. raised after the handshake).
    pub fn set_max_frame_size(&mut self, max_frame_size: u32) {
        self.max_frame_size = max_frame_size;
    }

    /// Bytes pushed and not yet returned as frames (always 0 when decoding in place).
    pub fn buffered(&self) -> usize {
        self.input.len() + self.partial.len()
    }

    /// Takes what was pushed and not yet returned as frames, in order.
    pub(crate) fn take_buffered(&mut self) -> impl Iterator<Item = Bytes> {
        let partial = core::mem::take(&mut self.partial).freeze();
        let input = core::mem::take(&mut self.input);
        [partial, input].into_iter().filter(|b| !b.is_empty())
    }

    /// The next whole frame of what was pushed, `Ok(None)` when more bytes are needed, or the
    /// error that ended the stream.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result =
            if self.partial.is_empty() { self.next_in_input() } else { self.next_in_partial() };
        result.map_err(|e| self.fail(e))
    }

    /// Decodes in place: splits the next whole frame off the front of `buf` (its payloads are
    /// zero-copy slices of `buf`'s memory), or returns `Ok(None)` and leaves `buf` as it is when
    /// it holds less than a whole frame; append more bytes after them and call again. On an error
    /// (now or earlier) `buf` is cleared.
    ///
    /// If bytes were pushed and not yet consumed, `buf`'s bytes are pushed after them (a copy)
    /// and decoding continues from there, so mixing the two ways stays correct.
    pub fn next_frame_in(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        if let Some(e) = &self.failed {
            buf.clear();
            return Err(e.clone());
        }
        if self.buffered() > 0 {
            if !buf.is_empty() {
                self.push(buf.split().freeze());
            }
            return self.next_frame();
        }
        let total = match self.total_len(buf) {
            Ok(Some(total)) if buf.len() >= total => total,
            Ok(_) => return Ok(None),
            Err(e) => {
                buf.clear();
                return Err(self.fail(e));
            }
        };
        let parsed = match Frame::parse_head(&buf[..total]) {
            Ok(Head::Frame(frame)) => {
                buf.advance(total);
                Ok(frame)
            }
            Ok(Head::Data { seq, ack }) => {
                // The run is the frame's own memory, trimmed in place: one reference-count
                // increment for the frame (the split), none for the slicing.
                let mut run = buf.split_to(total).freeze();
                run.truncate(total - 4);
                run.advance(DATA_RUN_AT);
                Frame::data_from_run(seq, ack, run)
            }
            Err(e) => Err(e),
        };
        parsed.map(Some).map_err(|e| {
            buf.clear();
            self.fail(e)
        })
    }

    /// How many more bytes the frame at the front of `buf` needs before it is whole: 0 if `buf`
    /// is empty (or already holds a whole frame), the rest of the length prefix while that is
    /// incomplete, else the rest of the frame. An adapter may size its next read with it.
    pub fn missing(&self, buf: &[u8]) -> usize {
        match self.total_len(buf) {
            Ok(Some(total)) => total.saturating_sub(buf.len()),
            Ok(None) if !buf.is_empty() => 4 - buf.len(),
            _ => 0,
        }
    }

    fn fail(&mut self, e: DecodeError) -> DecodeError {
        self.input = Bytes::new();
        self.partial = BytesMut::new();
        self.failed = Some(e.clone());
        e
    }

    /// A frame wholly inside `input` is parsed in place: only its payload becomes a (zero-copy)
    /// `Bytes`, which saves reference-count traffic on the hot path. A frame that is not wholly
    /// there yet is stashed in `partial`.
    fn next_in_input(&mut self) -> Result<Option<Frame>, DecodeError> {
        match self.total_len(&self.input)? {
            Some(total) if self.input.len() >= total => {
                let frame = Frame::parse_in(&self.input, total);
                if self.input.len() == total {
                    self.input = Bytes::new();
                } else {
                    self.input.advance(total);
                }
                frame.map(Some)
            }
            _ => {
                self.stash_input();
                Ok(None)
            }
        }
    }

    /// Completes the frame that spans pushes: its length prefix first, then the rest. The
    /// buffer grows with the bytes that arrive, not by the declared length, so a peer that lies
    /// about a frame's length holds no more memory than it sent (within the allocator's doubling).
    fn next_in_partial(&mut self) -> Result<Option<Frame>, DecodeError> {
        if self.partial.len() < 4 {
            let take = (4 - self.partial.len()).min(self.input.len());
            self.partial.extend_from_slice(&self.input[..take]);
            self.input.advance(take);
            if self.partial.len() < 4 {
                return Ok(None);
            }
        }
        let total = self.total_len(&self.partial)?.unwrap_or(usize::MAX);
        let take = (total - self.partial.len()).min(self.input.len());
        self.partial.extend_from_slice(&self.input[..take]);
        self.input.advance(take);
        if self.partial.len() < total {
            return Ok(None);
        }
        let raw = core::mem::take(&mut self.partial).freeze();
        Frame::parse(raw).map(Some)
    }

    /// Moves the unconsumed input into the partial buffer; nothing more to return yet.
    fn stash_input(&mut self) {
        if !self.input.is_empty() {
            self.partial.extend_from_slice(&self.input);
            self.input = Bytes::new();
        }
    }

    /// Total frame length from a buffer starting at a frame boundary, once its prefix is there.
    fn total_len(&self, buf: &[u8]) -> Result<Option<usize>, DecodeError> {
        let Some(prefix) = buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        if len == 0 {
            return Err(DecodeError::EmptyFrame);
        }
        if len > self.max_frame_size {
            return Err(DecodeError::FrameTooLarge { len, max: self.max_frame_size });
        }
        Ok(Some((len as usize).saturating_add(FRAME_OVERHEAD - 1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Hello, HelloKind, Positions, Welcome};
    use alloc::vec::Vec;

    #[test]
    fn missing_counts_what_the_front_frame_still_lacks() {
        let mut wire = BytesMut::new();
        Frame::Ping { token: 3 }.encode(&mut wire);
        let d = Decoder::new(1 << 20);
        assert_eq!(d.missing(&[]), 0);
        for k in 1..wire.len() {
            let expected = if k < 4 { 4 - k } else { wire.len() - k };
            assert_eq!(d.missing(&wire[..k]), expected, "{k} of {} bytes", wire.len());
        }
        assert_eq!(d.missing(&wire), 0);
    }

    #[test]
    fn two_pushes_without_a_poll_between_keep_every_byte() {
        let mut wire = BytesMut::new();
        Frame::Ping { token: 3 }.encode(&mut wire);
        let wire = wire.freeze();
        let mut d = Decoder::new(1 << 20);
        d.push(wire.slice(..5));
        d.push(wire.slice(5..));
        assert_eq!(d.buffered(), wire.len());
        assert_eq!(d.next_frame(), Ok(Some(Frame::Ping { token: 3 })));
        assert_eq!((d.next_frame(), d.buffered()), (Ok(None), 0));
    }

    fn samples() -> Vec<Frame> {
        let p = Positions { received: 5, acked: 4, max_seq: 100, max_bytes: 1 << 40 };
        alloc::vec![
            Frame::Hello(Hello {
                min_version: 2,
                max_version: 3,
                kind: HelloKind::Resume,
                session_id: 9,
                secret: [7; 16],
                positions: p,
                max_message_size: 1000
            }),
            Frame::Welcome(Welcome {
                version: 1,
                resumed: true,
                session_id: 9,
                secret: [1; 16],
                positions: p,
                max_message_size: 7
            }),
            Frame::Reject { reason: Reason::BadSecret, min_version: 2, max_version: 1 },
            Frame::data(1, 2, &[Bytes::from_static(b"hello")]),
            Frame::data(u64::MAX - 1, 0, &[Bytes::new()]),
            Frame::data(
                7,
                3,
                &[Bytes::from_static(b"a"), Bytes::new(), Bytes::from(alloc::vec![9; 300])]
            ),
            Frame::Ack(p),
            Frame::Ping { token: 42 },
            Frame::Pong { token: 42 },
            Frame::Close { final_seq: 10 },
            Frame::CloseAck { final_seq: 11 },
            Frame::CloseDone,
            Frame::Abort { reason: Reason::ApplicationAbort },
            Frame::ConnClose { reason: Reason::Replaced },
        ]
    }

    fn encode_all(frames: &[Frame]) -> Bytes {
        let mut out = BytesMut::new();
        for f in frames {
            f.encode(&mut out);
        }
        out.freeze()
    }

    fn decode_all(d: &mut Decoder) -> Vec<Frame> {
        let mut v = Vec::new();
        while let Some(f) = d.next_frame().unwrap() {
            v.push(f);
        }
        v
    }

    #[test]
    fn every_frame_round_trips_in_one_push() {
        let frames = samples();
        let mut d = Decoder::new(1024);
        d.push(encode_all(&frames));
        assert_eq!(decode_all(&mut d), frames);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn frames_split_at_every_byte_boundary() {
        let frames = samples();
        let bytes = encode_all(&frames);
        for chunk in 1..=bytes.len() {
            let mut d = Decoder::new(1024);
            let mut got = Vec::new();
            for piece in bytes.chunks(chunk) {
                d.push(Bytes::copy_from_slice(piece));
                got.extend(decode_all(&mut d));
            }
            assert_eq!(got, frames, "chunk size {chunk}");
        }
    }

    #[test]
    fn whole_frames_are_zero_copy_slices_of_the_input() {
        let payloads = [Bytes::from_static(b"zero-copy"), Bytes::from_static(b"both")];
        let bytes = encode_all(&[Frame::data(0, 0, &payloads)]);
        let range = bytes.as_ptr_range();
        let mut d = Decoder::new(1024);
        d.push(bytes.clone());
        let Some(Frame::Data { messages, .. }) = d.next_frame().unwrap() else { panic!() };
        for payload in messages.iter() {
            assert!(range.contains(&payload.as_ptr()));
        }
    }

    #[test]
    fn oversized_length_is_refused_before_buffering() {
        let mut d = Decoder::new(100);
        d.push(Bytes::from_static(&[0, 0, 0, 101]));
        assert_eq!(d.next_frame(), Err(DecodeError::FrameTooLarge { len: 101, max: 100 }));
        assert_eq!(d.buffered(), 0);
        d.push(Bytes::from_static(&[1, 2, 3]));
        assert!(d.next_frame().is_err(), "a failed decoder stays failed");
        assert_eq!(d.buffered(), 0, "and keeps nothing pushed after the failure");
    }

    #[test]
    fn corruption_is_caught_by_the_checksum() {
        let bytes =
            encode_all(&[Frame::data(3, 0, &[Bytes::from_static(b"payload"), Bytes::new()])]);
        for i in 4..bytes.len() {
            for bit in 0..8 {
                let mut v = bytes.to_vec();
                v[i] ^= 1 << bit;
                let mut d = Decoder::new(1024);
                d.push(Bytes::from(v));
                assert_eq!(
                    d.next_frame(),
                    Err(DecodeError::ChecksumMismatch),
                    "byte {i} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn malformed_bodies_are_errors() {
        // A Ping with a 4-byte body, properly checksummed.
        let mut out = BytesMut::new();
        super::super::frame::tests_support::raw_frame(&mut out, 0x06, &[0, 0, 0, 1]);
        let mut d = Decoder::new(1024);
        d.push(out.freeze());
        assert_eq!(
            d.next_frame(),
            Err(DecodeError::BadLength { frame_type: FrameType::Ping, len: 4 })
        );

        let mut out = BytesMut::new();
        super::super::frame::tests_support::raw_frame(&mut out, 0x77, &[]);
        let mut d = Decoder::new(1024);
        d.push(out.freeze());
        assert_eq!(d.next_frame(), Err(DecodeError::UnknownFrameType(0x77)));

        let mut d = Decoder::new(1024);
        d.push(Bytes::from_static(&[0, 0, 0, 0]));
        assert_eq!(d.next_frame(), Err(DecodeError::EmptyFrame));
    }

    /// A data body: first seq, ack, then `run` as the message run.
    fn data_body(seq: u64, run: &[u8]) -> Vec<u8> {
        let mut body = seq.to_be_bytes().to_vec();
        body.extend_from_slice(&0u64.to_be_bytes());
        body.extend_from_slice(run);
        body
    }

    fn decode_raw(ty: u8, body: &[u8]) -> Result<Option<Frame>, DecodeError> {
        let mut out = BytesMut::new();
        super::super::frame::tests_support::raw_frame(&mut out, ty, body);
        let mut d = Decoder::new(1024);
        d.push(out.freeze());
        d.next_frame()
    }

    #[test]
    fn lying_message_runs_end_the_stream() {
        let bad_len = |len| Err(DecodeError::BadLength { frame_type: FrameType::Data, len });
        let bad_field = Err(DecodeError::BadField(FrameType::Data));
        assert_eq!(decode_raw(0x04, &data_body(0, &[])), bad_len(16), "no message");
        assert_eq!(decode_raw(0x04, &[0; 15]), bad_len(15), "no header");
        assert_eq!(decode_raw(0x04, &data_body(0, &[5, 1, 2])), bad_len(19), "length past the end");
        assert_eq!(decode_raw(0x04, &data_body(0, &[1, 1, 0x80])), bad_len(19), "prefix cut off");
        assert_eq!(decode_raw(0x04, &data_body(0, &[0x80, 0])), bad_field, "overlong prefix");
        assert_eq!(decode_raw(0x04, &data_body(u64::MAX, &[0])), bad_field, "seq would wrap");
        assert_eq!(decode_raw(0x04, &data_body(u64::MAX - 2, &[0, 0, 0])), bad_field);
        let ok = decode_raw(0x04, &data_body(u64::MAX - 2, &[0, 0])).unwrap().unwrap();
        assert!(
            matches!(ok, Frame::Data { seq, messages, .. } if seq == u64::MAX - 2 && messages.count() == 2)
        );
    }

    /// Decodes in place what `buf` holds; `buf` keeps the incomplete rest.
    fn decode_all_in(d: &mut Decoder, buf: &mut BytesMut) -> Vec<Frame> {
        let mut v = Vec::new();
        while let Some(f) = d.next_frame_in(buf).unwrap() {
            v.push(f);
        }
        v
    }

    #[test]
    fn in_place_every_frame_round_trips_at_every_chunking() {
        let frames = samples();
        let bytes = encode_all(&frames);
        for chunk in 1..=bytes.len() {
            let mut d = Decoder::new(1024);
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for piece in bytes.chunks(chunk) {
                buf.extend_from_slice(piece);
                got.extend(decode_all_in(&mut d, &mut buf));
                // Only an incomplete frame is left, and `missing` says what completes it.
                assert!(buf.len() < 4 || d.total_len(&buf).unwrap().unwrap() > buf.len());
                let missing = d.missing(&buf);
                assert_eq!(missing == 0, buf.is_empty(), "chunk size {chunk}");
            }
            assert_eq!(got, frames, "chunk size {chunk}");
            assert!(buf.is_empty());
            assert_eq!(d.buffered(), 0, "nothing is copied into the decoder");
        }
    }

    #[test]
    fn in_place_missing_completes_the_frame_exactly() {
        let frames = samples();
        let bytes = encode_all(&frames);
        let mut d = Decoder::new(1024);
        let mut buf = BytesMut::new();
        let mut at = 0;
        let mut got = Vec::new();
        // Read one byte, then exactly what `missing` asks for, again and again.
        while at < bytes.len() {
            let want = d.missing(&buf).max(1);
            let knew_length = buf.len() >= 4;
            buf.extend_from_slice(&bytes[at..at + want]);
            at += want;
            let before = got.len();
            got.extend(decode_all_in(&mut d, &mut buf));
            if knew_length {
                assert_eq!(got.len(), before + 1, "a read of `missing` bytes completes a frame");
                assert!(buf.is_empty());
            }
        }
        assert_eq!(got, frames);
    }

    #[test]
    fn in_place_payloads_are_slices_of_the_callers_buffer() {
        let payloads = [Bytes::from(alloc::vec![5; 3000]), Bytes::from_static(b"second")];
        let bytes = encode_all(&[Frame::data(0, 0, &payloads), Frame::Ping { token: 1 }]);
        let mut buf = BytesMut::with_capacity(8192);
        // The frame arrives in three reads appended to the same buffer.
        let mut d = Decoder::new(4096);
        let range = {
            let p = buf.as_ptr() as usize;
            p..p + buf.capacity()
        };
        for piece in [&bytes[..2], &bytes[2..1500], &bytes[1500..]] {
            buf.extend_from_slice(piece);
            if let Some(Frame::Data { messages, .. }) = d.next_frame_in(&mut buf).unwrap() {
                for payload in messages.iter() {
                    assert!(range.contains(&(payload.as_ptr() as usize)), "zero-copy");
                }
                assert_eq!(messages.iter().collect::<Vec<_>>(), payloads);
                assert_eq!(d.next_frame_in(&mut buf).unwrap(), Some(Frame::Ping { token: 1 }));
            }
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn in_place_frame_exactly_at_the_limit_and_one_byte_over() {
        let payload = Bytes::from(alloc::vec![1; 200]);
        let frame = Frame::data(0, 0, &[payload]);
        let bytes = encode_all(core::slice::from_ref(&frame));
        let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let mut d = Decoder::new(len);
        let mut buf = BytesMut::from(&bytes[..bytes.len() - 1]);
        assert_eq!(d.next_frame_in(&mut buf), Ok(None));
        assert_eq!(d.missing(&buf), 1);
        buf.extend_from_slice(&bytes[bytes.len() - 1..]);
        assert_eq!(d.next_frame_in(&mut buf), Ok(Some(frame)));
        let mut d = Decoder::new(len - 1);
        let mut buf = BytesMut::from(&bytes[..4]);
        let err = DecodeError::FrameTooLarge { len, max: len - 1 };
        assert_eq!(d.next_frame_in(&mut buf), Err(err.clone()));
        assert!(buf.is_empty(), "the caller's buffer is cleared on an error");
        buf.extend_from_slice(&bytes);
        assert_eq!(d.next_frame_in(&mut buf), Err(err), "and stays failed");
        assert!(buf.is_empty());
    }

    #[test]
    fn in_place_a_lying_length_reserves_nothing() {
        // A prefix claiming the largest frame allowed, then a few bytes of it: the decoder waits
        // and reserves nothing for the rest; the caller's buffer holds only what came.
        let mut d = Decoder::new(u32::MAX);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0xff, 0xff, 0xff, 0xf0, 4, 1, 2, 3]);
        let capacity = buf.capacity();
        assert_eq!(d.next_frame_in(&mut buf), Ok(None));
        assert_eq!(buf.len(), 8);
        assert_eq!(buf.capacity(), capacity);
        assert_eq!(d.missing(&buf), 0xffff_fff0 + 8 - 8);
        assert_eq!(d.buffered(), 0);
        // The owned-pieces path grows with what arrives, not by the declared length.
        let mut d = Decoder::new(u32::MAX);
        d.push(Bytes::from_static(&[0xff, 0xff, 0xff, 0xf0, 4, 1]));
        assert_eq!(d.next_frame(), Ok(None));
        d.push(Bytes::from_static(&[2, 3]));
        assert_eq!(d.next_frame(), Ok(None));
        assert!(d.partial.capacity() < 4096, "reserved {}", d.partial.capacity());
    }

    #[test]
    fn in_place_errors_clear_the_buffer_and_corruption_is_caught() {
        let bytes =
            encode_all(&[Frame::data(3, 0, &[Bytes::from_static(b"payload")]), Frame::CloseDone]);
        let mut v = bytes.to_vec();
        v[10] ^= 1;
        let mut d = Decoder::new(1024);
        let mut buf = BytesMut::from(&v[..]);
        assert_eq!(d.next_frame_in(&mut buf), Err(DecodeError::ChecksumMismatch));
        assert!(buf.is_empty());
        let mut buf = BytesMut::from(&[0u8, 0, 0, 0, 1][..]);
        assert_eq!(Decoder::new(1024).next_frame_in(&mut buf), Err(DecodeError::EmptyFrame));
        assert!(buf.is_empty());
    }

    #[test]
    fn pushed_bytes_come_first_when_the_ways_are_mixed() {
        let frames = samples();
        let bytes = encode_all(&frames);
        let mut d = Decoder::new(1024);
        d.push(bytes.slice(..7));
        assert_eq!(d.next_frame(), Ok(None));
        let mut buf = BytesMut::from(&bytes[7..]);
        let got = decode_all_in(&mut d, &mut buf);
        assert_eq!(got, frames);
        assert!(buf.is_empty());
    }
}
