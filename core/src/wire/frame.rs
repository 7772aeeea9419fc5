//! Frame types with their byte layout, encoder and body parser.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::messages::{self, Messages, RunError};
use super::{DecodeError, FrameSink, Secret};
use crate::crc;
use crate::reason::Reason;

/// One-byte frame type codes (docs/PROTOCOL.md, "Frames").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameType {
    /// Client's first frame: new session or resume.
    Hello = 0x01,
    /// Server's answer to an accepted `Hello`.
    Welcome = 0x02,
    /// Server's refusal of a `Hello`; the connection closes after it.
    Reject = 0x03,
    /// A run of consecutive application messages.
    Data = 0x04,
    /// Standalone acknowledgement and window update.
    Ack = 0x05,
    /// Heartbeat; the peer answers with `Pong`.
    Ping = 0x06,
    /// Answer to `Ping`, echoing its token.
    Pong = 0x07,
    /// Sender will send nothing after `final_seq`; asks the peer to finish.
    Close = 0x08,
    /// Answer to `Close` once the responder is finished too.
    CloseAck = 0x09,
    /// Initiator saw `CloseAck`; the session is closed on both sides.
    CloseDone = 0x0A,
    /// The session is ended by the sender, unconfirmed messages are lost.
    Abort = 0x0B,
    /// This connection ends; the session stays resumable.
    ConnClose = 0x0C,
}

impl FrameType {
    fn from_code(code: u8) -> Option<FrameType> {
        use FrameType::*;
        Some(match code {
            0x01 => Hello,
            0x02 => Welcome,
            0x03 => Reject,
            0x04 => Data,
            0x05 => Ack,
            0x06 => Ping,
            0x07 => Pong,
            0x08 => Close,
            0x09 => CloseAck,
            0x0A => CloseDone,
            0x0B => Abort,
            0x0C => ConnClose,
            _ => return None,
        })
    }
}

/// What a `Hello` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelloKind {
    /// Start a new session.
    New = 0,
    /// Resume the named session.
    Resume = 1,
}

/// A receiver's state as told to its peer: what arrived, what is acknowledged, what may be sent.
///
/// All four are absolute positions, so repeating or reordering them is harmless.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Positions {
    /// Every message with a lower sequence number has been received.
    pub received: u64,
    /// Every message with a lower sequence number is acknowledged (confirmed to the sender).
    pub acked: u64,
    /// The sender may send messages with sequence numbers below this.
    pub max_seq: u64,
    /// The sender may send messages whose cumulative payload offset ends at or below this.
    pub max_bytes: u64,
}

/// The client's handshake frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Lowest protocol version the client speaks.
    pub min_version: u16,
    /// Highest protocol version the client speaks.
    pub max_version: u16,
    /// New session or resume.
    pub kind: HelloKind,
    /// Session to resume (0 for a new session).
    pub session_id: u64,
    /// Resume secret (zero for a new session).
    pub secret: Secret,
    /// The client's receive state.
    pub positions: Positions,
    /// Largest message the client accepts.
    pub max_message_size: u32,
}

/// The server's acceptance of a `Hello`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Welcome {
    /// The version chosen for this connection.
    pub version: u16,
    /// True when an existing session was resumed.
    pub resumed: bool,
    /// The session's id.
    pub session_id: u64,
    /// The session's resume secret.
    pub secret: Secret,
    /// The server's receive state.
    pub positions: Positions,
    /// Largest message the server accepts.
    pub max_message_size: u32,
}

/// One decoded frame. Payloads are zero-copy slices of the decoder's input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// See [`FrameType::Hello`].
    Hello(Hello),
    /// See [`FrameType::Welcome`].
    Welcome(Welcome),
    /// See [`FrameType::Reject`].
    Reject {
        /// Why.
        reason: Reason,
        /// Lowest version the server speaks.
        min_version: u16,
        /// Highest version the server speaks.
        max_version: u16,
    },
    /// See [`FrameType::Data`].
    Data {
        /// The first message's sequence number; the others follow it one by one.
        seq: u64,
        /// Piggybacked cumulative ack: every message of the other direction below this is acked.
        ack: u64,
        /// The messages.
        messages: Messages,
    },
    /// See [`FrameType::Ack`].
    Ack(Positions),
    /// See [`FrameType::Ping`].
    Ping {
        /// Echoed by the `Pong`.
        token: u64,
    },
    /// See [`FrameType::Pong`].
    Pong {
        /// The `Ping`'s token.
        token: u64,
    },
    /// See [`FrameType::Close`].
    Close {
        /// The sender's next sequence number: it sent exactly the messages below it.
        final_seq: u64,
    },
    /// See [`FrameType::CloseAck`].
    CloseAck {
        /// The responder's next sequence number.
        final_seq: u64,
    },
    /// See [`FrameType::CloseDone`].
    CloseDone,
    /// See [`FrameType::Abort`].
    Abort {
        /// Why.
        reason: Reason,
    },
    /// See [`FrameType::ConnClose`].
    ConnClose {
        /// Why.
        reason: Reason,
    },
}

const HELLO_LEN: usize = 2 + 2 + 1 + 8 + 16 + 32 + 4;
const WELCOME_LEN: usize = 2 + 1 + 8 + 16 + 32 + 4;

/// Writes one control frame: length, type, the body `body` writes (`body_len` bytes), then the
/// CRC over all of it.
#[inline]
fn put_frame(out: &mut BytesMut, ty: FrameType, body_len: usize, body: impl FnOnce(&mut BytesMut)) {
    let start = out.len();
    out.reserve(super::FRAME_OVERHEAD + body_len);
    // body_len is a small constant for every control frame.
    out.put_u32((1 + body_len) as u32);
    out.put_u8(ty as u8);
    body(out);
    debug_assert_eq!(out.len() - start, 5 + body_len);
    let crc = crc::checksum(&out[start..]);
    out.put_u32(crc);
}

fn put_positions(out: &mut BytesMut, p: &Positions) {
    out.put_u64(p.received);
    out.put_u64(p.acked);
    out.put_u64(p.max_seq);
    out.put_u64(p.max_bytes);
}

/// Writes one data frame into a [`FrameSink`] without building a [`Frame`] (the hot path):
/// [`begin`](Self::begin) with the run's size, [`message`](Self::message) per message, then
/// [`finish`](Self::finish). Payloads up to `INLINE_PAYLOAD_MAX` bytes are copied into the sink's
/// byte buffer; larger ones go through [`FrameSink::put_payload`], the CRC carried across them.
pub(crate) struct DataFrameWriter {
    /// Where the CRC's next input starts in the sink's current byte buffer.
    from: usize,
    /// The CRC of the frame's bytes before `from` (and of the pieces handed over by reference).
    crc: u32,
}

impl DataFrameWriter {
    /// Writes the header of a frame whose messages take `run_len` bytes on the wire, `copied` of
    /// which go into the byte buffer (the prefixes and the inline payloads).
    #[inline]
    pub(crate) fn begin<S: FrameSink + ?Sized>(
        out: &mut S,
        seq: u64,
        ack: u64,
        run_len: usize,
        copied: usize,
    ) -> DataFrameWriter {
        let buf = out.bytes();
        let from = buf.len();
        buf.reserve(super::DATA_OVERHEAD + copied);
        // The run is bounded by the sender's frame budget, far below u32::MAX.
        buf.put_u32(super::DATA_HEADER_LEN + run_len as u32);
        buf.put_u8(FrameType::Data as u8);
        buf.put_u64(seq);
        buf.put_u64(ack);
        DataFrameWriter { from, crc: 0 }
    }

    /// Appends one message: its length prefix, then its payload.
    #[inline]
    pub(crate) fn message<S: FrameSink + ?Sized>(&mut self, out: &mut S, payload: &Bytes) {
        let buf = out.bytes();
        // A payload is bounded by max_message_size (a u32).
        messages::put_length(buf, payload.len() as u32);
        if payload.len() <= super::INLINE_PAYLOAD_MAX {
            buf.put_slice(payload);
            return;
        }
        self.crc = crc::append(self.crc, &buf[self.from..]);
        self.crc = crc::append(self.crc, payload);
        out.put_payload(payload);
        self.from = out.bytes().len();
    }

    /// Appends the CRC.
    #[inline]
    pub(crate) fn finish<S: FrameSink + ?Sized>(self, out: &mut S) {
        let buf = out.bytes();
        let crc = crc::append(self.crc, &buf[self.from..]);
        buf.put_u32(crc);
    }
}

impl Frame {
    /// A data frame carrying `payloads` (at least one) from sequence number `seq` on.
    pub fn data<'a>(seq: u64, ack: u64, payloads: impl IntoIterator<Item = &'a Bytes>) -> Frame {
        Frame::Data { seq, ack, messages: Messages::from_payloads(payloads) }
    }

    /// The frame's type code.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Frame::Hello(_) => FrameType::Hello,
            Frame::Welcome(_) => FrameType::Welcome,
            Frame::Reject { .. } => FrameType::Reject,
            Frame::Data { .. } => FrameType::Data,
            Frame::Ack(_) => FrameType::Ack,
            Frame::Ping { .. } => FrameType::Ping,
            Frame::Pong { .. } => FrameType::Pong,
            Frame::Close { .. } => FrameType::Close,
            Frame::CloseAck { .. } => FrameType::CloseAck,
            Frame::CloseDone => FrameType::CloseDone,
            Frame::Abort { .. } => FrameType::Abort,
            Frame::ConnClose { .. } => FrameType::ConnClose,
        }
    }

    /// Appends the frame's bytes (length, type, body, CRC) to `out` (e.g. a `BytesMut`).
    pub fn encode<S: FrameSink + ?Sized>(&self, out: &mut S) {
        let ty = self.frame_type();
        let out = match self {
            Frame::Data { seq, ack, messages } => {
                let mut w = DataFrameWriter::begin(out, *seq, *ack, messages.as_wire().len(), 0);
                messages.iter().for_each(|m| w.message(out, &m));
                return w.finish(out);
            }
            // Control frames are small: one piece, straight into the sink's byte buffer.
            _ => out.bytes(),
        };
        match self {
            Frame::Hello(h) => put_frame(out, ty, HELLO_LEN, |o| {
                o.put_u16(h.min_version);
                o.put_u16(h.max_version);
                o.put_u8(h.kind as u8);
                o.put_u64(h.session_id);
                o.put_slice(&h.secret);
                put_positions(o, &h.positions);
                o.put_u32(h.max_message_size);
            }),
            Frame::Welcome(w) => put_frame(out, ty, WELCOME_LEN, |o| {
                o.put_u16(w.version);
                o.put_u8(u8::from(w.resumed));
                o.put_u64(w.session_id);
                o.put_slice(&w.secret);
                put_positions(o, &w.positions);
                o.put_u32(w.max_message_size);
            }),
            Frame::Reject { reason, min_version, max_version } => put_frame(out, ty, 5, |o| {
                o.put_u8(reason.code());
                o.put_u16(*min_version);
                o.put_u16(*max_version);
            }),
            Frame::Data { .. } => {} // encoded above
            Frame::Ack(p) => put_frame(out, ty, 32, |o| put_positions(o, p)),
            Frame::Ping { token } | Frame::Pong { token } => {
                put_frame(out, ty, 8, |o| o.put_u64(*token))
            }
            Frame::Close { final_seq } | Frame::CloseAck { final_seq } => {
                put_frame(out, ty, 8, |o| o.put_u64(*final_seq))
            }
            Frame::CloseDone => put_frame(out, ty, 0, |_| {}),
            Frame::Abort { reason } | Frame::ConnClose { reason } => {
                put_frame(out, ty, 1, |o| o.put_u8(reason.code()))
            }
        }
    }

    /// Parses a whole frame (length prefix through CRC) whose length was already checked.
    pub(super) fn parse(frame: Bytes) -> Result<Frame, DecodeError> {
        let len = frame.len();
        Self::parse_in(&frame, len)
    }

    /// Parses the whole frame at the start of `buf`, `total` bytes long; slices only the payload.
    pub(super) fn parse_in(buf: &Bytes, total: usize) -> Result<Frame, DecodeError> {
        match Frame::parse_head(&buf[..total])? {
            Head::Frame(frame) => Ok(frame),
            Head::Data { seq, ack } => {
                Frame::data_from_run(seq, ack, buf.slice(DATA_RUN_AT..total - 4))
            }
        }
    }

    /// Checks a whole frame (length prefix through CRC, already checked against the limit) and
    /// parses all of it but a data frame's message run, which the caller slices from where the
    /// frame lies ([`DATA_RUN_AT`] to the CRC) and hands to [`Frame::data_from_run`].
    pub(super) fn parse_head(frame: &[u8]) -> Result<Head, DecodeError> {
        let crc_at = frame.len() - 4;
        let expected = u32::from_be_bytes([
            frame[crc_at],
            frame[crc_at + 1],
            frame[crc_at + 2],
            frame[crc_at + 3],
        ]);
        if crc::checksum(&frame[..crc_at]) != expected {
            return Err(DecodeError::ChecksumMismatch);
        }
        let code = frame[4];
        let ty = FrameType::from_code(code).ok_or(DecodeError::UnknownFrameType(code))?;
        let body_len = crc_at - 5;
        let fixed = |want: usize| -> Result<(), DecodeError> {
            if body_len == want {
                Ok(())
            } else {
                Err(DecodeError::BadLength { frame_type: ty, len: body_len as u32 })
            }
        };
        let mut b = &frame[5..crc_at];
        let parsed = match ty {
            FrameType::Hello => {
                fixed(HELLO_LEN)?;
                let min_version = b.get_u16();
                let max_version = b.get_u16();
                let kind = match b.get_u8() {
                    0 => HelloKind::New,
                    1 => HelloKind::Resume,
                    _ => return Err(DecodeError::BadField(FrameType::Hello)),
                };
                let session_id = b.get_u64();
                let secret = take_secret(&mut b);
                Frame::Hello(Hello {
                    min_version,
                    max_version,
                    kind,
                    session_id,
                    secret,
                    positions: get_positions(&mut b),
                    max_message_size: b.get_u32(),
                })
            }
            FrameType::Welcome => {
                fixed(WELCOME_LEN)?;
                let version = b.get_u16();
                let resumed = match b.get_u8() {
                    0 => false,
                    1 => true,
                    _ => return Err(DecodeError::BadField(FrameType::Welcome)),
                };
                let session_id = b.get_u64();
                let secret = take_secret(&mut b);
                Frame::Welcome(Welcome {
                    version,
                    resumed,
                    session_id,
                    secret,
                    positions: get_positions(&mut b),
                    max_message_size: b.get_u32(),
                })
            }
            FrameType::Reject => {
                fixed(5)?;
                Frame::Reject {
                    reason: Reason::from_code(b.get_u8()),
                    min_version: b.get_u16(),
                    max_version: b.get_u16(),
                }
            }
            FrameType::Data => {
                if body_len < 16 {
                    return Err(DecodeError::BadLength { frame_type: ty, len: body_len as u32 });
                }
                return Ok(Head::Data { seq: b.get_u64(), ack: b.get_u64() });
            }
            FrameType::Ack => {
                fixed(32)?;
                Frame::Ack(get_positions(&mut b))
            }
            FrameType::Ping => {
                fixed(8)?;
                Frame::Ping { token: b.get_u64() }
            }
            FrameType::Pong => {
                fixed(8)?;
                Frame::Pong { token: b.get_u64() }
            }
            FrameType::Close => {
                fixed(8)?;
                Frame::Close { final_seq: b.get_u64() }
            }
            FrameType::CloseAck => {
                fixed(8)?;
                Frame::CloseAck { final_seq: b.get_u64() }
            }
            FrameType::CloseDone => {
                fixed(0)?;
                Frame::CloseDone
            }
            FrameType::Abort => {
                fixed(1)?;
                Frame::Abort { reason: Reason::from_code(b.get_u8()) }
            }
            FrameType::ConnClose => {
                fixed(1)?;
                Frame::ConnClose { reason: Reason::from_code(b.get_u8()) }
            }
        };
        Ok(Head::Frame(parsed))
    }

    /// A data frame from its first sequence number, its ack and its message `run` (checked here:
    /// canonical length prefixes, no length past the end, sequence numbers that do not wrap).
    pub(super) fn data_from_run(seq: u64, ack: u64, run: Bytes) -> Result<Frame, DecodeError> {
        let ty = FrameType::Data;
        let body_len = (run.len() + 16) as u32;
        let messages = Messages::parse(run).map_err(|e| match e {
            RunError::BadPrefix => DecodeError::BadField(ty),
            RunError::BadLength => DecodeError::BadLength { frame_type: ty, len: body_len },
        })?;
        // Sequence numbers are u64 and never wrap: the position after the last message must exist.
        if seq.checked_add(messages.count() as u64).is_none() {
            return Err(DecodeError::BadField(ty));
        }
        Ok(Frame::Data { seq, ack, messages })
    }
}

/// What [`Frame::parse_head`] found in a whole, checked frame.
pub(super) enum Head {
    /// Any frame but data, parsed.
    Frame(Frame),
    /// A data frame's fixed fields; its message run is still to be sliced and checked.
    Data {
        /// First sequence number.
        seq: u64,
        /// Piggybacked ack.
        ack: u64,
    },
}

/// Where a data frame's message run starts: length prefix, type byte, first sequence number, ack.
pub(super) const DATA_RUN_AT: usize = 4 + 1 + 16;

fn take_secret(b: &mut &[u8]) -> Secret {
    let mut secret = [0u8; 16];
    b.copy_to_slice(&mut secret);
    secret
}

fn get_positions(b: &mut &[u8]) -> Positions {
    Positions {
        received: b.get_u64(),
        acked: b.get_u64(),
        max_seq: b.get_u64(),
        max_bytes: b.get_u64(),
    }
}

/// Builds checksummed frames with arbitrary type and body, for tests and fuzzers.
#[doc(hidden)]
pub mod tests_support {
    use super::*;

    /// Appends a frame with type code `ty` and body `body`, with a correct length and CRC.
    pub fn raw_frame(out: &mut BytesMut, ty: u8, body: &[u8]) {
        let start = out.len();
        out.put_u32((1 + body.len()) as u32);
        out.put_u8(ty);
        out.put_slice(body);
        let crc = crc::checksum(&out[start..]);
        out.put_u32(crc);
    }
}
