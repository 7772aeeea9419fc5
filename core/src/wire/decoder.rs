//! Incremental frame decoder: bytes in as they arrive, whole frames out.

use bytes::{Buf, Bytes, BytesMut};

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

/// Turns a byte stream, pushed in arbitrary pieces, into frames.
///
/// Frames wholly inside one pushed `Bytes` are handed out as zero-copy slices of it; only a frame
/// split across pushes is copied, once, into an internal buffer whose size never exceeds
/// `max_frame_size` plus the frame overhead. A declared length above the limit is an error before
/// anything of that frame is buffered. After an error the decoder stays failed.
#[derive(Debug)]
pub struct Decoder {
    max_frame_size: u32,
    /// Bytes pushed and not yet consumed, starting at a frame boundary unless `partial` is non-empty.
    input: Bytes,
    /// The beginning of a frame that spans pushes.
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

    /// Bytes held and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.input.len() + self.partial.len()
    }

    /// The next whole frame, `Ok(None)` when more bytes are needed, or the error that ended the stream.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result =
            if self.partial.is_empty() { self.next_in_input() } else { self.next_in_partial() };
        result.map_err(|e| self.fail(e))
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

    /// Completes the frame that spans pushes: its length prefix first, then the rest.
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
        self.partial.reserve(total - self.partial.len());
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
}
