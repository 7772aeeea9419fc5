//! The client: `connect` over TCP, `connect_with` over any tokio stream.

use tether_async::{connect_from, Address, Connector, Session, Settings};
use tokio::net::TcpStream;

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
/// `addr` is anything that converts into an [`Address`]: a `SocketAddr`, `"host:port"`
/// (borrowed or owned), `(host, port)`. A host name is resolved again on every attempt, so a
/// failover that moves the name is followed.
///
/// Fails if called outside a tokio runtime ([`Error::NoRuntime`]), if the config is invalid
/// ([`Error::Config`]), if the first connection cannot be opened ([`Error::Connect`] with the
/// OS's reason: refused, unresolvable, not opened within `handshake_timeout`), or if the session
/// ends before its first handshake ([`Error::Ended`]: e.g. the server refused it). Set
/// [`Config::first_connect`](crate::Config::first_connect) to
/// [`FirstConnect::Retry`](crate::FirstConnect::Retry) to keep trying until `session_timeout`
/// instead (a client started before its server).
///
/// ```no_run
/// # async fn demo() -> Result<(), tether_tokio::Error> {
/// use tether_tokio::{Config, FirstConnect};
///
/// let host = String::from("localhost:7000");
/// let session = tether_tokio::connect(&host, Config::default()).await?;
/// // Or wait for a server that may not be up yet:
/// let patient = Config { first_connect: FirstConnect::Retry, ..Config::default() };
/// let other = tether_tokio::connect(("localhost", 7001), patient).await?;
/// # let _ = (session, other);
/// # Ok(()) }
/// ```
pub async fn connect(
    addr: impl Into<Address>,
    settings: impl Into<Settings>,
) -> Result<Session, Error> {
    let addr = addr.into();
    let settings = settings.into();
    let config = settings.config.clone();
    let connector = move || {
        let addr = addr.clone();
        let config = config.clone();
        async move {
            let stream = match &addr {
                Address::Socket(a) => TcpStream::connect(a).await?,
                Address::Host(h) => TcpStream::connect(h.as_str()).await?,
            };
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
