//! The driver's read memory: one buffer shared by all its connections (reads happen one at a
//! time), a few retired ones, each reused once everything cut from it has been dropped, and
//! each connection's *tail*: the start of a frame not yet whole, which the core left in place.
//!
//! Reads are decoded in place (`handle_input_buf`): whole frames are split off as zero-copy
//! slices, and a frame cut by the end of a read stays where it is, so that the next read of that
//! connection appends to it and the frame is never copied to be joined (CORE_NEEDS #4). A tail
//! is a view of the buffer it was read into, ending where the shared buffer's free room begins,
//! so the connection's next read goes into that room: nothing moves. Under a steady stream each
//! buffer's room ends inside a frame; every buffer keeps [`RESERVE`] bytes back after its room
//! and offers that connection exactly the bytes its frame lacks from it, so frames up to that
//! size (64 KiB messages) are completed in place too. Only three cases copy a tail, each at most
//! once per frame:
//!
//! - its frame does not fit the room and reserve left (a frame larger than the reserve): the
//!   tail moves to the front of a fresh (or reused) buffer;
//! - another connection read since (the tail no longer ends where the room begins): the tail
//!   moves to a buffer of its own, sized for the rest of its frame but never by more than
//!   [`OWN_ROOM`] at a time, and that connection reads into it until its frame is whole;
//! - the frame is larger than a buffer: the same, the buffer of its own growing with what arrives.
//!
//! So a peer that declares a large frame and sends a few bytes of it holds a few bytes plus at
//! most [`OWN_ROOM`] (a connection in the handshake, at most a `Hello`); memory follows what
//! arrives, not what is declared, however many connections do it.
//!
//! Delivered payloads stay slices of the buffers until the application drops them. Allocating a
//! fresh buffer whenever the current one filled up made the allocator return and re-fault its
//! pages: at 64 KiB messages a third of all received pages page-faulted (perf record -e
//! page-faults), which cost more than the copy. Retired buffers are kept while payloads in the
//! application's inbox still use them: a full receive window of large messages spans many, so up
//! to one receive window's worth is kept (`ReadBuf::new`), and all of them are let go once the
//! driver's reads pause ([`ReadBuf::trim`] on its timer passes). A busy driver holds at most one
//! receive window beyond the payloads the application holds and the connections' tails, an idle
//! one a single buffer, whatever the number of connections.

use std::collections::VecDeque;

use bytes::BytesMut;

/// Room a fresh buffer offers reads.
pub(crate) const CHUNK: usize = 256 * 1024;
/// Kept back after a buffer's room, and offered only to complete the frame its room cut: every
/// buffer's room ends in the middle of a frame under a steady stream, and without it that frame
/// would be copied to the next buffer (at 64 KiB messages, a quarter of all bytes received).
/// Frames up to this size (64 KiB messages) are completed in place.
pub(crate) const RESERVE: usize = 68 * 1024;
/// Each buffer's allocation.
pub(crate) const ALLOC: usize = CHUNK + RESERVE;
/// A read into the shared buffer is offered at least this much room.
const MIN_ROOM: usize = CHUNK / 4;
/// Most room a tail moved to a buffer of its own is given beyond what it holds (or its own size,
/// if larger: the buffer at most doubles while the frame is not whole).
pub(crate) const OWN_ROOM: usize = 64 * 1024;
/// Most retired buffers kept, whatever the receive window (16 MiB).
const MAX_RETIRED: usize = 64;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct ReadBuf {
    /// Empty between reads: its capacity is the shared room.
    current: BytesMut,
    /// What is left of the current buffer's reserve: right after `current`'s room until that
    /// is used up (see [`RESERVE`]).
    reserve: BytesMut,
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
            reserve: BytesMut::new(),
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

    /// The buffer a connection's next reads append to, after the connection's `tail` (what the
    /// core left of its input) whose frame `missing` more bytes complete: the shared buffer, or
    /// the tail's own (see the module documentation). It always has free capacity; stop reading
    /// when it is full, and call [`take`](Self::take) after the reads, whatever they returned.
    pub(crate) fn room<'a>(
        &'a mut self,
        tail: &'a mut BytesMut,
        missing: usize,
    ) -> &'a mut BytesMut {
        debug_assert!(self.current.is_empty(), "take() after every connection's reads");
        if tail.capacity() > tail.len() {
            // A buffer of its own with room: its frame is not whole yet.
            return tail;
        }
        if tail.is_empty() {
            self.ensure_room(MIN_ROOM);
            return &mut self.current;
        }
        let end = tail.as_ptr() as usize + tail.len();
        let adjacent = end == self.current.as_ptr() as usize;
        let room = self.current.capacity();
        if adjacent && room >= missing.max(1) {
            // The frame can be completed where it lies.
            return &mut self.current;
        }
        let reserve_follows = self.reserve.as_ptr() as usize == end + room;
        if adjacent && reserve_follows && room + self.reserve.capacity() >= missing {
            if room == 0 {
                // The room ended inside this frame: complete it from the reserve, offering
                // exactly what it lacks so that no next frame is cut again.
                let rest = self.reserve.split_off(missing);
                self.current = std::mem::replace(&mut self.reserve, rest);
            }
            return &mut self.current;
        }
        if adjacent && tail.len() + missing <= CHUNK {
            // It does not fit what is left of this buffer: to the front of the next one.
            self.renew();
            self.current.extend_from_slice(tail);
            *tail = BytesMut::new();
            return &mut self.current;
        }
        // Another connection read since, or the frame is larger than a buffer: a buffer of its
        // own, with room for the rest of the frame, but growing by at most its size or OWN_ROOM.
        let room = missing.max(1).min(tail.len().max(OWN_ROOM));
        let mut own = BytesMut::with_capacity(tail.len() + room);
        own.extend_from_slice(tail);
        *tail = own;
        tail
    }

    /// Appends what the reads put into the shared buffer to `tail` (for a tail that ends where
    /// they began, without copying: the two are one range of the same buffer).
    pub(crate) fn take(&mut self, tail: &mut BytesMut) {
        self.busy = true;
        if self.current.is_empty() {
            return;
        }
        let read = self.current.split();
        if tail.is_empty() {
            *tail = read;
        } else {
            tail.unsplit(read);
        }
    }

    /// Makes sure the shared buffer offers at least `room` bytes.
    fn ensure_room(&mut self, room: usize) {
        if self.current.capacity() < room {
            self.renew();
        }
    }

    /// Retires the shared buffer and takes a fresh one (a reused one if it can).
    fn renew(&mut self) {
        let mut next = self.reuse().unwrap_or_else(|| BytesMut::with_capacity(ALLOC));
        self.reserve = next.split_off(CHUNK);
        let full = std::mem::replace(&mut self.current, next);
        if self.retired.len() >= self.max_retired {
            // Its memory goes back to the allocator once its last payload is dropped.
            self.retired.pop_front();
        }
        self.retired.push_back(full);
    }

    /// The oldest retired buffer nothing uses any more: its pages are already mapped, and no
    /// allocation happens.
    fn reuse(&mut self) -> Option<BytesMut> {
        let free = self.retired.iter_mut().position(|b| b.try_reclaim(ALLOC))?;
        self.retired.remove(free)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    /// One connection reads `n` bytes and the core takes all of them (as one slice).
    fn fill(buf: &mut ReadBuf, n: usize) -> Bytes {
        let mut tail = BytesMut::new();
        buf.room(&mut tail, 0).extend_from_slice(&vec![7u8; n]);
        buf.take(&mut tail);
        tail.split().freeze()
    }

    fn start(buf: &mut ReadBuf) -> usize {
        buf.room(&mut BytesMut::new(), 0).as_ptr() as usize
    }

    #[test]
    fn buffers_are_reused_once_their_slices_are_dropped() {
        let mut buf = ReadBuf::new(8 << 20);
        let first = start(&mut buf);
        // Use up the first buffer and move to a second one.
        drop(fill(&mut buf, CHUNK - MIN_ROOM + 1));
        let second = start(&mut buf);
        assert_ne!(first, second);
        // Using up the second one comes back to the first, whose slice is gone.
        drop(fill(&mut buf, CHUNK - MIN_ROOM + 1));
        assert_eq!(start(&mut buf), first);
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
        let room = start(&mut buf);
        assert!(room < held.as_ptr() as usize || room >= held.as_ptr() as usize + CHUNK);
        assert!(held.iter().all(|&b| b == 7));
        assert_eq!(held.len(), CHUNK - MIN_ROOM + 1);
    }

    #[test]
    fn room_is_always_at_least_a_quarter_chunk() {
        let mut buf = ReadBuf::new(8 << 20);
        for n in [1, 100, 60_000, 70_000, 5, CHUNK / 2, 3] {
            assert!(buf.room(&mut BytesMut::new(), 0).capacity() >= MIN_ROOM);
            drop(fill(&mut buf, n));
        }
    }

    /// A read of `data` for the connection whose tail is `tail` (the frame needs `missing`).
    fn read(buf: &mut ReadBuf, tail: &mut BytesMut, missing: usize, data: &[u8]) {
        let room = buf.room(tail, missing);
        assert!(room.capacity() - room.len() >= data.len(), "room for the read");
        room.extend_from_slice(data);
        buf.take(tail);
    }

    #[test]
    fn a_tail_is_completed_where_it_lies() {
        let mut buf = ReadBuf::new(8 << 20);
        let mut tail = BytesMut::new();
        read(&mut buf, &mut tail, 0, &[1; 1000]);
        let frame_start = tail.as_ptr() as usize;
        // The core takes 600 bytes of whole frames and leaves a frame 400 + 300 bytes long.
        let taken = tail.split_to(600).freeze();
        assert_eq!(tail.as_ptr() as usize, frame_start + 600);
        read(&mut buf, &mut tail, 300, &[2; 300]);
        assert_eq!(tail.as_ptr() as usize, frame_start + 600, "appended in place, not moved");
        assert_eq!(&tail[..400], &[1; 400][..]);
        assert_eq!(&tail[400..], &[2; 300][..]);
        assert!(taken.iter().all(|&b| b == 1));
    }

    #[test]
    fn a_frame_cut_by_the_end_of_the_room_is_completed_from_the_reserve() {
        let mut buf = ReadBuf::new(8 << 20);
        let mut tail = BytesMut::new();
        // The reads fill the whole room; the last 5,000 bytes start a 65,564-byte frame.
        read(&mut buf, &mut tail, 0, &vec![3; CHUNK]);
        let done = tail.split_to(CHUNK - 5000).freeze();
        let at = tail.as_ptr() as usize;
        let missing = 65_564 - 5000;
        // Offered exactly what the frame lacks, right after it: no next frame is cut again.
        assert_eq!(buf.room(&mut tail, missing).capacity(), missing);
        buf.take(&mut tail);
        read(&mut buf, &mut tail, missing, &vec![4; missing]);
        assert_eq!(tail.as_ptr() as usize, at, "completed in place");
        assert_eq!(tail.len(), 65_564);
        assert_eq!(&tail[..5000], &[3; 5000][..]);
        assert!(done.iter().all(|&b| b == 3));
        // Once it is taken, the next read goes to a fresh buffer's room.
        tail.clear();
        assert!(buf.room(&mut BytesMut::new(), 0).capacity() >= MIN_ROOM);
    }

    #[test]
    fn a_frame_larger_than_the_reserve_moves_to_the_next_buffer_once() {
        let mut buf = ReadBuf::new(8 << 20);
        let mut tail = BytesMut::new();
        // Fill the room but 1000 bytes; the last 5000 are the start of a 105,000-byte frame.
        read(&mut buf, &mut tail, 0, &vec![3; CHUNK - 1000]);
        let done = tail.split_to(CHUNK - 6000).freeze();
        let missing = 100_000;
        read(&mut buf, &mut tail, missing, &[4; 1000]);
        assert_eq!(tail.len(), 6000);
        let (moved, old) = (tail.as_ptr() as usize, done.as_ptr() as usize);
        assert!(moved >= old + CHUNK + RESERVE || moved < old, "moved to another buffer");
        // The rest of the frame is appended there in place.
        read(&mut buf, &mut tail, missing - 1000, &vec![5; missing - 1000]);
        assert_eq!(tail.as_ptr() as usize, moved);
        assert_eq!(tail.len(), 105_000);
        assert_eq!(&tail[..5000], &[3; 5000][..]);
    }

    #[test]
    fn a_tail_left_behind_by_another_connection_gets_a_bounded_buffer_of_its_own() {
        let mut buf = ReadBuf::new(8 << 20);
        let mut a = BytesMut::new();
        read(&mut buf, &mut a, 0, &[1; 10]); // a 10-byte start of a frame that claims 1 MiB
        read(&mut buf, &mut BytesMut::new(), 0, &[2; 100]); // another connection's whole frame
        let missing = 1 << 20;
        let room = buf.room(&mut a, missing);
        assert_eq!(room.len(), 10);
        assert!(room.capacity() <= 10 + OWN_ROOM, "bounded by what arrived, not by the claim");
        room.extend_from_slice(&[9; 5]);
        buf.take(&mut a);
        assert_eq!(&a[..], &[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 9, 9, 9, 9, 9][..]);
        assert!(buf.current.is_empty());
        // An honest frame left behind gets room for exactly its rest.
        let mut c = BytesMut::new();
        read(&mut buf, &mut c, 0, &[3; 3000]);
        read(&mut buf, &mut BytesMut::new(), 0, &[2; 100]);
        assert_eq!(buf.room(&mut c, 2000).capacity(), 5000);
        buf.take(&mut c);
        // Its reads go there until the frame is whole.
        assert_eq!(buf.room(&mut c, 2000).capacity(), 5000);
        buf.take(&mut c);
    }
}
