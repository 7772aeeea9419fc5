//! A session's received messages waiting for the application, as the core delivered them.
//!
//! The core hands over the new messages of each data frame together (a [`Delivery`]); the inbox
//! keeps them so and cuts a payload off only when a handle takes it. That cutting (a reference
//! count taken on the read buffer) and the payload's later drop then happen on the application's
//! thread, not one on the driver's and one on the application's per message.

use std::collections::VecDeque;

use bytes::Bytes;
use tether_core::Delivery;

/// Deliveries in order, and how many messages and payload bytes they still hold.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    deliveries: VecDeque<Delivery>,
    len: usize,
    bytes: u64,
}

impl Inbox {
    /// Appends a delivery (its messages follow every message already held).
    pub(crate) fn push(&mut self, delivery: Delivery) {
        if delivery.len() > 0 {
            self.len += delivery.len();
            self.bytes += delivery.payload_bytes();
            self.deliveries.push_back(delivery);
        }
    }

    /// Messages held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Payload bytes held.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The oldest message: `(seq, payload)`.
    pub(crate) fn pop(&mut self) -> Option<(u64, Bytes)> {
        let front = self.deliveries.front_mut()?;
        let message = front.next();
        self.bytes -= message.as_ref().map_or(0, |m| m.1.len() as u64);
        if front.len() == 0 {
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
            let Some(d) = from.deliveries.pop_front() else { break };
            from.len -= d.len();
            from.bytes -= d.payload_bytes();
            last = Some(d.next_seq() + d.len() as u64 - 1);
            self.push(d);
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
        inbox.push(delivery(0, 3));
        inbox.push(delivery(3, 1));
        inbox.push(delivery(4, 4));
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
        from.push(delivery(0, 2));
        from.push(delivery(2, 3));
        from.push(delivery(5, 1));
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
}
