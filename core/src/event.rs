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
    /// The next message from the peer. Sequence numbers start at 0 and have no gaps.
    Message {
        /// The message's sequence number in the peer's sending direction.
        seq: u64,
        /// The message, as the peer sent it (a zero-copy slice of received bytes).
        payload: Bytes,
    },
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

/// A message handed back by [`Event::Lost`].
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
    /// Received messages waiting for the application to take them.
    pub buffered_receive_messages: u64,
    /// Payload bytes of received messages waiting for the application.
    pub buffered_receive_bytes: u64,
}
