//! Deadlines: what `poll_timeout` reports and what `handle_timeout` acts on.

use super::Session;
use crate::reason::Reason;
use crate::time::{earliest, Instant};

/// Every timer a session arms; each deadline is derived from state, so none can be left stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The connection's handshake must finish (`handshake_timeout`).
    Handshake,
    /// Something must arrive (`idle_timeout`).
    Idle,
    /// The peer's receive position must advance while messages are in flight (`ack_timeout`).
    AckProgress,
    /// A standalone ack is due (`ack_delay`, or at once when one is owed).
    DelayedAck,
    /// A heartbeat is due (`heartbeat_interval`).
    Heartbeat,
    /// A detached session is given up (`session_timeout`).
    Session,
    /// A close must complete (`close_timeout`).
    Close,
    /// The client's next connection attempt (backoff).
    Reconnect,
}

const ALL: [Timer; 8] = [
    Timer::Handshake,
    Timer::Idle,
    Timer::AckProgress,
    Timer::DelayedAck,
    Timer::Heartbeat,
    Timer::Session,
    Timer::Close,
    Timer::Reconnect,
];

impl Session {
    /// When `timer` fires, if it is armed.
    pub(crate) fn deadline(&self, timer: Timer) -> Option<Instant> {
        if self.ended {
            return None;
        }
        let cfg = &self.config;
        let conn = self.conn.as_ref();
        let live = conn.filter(|c| c.established);
        match timer {
            Timer::Handshake => {
                conn.filter(|c| !c.established).map(|c| c.started + cfg.handshake_timeout)
            }
            Timer::Idle => live.map(|c| c.last_recv + cfg.idle_timeout),
            Timer::AckProgress => live
                .filter(|_| self.send.has_in_flight_beyond(self.peer.received))
                .map(|c| c.progress_since + cfg.ack_timeout),
            // Owed at once (by count, window or close): due since it became pending.
            Timer::DelayedAck => live.and(self.ack_pending_since).map(|t| {
                if self.ack_owed() {
                    t
                } else {
                    t + cfg.ack_delay
                }
            }),
            Timer::Heartbeat => live.map(|c| c.last_send + cfg.heartbeat_interval),
            Timer::Session => self.detached_since().map(|t| t + cfg.session_timeout),
            Timer::Close => self.close.deadline,
            Timer::Reconnect => self.reconnect_at.filter(|_| conn.is_none()),
        }
    }

    /// The earliest armed deadline: call [`handle_timeout`](Self::handle_timeout) then.
    /// `None` means no timer is armed (the session has ended, or waits only for input).
    pub fn poll_timeout(&self) -> Option<Instant> {
        ALL.iter().fold(None, |acc, t| earliest(acc, self.deadline(*t)))
    }

    /// Acts on every deadline at or before `now`. Harmless at any time, early or repeated.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        let due = |s: &Self, t| s.deadline(t).is_some_and(|d| d <= now);
        if due(self, Timer::Close) {
            self.on_close_timeout();
        }
        if due(self, Timer::Session) {
            self.give_up(Reason::SessionTimeout, false);
        }
        if due(self, Timer::Handshake) {
            self.detach_telling(now, Reason::HandshakeTimeout, false);
        }
        if due(self, Timer::Idle) {
            self.detach(now, Reason::IdleTimeout);
        }
        if due(self, Timer::AckProgress) {
            self.detach(now, Reason::AckTimeout);
        }
        // DelayedAck, Heartbeat and Reconnect act in poll_transmit / poll_connect.
    }
}
