//! The close handshake: `Close` → `CloseAck` → `CloseDone`, each sent only once its side is finished.
//!
//! A side is *finished* when every message it sent is confirmed. The responder additionally waits
//! until it has received and acknowledged everything up to the initiator's `final_seq`. So when the
//! responder sends `CloseAck`, both directions are complete; the initiator ends `Closed` on receiving
//! it and answers `CloseDone`, on which the responder ends `Closed`. If the connection dies in
//! between, the responder resumes (client) or waits (server); a responder whose `CloseAck` was sent
//! ends `Closed` at `close_timeout` (or `session_timeout`) because its view is complete. See
//! docs/PROTOCOL.md, "Close".

use super::Session;
use crate::reason::Reason;
use crate::time::{Duration, Instant};
use crate::wire::Frame;

/// Progress of a close, local or peer-initiated.
#[derive(Debug, Default)]
pub(crate) struct CloseState {
    /// Set when a close starts (either side); past it the session ends.
    pub(crate) deadline: Option<Instant>,
    /// The application called `close`.
    pub(crate) local: bool,
    /// The peer's `Close`: it sent exactly the messages below this.
    pub(crate) peer_final: Option<u64>,
    /// We sent `Close` (on some connection).
    pub(crate) sent: bool,
    /// We sent `CloseAck` (on some connection): our view of both directions is complete.
    pub(crate) ack_sent: bool,
}

impl CloseState {
    /// A close is under way; no new sends are accepted.
    pub(crate) fn is_closing(&self) -> bool {
        self.deadline.is_some()
    }

    pub(crate) fn request(&mut self, now: Instant, timeout: Duration) {
        self.local = true;
        self.start(now, timeout);
    }

    fn start(&mut self, now: Instant, timeout: Duration) {
        if self.deadline.is_none() {
            self.deadline = Some(now + timeout);
        }
    }
}

impl Session {
    /// Every message we sent is confirmed.
    fn own_side_done(&self) -> bool {
        self.send.len() == 0
    }

    /// The frame the close handshake wants written on the current connection now, if any.
    pub(super) fn next_close_frame(&mut self) -> Option<Frame> {
        let own_done = self.own_side_done();
        let final_seq = self.send.next_seq();
        let peer_done = self.close.peer_final.is_some_and(|f| {
            self.recv.received() == f && self.recv.acked() == f && self.told.acked == f
        });
        let c = self.conn.as_mut().filter(|c| c.established)?;
        if self.close.local && own_done && !c.sent_close {
            c.sent_close = true;
            self.close.sent = true;
            return Some(Frame::Close { final_seq });
        }
        if own_done && peer_done && !c.sent_close_ack {
            c.sent_close_ack = true;
            self.close.ack_sent = true;
            return Some(Frame::CloseAck { final_seq });
        }
        None
    }

    /// The peer's `Close`: it will send nothing at or after `final_seq`.
    pub(super) fn on_close(&mut self, now: Instant, final_seq: u64) -> Result<(), Reason> {
        if final_seq < self.recv.received() || self.close.peer_final.is_some_and(|f| f != final_seq)
        {
            return Err(Reason::UnexpectedFrame);
        }
        self.close.peer_final = Some(final_seq);
        self.close.start(now, self.config.close_timeout);
        Ok(())
    }

    /// The peer's `CloseAck`: it is finished; so are we if everything it sent is acknowledged.
    pub(super) fn on_close_ack(&mut self, final_seq: u64) -> Result<(), Reason> {
        // Our Close may have gone out on an earlier connection: a responder that resumed answers
        // with CloseAck right after its Welcome.
        if !self.close.sent
            || !self.own_side_done()
            || self.recv.received() != final_seq
            || self.recv.acked() != final_seq
        {
            return Err(Reason::UnexpectedFrame);
        }
        self.end_closed(Some(Frame::CloseDone));
        Ok(())
    }

    /// The peer's `CloseDone`: the initiator saw our `CloseAck`.
    pub(super) fn on_close_done(&mut self) -> Result<(), Reason> {
        if !self.close.ack_sent {
            return Err(Reason::UnexpectedFrame);
        }
        self.end_closed(None);
        Ok(())
    }

    /// A resume was refused because the server closed the session cleanly: we are closed too if our
    /// side was finished and a close was under way.
    pub(super) fn on_refused_as_closed(&mut self) {
        if self.close.is_closing() && self.own_side_done() {
            self.end_closed(None);
        } else {
            self.end_lost(Reason::SessionClosed, false);
        }
    }

    /// `close_timeout` passed: closed if our `CloseAck` went out (our view is complete), else lost.
    pub(super) fn on_close_timeout(&mut self) {
        self.give_up(Reason::CloseTimeout, true);
    }

    /// A timer ended the session: closed if our `CloseAck` went out (our view of both directions
    /// is complete), else lost with `reason`.
    pub(super) fn give_up(&mut self, reason: Reason, notify: bool) {
        if self.close.ack_sent && self.own_side_done() {
            self.end_closed(None);
        } else {
            self.end_lost(reason, notify);
        }
    }
}
