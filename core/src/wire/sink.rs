//! Where `poll_transmit` puts encoded frames.

use bytes::{Bytes, BytesMut};

/// The destination of [`Session::poll_transmit`](crate::Session::poll_transmit) and
/// [`Endpoint::poll_transmit`](crate::Endpoint::poll_transmit): a `BytesMut` (every byte
/// copied into it), or an adapter's own buffer that keeps large payloads by reference and writes
/// them with a vectored write.
///
/// The core appends each frame in pieces, in order: the bytes before a data frame's payload, the
/// payload, then the bytes after it; a control frame, or a data frame whose payload is at most
/// [`INLINE_PAYLOAD_MAX`](super::INLINE_PAYLOAD_MAX) bytes, comes as one piece. What the sink
/// holds must be exactly the pieces concatenated, in the order they came.
pub trait FrameSink {
    /// Bytes held. Each `put` and `put_payload` must raise it by exactly the length appended:
    /// the core bounds a batch by it and compares it before and after a `poll_transmit` to see
    /// whether it wrote anything (a sink that under-reports would lose frames). A sink may lower
    /// it as it writes bytes out, between calls.
    fn len(&self) -> usize;

    /// True if nothing was appended.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a copy of `bytes`.
    fn put(&mut self, bytes: &[u8]);

    /// Appends a message payload. The default copies it; a sink may keep a clone of the `Bytes`
    /// instead (a reference count, no copy of the payload).
    fn put_payload(&mut self, payload: &Bytes) {
        self.put(payload);
    }
}

impl FrameSink for BytesMut {
    fn len(&self) -> usize {
        BytesMut::len(self)
    }

    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}
