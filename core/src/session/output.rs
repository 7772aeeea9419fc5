//! Outgoing frames: handshake, replies, data within the peer's window, acks, heartbeats, close.

use super::{Role, Session, Transmit};
use crate::time::Instant;
use crate::wire::{
    self, DataFrameWriter, Frame, FrameSink, Hello, HelloKind, Welcome, MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
};

/// What [`Session::plan_frame`] chose for the next data frame.
struct FramePlan {
    /// Messages it carries, from the send buffer's cursor on.
    count: usize,
    /// Bytes of its message run (prefixes and payloads).
    run_len: usize,
    /// Bytes of the run copied into the sink's buffer (prefixes and inline payloads).
    copied: usize,
}

impl Session {
    /// Appends the frames due now to `buf` (a `BytesMut`, or any [`FrameSink`]) and says what to
    /// do with them; `None` when nothing is due.
    ///
    /// Stops after about `Config::transmit_batch_bytes` bytes; call again until `None`. Closing
    /// requests for retired connections come first, each in its own call.
    #[must_use]
    pub fn poll_transmit<B: FrameSink + ?Sized>(
        &mut self,
        now: Instant,
        buf: &mut B,
    ) -> Option<Transmit> {
        self.last_now = now;
        if let Some(r) = self.retiring.pop_front() {
            if let Some(frame) = r.last_frame {
                frame.encode(buf);
            }
            return Some(Transmit::Close(r.id));
        }
        let start = buf.len();
        let c = self.conn.as_ref()?;
        let id = c.id;
        if c.handshake_pending {
            // The handshake frame goes out in a transmit of its own, ahead of any replay batch,
            // so a slow link delivers it first and the peer's handshake timer is not charged for
            // the replay.
            self.write_handshake(buf);
        } else if self.conn.as_ref().is_some_and(|c| c.established) {
            self.write_established(now, buf, start);
        }
        if buf.len() == start {
            return None;
        }
        if let Some(c) = self.conn.as_mut() {
            c.last_send = now;
        }
        Some(Transmit::Write(id))
    }

    fn write_handshake<B: FrameSink + ?Sized>(&mut self, buf: &mut B) {
        let positions = self.recv.positions(&self.config);
        let frame = match self.role {
            Role::Client => Frame::Hello(Hello {
                min_version: MIN_PROTOCOL_VERSION,
                max_version: PROTOCOL_VERSION,
                kind: if self.id.is_some() { HelloKind::Resume } else { HelloKind::New },
                session_id: self.id.map_or(0, |id| id.0),
                secret: self.secret,
                positions,
                max_message_size: self.config.max_message_size,
            }),
            Role::Server => Frame::Welcome(Welcome {
                version: self.version,
                resumed: self.stats.reconnects > 0,
                session_id: self.id.map_or(0, |id| id.0),
                secret: self.secret,
                positions,
                max_message_size: self.config.max_message_size,
            }),
        };
        frame.encode(buf);
        self.told = positions;
        self.ack_pending_since = None;
        if let Some(c) = self.conn.as_mut() {
            c.handshake_pending = false;
        }
    }

    fn write_established<B: FrameSink + ?Sized>(
        &mut self,
        now: Instant,
        buf: &mut B,
        start: usize,
    ) {
        if let Some(token) = self.conn.as_mut().and_then(|c| c.pong_pending.take()) {
            Frame::Pong { token }.encode(buf);
        }
        self.write_data(now, buf, start);
        if self.ack_due(now) {
            let positions = self.recv.positions(&self.config);
            Frame::Ack(positions).encode(buf);
            self.told = positions;
            self.ack_pending_since = None;
        }
        if let Some(frame) = self.next_close_frame() {
            frame.encode(buf);
        }
        self.write_heartbeat(now, buf, start);
    }

    /// Data frames for unsent messages, within the peer's window and the batch size.
    fn write_data<B: FrameSink + ?Sized>(&mut self, now: Instant, buf: &mut B, start: usize) {
        let batch = self.config.transmit_batch_bytes as usize;
        let ack = self.recv.acked();
        let mut wrote = false;
        while buf.len() - start < batch {
            let Some(plan) = self.plan_frame(batch - (buf.len() - start)) else {
                break;
            };
            let seq = self.send.cursor();
            let mut w = DataFrameWriter::begin(buf, seq, ack, plan.run_len, plan.copied);
            for (payload, _) in self.send.unsent().take(plan.count) {
                w.message(buf, payload);
            }
            w.finish(buf);
            if !self.send.has_in_flight_beyond(self.peer.received) {
                if let Some(c) = self.conn.as_mut() {
                    c.progress_since = now;
                }
            }
            self.stats.replayed_messages += self.send.advance_cursor(plan.count as u64, now);
            wrote = true;
        }
        if wrote {
            // The peer raises its view of our `received` to a Data frame's `ack` too, so in a
            // conversation the data frames keep both counts told and no `Ack` frame is needed.
            self.told.acked = ack;
            self.told.received = self.told.received.max(ack);
        }
    }

    /// The run of unsent messages the next data frame carries: as many as the peer's window
    /// allows whose run fits `budget` bytes, [`wire::PACKED_RUN_MAX`] and the peer's frame limit
    /// (its `max_message_size` plus one length prefix); a first message that does not fit goes
    /// alone (it is at most `max_message_size`, so the peer accepts its frame).
    fn plan_frame(&self, budget: usize) -> Option<FramePlan> {
        let peer_limit = self.max_message_size() as usize + wire::MAX_LENGTH_PREFIX;
        let limit = budget.min(wire::PACKED_RUN_MAX).min(peer_limit);
        let mut plan = FramePlan { count: 0, run_len: 0, copied: 0 };
        for (seq, (payload, end_offset)) in (self.send.cursor()..).zip(self.send.unsent()) {
            if seq >= self.peer.max_seq || end_offset > self.peer.max_bytes {
                break;
            }
            let prefix = wire::prefix_len(payload.len());
            let run_len = plan.run_len + prefix + payload.len();
            if plan.count > 0 && run_len > limit {
                break;
            }
            plan.count += 1;
            plan.run_len = run_len;
            plan.copied += prefix;
            if payload.len() <= wire::INLINE_PAYLOAD_MAX {
                plan.copied += payload.len();
            }
        }
        (plan.count > 0).then_some(plan)
    }

    /// A heartbeat when nothing was written for `heartbeat_interval` (and nothing in this call).
    fn write_heartbeat<B: FrameSink + ?Sized>(&mut self, now: Instant, buf: &mut B, start: usize) {
        let interval = self.config.heartbeat_interval;
        let token = self.next_ping_token;
        let Some(c) = self.conn.as_mut() else { return };
        if buf.len() == start && now >= c.last_send + interval {
            Frame::Ping { token }.encode(buf);
            // Track the newest ping: a peer answers the latest one it saw.
            c.ping_in_flight = Some((token, now));
            self.next_ping_token += 1;
            self.release_idle_memory();
        }
    }

    /// Idle for a heartbeat interval, or detached: give back buffer capacity kept for bursts.
    pub(super) fn release_idle_memory(&mut self) {
        self.send.release_if_empty();
        self.recv.release_if_empty();
        if self.events.is_empty() {
            self.events = alloc::collections::VecDeque::new();
        }
        if self.retiring.is_empty() {
            self.retiring = alloc::collections::VecDeque::new();
        }
    }

    /// A standalone ack is due: one is owed at once ([`ack_owed`](Self::ack_owed)), or positions
    /// have differed from what the peer knows for `ack_delay`.
    fn ack_due(&self, now: Instant) -> bool {
        self.ack_pending_since
            .is_some_and(|since| self.ack_owed() || now >= since + self.config.ack_delay)
    }

    /// An ack is pending and must not wait for `ack_delay`: enough messages await
    /// acknowledgement, the window opened by half, or a close is under way.
    pub(super) fn ack_owed(&self) -> bool {
        if self.ack_pending_since.is_none() {
            return false;
        }
        let p = self.recv.positions(&self.config);
        let every = u64::from(self.config.ack_every);
        self.close.is_closing()
            || p.acked.saturating_sub(self.told.acked) >= every
            || p.received.saturating_sub(self.told.received) >= every
            || p.max_seq.saturating_sub(self.told.max_seq)
                >= u64::from(self.config.receive_window_messages) / 2
            || p.max_bytes.saturating_sub(self.told.max_bytes)
                >= self.config.receive_window_bytes / 2
    }
}
