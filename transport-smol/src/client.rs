//! The client: `connect` over TCP, `connect_with` over any futures-io stream.

use std::future::Future;
use std::io;

use std::net::ToSocketAddrs;

use smol::net::TcpStream;
use tether_async::{Connect, Session, Settings};

use crate::runtime::{boxed, current, AsyncStream};
use crate::socket::configure_tcp;
use crate::Error;

/// Opens transport connections for a client: called once per connection attempt.
///
/// Implemented for every `FnMut() -> impl Future<Output = io::Result<S>>` where `S` is any
/// futures-io `AsyncRead + AsyncWrite` stream (TLS, a Unix socket, an in-memory test network,
/// ...).
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
/// [`LinkEvent`](crate::LinkEvent) pair. `settings` is a [`Config`](crate::Config), or
/// [`Settings`] to fix the seed.
///
/// `addr` is anything [`std::net::ToSocketAddrs`] (a `SocketAddr`, `"host:port"`, `(host,
/// port)`), resolved again on every attempt (a failover that moves a name to a new address is
/// followed) on smol's blocking-task pool, as async-net resolves host names. (Not async-net's
/// `AsyncToSocketAddrs`: its resolution future cannot be proven `Send` for a generic address,
/// and each attempt runs in the background.) The driver runs on smol's global
/// executor, on async-io's clock; this works from any thread, inside an executor or not.
///
/// Fails if the config is invalid, or if the session ends before its first handshake (e.g.
/// nothing answered within `session_timeout`).
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
            let addrs = smol::unblock(move || addr.to_socket_addrs().map(Vec::from_iter)).await?;
            let stream = TcpStream::connect(addrs.as_slice()).await?;
            configure_tcp(&stream, &config);
            Ok(stream)
        }
    };
    connect_with(connector, settings).await
}

/// Like [`connect`], over connections opened by `connector`.
pub async fn connect_with<C: Connector>(
    connector: C,
    settings: impl Into<Settings>,
) -> Result<Session, Error> {
    tether_async::client::connect(current(), wrap(connector), settings).await
}

/// Starts a client session without waiting for the first handshake: messages sent before it are
/// queued and delivered once connected. Fails only on an invalid config (or if no seed was given
/// and the OS random generator fails).
pub fn start<C: Connector>(connector: C, settings: impl Into<Settings>) -> Result<Session, Error> {
    tether_async::client::start(current(), wrap(connector), settings)
}

fn wrap<C: Connector>(mut connector: C) -> Connect {
    Box::new(move || {
        let attempt = connector.connect();
        Box::pin(async move { attempt.await.map(boxed) })
    })
}
