//! A session's received messages waiting for the application, as the core delivered them.
//!
//! The core hands over the new messages of each data frame together (a [`Delivery`]); the inbox
//! keeps them so and cuts a payload off only when a handle takes it. That cutting (a reference
//! count taken on the read buffer) and the payload's later drop then happen on the application's
//! thread, not one on the driver's and one on the application's per message.

use std::collections::VecDeque;

use bytes::Bytes;
use tether_core::Delivery;

/// Deliveries in order, and how many messages they still hold.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    deliveries: VecDeque<Delivery>,
    len: usize,
}

impl Inbox {
    /// Appends a delivery (its messages follow every message already held).
    pub(crate) fn push(&mut self, delivery: Delivery) {
        if delivery.len() > 0 {
            self.len += delivery.len();
            self.deliveries.push_back(delivery);
        }
    }

    /// Messages held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The oldest message: `(seq, payload)`.
    pub(crate) fn pop(&mut self) -> Option<(u64, Bytes)> {
        let front = self.deliveries.front_mut()?;
        let message = front.next();
        if front.len() == 0 {
            self.deliveries.pop_front();
        }
        self.len -= usize::from(message.is_some());
        message
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
        assert_eq!((inbox.len(), inbox.pop()), (0, None));
    }
}
