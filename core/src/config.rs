//! Session and endpoint configuration: every limit and timer in one place, validated up front.

use crate::time::Duration;

/// When the receiver confirms a message to its sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AckMode {
    /// A message is acknowledged as soon as it is delivered to the application (returned by
    /// `poll_event` in the core, taken with `recv` in the adapters).
    #[default]
    OnDelivery,
    /// A message is acknowledged only when the application calls `ack` with its sequence number
    /// or a later one (on the session, in the core and in the adapters alike), e.g. after it has
    /// durably processed it. Only acked messages are confirmed to the peer.
    Manual,
}

/// What a client does when its first connection fails, before any handshake has completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FirstConnect {
    /// The session ends at once as lost, with nothing lost but what the application queued (handed
    /// back as unconfirmed): [`Reason::ConnectFailed`](crate::Reason::ConnectFailed) when the
    /// connection could not be opened, else the reason the first connection ended before its
    /// handshake completed (`TransportLost`, `HandshakeTimeout`, `ServerBusy`, ...). A wrong
    /// address or a server that is down is reported at once, not after `session_timeout`. (The
    /// adapters' `connect` then fails with `Error::Connect`, the OS's reason, or `Error::Ended`;
    /// a session from their `start` ends as `Lost`.)
    #[default]
    Fail,
    /// Retry with the reconnect backoff, like a reconnect, until a handshake completes or
    /// `session_timeout` has passed since the session started: for a client started before its
    /// server, or one that must ride out the server's restart.
    Retry,
}

/// Everything a session or endpoint can be tuned with.
///
/// Build it with [`Config::default`] and struct update syntax, then [`Config::validate`] it (every
/// constructor taking a `Config` validates it again, as do the adapters' `connect`, `start` and
/// `bind`). Both peers may use different configs; each side's limits protect that side.
///
/// "Server" below is the core's [`Endpoint`](crate::Endpoint), or an adapter's `Server`.
///
/// ```
/// # use tether_core::{AckMode, Config, ConfigError, Duration};
/// let config = Config {
///     ack_mode: AckMode::Manual,
///     session_timeout: Duration::from_secs(300), // ride out a five-minute outage
///     ..Config::default()
/// };
/// config.validate()?;
/// # Ok::<(), ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Largest application message accepted by `send`, in bytes (default 1 MiB).
    pub max_message_size: u32,
    /// Largest frame the decoder accepts before buffering it, in bytes (default: message size + 64).
    /// Larger declared lengths end the connection with `FrameTooLarge` before anything is buffered.
    pub max_frame_size: u32,
    /// Most messages sent and not yet confirmed (including those not yet written): beyond it
    /// sending meets backpressure (the core's `send` and the adapters' `try_send` refuse, the
    /// adapters' `send` waits) (default 16384: 1 MiB of 64-byte messages; from 512-byte messages
    /// up, `max_unconfirmed_bytes` is the limit that binds). Each unconfirmed message costs about
    /// 56 bytes of bookkeeping besides its payload.
    pub max_unconfirmed_messages: u32,
    /// Most payload bytes sent and not yet confirmed; beyond it sending meets backpressure, as for
    /// `max_unconfirmed_messages` (default 8 MiB).
    pub max_unconfirmed_bytes: u64,
    /// Receive window in messages: how many received messages may be held unacknowledged, waiting
    /// for the application or (in [`AckMode::Manual`]) taken by it and not yet acked (default 16384,
    /// chosen as `max_unconfirmed_messages` is).
    pub receive_window_messages: u32,
    /// Receive window in payload bytes, counted like `receive_window_messages` (default 8 MiB).
    /// Must be at least `max_message_size`.
    pub receive_window_bytes: u64,
    /// When received messages are acknowledged (default [`AckMode::OnDelivery`]).
    pub ack_mode: AckMode,
    /// A standalone ack is sent at most this long after a message was received or acked (default 10 ms).
    pub ack_delay: Duration,
    /// A standalone ack is sent at once when this many messages await acknowledgement (default 32).
    pub ack_every: u32,
    /// A heartbeat is sent when nothing has been sent for this long (default 1 s).
    pub heartbeat_interval: Duration,
    /// The connection is declared dead when no whole frame arrives for this long (default 5 s).
    /// It must exceed the time the link needs to carry one `max_frame_size` frame.
    pub idle_timeout: Duration,
    /// The connection is declared dead when the oldest message written on it sees no ack progress
    /// for this long (default 10 s): the application-level `TCP_USER_TIMEOUT`.
    pub ack_timeout: Duration,
    /// A connection must complete its handshake within this long (default 5 s). The adapters also
    /// give up opening a connection after this long.
    pub handshake_timeout: Duration,
    /// A detached session is given up after this long without a connection (default 60 s).
    pub session_timeout: Duration,
    /// A close (requested here or by the peer) that has not completed after this long ends the
    /// session: `Closed` if this side had already confirmed the peer's close (answered its
    /// `Close` with a `CloseAck`), else `Lost` (default 30 s).
    pub close_timeout: Duration,
    /// Client: first reconnect backoff ceiling; each failed attempt doubles it (default 50 ms).
    pub reconnect_backoff_initial: Duration,
    /// Client: largest reconnect backoff ceiling (default 5 s). Delays are drawn uniformly below
    /// the ceiling.
    pub reconnect_backoff_max: Duration,
    /// Client: whether a failed first connection ends the session or is retried (default
    /// [`FirstConnect::Fail`]). Reconnects after the first handshake always retry with backoff.
    pub first_connect: FirstConnect,
    /// Bytes of data frames produced per step (default 64 KiB): the core's `poll_transmit` stops
    /// appending data frames once one call has appended this many; call it again for more (the
    /// adapters do). A throughput knob: adapter users rarely need to change it.
    pub transmit_batch_bytes: u32,
    /// Server: most sessions held, attached or detached (in the core, also ended ones whose events
    /// were not polled yet) (default 10,000). Beyond it new sessions are refused with
    /// `ServerBusy`.
    pub max_sessions: u32,
    /// Server: most detached sessions held; beyond it the longest-detached one is given up
    /// (reason `Evicted`) (default 1,000).
    pub max_detached_sessions: u32,
    /// Server: most connections that have not finished their handshake; beyond it new ones are
    /// refused with `TooManyHandshakes` (default 256).
    pub max_handshakes: u32,
}

impl Default for Config {
    fn default() -> Self {
        const MIB: u32 = 1024 * 1024;
        Config {
            max_message_size: MIB,
            max_frame_size: MIB + 64,
            max_unconfirmed_messages: 16384,
            max_unconfirmed_bytes: 8 * u64::from(MIB),
            receive_window_messages: 16384,
            receive_window_bytes: 8 * u64::from(MIB),
            ack_mode: AckMode::OnDelivery,
            ack_delay: Duration::from_millis(10),
            ack_every: 32,
            heartbeat_interval: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(5),
            ack_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(5),
            session_timeout: Duration::from_secs(60),
            close_timeout: Duration::from_secs(30),
            reconnect_backoff_initial: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_secs(5),
            first_connect: FirstConnect::Fail,
            transmit_batch_bytes: 64 * 1024,
            max_sessions: 10_000,
            max_detached_sessions: 1_000,
            max_handshakes: 256,
        }
    }
}

/// A configuration that cannot work; the message names the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A limit that must be positive is zero.
    #[error("config: `{0}` must be greater than zero")]
    Zero(&'static str),
    /// A limit is above what the implementation supports.
    #[error("config: `{0}` must be at most {1}")]
    TooLarge(&'static str, u64),
    /// A frame could not hold a largest message plus its header, or a handshake frame.
    #[error("config: max_frame_size ({frame}) must be at least max_message_size + {overhead} ({message} + {overhead}) and at least 66")]
    FrameTooSmall {
        /// Configured max_frame_size.
        frame: u32,
        /// Configured max_message_size.
        message: u32,
        /// Header and checksum bytes of a data frame.
        overhead: u32,
    },
    /// A largest message would never fit the receive window or the unconfirmed buffer.
    #[error(
        "config: `{0}` must be at least max_message_size, or a large message could never be sent"
    )]
    WindowTooSmall(&'static str),
    /// Two timers are ordered so that liveness cannot work.
    #[error(
        "config: `{smaller}` must be shorter than `{larger}` (or equal, for the backoff bounds)"
    )]
    TimerOrder {
        /// The timer that must be shorter.
        smaller: &'static str,
        /// The timer that must be longer.
        larger: &'static str,
    },
}

/// Largest byte window or buffer accepted (2^48 bytes): positions add it to byte offsets and
/// must never overflow.
pub const MAX_WINDOW_BYTES: u64 = 1 << 48;

impl Config {
    /// Checks every rule the protocol relies on; a config that passes can run forever.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("max_message_size", u64::from(self.max_message_size)),
            ("max_unconfirmed_messages", u64::from(self.max_unconfirmed_messages)),
            ("max_unconfirmed_bytes", self.max_unconfirmed_bytes),
            ("receive_window_messages", u64::from(self.receive_window_messages)),
            ("receive_window_bytes", self.receive_window_bytes),
            ("ack_every", u64::from(self.ack_every)),
            ("transmit_batch_bytes", u64::from(self.transmit_batch_bytes)),
            ("max_sessions", u64::from(self.max_sessions)),
            ("max_handshakes", u64::from(self.max_handshakes)),
            ("max_detached_sessions", u64::from(self.max_detached_sessions)),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        let timers = [
            ("heartbeat_interval", self.heartbeat_interval),
            ("idle_timeout", self.idle_timeout),
            ("ack_timeout", self.ack_timeout),
            ("handshake_timeout", self.handshake_timeout),
            ("session_timeout", self.session_timeout),
            ("close_timeout", self.close_timeout),
            ("reconnect_backoff_initial", self.reconnect_backoff_initial),
            ("reconnect_backoff_max", self.reconnect_backoff_max),
        ];
        for (name, value) in timers {
            if value.is_zero() {
                return Err(ConfigError::Zero(name));
            }
        }
        let overhead = crate::wire::DATA_FRAME_LEN;
        let needed = (u64::from(self.max_message_size) + u64::from(overhead))
            .max(u64::from(crate::wire::MAX_CONTROL_FRAME_LEN));
        if u64::from(self.max_frame_size) < needed {
            return Err(ConfigError::FrameTooSmall {
                frame: self.max_frame_size,
                message: self.max_message_size,
                overhead,
            });
        }
        if self.receive_window_bytes > MAX_WINDOW_BYTES
            || self.max_unconfirmed_bytes > MAX_WINDOW_BYTES
        {
            return Err(ConfigError::TooLarge(
                "receive_window_bytes / max_unconfirmed_bytes",
                MAX_WINDOW_BYTES,
            ));
        }
        let message = u64::from(self.max_message_size);
        if self.receive_window_bytes < message {
            return Err(ConfigError::WindowTooSmall("receive_window_bytes"));
        }
        if self.max_unconfirmed_bytes < message {
            return Err(ConfigError::WindowTooSmall("max_unconfirmed_bytes"));
        }
        let order = [
            ("heartbeat_interval", self.heartbeat_interval, "idle_timeout", self.idle_timeout),
            ("ack_delay", self.ack_delay, "idle_timeout", self.idle_timeout),
        ];
        for (smaller, a, larger, b) in order {
            if a >= b {
                return Err(ConfigError::TimerOrder { smaller, larger });
            }
        }
        if self.reconnect_backoff_initial > self.reconnect_backoff_max {
            return Err(ConfigError::TimerOrder {
                smaller: "reconnect_backoff_initial",
                larger: "reconnect_backoff_max",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default message limits do not bind before the byte limits for messages of 512 bytes
    /// or more (as the field docs say): a small-message window of 4096 capped 64 B streams at a
    /// quarter of a megabyte in flight (BENCHMARKS.md, "Small-message windows").
    #[test]
    fn default_message_limits_bind_only_below_512_byte_messages() {
        let c = Config::default();
        assert_eq!(c.max_unconfirmed_bytes / u64::from(c.max_unconfirmed_messages), 512);
        assert_eq!(c.receive_window_bytes / u64::from(c.receive_window_messages), 512);
    }

    #[test]
    fn default_is_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn invalid_combinations_are_rejected() {
        let c = Config { receive_window_messages: 0, ..Config::default() };
        assert_eq!(c.validate(), Err(ConfigError::Zero("receive_window_messages")));
        let c = Config { max_frame_size: 100, ..Config::default() };
        assert!(matches!(c.validate(), Err(ConfigError::FrameTooSmall { .. })));
        let c = Config { max_message_size: 8, max_frame_size: 33, ..Config::default() };
        assert!(matches!(c.validate(), Err(ConfigError::FrameTooSmall { .. })));
        let c = Config { receive_window_bytes: 10, ..Config::default() };
        assert_eq!(c.validate(), Err(ConfigError::WindowTooSmall("receive_window_bytes")));
        let c = Config { heartbeat_interval: Duration::from_secs(10), ..Config::default() };
        assert!(matches!(c.validate(), Err(ConfigError::TimerOrder { .. })));
        let c = Config { receive_window_bytes: u64::MAX, ..Config::default() };
        assert!(matches!(c.validate(), Err(ConfigError::TooLarge(..))));
        let c = Config { reconnect_backoff_max: Duration::MAX, ..Config::default() };
        c.validate().unwrap();
        let c = Config { max_detached_sessions: 0, ..Config::default() };
        assert_eq!(c.validate(), Err(ConfigError::Zero("max_detached_sessions")));
        let c = Config { idle_timeout: Duration::ZERO, ..Config::default() };
        assert_eq!(c.validate(), Err(ConfigError::Zero("idle_timeout")));
    }
}
