//! The wire format: frame types, their encoding, and the incremental decoder.
//!
//! Every frame is `len: u32 | type: u8 | body | crc: u32`, big-endian, where `len` counts the type
//! byte and the body, and `crc` is the CRC-32C of everything before it. docs/PROTOCOL.md is the spec.

mod decoder;
mod frame;
mod sink;

pub use decoder::{DecodeError, Decoder};
pub(crate) use frame::encode_data;
pub use frame::{tests_support, Frame, FrameType, Hello, HelloKind, Positions, Welcome};
pub use sink::FrameSink;

/// Protocol version this build speaks best.
pub const PROTOCOL_VERSION: u16 = 1;
/// Oldest protocol version this build speaks.
pub const MIN_PROTOCOL_VERSION: u16 = 1;
/// Length prefix, type byte and checksum: bytes every frame adds to its body.
pub const FRAME_OVERHEAD: usize = 4 + 1 + 4;
/// Bytes a data frame adds to its payload (frame overhead, sequence number, piggybacked ack).
pub const DATA_OVERHEAD: usize = FRAME_OVERHEAD + 16;
/// Length field (type byte plus body) of the largest control frame (`Hello`): `max_frame_size` must
/// be at least this.
pub const MAX_CONTROL_FRAME_LEN: u32 = 1 + 65;
/// Data payloads up to this size are copied into the frame by the encoder; larger ones are handed
/// to [`FrameSink::put_payload`], which may keep them by reference.
pub const INLINE_PAYLOAD_MAX: usize = 128;
/// Length field of a data frame minus its payload (type byte, sequence number, ack).
pub const DATA_FRAME_LEN: u32 = 1 + 16;
/// A resume secret: 128 bits issued by the server at session start.
pub type Secret = [u8; 16];
