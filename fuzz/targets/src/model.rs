//! The application on one end of one session: what it sent, what it saw, and the checks every event
//! must pass as it arrives (the event-level half of the contract) or at the end of a run
//! ([`check_direction`], the end-to-end half).

use std::collections::VecDeque;

use bytes::Bytes;
use tether_core::{Event, Instant, Reason, SendError, Session};

/// What one end's application did and saw. Every event goes through [`App::record`].
#[derive(Debug, Default)]
pub struct App {
    /// Messages waiting to be sent (retried on backpressure).
    pub outbox: VecDeque<Bytes>,
    /// Messages accepted by `send`, with their sequence numbers.
    pub sent: Vec<(u64, Bytes)>,
    /// Messages delivered, in order.
    pub delivered: Vec<(u64, Bytes)>,
    /// Highest `Confirmed { up_to }` seen.
    pub confirmed: Option<u64>,
    /// `Closed` or `Lost`, once seen.
    pub terminal: Option<Event>,
    /// `Connected` was seen.
    pub connected: bool,
    /// Attached per the events (`Connected`/`Resumed` minus `Disconnected`).
    pub attached: bool,
    /// `Disconnected` events seen.
    pub disconnects: u32,
    /// The application stopped reading events.
    pub stalled: bool,
    /// The application asked for a clean close.
    pub close_requested: bool,
}

impl App {
    /// Messages confirmed so far.
    pub fn confirmed_count(&self) -> usize {
        self.confirmed.map_or(0, |c| c as usize + 1)
    }

    /// The session ended (`Closed` or `Lost`).
    pub fn ended(&self) -> bool {
        self.terminal.is_some()
    }

    /// The session ended with `Closed`.
    pub fn closed(&self) -> bool {
        matches!(self.terminal, Some(Event::Closed))
    }

    /// The reason of `Lost`, if the session ended so.
    pub fn lost_reason(&self) -> Option<Reason> {
        match &self.terminal {
            Some(Event::Lost { reason, .. }) => Some(*reason),
            _ => None,
        }
    }

    /// Checks `event` against what came before and records it.
    pub fn record(&mut self, label: &str, event: &Event) {
        assert!(self.terminal.is_none(), "{label}: {event:?} after the terminal event");
        match event {
            Event::Messages(d) => {
                assert!(d.len() > 0, "{label}: an empty delivery");
                for (seq, payload) in d.clone() {
                    let next = self.delivered.len() as u64;
                    assert_eq!(seq, next, "{label}: message {seq} delivered, expected {next}");
                    self.delivered.push((seq, payload));
                }
            }
            Event::Confirmed { up_to } => {
                assert!(
                    self.confirmed.is_none_or(|c| c < *up_to),
                    "{label}: Confirmed went from {:?} to {up_to}",
                    self.confirmed
                );
                assert!(
                    (*up_to as usize) < self.sent.len(),
                    "{label}: Confirmed {up_to} but only {} sent",
                    self.sent.len()
                );
                self.confirmed = Some(*up_to);
            }
            Event::Connected => {
                assert!(!self.connected, "{label}: Connected twice");
                self.connected = true;
                self.attached = true;
            }
            Event::Resumed => {
                assert!(self.connected, "{label}: Resumed before Connected");
                assert!(!self.attached, "{label}: Resumed while attached");
                self.attached = true;
            }
            Event::Disconnected { .. } => {
                assert!(self.attached, "{label}: Disconnected while detached");
                self.attached = false;
                self.disconnects += 1;
            }
            Event::Closed => {
                assert_eq!(
                    self.confirmed_count(),
                    self.sent.len(),
                    "{label}: Closed with unconfirmed messages"
                );
                self.terminal = Some(event.clone());
            }
            Event::Lost { unconfirmed, .. } => {
                let expected = &self.sent[self.confirmed_count()..];
                let got: Vec<(u64, Bytes)> =
                    unconfirmed.iter().map(|m| (m.seq, m.payload.clone())).collect();
                assert_eq!(got, expected, "{label}: Lost must hand back the unconfirmed suffix");
                self.terminal = Some(event.clone());
            }
        }
    }

    /// Sends from the outbox until the session refuses. Returns whether anything was sent.
    pub fn feed(&mut self, session: &mut Session, now: Instant) -> bool {
        let mut moved = false;
        while let Some(p) = self.outbox.pop_front() {
            match session.send(now, p.clone()) {
                Ok(seq) => {
                    assert_eq!(
                        seq,
                        self.sent.len() as u64,
                        "send sequence numbers not consecutive"
                    );
                    moved = true;
                    self.sent.push((seq, p));
                }
                Err(SendError::TooLarge { .. }) => {}
                Err(e) => {
                    self.outbox.push_front(e.into_payload());
                    break;
                }
            }
        }
        moved
    }
}

/// End-to-end check of one direction of one session: `from` sent, `to` (if known) received.
pub fn check_direction(label: &str, from: &App, to: Option<&App>) {
    let empty = App::default();
    let to = to.unwrap_or(&empty);
    assert!(to.delivered.len() <= from.sent.len(), "{label}: delivered more than sent");
    for (k, (_, p)) in to.delivered.iter().enumerate() {
        assert_eq!(p, &from.sent[k].1, "{label}: payload {k} differs from what was sent");
    }
    let confirmed = from.confirmed_count();
    assert!(
        confirmed <= to.delivered.len(),
        "{label}: {confirmed} confirmed but only {} delivered",
        to.delivered.len()
    );
    if from.closed() {
        assert_eq!(
            to.delivered.len(),
            from.sent.len(),
            "{label}: Closed but the peer lacks messages"
        );
    }
}

/// A payload that names its sender and number, padded to `size` bytes.
pub fn payload(tag: &str, size: usize) -> Bytes {
    let mut v = tag.as_bytes().to_vec();
    v.resize(size.max(v.len()), b'.');
    Bytes::from(v)
}
