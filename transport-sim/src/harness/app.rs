//! The application on one end of one harness session: what it sent, what it saw, and the checks
//! every event must pass as it arrives (the event-level half of the contract; the end-to-end half
//! is [`check_direction`](super::check_direction)).

use std::collections::VecDeque;
use std::fmt;

use bytes::Bytes;
use tether_core::{Event, Instant, Reason, Session, SessionId, UnconfirmedMessage};

use crate::app::{send_queued, Terminal};

/// What one end's application did and saw. Every event goes through [`App::record`].
#[derive(Debug, Default)]
pub struct App {
    /// Messages waiting to be sent (retried on backpressure).
    pub outbox: VecDeque<Bytes>,
    /// Messages accepted by `send`, with their sequence numbers.
    pub sent: Vec<(u64, Bytes)>,
    /// Messages delivered by `poll_event`, in order.
    pub delivered: Vec<(u64, Bytes)>,
    /// Every event, in order (empty when [`Net::record_events`](super::Net::record_events) is off).
    pub events: Vec<Event>,
    /// Highest `Confirmed { up_to }` seen.
    pub confirmed: Option<u64>,
    /// `Closed` or `Lost`, once seen.
    pub terminal: Option<Terminal>,
    /// `Connected` was seen.
    pub connected: bool,
    /// Attached per the events (`Connected`/`Resumed` minus `Disconnected`).
    pub attached: bool,
    /// `Disconnected` events seen.
    pub disconnects: u32,
    /// The application stopped reading (models a stalled consumer).
    pub stalled: bool,
    /// The application asked for a clean close.
    pub close_requested: bool,
    /// Times `send` reported backpressure.
    pub backpressure_hits: u64,
}

/// Which application an event or a check is about, for failure messages.
#[derive(Clone, Copy, Debug)]
pub enum Side {
    /// Client number `.0`.
    Client(usize),
    /// The server side of a session.
    Server(SessionId),
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Side::Client(i) => write!(f, "client {i}"),
            Side::Server(id) => write!(f, "server session {id:?}"),
        }
    }
}

impl App {
    /// The session ended (`Closed` or `Lost`).
    pub fn ended(&self) -> bool {
        self.terminal.is_some()
    }

    /// The session ended with `Closed`.
    pub fn closed(&self) -> bool {
        matches!(self.terminal, Some(Terminal::Closed))
    }

    /// The reason and the messages handed back, if the session ended `Lost`.
    pub fn lost(&self) -> Option<(&Reason, &Vec<UnconfirmedMessage>)> {
        match &self.terminal {
            Some(Terminal::Lost(reason, unconfirmed)) => Some((reason, unconfirmed)),
            _ => None,
        }
    }

    /// The reason of `Lost`, if the session ended so.
    pub fn lost_reason(&self) -> Option<Reason> {
        self.lost().map(|(r, _)| *r)
    }

    /// Messages confirmed so far.
    pub fn confirmed_count(&self) -> usize {
        self.confirmed.map_or(0, |c| c as usize + 1)
    }

    /// Recorded events for which `f` holds.
    pub fn count(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|e| f(e)).count()
    }

    /// Checks `event` against what came before and records it; for delivered messages returns the
    /// last one's sequence number (to ack in manual mode). `keep` keeps the event in
    /// [`events`](App::events). `sole_sender`: every message of this session was sent through
    /// this `App`, so `Confirmed`, `Closed` and `Lost` are also checked against [`sent`](App::sent).
    pub fn record(
        &mut self,
        who: Side,
        event: Event,
        keep: bool,
        sole_sender: bool,
    ) -> Option<u64> {
        assert!(self.terminal.is_none(), "{who}: {event:?} after the session ended");
        if keep {
            self.events.push(event.clone());
        }
        match event {
            Event::Messages(mut d) => {
                let (n, bytes) = (d.len(), d.payload_bytes());
                assert!(n > 0, "{who}: an empty delivery");
                let mut counted = 0;
                // As many as the delivery announced, then nothing: one that never ends fails
                // here instead of hanging the test.
                for (seq, payload) in d.by_ref().take(n) {
                    let next = self.delivered.len() as u64;
                    assert_eq!(seq, next, "{who}: message {seq} delivered, expected {next}");
                    counted += payload.len() as u64;
                    self.delivered.push((seq, payload));
                }
                assert!(d.next().is_none(), "{who}: a delivery of {n} messages yields more");
                assert_eq!((counted, d.payload_bytes()), (bytes, 0), "{who}: payload_bytes");
                return self.delivered.last().map(|m| m.0);
            }
            Event::Confirmed { up_to } => {
                assert!(
                    self.confirmed.is_none_or(|c| c < up_to),
                    "{who}: Confirmed went from {:?} to {up_to}",
                    self.confirmed
                );
                assert!(
                    !sole_sender || (up_to as usize) < self.sent.len(),
                    "{who}: Confirmed {up_to} but only {} sent",
                    self.sent.len()
                );
                self.confirmed = Some(up_to);
            }
            Event::Connected => {
                assert!(!self.connected, "{who}: Connected twice");
                self.connected = true;
                self.attached = true;
            }
            Event::Resumed => {
                assert!(self.connected, "{who}: Resumed before Connected");
                assert!(!self.attached, "{who}: Resumed while attached");
                self.attached = true;
            }
            Event::Disconnected { .. } => {
                assert!(self.attached, "{who}: Disconnected while detached");
                self.attached = false;
                self.disconnects += 1;
            }
            Event::Closed => {
                assert!(
                    !sole_sender || self.confirmed_count() == self.sent.len(),
                    "{who}: Closed with unconfirmed messages"
                );
                self.terminal = Some(Terminal::Closed);
            }
            Event::Lost { reason, unconfirmed } => {
                if sole_sender {
                    let expected = &self.sent[self.confirmed_count().min(self.sent.len())..];
                    let got: Vec<(u64, Bytes)> =
                        unconfirmed.iter().map(|m| (m.seq, m.payload.clone())).collect();
                    assert_eq!(got, expected, "{who}: Lost must hand back the unconfirmed suffix");
                }
                self.terminal = Some(Terminal::Lost(reason, unconfirmed));
            }
        }
        None
    }

    /// Sends from the outbox until the session refuses. Returns whether anything was sent.
    pub fn feed(&mut self, session: &mut Session, now: Instant) -> bool {
        send_queued(&mut self.outbox, &mut self.sent, &mut self.backpressure_hits, session, now)
    }
}

/// A payload that names its sender and number (`tag`), padded with `.` to `size` bytes.
pub fn payload(tag: &str, size: usize) -> Bytes {
    let mut v = Vec::with_capacity(size.max(tag.len()));
    v.extend_from_slice(tag.as_bytes());
    v.resize(size.max(tag.len()), b'.');
    Bytes::from(v)
}
