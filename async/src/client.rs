//! The client: a session whose driver connects, reconnects with the core's backoff, and resumes.

use tether_core::{AckMode, Config, Reason};
use tracing::Instrument;

use crate::driver::{Driver, Source};
use crate::handle::Session;
use crate::runtime::{Connect, Runtime};
use crate::settings::Settings;
use crate::shared::{Clock, Core, Shared, Slot, CLIENT_KEY};
use crate::{End, Error};

/// Starts a client session on `runtime` over connections opened by `connect`, without waiting
/// for the first handshake: messages sent before it are queued and delivered once connected.
/// Bindings call this from their `start`; applications use those.
///
/// Fails if the config is invalid, or if no seed was given and the OS random generator fails.
pub fn start(
    runtime: std::sync::Arc<dyn Runtime>,
    connect: Connect,
    settings: impl Into<Settings>,
) -> Result<Session, Error> {
    let Settings { config, seed } = settings.into();
    let clock = Clock::new(runtime.clone());
    let manual = config.ack_mode == AckMode::Manual;
    let timeout = config.handshake_timeout;
    let core_config = Config { ack_mode: AckMode::Manual, ..config };
    let seed = match seed {
        Some(seed) => seed,
        None => getrandom::u64().map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?,
    };
    let core =
        tether_core::Session::client(core_config, seed, clock.now()).map_err(Error::Config)?;
    let shared = Shared::new(Core::Client(Box::new(core)), manual, clock);
    // The id is recorded once the server has issued it (the first handshake).
    let span = tracing::info_span!("tether_session", role = "client", id = tracing::field::Empty);
    shared.lock().slots.insert(CLIENT_KEY, Slot::new(1, span.clone()));
    let source = Source::Client { connect, connecting: None, timeout };
    let driver = Driver::new(shared.clone(), source);
    runtime.spawn(Box::pin(driver.instrument(span)));
    Ok(Session::new(shared, CLIENT_KEY))
}

/// [`start`], then waits for the first handshake. Fails as [`start`] does, or:
/// - with [`Error::Connect`] and the OS's reason if the first connection could not be opened
///   (refused, unresolvable, not opened within `handshake_timeout`) and `first_connect` is
///   [`FirstConnect::Fail`](tether_core::FirstConnect::Fail), the default;
/// - with [`Error::Ended`] if the session ends otherwise before its first handshake: the first
///   connection closed or timed out during the handshake, the server refused it (`ServerBusy`,
///   `UnsupportedVersion`, ...), or, with `FirstConnect::Retry`, nothing answered within
///   `session_timeout`.
pub async fn connect(
    runtime: std::sync::Arc<dyn Runtime>,
    connect: Connect,
    settings: impl Into<Settings>,
) -> Result<Session, Error> {
    let session = start(runtime, connect, settings)?;
    match session.connected().await {
        Ok(()) => Ok(session),
        Err(end) => Err(first_connect_error(&session, end)),
    }
}

/// The error of a session that ended before its first handshake: the OS's reason if its last
/// connection attempt failed and that ended it, else how it ended.
fn first_connect_error(session: &Session, end: End) -> Error {
    let connect_failed = matches!(end, End::Lost { reason: Reason::ConnectFailed, .. });
    match session.take_connect_error() {
        Some(e) if connect_failed => Error::Connect(e),
        _ => Error::Ended(end),
    }
}
