//! The driver's read memory: one buffer for all its connections (reads happen one at a time), and
//! a few retired ones, each reused once everything cut from it has been dropped.
//!
//! What a read returns is handed to the core as a zero-copy slice, and delivered payloads stay
//! slices of it until the application drops them. Allocating a fresh buffer whenever the current
//! one filled up made the allocator return and re-fault its pages: at 64 KiB messages a third of
//! all received pages page-faulted (perf record -e page-faults), which cost more than the copy.
//! Retired buffers are kept while payloads in the application's inbox still use them: a full
//! receive window of large messages spans many, so up to one receive window's worth is kept
//! (`ReadBuf::new`), and all of them are let go once the driver's reads pause ([`ReadBuf::trim`]
//! on its timer passes). A busy driver holds at most one receive window beyond the payloads the
//! application holds, an idle one a single buffer, whatever the number of connections.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// Size of each buffer.
pub(crate) const CHUNK: usize = 256 * 1024;
/// A read is offered at least this much room.
const MIN_ROOM: usize = CHUNK / 4;
/// Most retired buffers kept, whatever the receive window (16 MiB).
const MAX_RETIRED: usize = 64;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct ReadBuf {
    current: BytesMut,
    /// Oldest first.
    retired: VecDeque<BytesMut>,
    max_retired: usize,
    /// A read happened since the last `trim`.
    busy: bool,
}

impl ReadBuf {
    /// Read memory for a driver whose sessions each receive at most `window` bytes of payload
    /// not yet taken by the application (`Config::receive_window_bytes`).
    pub(crate) fn new(window: u64) -> ReadBuf {
        let buffers = usize::try_from(window / CHUNK as u64).unwrap_or(usize::MAX);
        ReadBuf {
            current: BytesMut::new(),
            retired: VecDeque::new(),
            max_retired: buffers.saturating_add(1).min(MAX_RETIRED),
            busy: false,
        }
    }

    /// Lets go of the retired buffers if nothing was read since the last call (the driver calls
    /// it on its timer passes, at least every heartbeat interval): their memory returns to the
    /// allocator once the application drops the payloads cut from them.
    pub(crate) fn trim(&mut self) {
        if !self.busy {
            self.retired.clear();
        }
        self.busy = false;
    }

    /// The buffer the next read appends to: empty, with at least `MIN_ROOM` bytes of room.
    pub(crate) fn room(&mut self) -> &mut BytesMut {
        debug_assert!(self.current.is_empty(), "take() after every read");
        if self.current.capacity() < MIN_ROOM {
            let next = self.reuse().unwrap_or_else(|| BytesMut::with_capacity(CHUNK));
            let full = std::mem::replace(&mut self.current, next);
            if self.retired.len() >= self.max_retired {
                // Its memory goes back to the allocator once its last payload is dropped.
                self.retired.pop_front();
            }
            self.retired.push_back(full);
        }
        &mut self.current
    }

    /// The oldest retired buffer nothing uses any more: its pages are already mapped, and no
    /// allocation happens.
    fn reuse(&mut self) -> Option<BytesMut> {
        let free = self.retired.iter_mut().position(|b| b.try_reclaim(CHUNK))?;
        self.retired.remove(free)
    }

    /// What the last read appended, as a slice that shares the buffer.
    pub(crate) fn take(&mut self) -> Bytes {
        self.busy = true;
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
        let mut buf = ReadBuf::new(8 << 20);
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
    fn retired_buffers_are_bounded_by_the_window() {
        let mut buf = ReadBuf::new(4 * CHUNK as u64);
        let held: Vec<Bytes> = (0..20).map(|_| fill(&mut buf, CHUNK)).collect();
        assert_eq!(buf.retired.len(), 5);
        // Every held slice still reads what was written into it.
        assert!(held.iter().all(|b| b.len() == CHUNK && b.iter().all(|&x| x == 7)));
    }

    #[test]
    fn an_idle_driver_lets_go_of_retired_buffers() {
        let mut buf = ReadBuf::new(8 << 20);
        let held: Vec<Bytes> = (0..6).map(|_| fill(&mut buf, CHUNK)).collect();
        buf.trim(); // reads happened since the last trim: kept
        assert_eq!(buf.retired.len(), 6);
        buf.trim(); // none since: let go
        assert!(buf.retired.is_empty());
        assert!(held.iter().all(|b| b.iter().all(|&x| x == 7)));
    }

    #[test]
    fn a_buffer_still_in_use_is_not_overwritten() {
        let mut buf = ReadBuf::new(8 << 20);
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
        let mut buf = ReadBuf::new(8 << 20);
        for n in [1, 100, 60_000, 70_000, 5, CHUNK / 2, 3] {
            assert!(buf.room().capacity() >= MIN_ROOM);
            drop(fill(&mut buf, n));
        }
    }
}
