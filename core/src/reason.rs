//! Reason codes carried by `Reject`, `Abort` and `ConnClose` frames and reported in events.

/// Why a handshake was refused, a connection ended or a session ended.
///
/// Codes 1-15 refuse a handshake, 16-31 are protocol violations by the peer, 32-47 end one
/// connection (the session stays resumable), 48-63 end a whole session. The numeric values are part
/// of the wire format (docs/PROTOCOL.md); unknown values read from the wire become [`Reason::Unknown`].
///
/// The core reports it in its events (`Disconnected`, `Lost`); the adapters in `End::Lost` and
/// `LinkEvent::Disconnected`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Reason {
    /// The peers share no protocol version.
    UnsupportedVersion = 1,
    /// The first frame of a connection was not a well-formed handshake.
    MalformedHandshake = 2,
    /// A resume named a session the server does not hold (never existed, expired, or server restarted).
    UnknownSession = 3,
    /// A resume carried the wrong secret for its session.
    BadSecret = 4,
    /// A resume named a session that already closed cleanly.
    SessionClosed = 5,
    /// The server holds as many sessions as it is configured for.
    ServerBusy = 6,
    /// The server has as many handshakes in flight as it is configured for.
    TooManyHandshakes = 7,
    /// The handshake did not complete within `handshake_timeout`.
    HandshakeTimeout = 8,
    /// A frame's body did not parse (bad length or field for its type, unknown type).
    MalformedFrame = 16,
    /// A frame declared a length above `max_frame_size`.
    FrameTooLarge = 17,
    /// A frame's CRC-32C did not match: corruption in flight.
    ChecksumMismatch = 18,
    /// A frame that is not allowed in the connection's current state or direction.
    UnexpectedFrame = 19,
    /// The peer sent beyond the window it was given.
    FlowControlViolation = 20,
    /// The peer acknowledged a message that was never sent, or moved an ack backwards.
    InvalidAck = 21,
    /// A resume position beyond what was sent or behind what was already confirmed.
    InvalidResumePosition = 22,
    /// A data frame whose sequence number skips ahead of the next expected one.
    InvalidSequence = 23,
    /// A message above `max_message_size`.
    MessageTooLarge = 24,
    /// The session was resumed on a newer connection; this one is stale.
    Replaced = 32,
    /// Nothing arrived for `idle_timeout`.
    IdleTimeout = 33,
    /// The oldest unconfirmed message saw no ack progress for `ack_timeout`.
    AckTimeout = 34,
    /// The transport reported end of stream or an error.
    TransportLost = 35,
    /// The application aborted the session. The adapters report it too when the last handle to a
    /// session is dropped before it ended, or the runtime running it shut down.
    ApplicationAbort = 48,
    /// A requested close did not complete within `close_timeout`.
    CloseTimeout = 49,
    /// The session stayed detached for `session_timeout`.
    SessionTimeout = 50,
    /// The server gave the detached session up to stay within `max_detached_sessions`.
    Evicted = 51,
    /// The client's first connection could not be opened (refused, unresolvable, timed out) and
    /// `Config::first_connect` is `Fail`. Local: never sent. (The adapters' `connect` fails with
    /// `Error::Connect` and the OS's reason instead; a session from their `start` ends with it.)
    ConnectFailed = 52,
    /// A code this version does not know.
    Unknown = 255,
}

impl Reason {
    /// Decodes a wire code; unknown codes become [`Reason::Unknown`].
    pub fn from_code(code: u8) -> Reason {
        use Reason::*;
        const ALL: [Reason; 27] = [
            UnsupportedVersion,
            MalformedHandshake,
            UnknownSession,
            BadSecret,
            SessionClosed,
            ServerBusy,
            TooManyHandshakes,
            HandshakeTimeout,
            MalformedFrame,
            FrameTooLarge,
            ChecksumMismatch,
            UnexpectedFrame,
            FlowControlViolation,
            InvalidAck,
            InvalidResumePosition,
            InvalidSequence,
            MessageTooLarge,
            Replaced,
            IdleTimeout,
            AckTimeout,
            TransportLost,
            ApplicationAbort,
            CloseTimeout,
            SessionTimeout,
            Evicted,
            ConnectFailed,
            Unknown,
        ];
        ALL.into_iter().find(|r| *r as u8 == code).unwrap_or(Unknown)
    }

    /// The wire code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// True for violations of the protocol by the peer (codes 16-31).
    pub fn is_protocol_violation(self) -> bool {
        (16..32).contains(&self.code())
    }
}

impl core::fmt::Display for Reason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{self:?} ({})", self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in 0..=255u8 {
            let r = Reason::from_code(code);
            if r != Reason::Unknown {
                assert_eq!(r.code(), code);
            }
        }
        assert_eq!(Reason::from_code(0), Reason::Unknown);
        assert_eq!(Reason::from_code(Reason::Evicted.code()), Reason::Evicted);
    }
}
