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

/// Like [`connect`], over connections opened by `connector`: any closure (or [`Connector`])
/// returning a future of an `io::Result` of a tokio stream (TLS, a Unix socket, a proxy tunnel,
/// turmoil's TCP). It is called once per connection attempt, so a reconnect opens a fresh stream.
/// No socket options are set: call [`configure_tcp`] in the connector for a TCP stream.
///
/// ```
/// # #[cfg(unix)]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use bytes::Bytes;
/// use tether_tokio::{Config, Server};
/// use tokio::net::{UnixListener, UnixStream};
///
/// # let dir = std::env::temp_dir().join(format!("tether-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let path = dir.join("tether.sock");
/// let server = Server::from_listener(UnixListener::bind(&path)?, Config::default())?;
/// let connector = move || UnixStream::connect(path.clone());
/// let client = tether_tokio::connect_with(connector, Config::default()).await?;
/// client.send(Bytes::from_static(b"over a unix socket")).await?;
/// let session = server.accept().await.unwrap();
/// assert_eq!(session.recv().await.unwrap().payload, "over a unix socket");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(()) }
/// # #[cfg(not(unix))]
/// # fn main() {}
/// ```
pub async fn connect_with<C>(connector: C, settings: impl Into<Settings>) -> Result<Session, Error>
where
    C: Connector<Stream: AsyncStream>,
{
    tether_async::client::connect(current()?, connect_from(connector, boxed), settings).await
}

/// Starts a client session without waiting for the first handshake: messages sent before it are
/// queued and delivered once connected. Fails outside a tokio runtime or on an invalid config;
/// a first connection that fails ends the session ([`End::Lost`](crate::End::Lost) with reason
/// `ConnectFailed`, the queued messages handed back) unless
/// [`Config::first_connect`](crate::Config::first_connect) is `Retry`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tether_tokio::Error> {
/// use bytes::Bytes;
/// use tether_tokio::{Config, Server};
/// use tokio::net::TcpStream;
///
/// let server = Server::bind("127.0.0.1:0", Config::default()).await?;
/// let addr = server.local_addr().unwrap();
/// let client = tether_tokio::start(move || TcpStream::connect(addr), Config::default())?;
/// client.send(Bytes::from_static(b"queued")).await?; // taken before any connection is up
/// let session = server.accept().await.unwrap();
/// assert_eq!(session.recv().await.unwrap().payload, "queued");
/// # Ok(()) }
/// ```
pub fn start<C>(connector: C, settings: impl Into<Settings>) -> Result<Session, Error>
where
    C: Connector<Stream: AsyncStream>,
{
    tether_async::client::start(current()?, connect_from(connector, boxed), settings)
}
