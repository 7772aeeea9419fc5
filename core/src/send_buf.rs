//! The sender's buffer of unconfirmed messages, indexed by sequence number.
//!
//! It holds every message from the oldest unconfirmed one to the newest, whether written to a
//! connection yet or not, so that a resume can replay from any position the peer states and `Lost`
//! can hand back exactly the unconfirmed suffix. Indexing by sequence number (not by byte offset in
//! one connection) lets datagram mode share it.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use bytes::Bytes;

use crate::event::UnconfirmedMessage;
use crate::time::Instant;

#[derive(Debug)]
struct Entry {
    payload: Bytes,
    /// Cumulative payload bytes of this message and all before it (the flow-control offset).
    end_offset: u64,
    /// When it was first written on the current connection (RTT samples); `None` if replayed or unsent.
    sent_at: Option<Instant>,
}

/// Unconfirmed messages `base_seq .. next_seq`, plus the position of the next one to write.
#[derive(Debug, Default)]
pub(crate) struct SendBuffer {
    entries: VecDeque<Entry>,
    base_seq: u64,
    base_offset: u64,
    bytes: u64,
    /// Next sequence number to write on the current connection.
    cursor: u64,
    /// One past the highest sequence number ever written on any connection.
    high_water: u64,
}

impl SendBuffer {
    /// Sequence number the next pushed message gets.
    pub(crate) fn next_seq(&self) -> u64 {
        self.base_seq + self.entries.len() as u64
    }

    /// Every message below this is confirmed.
    pub(crate) fn confirmed(&self) -> u64 {
        self.base_seq
    }

    /// One past the highest sequence number ever written.
    pub(crate) fn high_water(&self) -> u64 {
        self.high_water
    }

    /// Number of unconfirmed messages.
    pub(crate) fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Payload bytes of unconfirmed messages.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Size of the largest unconfirmed message (0 when empty). O(n): for handshakes only.
    pub(crate) fn largest(&self) -> u64 {
        self.entries.iter().map(|e| e.payload.len() as u64).max().unwrap_or(0)
    }

    /// Appends a message and returns its sequence number.
    pub(crate) fn push(&mut self, payload: Bytes) -> u64 {
        let seq = self.next_seq();
        let prev_end = self.entries.back().map_or(self.base_offset, |e| e.end_offset);
        let len = payload.len() as u64;
        self.entries.push_back(Entry { payload, end_offset: prev_end + len, sent_at: None });
        self.bytes += len;
        seq
    }

    /// The next message to write, if any: `(seq, payload, end_offset)`.
    #[cfg(test)]
    pub(crate) fn peek_unsent(&self) -> Option<(u64, &Bytes, u64)> {
        self.unsent().next().map(|(payload, end)| (self.cursor, payload, end))
    }

    /// The messages not yet written on this connection, from the cursor on:
    /// `(payload, end_offset)`; the first one's sequence number is [`cursor`](Self::cursor).
    pub(crate) fn unsent(&self) -> impl Iterator<Item = (&Bytes, u64)> {
        // cursor >= base_seq always (confirm and rewind keep it so).
        let idx = (self.cursor - self.base_seq) as usize;
        self.entries.range(idx.min(self.entries.len())..).map(|e| (&e.payload, e.end_offset))
    }

    /// Sequence number of the next message to write on this connection.
    pub(crate) fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Marks the `n` messages at the cursor written at `now` (they exist: [`unsent`](Self::unsent)
    /// listed them); returns how many of them were replays.
    pub(crate) fn advance_cursor(&mut self, n: u64, now: Instant) -> u64 {
        let first = (self.cursor - self.base_seq) as usize;
        let replays = self.high_water.saturating_sub(self.cursor).min(n);
        for (i, e) in self.entries.range_mut(first..first + n as usize).enumerate() {
            e.sent_at = if (i as u64) < replays { None } else { Some(now) };
        }
        self.cursor += n;
        self.high_water = self.high_water.max(self.cursor);
        replays
    }

    /// Messages were written on this connection beyond `position` (the peer's receive position).
    pub(crate) fn has_in_flight_beyond(&self, position: u64) -> bool {
        self.cursor > position
    }

    /// Releases every message below `up_to`. Returns the send time of the newest released message
    /// if it was written once on this connection (a clean RTT sample, Karn's rule).
    /// The caller has checked `confirmed() <= up_to <= high_water()`.
    pub(crate) fn confirm(&mut self, up_to: u64) -> Option<Instant> {
        let mut sample = None;
        while self.base_seq < up_to {
            let Some(e) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= e.payload.len() as u64;
            self.base_offset = e.end_offset;
            self.base_seq += 1;
            sample = e.sent_at;
        }
        self.cursor = self.cursor.max(self.base_seq);
        sample
    }

    /// Frees the buffer's capacity if nothing is held.
    pub(crate) fn release_if_empty(&mut self) {
        if self.entries.is_empty() {
            self.entries = VecDeque::new();
        }
    }

    /// Starts writing from `position` on a new connection (the peer's receive position).
    /// The caller has checked `confirmed() <= position <= high_water()`.
    pub(crate) fn rewind(&mut self, position: u64) {
        self.cursor = position;
        for e in &mut self.entries {
            e.sent_at = None;
        }
    }

    /// Hands back every unconfirmed message, in order, leaving the buffer empty.
    pub(crate) fn drain_unconfirmed(&mut self) -> Vec<UnconfirmedMessage> {
        let base = self.base_seq;
        let next = self.next_seq();
        let end = self.entries.back().map_or(self.base_offset, |e| e.end_offset);
        let out = self
            .entries
            .drain(..)
            .enumerate()
            .map(|(i, e)| UnconfirmedMessage { seq: base + i as u64, payload: e.payload })
            .collect();
        self.base_seq = next;
        self.base_offset = end;
        self.cursor = next;
        self.bytes = 0;
        out
    }

    /// When message `seq` was first written on the current connection, if it was and is still held.
    pub(crate) fn sent_at(&self, seq: u64) -> Option<Instant> {
        let idx = usize::try_from(seq.checked_sub(self.base_seq)?).ok()?;
        self.entries.get(idx)?.sent_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: u8) -> Bytes {
        Bytes::from(alloc::vec![n; n as usize])
    }

    #[test]
    fn confirm_releases_prefix_and_rewind_replays() {
        let mut b = SendBuffer::default();
        for n in 1..=5 {
            b.push(msg(n));
        }
        assert_eq!((b.len(), b.bytes()), (5, 15));
        let t = Instant::from_millis(1);
        assert_eq!(b.advance_cursor(3, t), 0);
        assert_eq!(b.confirm(2), Some(t));
        assert_eq!((b.confirmed(), b.len(), b.bytes()), (2, 3, 12));
        assert_eq!(b.peek_unsent().map(|(s, _, end)| (s, end)), Some((3, 10)));
        b.rewind(2);
        let (seq, payload, end) = b.peek_unsent().unwrap();
        assert_eq!((seq, payload.clone(), end), (2, msg(3), 6));
        assert_eq!(
            b.advance_cursor(3, t),
            1,
            "seq 2 was written before: a replay; 3 and 4 are new"
        );
        assert_eq!((b.sent_at(2), b.sent_at(3)), (None, Some(t)));
        let lost = b.drain_unconfirmed();
        assert_eq!(lost.iter().map(|m| m.seq).collect::<Vec<_>>(), [2, 3, 4]);
        assert_eq!(b.len(), 0);
    }
}
