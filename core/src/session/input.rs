//! Incoming frames: decoding errors, the client side of the handshake, data, acks and control.

use bytes::BytesMut;

use super::{Role, Session, SessionId};
use crate::reason::Reason;
use crate::recv_buf::Refusal;
use crate::time::Instant;
use crate::wire::{Frame, Messages, Positions, Welcome, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};

impl Session {
    /// Decodes and handles every whole frame of the current connection: those pushed into its
    /// decoder, or, with `buf`, those at the front of the caller's buffer (decoded in place).
    /// Returns how many more bytes the frame left in `buf` needs; `buf` is cleared if the
    /// connection ended or was replaced on the way (what is left of it is stale).
    pub(super) fn process_frames(&mut self, now: Instant, mut buf: Option<&mut BytesMut>) -> usize {
        let Some(id) = self.conn.as_ref().map(|c| c.id) else { return 0 };
        while let Some(c) = self.conn.as_mut().filter(|c| c.id == id) {
            let next = match buf.as_deref_mut() {
                Some(b) => c.decoder.next_frame_in(b),
                None => c.decoder.next_frame(),
            };
            let result = match next {
                Ok(None) => return buf.map_or(0, |b| c.decoder.missing(b)),
                Ok(Some(frame)) => {
                    // Only whole, valid frames count as life: raw bytes do not (a corrupted length
                    // prefix would otherwise swallow the peer's heartbeats and stall for ever).
                    c.last_recv = now;
                    self.on_frame(now, frame)
                }
                Err(e) => Err(e.reason()),
            };
            if let Err(reason) = result {
                // The frame may have already replaced or ended the connection.
                if self.conn.as_ref().is_some_and(|c| c.id == id) {
                    self.detach(now, reason);
                }
                break;
            }
        }
        if let Some(b) = buf {
            b.clear();
        }
        0
    }

    fn on_frame(&mut self, now: Instant, frame: Frame) -> Result<(), Reason> {
        let established = self.conn.as_ref().is_some_and(|c| c.established);
        match frame {
            Frame::Welcome(w) if !established && self.role == Role::Client => {
                self.on_welcome(now, w)
            }
            Frame::Reject { reason, .. } if !established && self.role == Role::Client => {
                self.on_reject(now, reason);
                Ok(())
            }
            _ if !established => Err(Reason::UnexpectedFrame),
            Frame::Data { seq, ack, messages } => {
                self.on_peer_ack(now, ack)?;
                self.on_data(seq, &messages)
            }
            Frame::Ack(p) => self.on_peer_positions(now, p),
            Frame::Ping { token } => {
                if let Some(c) = self.conn.as_mut() {
                    c.pong_pending = Some(token);
                }
                Ok(())
            }
            Frame::Pong { token } => {
                self.on_pong(now, token);
                Ok(())
            }
            Frame::Close { final_seq } => self.on_close(now, final_seq),
            Frame::CloseAck { final_seq } => self.on_close_ack(final_seq),
            Frame::CloseDone => self.on_close_done(),
            Frame::Abort { reason } => {
                self.end_lost(reason, false);
                Ok(())
            }
            Frame::ConnClose { reason } => {
                // The peer is ending this connection; detach without answering.
                if let Some(c) = self.conn.take() {
                    self.retiring.push_back(super::Retired { id: c.id, last_frame: None });
                    self.on_detached(now, reason, true);
                }
                Ok(())
            }
            Frame::Hello(_) | Frame::Welcome(_) | Frame::Reject { .. } => {
                Err(Reason::UnexpectedFrame)
            }
        }
    }

    fn on_welcome(&mut self, now: Instant, w: Welcome) -> Result<(), Reason> {
        if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&w.version) {
            return Err(Reason::UnsupportedVersion);
        }
        match self.id {
            Some(id) if !w.resumed || id != SessionId(w.session_id) || w.secret != self.secret => {
                return Err(Reason::MalformedHandshake)
            }
            None if w.resumed => return Err(Reason::MalformedHandshake),
            _ => {}
        }
        if w.max_message_size == 0 {
            return Err(Reason::MalformedHandshake);
        }
        self.check_resume_positions(&w.positions)?;
        self.id = Some(SessionId(w.session_id));
        self.secret = w.secret;
        self.version = w.version;
        self.on_established(now, w.positions, w.max_message_size);
        Ok(())
    }

    fn on_reject(&mut self, now: Instant, reason: Reason) {
        match reason {
            // Transient: the server is busy, or our Hello was damaged in flight (any decoding
            // failure: corruption can hit the length or type too); retry with backoff. A peer that
            // keeps failing is bounded by session_timeout.
            Reason::ChecksumMismatch
            | Reason::FrameTooLarge
            | Reason::MalformedFrame
            | Reason::ServerBusy
            | Reason::TooManyHandshakes
            | Reason::HandshakeTimeout => self.detach_telling(now, reason, false),
            Reason::SessionClosed => self.on_refused_as_closed(),
            _ => self.end_lost(reason, false),
        }
    }

    /// The peer's piggybacked cumulative ack.
    fn on_peer_ack(&mut self, now: Instant, acked: u64) -> Result<(), Reason> {
        if acked < self.send.confirmed() || acked > self.send.high_water() {
            return Err(Reason::InvalidAck);
        }
        if acked > self.peer.received {
            self.on_received_progress(now, acked);
        }
        self.peer.acked = acked;
        self.confirm_up_to(acked);
        Ok(())
    }

    /// A standalone `Ack`: receive and ack positions plus the window.
    fn on_peer_positions(&mut self, now: Instant, p: Positions) -> Result<(), Reason> {
        if p.received > self.send.high_water()
            || p.acked > p.received
            || p.received < self.peer.received
        {
            return Err(Reason::InvalidAck);
        }
        if p.received > self.peer.received {
            self.on_received_progress(now, p.received);
        }
        self.on_peer_ack(now, p.acked)?;
        // Windows are absolute; a smaller one than before is stale or a lie, and is ignored.
        self.peer.max_seq = self.peer.max_seq.max(p.max_seq);
        self.peer.max_bytes = self.peer.max_bytes.max(p.max_bytes);
        Ok(())
    }

    /// The peer has now received everything below `received`: ack progress, and an RTT sample.
    fn on_received_progress(&mut self, now: Instant, received: u64) {
        if let Some(sent_at) = self.send.sent_at(received - 1) {
            self.rtt.sample(now - sent_at);
        }
        self.peer.received = received;
        if let Some(c) = self.conn.as_mut() {
            c.progress_since = now;
        }
    }

    /// The messages of a data frame, first sequence number `seq`.
    fn on_data(&mut self, seq: u64, messages: &Messages) -> Result<(), Reason> {
        let end = self.close.peer_final.unwrap_or(u64::MAX);
        let (taken, result) = self.recv.accept(&self.config, seq, messages, end);
        if taken.messages > 0 {
            self.stats.messages_received += taken.messages;
            self.stats.bytes_received += taken.bytes;
            self.note_positions_changed();
        }
        result.map_err(|refusal| match refusal {
            Refusal::Gap | Refusal::PastEnd => Reason::InvalidSequence,
            Refusal::Window => Reason::FlowControlViolation,
            Refusal::TooLarge => Reason::MessageTooLarge,
        })
    }

    fn on_pong(&mut self, now: Instant, token: u64) {
        let Some(c) = self.conn.as_mut() else { return };
        if let Some((sent, at)) = c.ping_in_flight {
            if sent == token {
                c.ping_in_flight = None;
                self.rtt.sample(now - at);
            }
        }
    }
}
