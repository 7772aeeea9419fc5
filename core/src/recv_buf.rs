//! The receiver's positions and its queue of messages waiting for the application.
//!
//! Three positions per direction, each monotone: `received` (every message below it arrived),
//! `delivered` (handed to the application), `acked` (acknowledged to the peer: equal to delivered in
//! [`AckMode::OnDelivery`], set by `ack()` in [`AckMode::Manual`]). Resume replays from `received`,
//! so delivered-but-unacked messages are never delivered twice; the peer confirms only `acked`.
//!
//! The receive window is anchored at `acked`: it bounds every message received and not yet
//! acknowledged, whether it waits in the queue or is held by the application (manual mode). So an
//! application (or an adapter's inbox) that takes messages but does not ack them slows the sender
//! instead of growing.

use alloc::collections::VecDeque;
use bytes::Bytes;

use crate::config::{AckMode, Config};
use crate::wire::Positions;

/// Why an incoming message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Sequence number skips ahead of `received`.
    Gap,
    /// Beyond the receive window.
    Window,
    /// Above `max_message_size`.
    TooLarge,
}

/// What [`ReceiveBuffer::accept`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accepted {
    /// Queued for the application.
    New,
    /// Already received before (a replay overlap); dropped.
    Duplicate,
}

/// Received, undelivered messages plus the three positions.
#[derive(Debug, Default)]
pub(crate) struct ReceiveBuffer {
    queue: VecDeque<Bytes>,
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
        (self.queue.len() as u64, self.queued_bytes)
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

    /// Takes message `seq` from the wire if it is the next one and fits the window.
    pub(crate) fn accept(
        &mut self,
        config: &Config,
        seq: u64,
        payload: Bytes,
    ) -> Result<Accepted, Refusal> {
        if seq < self.received {
            return Ok(Accepted::Duplicate);
        }
        if seq > self.received {
            return Err(Refusal::Gap);
        }
        let len = payload.len() as u64;
        if len > u64::from(config.max_message_size) {
            return Err(Refusal::TooLarge);
        }
        let held = (self.queue.len() + self.unacked.len()) as u64;
        if held >= u64::from(config.receive_window_messages)
            || self.queued_bytes + self.unacked_bytes + len > config.receive_window_bytes
        {
            return Err(Refusal::Window);
        }
        self.queue.push_back(payload);
        self.queued_bytes += len;
        self.received += 1;
        Ok(Accepted::New)
    }

    /// Hands the next waiting message to the application: `(seq, payload)`.
    pub(crate) fn deliver(&mut self, mode: AckMode) -> Option<(u64, Bytes)> {
        let payload = self.queue.pop_front()?;
        let len = payload.len() as u64;
        self.queued_bytes -= len;
        let seq = self.delivered;
        self.delivered += 1;
        match mode {
            AckMode::OnDelivery => {
                self.acked = self.delivered;
                self.acked_bytes += len;
            }
            AckMode::Manual => {
                // At most max_message_size (a u32) by `accept`.
                self.unacked.push_back(len as u32);
                self.unacked_bytes += len;
            }
        }
        Some((seq, payload))
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

    #[test]
    fn positions_move_in_order_and_window_is_enforced() {
        let config = Config { receive_window_messages: 2, ..Config::default() };
        let mut r = ReceiveBuffer::default();
        let p = Bytes::from_static(b"x");
        assert_eq!(r.accept(&config, 1, p.clone()), Err(Refusal::Gap));
        assert_eq!(r.accept(&config, 0, p.clone()), Ok(Accepted::New));
        assert_eq!(r.accept(&config, 0, p.clone()), Ok(Accepted::Duplicate));
        assert_eq!(r.accept(&config, 1, p.clone()), Ok(Accepted::New));
        assert_eq!(r.accept(&config, 2, p.clone()), Err(Refusal::Window));
        assert_eq!(r.positions(&config).max_seq, 2);
        assert_eq!(r.deliver(AckMode::Manual), Some((0, p.clone())));
        assert_eq!((r.received(), r.delivered(), r.acked()), (2, 1, 0));
        // Delivered but not acked still counts against the window (manual mode).
        assert_eq!(r.positions(&config).max_seq, 2);
        assert_eq!(r.accept(&config, 2, p.clone()), Err(Refusal::Window));
        assert!(!r.ack(1));
        assert!(r.ack(0));
        assert_eq!(r.acked(), 1);
        assert_eq!(r.positions(&config).max_seq, 3);
        assert_eq!(r.positions(&config).max_bytes, 1 + config.receive_window_bytes);
        assert_eq!(r.accept(&config, 2, p), Ok(Accepted::New));
    }
}
