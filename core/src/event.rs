//! What a session reports to its application, and the statistics it keeps.

use alloc::vec::Vec;
use bytes::Bytes;

use crate::reason::Reason;
use crate::time::Duration;

/// Something the application must learn about, returned by `Session::poll_event`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The session is established for the first time (server side: a new session was accepted).
    Connected,
    /// The next messages from the peer, in order: iterate the [`Delivery`] for each one's
    /// sequence number and payload. Sequence numbers start at 0 and have no gaps, across
    /// deliveries too.
    Messages(Delivery),
    /// The peer acknowledged every message with a sequence number at or below `up_to`.
    Confirmed {
        /// Highest confirmed sequence number (inclusive).
        up_to: u64,
    },
    /// The transport connection was lost; the session is detached and will try to resume.
    Disconnected {
        /// Why the connection ended.
        reason: Reason,
    },
    /// The session is attached to a new connection again; unconfirmed messages are being replayed.
    Resumed,
    /// The session closed cleanly: every message of both directions was delivered and acknowledged.
    /// Nothing follows it.
    Closed,
    /// The session ended without a clean close. Nothing follows it.
    Lost {
        /// Why the session ended.
        reason: Reason,
        /// Exactly the messages this side sent that were never confirmed, in order. "Unconfirmed"
        /// is not "not arrived": the peer may have received some of them, so resend idempotently.
        unconfirmed: Vec<UnconfirmedMessage>,
    },
}

/// Consecutive messages delivered together (those of one data frame that arrived): an exact-size
/// iterator (`len()` says how many are left) of `(seq, payload)`, each payload a zero-copy slice of the received bytes, cut off only as it is
/// taken. Whoever iterates does the cutting, so an adapter can hand a whole delivery to the
/// application's thread and keep per-message work (and reference counting) there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    next_seq: u64,
    /// The messages not yet taken, as on the wire (length prefix, payload, ...).
    run: Bytes,
    left: u32,
    /// Payload bytes of the messages not yet taken.
    payload_bytes: u64,
}

impl Delivery {
    pub(crate) fn new(first_seq: u64, run: Bytes, count: u32, payload_bytes: u64) -> Delivery {
        Delivery { next_seq: first_seq, run, left: count, payload_bytes }
    }

    /// A delivery of `payloads` numbered from `first_seq`, as the core would build it from a data
    /// frame: for adapters' and tools' tests.
    pub fn from_payloads<'a>(
        first_seq: u64,
        payloads: impl IntoIterator<Item = &'a Bytes>,
    ) -> Delivery {
        let messages = crate::wire::Messages::from_payloads(payloads);
        // A test's handful of payloads.
        let count = messages.count() as u32;
        let bytes = messages.iter().map(|p| p.len() as u64).sum();
        Delivery::new(first_seq, messages.as_wire().clone(), count, bytes)
    }

    /// Sequence number of the next message the iterator yields.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Payload bytes of the messages not yet taken.
    pub fn payload_bytes(&self) -> u64 {
        self.payload_bytes
    }

    /// The messages not yet taken as they arrived on the wire (each a length prefix and its
    /// payload): where they lie in memory, and how much of it. Until [`detach`](Self::detach)ed
    /// this is a slice of the buffer the frame was read into, which it keeps allocated.
    pub fn wire(&self) -> &[u8] {
        &self.run
    }

    /// Copies the messages not yet taken into memory of their own (one allocation of
    /// [`wire`](Self::wire)`().len()` bytes), so the delivery no longer keeps the buffer it was
    /// read into allocated. For an adapter that holds deliveries for an application that is not
    /// reading: a peer that spaces small messages far apart in the byte stream would otherwise
    /// make each one hold a whole read buffer.
    pub fn detach(&mut self) {
        self.run = Bytes::copy_from_slice(&self.run);
    }
}

impl Iterator for Delivery {
    type Item = (u64, Bytes);

    #[inline]
    fn next(&mut self) -> Option<(u64, Bytes)> {
        if self.left == 0 {
            return None;
        }
        // The run was checked by the decoder: it holds `left` well-formed messages.
        let payload = crate::wire::take_first(&mut self.run).unwrap_or_default();
        self.left -= 1;
        self.payload_bytes -= payload.len() as u64;
        let seq = self.next_seq;
        self.next_seq += 1;
        Some((seq, payload))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for Delivery {}

/// A message this side sent that the peer never confirmed, handed back when the session is lost
/// ([`Event::Lost`] in the core, `End::Lost` in the adapters). It may still have arrived: resend
/// idempotently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnconfirmedMessage {
    /// The sequence number it was sent with.
    pub seq: u64,
    /// Its payload.
    pub payload: Bytes,
}

/// Counters and estimates describing a session so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Smoothed round-trip time (RFC 6298), once measured.
    pub rtt: Option<Duration>,
    /// Round-trip time variation (RFC 6298), once measured.
    pub rtt_var: Option<Duration>,
    /// Messages accepted by `send` (each counted once however often it is replayed).
    pub messages_sent: u64,
    /// Payload bytes accepted by `send`.
    pub bytes_sent: u64,
    /// Messages received from the peer (duplicates not counted).
    pub messages_received: u64,
    /// Payload bytes received from the peer (duplicates not counted).
    pub bytes_received: u64,
    /// Messages written again on a new connection after a resume.
    pub replayed_messages: u64,
    /// Successful resumptions on a new connection.
    pub reconnects: u64,
    /// Connections that ended while the session went on.
    pub disconnects: u64,
    /// Messages sent and not yet confirmed.
    pub unconfirmed_messages: u64,
    /// Payload bytes sent and not yet confirmed.
    pub unconfirmed_bytes: u64,
    /// Received messages waiting for the application: in the core, those `poll_event` has not
    /// delivered yet; in the adapters, those `recv` has not returned yet (including those a
    /// `close` took into the handle).
    pub buffered_receive_messages: u64,
    /// Payload bytes of the messages counted by `buffered_receive_messages`.
    pub buffered_receive_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// `detach` moves the messages not yet taken into memory of their own, unchanged, and
    /// `wire` shows where they are.
    #[test]
    fn a_detached_delivery_yields_the_same_messages_from_its_own_memory() {
        let payloads: Vec<Bytes> =
            (0..4u8).map(|i| Bytes::from(vec![i; 100 + usize::from(i)])).collect();
        let mut delivery = Delivery::from_payloads(7, &payloads);
        assert_eq!(delivery.next(), Some((7, payloads[0].clone())));
        let before = delivery.wire().as_ptr_range();
        let wire = delivery.wire().to_vec();
        assert_eq!(wire.len(), 3 + 101 + 102 + 103, "one length byte per message");
        delivery.detach();
        assert!(!before.contains(&delivery.wire().as_ptr()), "copied out");
        assert_eq!(delivery.wire(), &wire[..]);
        assert_eq!((delivery.len(), delivery.payload_bytes(), delivery.next_seq()), (3, 306, 8));
        let rest: Vec<(u64, Bytes)> = delivery.collect();
        let expected: Vec<(u64, Bytes)> =
            (1..4).map(|i| (7 + i as u64, payloads[i].clone())).collect();
        assert_eq!(rest, expected);
    }
}
