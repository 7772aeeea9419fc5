//! The server: `Server::bind` over TCP, `Server::from_listener` over any listener.

use std::future::Future;
use std::io;
use std::ops::Deref;

use tether_async::{Accept, Config, Settings};
use tokio::net::{TcpListener, ToSocketAddrs};

use crate::runtime::{boxed, current, AsyncStream};
use crate::socket::configure_tcp;
use crate::Error;

/// A source of incoming connections for a [`Server`]: implemented for [`TcpListener`] and (on
/// Unix) `tokio::net::UnixListener`; implement it for anything else that accepts streams (a TLS
/// acceptor, turmoil's `TcpListener`, a test network).
pub trait Listener: Send + 'static {
    /// The accepted streams.
    type Stream: AsyncStream;
    /// Waits for the next incoming connection.
    fn accept(&mut self) -> impl Future<Output = io::Result<Self::Stream>> + Send;
    /// Prepares a stream just accepted, before a session runs on it: for TCP, the socket options
    /// of [`configure_tcp`]. The default does nothing.
    fn configure(&self, _stream: &Self::Stream, _config: &Config) {}
}

impl Listener for TcpListener {
    type Stream = tokio::net::TcpStream;

    async fn accept(&mut self) -> io::Result<Self::Stream> {
        TcpListener::accept(self).await.map(|(s, _)| s)
    }

    fn configure(&self, stream: &Self::Stream, config: &Config) {
        configure_tcp(stream, config);
    }
}

#[cfg(unix)]
impl Listener for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;

    async fn accept(&mut self) -> io::Result<Self::Stream> {
        tokio::net::UnixListener::accept(self).await.map(|(s, _)| s)
    }
}

/// A tether server on tokio: accepts connections, yields one session per *new* session from
/// [`accept`](tether_async::Server::accept), and routes a reconnecting client's connection to
/// its existing session without the application noticing. Everything but construction is
/// [`tether_async::Server`]'s (this type dereferences to it).
#[derive(Debug)]
pub struct Server(tether_async::Server);

impl Server {
    /// Binds a TCP listener on `addr`. Accepted connections get `TCP_NODELAY`, keepalive and
    /// `TCP_USER_TIMEOUT`. `settings` is a [`Config`], or [`Settings`] to fix the seed. Fails
    /// outside a tokio runtime, on an invalid config, or if the address cannot be bound.
    pub async fn bind<A: ToSocketAddrs>(
        addr: A,
        settings: impl Into<Settings>,
    ) -> Result<Server, Error> {
        let settings = settings.into();
        settings.config.validate().map_err(Error::Config)?;
        let listener = TcpListener::bind(addr).await.map_err(Error::Io)?;
        let local_addr = listener.local_addr().ok();
        Server::start(listener, settings, local_addr)
    }

    /// A server accepting from any [`Listener`] (a TCP or Unix listener, a TLS acceptor, a test
    /// network); each accepted stream goes through [`Listener::configure`] first. Fails outside a
    /// tokio runtime or on an invalid config.
    pub fn from_listener<L: Listener>(
        listener: L,
        settings: impl Into<Settings>,
    ) -> Result<Server, Error> {
        Server::start(listener, settings.into(), None)
    }

    fn start<L: Listener>(
        listener: L,
        settings: Settings,
        local_addr: Option<std::net::SocketAddr>,
    ) -> Result<Server, Error> {
        let config = settings.config.clone();
        let accept = Accept::from_listener(
            listener,
            |l| Box::pin(l.accept()),
            move |l, s| {
                l.configure(&s, &config);
                boxed(s)
            },
        );
        tether_async::Server::start(current()?, accept, settings, local_addr).map(Server)
    }
}

impl Server {
    /// The runtime-agnostic [`tether_async::Server`] inside (e.g. for code written against
    /// `tether-async` alone, such as the shared test bodies of `tether-testkit`).
    pub fn into_inner(self) -> tether_async::Server {
        self.0
    }
}

impl From<Server> for tether_async::Server {
    fn from(server: Server) -> tether_async::Server {
        server.0
    }
}

impl Deref for Server {
    type Target = tether_async::Server;

    fn deref(&self) -> &tether_async::Server {
        &self.0
    }
}
