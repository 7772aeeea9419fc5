//! The driver's read memory: one buffer for all its connections (reads happen one at a time), and
//! a second one it alternates with, reused once everything cut from it has been dropped.
//!
//! What a read returns is handed to the core as a zero-copy slice, and delivered payloads stay
//! slices of it until the application drops them. Allocating a fresh buffer whenever the current
//! one filled up made the allocator return and re-fault its pages: at 64 KiB messages a third of
//! all received pages page-faulted (perf record -e page-faults), which cost more than the copy.
//! Memory held per driver is about two chunks plus whatever payloads the application still holds,
//! whatever the number of connections.

use bytes::{Bytes, BytesMut};

/// Size of each buffer.
pub(crate) const CHUNK: usize = 256 * 1024;
/// A read is offered at least this much room.
const MIN_ROOM: usize = CHUNK / 4;

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct ReadBuf {
    current: BytesMut,
    spare: BytesMut,
}

impl ReadBuf {
    /// The buffer the next read appends to: empty, with at least `MIN_ROOM` bytes of room.
    pub(crate) fn room(&mut self) -> &mut BytesMut {
        debug_assert!(self.current.is_empty(), "take() after every read");
        if self.current.capacity() < MIN_ROOM {
            let mut next = std::mem::take(&mut self.spare);
            // Succeeds when every slice cut from the spare has been dropped: its pages are
            // already mapped, and no allocation happens.
            if !next.try_reclaim(CHUNK) {
                next = BytesMut::with_capacity(CHUNK);
            }
            self.spare = std::mem::replace(&mut self.current, next);
        }
        &mut self.current
    }

    /// What the last read appended, as a slice that shares the buffer.
    pub(crate) fn take(&mut self) -> Bytes {
        self.current.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(buf: &mut ReadBuf, n: usize) -> Bytes {
        buf.room().extend_from_slice(&vec![7u8; n]);
        buf.take()
    }

    #[test]
    fn buffers_are_reused_once_their_slices_are_dropped() {
        let mut buf = ReadBuf::default();
        let first = buf.room().as_ptr() as usize;
        // Use up the first buffer and move to a second one.
        drop(fill(&mut buf, CHUNK - MIN_ROOM + 1));
        let second = buf.room().as_ptr() as usize;
        assert_ne!(first, second);
        // Using up the second one comes back to the first, whose slice is gone.
        drop(fill(&mut buf, CHUNK - MIN_ROOM + 1));
        assert_eq!(buf.room().as_ptr() as usize, first);
    }

    #[test]
    fn a_buffer_still_in_use_is_not_overwritten() {
        let mut buf = ReadBuf::default();
        let held = fill(&mut buf, CHUNK - MIN_ROOM + 1);
        drop(fill(&mut buf, CHUNK - MIN_ROOM + 1));
        // The first buffer is still referenced by `held`: a fresh one is allocated instead.
        let room = buf.room().as_ptr() as usize;
        assert!(room < held.as_ptr() as usize || room >= held.as_ptr() as usize + CHUNK);
        assert!(held.iter().all(|&b| b == 7));
        assert_eq!(held.len(), CHUNK - MIN_ROOM + 1);
    }

    #[test]
    fn room_is_always_at_least_a_quarter_chunk() {
        let mut buf = ReadBuf::default();
        for n in [1, 100, 60_000, 70_000, 5, CHUNK / 2, 3] {
            assert!(buf.room().capacity() >= MIN_ROOM);
            drop(fill(&mut buf, n));
        }
    }
}
