//! Where `poll_transmit` puts encoded frames.

use bytes::{Bytes, BytesMut};

/// The destination of [`Session::poll_transmit`](crate::Session::poll_transmit) and
/// [`Endpoint::poll_transmit`](crate::Endpoint::poll_transmit): a `BytesMut` (every byte
/// copied into it), or an adapter's own buffer that keeps large payloads by reference and writes
/// them with a vectored write.
///
/// The core appends each frame's bytes to [`bytes`](FrameSink::bytes), except a data payload of
/// more than [`INLINE_PAYLOAD_MAX`](super::INLINE_PAYLOAD_MAX) bytes, which it hands to
/// [`put_payload`](FrameSink::put_payload) between the bytes before and after it. What the sink
/// holds must be exactly those pieces, in the order they came.
pub trait FrameSink {
    /// The buffer frame bytes are appended to (the sink's newest piece).
    fn bytes(&mut self) -> &mut BytesMut;

    /// Appends a large message payload. The default copies it into [`bytes`](Self::bytes); a
    /// sink may keep a clone of the `Bytes` instead (a reference count, no copy).
    fn put_payload(&mut self, payload: &Bytes) {
        self.bytes().extend_from_slice(payload);
    }

    /// Bytes held: everything appended through `bytes` and `put_payload` and not yet taken out.
    /// The core bounds a batch by it and compares it before and after a `poll_transmit` to see
    /// whether it wrote anything, so it must grow by exactly what is appended. A sink may lower
    /// it as it writes bytes out, between calls.
    fn len(&self) -> usize;

    /// True if the sink holds nothing.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl FrameSink for BytesMut {
    fn bytes(&mut self) -> &mut BytesMut {
        self
    }

    fn len(&self) -> usize {
        BytesMut::len(self)
    }
}
