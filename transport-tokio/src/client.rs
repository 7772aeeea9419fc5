//! The client: a session whose driver connects, reconnects with the core's backoff, and resumes.

use std::future::Future;
use std::io;

use tether_core::{AckMode, Config};
use tokio::net::{TcpStream, ToSocketAddrs};
use tracing::Instrument;

use crate::driver::{AsyncStream, BoxConnect, BoxStream, Driver, Source};
use crate::handle::Session;
use crate::shared::{Clock, Core, Shared, Slot, CLIENT_KEY};
use crate::socket::configure_tcp;
use crate::Error;

/// Opens transport connections for a client: called once per connection attempt.
///
/// Implemented for every `FnMut() -> impl Future<Output = io::Result<S>>` where `S` is any
/// `AsyncRead + AsyncWrite` stream (TLS, a Unix socket, an in-memory test network, ...).
pub trait Connector: Send + 'static {
    /// The stream a successful attempt yields.
    type Stream: AsyncStream;
    /// The attempt.
    type Future: Future<Output = io::Result<Self::Stream>> + Send + 'static;
    /// Starts one connection attempt.
    fn connect(&mut self) -> Self::Future;
}

impl<F, Fut, S> Connector for F
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = io::Result<S>> + Send + 'static,
    S: AsyncStream,
{
    type Stream = S;
    type Future = Fut;

    fn connect(&mut self) -> Fut {
        self()
    }
}

/// Connects to a tether server over TCP and returns once the session is established.
///
/// Every connection gets `TCP_NODELAY`, keepalive and `TCP_USER_TIMEOUT` (see
/// [`configure_tcp`]). After a connection loss the driver reconnects with the core's exponential
/// backoff and full jitter and resumes the session; the application sees at most a
/// [`LinkEvent`](crate::LinkEvent) pair. Must be called within a tokio runtime (the driver is
/// spawned on it). Fails if the config is invalid or if the session ends before its first
/// handshake (e.g. nothing answered within `session_timeout`).
pub async fn connect<A>(addr: A, config: Config) -> Result<Session, Error>
where
    A: ToSocketAddrs + Clone + Send + Sync + 'static,
{
    let tcp_config = config.clone();
    connect_with(
        move || {
            let addr = addr.clone();
            let config = tcp_config.clone();
            async move {
                let stream = TcpStream::connect(addr).await?;
                configure_tcp(&stream, &config);
                Ok(stream)
            }
        },
        config,
    )
    .await
}

/// Like [`connect`], over connections opened by `connector`.
pub async fn connect_with<C: Connector>(connector: C, config: Config) -> Result<Session, Error> {
    let session = start(connector, config)?;
    match session.connected().await {
        Ok(()) => Ok(session),
        Err(end) => Err(Error::Ended(end)),
    }
}

/// Starts a client session without waiting for the first handshake: messages sent before it are
/// queued and delivered once connected.
pub fn start<C: Connector>(mut connector: C, config: Config) -> Result<Session, Error> {
    let clock = Clock::new();
    let manual = config.ack_mode == AckMode::Manual;
    let timeout = config.handshake_timeout;
    let core_config = Config { ack_mode: AckMode::Manual, ..config };
    let seed = getrandom::u64().map_err(|e| Error::Io(io::Error::other(e.to_string())))?;
    let core =
        tether_core::Session::client(core_config, seed, clock.now()).map_err(Error::Config)?;
    let shared = Shared::new(Core::Client(Box::new(core)), manual, clock);
    // The id is recorded once the server has issued it (the first handshake).
    let span = tracing::info_span!("tether_session", role = "client", id = tracing::field::Empty);
    shared.lock().slots.insert(CLIENT_KEY, Slot::new(1, span.clone()));
    let connect = Box::new(move || -> BoxConnect {
        let fut = connector.connect();
        Box::pin(async move { fut.await.map(|s| Box::new(s) as BoxStream) })
    });
    let source = Source::Client { connect, connecting: None, timeout };
    let driver = Driver::new(shared.clone(), source).map_err(Error::Io)?;
    tokio::spawn(driver.instrument(span));
    Ok(Session::new(shared, CLIENT_KEY))
}
