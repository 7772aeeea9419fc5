//! The receiver's positions and its queue of messages waiting for the application.
//!
//! Three positions per direction, each monotone: `received` (every message below it arrived),
//! `delivered` (handed to the application), `acked` (acknowledged to the peer: equal to delivered in
//! [`AckMode::OnDelivery`], set by `ack()` in [`AckMode::Manual`]). Resume replays from `received`,
//! so delivered-but-unacked messages are never delivered twice; the peer confirms only `acked`.
//!
//! Messages wait as they arrived: the undelivered part of each data frame's run (one `Bytes` per
//! frame, not per message), split into payloads only as the application takes them.
//!
//! The receive window is anchored at `acked`: it bounds every message received and not yet
//! acknowledged, whether it waits in the queue or is held by the application (manual mode). So an
//! application (or an adapter's inbox) that takes messages but does not ack them slows the sender
//! instead of growing.

use alloc::collections::VecDeque;
use bytes::Bytes;

use crate::config::{AckMode, Config};
use crate::event::Delivery;
use crate::wire::{self, Messages, Positions};

/// Why an incoming message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Sequence number skips ahead of `received`.
    Gap,
    /// At or after the end the peer announced (its `Close`).
    PastEnd,
    /// Beyond the receive window.
    Window,
    /// Above `max_message_size`.
    TooLarge,
}

/// What [`ReceiveBuffer::accept`] took from a run: new messages and their payload bytes (messages
/// already received before, a replay overlap, are dropped and not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Accepted {
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
}

/// The new messages of one data frame, waiting for the application: their run as on the wire,
/// how many, and their payload bytes.
#[derive(Debug)]
struct Run {
    bytes: Bytes,
    count: u32,
    payload_bytes: u64,
}

/// Received, undelivered messages plus the three positions.
#[derive(Debug, Default)]
pub(crate) struct ReceiveBuffer {
    queue: VecDeque<Run>,
    queued: u64,
    queued_bytes: u64,
    /// Lengths of delivered messages not yet acknowledged (manual mode), oldest first.
    unacked: VecDeque<u32>,
    unacked_bytes: u64,
    received: u64,
    delivered: u64,
    acked: u64,
    /// Cumulative payload bytes of the messages below `acked` (the byte window's anchor).
    acked_bytes: u64,
}

impl ReceiveBuffer {
    /// Every message below this has arrived.
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// Every message below this was handed to the application.
    pub(crate) fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Every message below this is acknowledged.
    pub(crate) fn acked(&self) -> u64 {
        self.acked
    }

    /// Messages waiting for the application.
    pub(crate) fn queued(&self) -> (u64, u64) {
        (self.queued, self.queued_bytes)
    }

    /// The positions to tell the peer, with the window `config` allows.
    pub(crate) fn positions(&self, config: &Config) -> Positions {
        Positions {
            received: self.received,
            acked: self.acked,
            max_seq: self.acked + u64::from(config.receive_window_messages),
            max_bytes: self.acked_bytes.saturating_add(config.receive_window_bytes),
        }
    }

    /// Takes the messages of a run starting at `seq` that are new, in order, until one is
    /// refused: one past a gap, at or after `end` (the peer's announced end), beyond the window,
    /// or too large. What came before a refusal stays taken.
    pub(crate) fn accept(
        &mut self,
        config: &Config,
        seq: u64,
        run: &Messages,
        end: u64,
    ) -> (Accepted, Result<(), Refusal>) {
        let mut taken = Accepted::default();
        let (mut from, mut to) = (None, 0);
        let mut result = Ok(());
        // Spans first: the run ends the zip before the sequence numbers step past it (the
        // decoder checked that `seq + count` does not overflow, not one more).
        for (span, seq) in run.spans().zip(seq..) {
            if seq < self.received {
                continue; // a duplicate
            }
            if let Err(refusal) = self.admit(config, seq, end, span.len() as u64) {
                result = Err(refusal);
                break;
            }
            from.get_or_insert(span.start);
            to = span.end;
            taken.messages += 1;
            taken.bytes += span.len() as u64;
        }
        if let Some(from) = from {
            // A run is shorter than a frame, so its count fits a u32.
            let count = taken.messages as u32;
            let (bytes, payload_bytes) = (run.as_wire().slice(from..to), taken.bytes);
            self.queue.push_back(Run { bytes, count, payload_bytes });
        }
        (taken, result)
    }

    /// Checks message `seq` (not a duplicate) of `len` bytes and counts it received.
    fn admit(&mut self, config: &Config, seq: u64, end: u64, len: u64) -> Result<(), Refusal> {
        if seq >= end {
            return Err(Refusal::PastEnd);
        }
        if seq > self.received {
            return Err(Refusal::Gap);
        }
        if len > u64::from(config.max_message_size) {
            return Err(Refusal::TooLarge);
        }
        let held = self.queued + self.unacked.len() as u64;
        if held >= u64::from(config.receive_window_messages)
            || self.queued_bytes + self.unacked_bytes + len > config.receive_window_bytes
        {
            return Err(Refusal::Window);
        }
        self.queued += 1;
        self.queued_bytes += len;
        self.received += 1;
        Ok(())
    }

    /// Hands the next waiting run of messages to the application.
    pub(crate) fn deliver(&mut self, mode: AckMode) -> Option<Delivery> {
        let run = self.queue.pop_front()?;
        let count = u64::from(run.count);
        self.queued -= count;
        self.queued_bytes -= run.payload_bytes;
        let first = self.delivered;
        self.delivered += count;
        match mode {
            AckMode::OnDelivery => {
                self.acked = self.delivered;
                self.acked_bytes += run.payload_bytes;
            }
            AckMode::Manual => {
                // Each message's length, for the byte window as `ack` moves through them (at
                // most max_message_size, a u32, by `accept`).
                self.unacked.extend(wire::spans(&run.bytes).map(|span| span.len() as u32));
                self.unacked_bytes += run.payload_bytes;
            }
        }
        Some(Delivery::new(first, run.bytes, run.count, run.payload_bytes))
    }

    /// Frees the queue's capacity if nothing waits.
    pub(crate) fn release_if_empty(&mut self) {
        if self.queue.is_empty() {
            self.queue = VecDeque::new();
        }
        if self.unacked.is_empty() {
            self.unacked = VecDeque::new();
        }
    }

    /// Acknowledges every delivered message up to and including `seq`. Returns false if `seq` was
    /// not delivered yet. Acking an already-acked message is a no-op.
    pub(crate) fn ack(&mut self, seq: u64) -> bool {
        if seq >= self.delivered {
            return false;
        }
        while self.acked <= seq {
            let len = u64::from(self.unacked.pop_front().unwrap_or(0));
            self.unacked_bytes -= len;
            self.acked_bytes += len;
            self.acked += 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(p: &Bytes) -> Messages {
        Messages::from_payloads([p])
    }

    #[test]
    fn positions_move_in_order_and_window_is_enforced() {
        let config = Config { receive_window_messages: 2, ..Config::default() };
        let mut r = ReceiveBuffer::default();
        let p = Bytes::from_static(b"x");
        let end = u64::MAX;
        let new = Accepted { messages: 1, bytes: 1 };
        let none = Accepted::default();
        assert_eq!(r.accept(&config, 1, &one(&p), end), (none, Err(Refusal::Gap)));
        assert_eq!(r.accept(&config, 0, &one(&p), end), (new, Ok(())));
        assert_eq!(r.accept(&config, 0, &one(&p), end), (none, Ok(())), "a duplicate");
        assert_eq!(r.accept(&config, 1, &one(&p), end), (new, Ok(())));
        assert_eq!(r.accept(&config, 2, &one(&p), end), (none, Err(Refusal::Window)));
        assert_eq!(r.positions(&config).max_seq, 2);
        let mut d = r.deliver(AckMode::Manual).unwrap();
        assert_eq!((d.next(), d.next()), (Some((0, p.clone())), None));
        assert_eq!((r.received(), r.delivered(), r.acked()), (2, 1, 0));
        // Delivered but not acked still counts against the window (manual mode).
        assert_eq!(r.positions(&config).max_seq, 2);
        assert_eq!(r.accept(&config, 2, &one(&p), end), (none, Err(Refusal::Window)));
        assert!(!r.ack(1));
        assert!(r.ack(0));
        assert_eq!(r.acked(), 1);
        assert_eq!(r.positions(&config).max_seq, 3);
        assert_eq!(r.positions(&config).max_bytes, 1 + config.receive_window_bytes);
        assert_eq!(r.accept(&config, 2, &one(&p), 2), (none, Err(Refusal::PastEnd)));
        assert_eq!(r.accept(&config, 2, &one(&p), end), (new, Ok(())));
    }

    #[test]
    fn a_run_is_taken_from_its_first_new_message_and_delivered_one_by_one() {
        let config = Config { receive_window_messages: 4, ..Config::default() };
        let mut r = ReceiveBuffer::default();
        let p: alloc::vec::Vec<Bytes> =
            (0..6u8).map(|i| Bytes::from(alloc::vec![i; usize::from(i)])).collect();
        let run = |from: usize, to: usize| Messages::from_payloads(&p[from..to]);
        let taken = |messages, bytes| Accepted { messages, bytes };
        assert_eq!(r.accept(&config, 0, &run(0, 2), u64::MAX), (taken(2, 1), Ok(())));
        // Seqs 1..6 overlap by one; the window holds two more, then refuses the fifth message.
        let got = r.accept(&config, 1, &run(1, 6), u64::MAX);
        assert_eq!(got, (taken(2, 5), Err(Refusal::Window)));
        assert_eq!(r.queued(), (4, 6));
        let got: alloc::vec::Vec<_> =
            core::iter::from_fn(|| r.deliver(AckMode::OnDelivery)).flatten().collect();
        assert_eq!(got, (0..4).map(|i| (i as u64, p[i].clone())).collect::<alloc::vec::Vec<_>>());
        assert_eq!(r.queued(), (0, 0));
        let got = r.accept(&config, 4, &run(4, 6), 5);
        assert_eq!(got, (taken(1, 4), Err(Refusal::PastEnd)));
    }
}
