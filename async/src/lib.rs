//! # tether-async
//!
//! The runtime-agnostic async layer of [tether](tether_core): the driver that moves bytes and
//! time between a runtime and the sans-IO core, the reconnect loop, server routing, the session
//! handles and the state they share. It reaches a runtime only through [`Runtime`] (clock, timers,
//! spawning) and [`ByteStream`] (the connections), so each runtime binding is a few hundred lines:
//! `tether-tokio` for tokio, `tether-smol` for smol and async-io. Applications use a binding,
//! which re-exports the handles from here.
//!
//! - [`client::start`] / [`client::connect`] give a client [`Session`]; its driver reconnects
//!   with exponential backoff and full jitter (the core's policy) and resumes.
//! - [`Server::start`] and [`Server::accept`] give one [`Session`] per new session; reconnecting
//!   clients are routed to their session silently.
//! - A [`Session`] sends (waiting on backpressure), receives, closes cleanly or aborts, and reports
//!   how it ended ([`End`]): `Closed` means everything arrived both ways; `Lost` hands back exactly
//!   the unconfirmed messages.
//!
//! Time comes only from the [`Runtime`]: no wall-clock read, no thread of tether's own. A session
//! run inside a deterministic simulation (turmoil, paused tokio time) with a fixed seed
//! ([`Settings::seeded`]) replays exactly.

mod acceptor;
mod address;
pub mod client;
mod driver;
mod handle;
mod inbox;
mod read_buf;
mod runtime;
mod server;
mod settings;
mod shared;
mod socket;
mod sync;
#[cfg(all(test, not(tether_loom)))]
mod test_runtime;
mod write_queue;

pub use address::Address;
pub use handle::Session;
pub use runtime::{
    connect_from, Accept, Accepting, ByteStream, Connect, Connecting, Connector, Runtime, Task,
    Timer,
};
pub use server::{Server, ServerCounts};
pub use settings::Settings;
pub use shared::{End, LinkEvent, Message};
pub use socket::configure_tcp;
pub use tether_core::{
    AckError, AckMode, Config, ConfigError, Duration, FirstConnect, Reason, SendError, SessionId,
    SessionState, Stats, UnconfirmedMessage,
};

/// Errors of the async layer's API, one type for every fallible call so that `?` composes:
/// `SendError`, `AckError`, `ConfigError` and `End` convert into it. Misuse and set-up failures
/// (`Config`, `Io`, `NoRuntime`, `Ack`) come before any I/O on a session; `Send` and `Ended` are
/// about one session. More variants may come.
///
/// ```
/// use bytes::Bytes;
/// # use tether_async::{End, Error, Reason, SendError, Session};
///
/// // `?` takes every error of the API into this one.
/// async fn finish(session: &Session, last: Bytes) -> Result<(), Error> {
///     session.send(last).await?; // a `SendError`
///     match session.close().await {
///         End::Closed => Ok(()),
///         lost => Err(lost.into()), // an `End`
///     }
/// }
///
/// fn describe(error: &Error) -> String {
///     match error {
///         Error::Connect(io) => format!("server unreachable: {io}"),
///         Error::Send(SendError::TooLarge { max, .. }) => format!("split it: {max} bytes at most"),
///         Error::Ended(End::Lost { reason, unconfirmed }) => {
///             format!("lost ({reason}), {} messages unconfirmed", unconfirmed.len())
///         }
///         other => other.to_string(),
///     }
/// }
///
/// let lost = End::Lost { reason: Reason::SessionTimeout, unconfirmed: Vec::new() };
/// assert_eq!(describe(&lost.into()), "lost (SessionTimeout (50)), 0 messages unconfirmed");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid: fix the named field.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// An I/O error while setting up (binding, the OS random generator).
    #[error("I/O error while setting up: {0}")]
    Io(#[source] std::io::Error),
    /// The first connection could not be opened (refused, unresolvable, timed out): check the
    /// address and that the server runs, or set `Config::first_connect` to `Retry` to wait for it.
    #[error("could not connect: {0}")]
    Connect(#[source] std::io::Error),
    /// Called outside the runtime the binding runs sessions on: call it from within one.
    #[error("no {0} runtime here: call this from within one (e.g. inside a task of it)")]
    NoRuntime(&'static str),
    /// A message was refused (see [`SendError`]); the message is handed back inside.
    #[error("message refused: {0}")]
    Send(#[from] SendError),
    /// A manual acknowledgement was refused (see [`AckError`]): nothing changed.
    #[error("acknowledgement refused: {0}")]
    Ack(#[from] AckError),
    /// The session ended (e.g. before its first handshake, or a close that ended as lost).
    #[error("{0}")]
    Ended(End),
}

impl From<End> for Error {
    fn from(end: End) -> Error {
        Error::Ended(end)
    }
}

#[cfg(test)]
mod error_tests {
    use super::*;

    fn sends(e: SendError) -> Result<(), Error> {
        Err(e)?;
        Ok(())
    }

    fn acks(e: AckError) -> Result<(), Error> {
        Err(e)?;
        Ok(())
    }

    fn ends(end: End) -> Result<(), Error> {
        Err(end)?;
        Ok(())
    }

    #[test]
    fn question_mark_composes_every_error_into_one_and_ends_display() {
        let closing = sends(SendError::Closing(bytes::Bytes::from_static(b"m")));
        assert!(matches!(closing, Err(Error::Send(SendError::Closing(ref m))) if m == "m"));
        assert!(matches!(acks(AckError::NotManual), Err(Error::Ack(AckError::NotManual))));
        assert_eq!(ends(End::Closed).unwrap_err().to_string(), "session closed");
        let lost = End::Lost { reason: Reason::SessionTimeout, unconfirmed: Vec::new() };
        assert!(lost.to_string().starts_with("session lost (SessionTimeout"), "{lost}");
        assert!(lost.to_string().ends_with("; 0 messages unconfirmed"), "{lost}");
        let config = Config { max_message_size: 0, ..Config::default() };
        let invalid: Error = config.validate().unwrap_err().into();
        assert!(invalid.to_string().starts_with("invalid configuration:"), "{invalid}");
    }
}
