//! A session's received messages waiting for the application, as the core delivered them.
//!
//! The core hands over the new messages of each data frame together (a [`Delivery`]); the inbox
//! keeps them so and cuts a payload off only when a handle takes it. That cutting (a reference
//! count taken on the read buffer) and the payload's later drop then happen on the application's
//! thread, not one on the driver's and one on the application's per message.
//!
//! **Read memory held.** A delivery is a slice of the read buffer its frame arrived in, and keeps
//! that whole buffer allocated. The receive window bounds the payload bytes waiting here, not the
//! buffers behind them: a peer that spaced small messages a read buffer apart (with other frames
//! between them) would make each waiting message hold a buffer of its own, thousands of times its
//! size. So the inbox estimates the read memory its deliveries hold ([`HeldMemory`]) and, past a
//! bound, copies a new delivery's messages out of the read buffer instead ([`Delivery::detach`]).
//! A steady stream never reaches the bound: its deliveries lie back to back.

use std::collections::VecDeque;

use bytes::Bytes;
use tether_core::Delivery;

use crate::read_buf;

/// An estimate of the read-buffer memory that the deliveries waiting in an inbox keep allocated.
///
/// Each delivery kept in place is charged the distance from the start of the previous one kept
/// in place to its own start (its predecessor's messages and whatever other frames came between),
/// at most a read buffer's allocation; one that starts anywhere else (another buffer) is charged
/// a whole buffer. So a stream whose deliveries lie back to back is charged about its wire bytes,
/// and the charges of the deliveries waiting cover the buffers they hold.
#[derive(Debug, Default)]
pub(crate) struct HeldMemory {
    /// Sum of the charges of the deliveries waiting.
    held: usize,
    /// Where the last delivery kept in place starts.
    last: Option<usize>,
}

impl HeldMemory {
    /// The charge for keeping a delivery whose wire bytes start at `start` in place, if that
    /// keeps the total within `cap` (and records it); `None`: copy it out instead.
    pub(crate) fn admit(&mut self, start: usize, cap: usize) -> Option<usize> {
        let charge = match self.last {
            Some(last) if start > last => (start - last).min(read_buf::ALLOC),
            _ => read_buf::ALLOC,
        };
        if self.held.saturating_add(charge) > cap {
            return None;
        }
        self.held += charge;
        self.last = Some(start);
        Some(charge)
    }

    /// A delivery charged `charge` left.
    pub(crate) fn release(&mut self, charge: usize) {
        self.held -= charge;
    }

    /// A delivery charged `charge` by another inbox came over with its charge.
    fn carry(&mut self, charge: usize) {
        self.held += charge;
    }

    /// The charges of the deliveries waiting.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held
    }
}

/// The read memory an inbox's deliveries may hold for a session with `receive_window_bytes`
/// (`Config::receive_window_bytes`): twice the window, plus two read buffers (where a stream
/// crosses from one buffer to the next).
pub(crate) fn held_memory_cap(receive_window_bytes: u64) -> usize {
    let window = usize::try_from(receive_window_bytes).unwrap_or(usize::MAX);
    window.saturating_mul(2).saturating_add(2 * read_buf::ALLOC)
}

/// Deliveries in order, and how many messages and payload bytes they still hold.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    /// Each with what it was charged ([`HeldMemory`]; 0 once copied out).
    deliveries: VecDeque<(Delivery, usize)>,
    len: usize,
    bytes: u64,
    memory: HeldMemory,
}

impl Inbox {
    /// Appends a delivery (its messages follow every message already held), copying its
    /// messages out of their read buffer if keeping them there would take the read memory this
    /// inbox holds past `cap` (see the module documentation).
    pub(crate) fn push(&mut self, mut delivery: Delivery, cap: usize) {
        if delivery.len() == 0 {
            return;
        }
        let charge = match self.memory.admit(delivery.wire().as_ptr() as usize, cap) {
            Some(charge) => charge,
            None => {
                delivery.detach();
                0
            }
        };
        self.append(delivery, charge);
    }

    /// Appends a delivery whose `charge` is already counted in `memory`.
    fn append(&mut self, delivery: Delivery, charge: usize) {
        self.len += delivery.len();
        self.bytes += delivery.payload_bytes();
        self.deliveries.push_back((delivery, charge));
    }

    /// Messages held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Payload bytes held.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The read memory its deliveries are estimated to hold ([`HeldMemory`]).
    #[cfg(test)]
    pub(crate) fn held_memory(&self) -> usize {
        self.memory.held()
    }

    /// The oldest message: `(seq, payload)`.
    pub(crate) fn pop(&mut self) -> Option<(u64, Bytes)> {
        let (front, charge) = self.deliveries.front_mut()?;
        let message = front.next();
        self.bytes -= message.as_ref().map_or(0, |m| m.1.len() as u64);
        if front.len() == 0 {
            self.memory.release(*charge);
            self.deliveries.pop_front();
        }
        self.len -= usize::from(message.is_some());
        message
    }

    /// Moves whole deliveries from the front of `from` to the back of this inbox while this one
    /// holds fewer than `max_len` messages and `max_bytes` payload bytes; returns the sequence
    /// number of the last message moved.
    pub(crate) fn move_from(
        &mut self,
        from: &mut Inbox,
        max_len: usize,
        max_bytes: u64,
    ) -> Option<u64> {
        let mut last = None;
        while self.len < max_len && self.bytes < max_bytes {
            let Some((d, charge)) = from.deliveries.pop_front() else { break };
            from.len -= d.len();
            from.bytes -= d.payload_bytes();
            from.memory.release(charge);
            last = Some(d.next_seq() + d.len() as u64 - 1);
            self.memory.carry(charge);
            self.append(d, charge);
        }
        last
    }

    /// Moves up to `limit` of the oldest messages into `out` through `f`; returns how many.
    pub(crate) fn take<T>(
        &mut self,
        limit: usize,
        out: &mut Vec<T>,
        f: impl Fn((u64, Bytes)) -> T,
    ) -> usize {
        let n = limit.min(self.len());
        out.extend((0..n).map_while(|_| self.pop()).map(f));
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(first: u64, n: u64) -> Delivery {
        let payloads: Vec<Bytes> =
            (first..first + n).map(|i| Bytes::from(vec![i as u8; 3])).collect();
        Delivery::from_payloads(first, &payloads)
    }

    #[test]
    fn messages_come_out_in_order_across_deliveries_and_counts_stay_exact() {
        let mut inbox = Inbox::default();
        inbox.push(delivery(0, 3), usize::MAX);
        inbox.push(delivery(3, 1), usize::MAX);
        inbox.push(delivery(4, 4), usize::MAX);
        assert_eq!(inbox.len(), 8);
        assert_eq!(inbox.pop(), Some((0, Bytes::from(vec![0; 3]))));
        let mut out = Vec::new();
        assert_eq!(inbox.take(4, &mut out, |m| m.0), 4);
        assert_eq!(out, [1, 2, 3, 4]);
        assert_eq!(inbox.len(), 3);
        assert_eq!(inbox.take(10, &mut out, |m| m.0), 3);
        assert_eq!(out, [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!((inbox.len(), inbox.bytes(), inbox.pop()), (0, 0, None));
    }

    #[test]
    fn moving_takes_whole_deliveries_until_a_bound_is_reached() {
        let mut from = Inbox::default();
        from.push(delivery(0, 2), usize::MAX);
        from.push(delivery(2, 3), usize::MAX);
        from.push(delivery(5, 1), usize::MAX);
        assert_eq!(from.bytes(), 6 * 3, "3-byte payloads");
        let mut to = Inbox::default();
        assert_eq!(to.move_from(&mut from, 1, u64::MAX), Some(1), "the first delivery whole");
        assert_eq!(to.move_from(&mut from, 1, u64::MAX), None, "at the message bound");
        assert_eq!(to.move_from(&mut from, 10, 6), None, "at the byte bound");
        assert_eq!(to.move_from(&mut from, 10, 7), Some(4), "one delivery may pass the bound");
        assert_eq!(to.move_from(&mut from, 10, u64::MAX), Some(5), "the rest");
        assert_eq!((to.len(), to.bytes(), from.len(), from.bytes()), (6, 18, 0, 0));
        let seqs: Vec<u64> = std::iter::from_fn(|| to.pop()).map(|m| m.0).collect();
        assert_eq!(seqs, [0, 1, 2, 3, 4, 5]);
    }

    const KIB: usize = 1024;

    /// A steady stream's deliveries lie back to back in the read buffers: a full receive window
    /// of them (8 MiB in 16 KiB runs, across buffer changes) is kept in place, charged about its
    /// wire bytes.
    #[test]
    fn a_full_window_of_back_to_back_deliveries_is_kept_in_place() {
        let cap = held_memory_cap(8 * 1024 * KIB as u64);
        let mut memory = HeldMemory::default();
        let mut charges = Vec::new();
        for i in 0..512 {
            // A new read buffer (elsewhere in memory) every 20 runs.
            let start = (1 << 40) - (i / 20) * (1 << 24) + (i % 20) * 16 * KIB;
            charges.push(memory.admit(start, cap).expect("kept in place"));
        }
        assert!(memory.held() <= 8 * 1024 * KIB + 26 * read_buf::ALLOC, "{}", memory.held());
        charges.iter().for_each(|&c| memory.release(c));
        assert_eq!(memory.held(), 0);
    }

    /// A peer that spaces small messages 300 KiB apart would make each one hold a read buffer:
    /// past the cap, deliveries are refused in place (to be copied out), and the estimate never
    /// passes the cap; as waiting deliveries leave, room returns.
    #[test]
    fn spaced_out_deliveries_are_copied_out_past_the_cap() {
        let cap = held_memory_cap(8 * 1024 * KIB as u64);
        let mut memory = HeldMemory::default();
        let mut kept = Vec::new();
        let mut copied = 0;
        for i in 0..1_000 {
            match memory.admit((1 << 30) + i * 300 * KIB, cap) {
                Some(charge) => kept.push(charge),
                None => copied += 1,
            }
            assert!(memory.held() <= cap);
        }
        assert_eq!(kept.len(), cap / (300 * KIB), "one charge of a buffer, then 300 KiB each");
        assert_eq!(copied, 1_000 - kept.len());
        memory.release(kept[0]);
        assert!(memory.admit((1 << 30) + 1_000 * 300 * KIB, cap).is_some(), "room again");
        // A delivery in another buffer (below the last one) is charged a whole buffer.
        let mut fresh = HeldMemory::default();
        assert_eq!(fresh.admit(1 << 30, usize::MAX), Some(read_buf::ALLOC));
        assert_eq!(fresh.admit(1 << 29, usize::MAX), Some(read_buf::ALLOC));
        assert_eq!(fresh.admit((1 << 29) + 100, usize::MAX), Some(100));
    }

    /// A delivery the cap refuses is copied out of its buffer (its messages unchanged); one it
    /// admits stays where it was read. The charges leave with the deliveries.
    #[test]
    fn a_refused_delivery_is_detached_and_an_admitted_one_stays_in_place() {
        let mut inbox = Inbox::default();
        let kept = delivery(0, 2);
        let at = kept.wire().as_ptr();
        inbox.push(kept, usize::MAX);
        assert_eq!(inbox.deliveries[0].0.wire().as_ptr(), at, "kept in place");
        assert_eq!(inbox.held_memory(), read_buf::ALLOC);

        let refused = delivery(2, 3);
        let at = refused.wire().as_ptr();
        inbox.push(refused, 0);
        assert_ne!(inbox.deliveries[1].0.wire().as_ptr(), at, "copied out");
        assert_eq!(inbox.held_memory(), read_buf::ALLOC, "a copy is charged nothing");

        let mut out = Vec::new();
        assert_eq!(inbox.take(10, &mut out, |m| m), 5);
        let expected: Vec<_> = (0..5).map(|i| (i, Bytes::from(vec![i as u8; 3]))).collect();
        assert_eq!(out, expected);
        assert_eq!(inbox.held_memory(), 0);
    }
}
