//! The wire format: frame types, their encoding, and the incremental decoder.
//!
//! Every frame is `len: u32 | type: u8 | body | crc: u32`, big-endian, where `len` counts the type
//! byte and the body, and `crc` is the CRC-32C of everything before it. A data frame's body is the
//! first message's sequence number, the piggybacked ack, then a run of length-prefixed messages.
//! docs/PROTOCOL.md is the spec.

mod decoder;
mod frame;
mod messages;
mod sink;

pub use decoder::{DecodeError, Decoder};
pub(crate) use frame::DataFrameWriter;
pub use frame::{tests_support, Frame, FrameType, Hello, HelloKind, Positions, Welcome};
pub(crate) use messages::{prefix_len, spans, take_first};
pub use messages::{Messages, MessagesIter, MAX_LENGTH_PREFIX};
pub use sink::FrameSink;

/// Protocol version this build speaks best (2: several messages per data frame).
pub const PROTOCOL_VERSION: u16 = 2;
/// Oldest protocol version this build speaks. Version 1 (one message per data frame) was never
/// released and is not spoken (docs/PROTOCOL.md, "Versions").
pub const MIN_PROTOCOL_VERSION: u16 = 2;
/// Length prefix, type byte and checksum: bytes every frame adds to its body.
pub const FRAME_OVERHEAD: usize = 4 + 1 + 4;
/// Bytes a data frame adds to its messages (frame overhead, first sequence number, piggybacked
/// ack); each message adds its length prefix.
pub const DATA_OVERHEAD: usize = FRAME_OVERHEAD + 16;
/// Length field (type byte plus body) of the largest control frame (`Hello`): `max_frame_size` must
/// be at least this.
pub const MAX_CONTROL_FRAME_LEN: u32 = 1 + 65;
/// Length field of the largest frame an endpoint accepts on a connection before its handshake
/// completes (its first frame, a `Hello`), whatever `max_frame_size` says: a flood of junk
/// connections cannot make the endpoint buffer much, and a small `max_frame_size` still admits a
/// `Hello`. A handshaking connection's reader may hold up to this plus 8 bytes (length and checksum).
pub const HANDSHAKE_FRAME_LIMIT: u32 = 128;
/// Data payloads up to this size are copied into the frame by the encoder; larger ones are handed
/// to [`FrameSink::put_payload`], which may keep them by reference.
pub const INLINE_PAYLOAD_MAX: usize = 128;
/// Length field of a data frame minus its message run (type byte, first sequence number, ack).
pub const DATA_HEADER_LEN: u32 = 1 + 16;
/// Length field of a data frame carrying one message, minus the message: `max_frame_size` must be
/// at least `max_message_size` plus this.
pub const DATA_FRAME_LEN: u32 = DATA_HEADER_LEN + MAX_LENGTH_PREFIX as u32;
/// A data frame packs consecutive messages until its run would pass this many bytes (or the
/// transmit batch, or the peer's limit); a larger message goes in a frame of its own.
pub const PACKED_RUN_MAX: usize = 16 * 1024;
/// A resume secret: 128 bits issued by the server at session start.
pub type Secret = [u8; 16];
