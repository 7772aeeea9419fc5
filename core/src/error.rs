//! Errors returned by the session API. Misuse is reported here, at the call; the loss of a session
//! or a peer's protocol violation is reported later, when it happens (through events in the core,
//! the session's `End` in the adapters).

use bytes::Bytes;

/// Why `send` (or the adapters' `try_send`) did not take a message. Every variant hands the
/// message back ([`into_payload`](SendError::into_payload)).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The unconfirmed buffer is full: retry once confirmations have made room (after a
    /// `Confirmed` event in the core). The adapters' `send` waits for room instead; their
    /// `try_send` reports this.
    #[error("send buffer full: wait for confirmations and retry")]
    Backpressure(Bytes),
    /// The message exceeds `max_message_size`; it can never be sent.
    #[error("message of {} bytes exceeds max_message_size {max}", .payload.len())]
    TooLarge {
        /// The message.
        payload: Bytes,
        /// The limit in force: ours, or the peer's if it is smaller.
        max: u32,
    },
    /// The session is closing (locally or by the peer); no new messages are accepted.
    #[error("session is closing: no new messages are accepted")]
    Closing(Bytes),
    /// The session has ended (`Closed` or `Lost`).
    #[error("session has ended")]
    Ended(Bytes),
}

impl SendError {
    /// The message that was not sent.
    pub fn into_payload(self) -> Bytes {
        match self {
            SendError::Backpressure(p)
            | SendError::TooLarge { payload: p, .. }
            | SendError::Closing(p)
            | SendError::Ended(p) => p,
        }
    }
}

/// Why `ack` was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// The session acknowledges on delivery ([`AckMode::OnDelivery`](crate::AckMode::OnDelivery)):
    /// `ack` needs [`AckMode::Manual`](crate::AckMode::Manual).
    #[error("ack() needs AckMode::Manual")]
    NotManual,
    /// The message has not been delivered yet: not returned by `poll_event` (core), not received
    /// yet (adapters).
    #[error("message {seq} was not delivered yet (next to deliver: {delivered})")]
    NotDelivered {
        /// The sequence number passed to `ack`.
        seq: u64,
        /// The first sequence number not yet delivered.
        delivered: u64,
    },
}

/// Why `close` was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CloseError {
    /// The session has already ended.
    #[error("session has already ended")]
    Ended,
}
