//! The client: `connect` over TCP, `connect_with` over any tokio stream.

use tether_async::{connect_from, Connector, Session, Settings};
use tokio::net::{TcpStream, ToSocketAddrs};

use crate::runtime::{boxed, current, AsyncStream};
use crate::socket::configure_tcp;
use crate::Error;

/// Connects to a tether server over TCP and returns once the session is established.
///
/// Every connection gets `TCP_NODELAY`, keepalive and `TCP_USER_TIMEOUT` (see
/// [`configure_tcp`]). After a connection loss the driver reconnects with the core's exponential
/// backoff and full jitter and resumes the session; the application sees at most a
/// [`LinkEvent`](crate::LinkEvent) pair. `settings` is a [`Config`](crate::Config), or
/// [`Settings`] to fix the seed. The driver runs on the calling tokio runtime, on its clock.
///
/// Fails if called outside a tokio runtime, if the config is invalid, or if the session ends
/// before its first handshake (e.g. nothing answered within `session_timeout`).
pub async fn connect<A>(addr: A, settings: impl Into<Settings>) -> Result<Session, Error>
where
    A: ToSocketAddrs + Clone + Send + Sync + 'static,
{
    let settings = settings.into();
    let config = settings.config.clone();
    let connector = move || {
        let addr = addr.clone();
        let config = config.clone();
        async move {
            let stream = TcpStream::connect(addr).await?;
            configure_tcp(&stream, &config);
            Ok(stream)
        }
    };
    connect_with(connector, settings).await
}

/// Like [`connect`], over connections opened by `connector`.
pub async fn connect_with<C>(connector: C, settings: impl Into<Settings>) -> Result<Session, Error>
where
    C: Connector<Stream: AsyncStream>,
{
    tether_async::client::connect(current()?, connect_from(connector, boxed), settings).await
}

/// Starts a client session without waiting for the first handshake: messages sent before it are
/// queued and delivered once connected. Fails outside a tokio runtime or on an invalid config.
pub fn start<C>(connector: C, settings: impl Into<Settings>) -> Result<Session, Error>
where
    C: Connector<Stream: AsyncStream>,
{
    tether_async::client::start(current()?, connect_from(connector, boxed), settings)
}
