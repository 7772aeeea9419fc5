//! The server: `Server::bind` over TCP, `Server::from_listener` over any listener.

use std::future::Future;
use std::io;
use std::ops::Deref;

use smol::net::{AsyncToSocketAddrs, TcpListener};
use tether_async::{Accept, Config, Settings};

use crate::runtime::{boxed, current, AsyncStream};
use crate::socket::configure_tcp;
use crate::Error;

/// A source of incoming connections for a [`Server`]: implemented for smol's [`TcpListener`] and
/// (on Unix) `smol::net::unix::UnixListener`; implement it for anything else that accepts
/// streams (a TLS acceptor, a test network).
///
/// `accept` is an `async fn` in the impl. An error from it is logged and the server pauses
/// briefly before accepting again (e.g. out of file descriptors); to skip a connection, loop
/// inside `accept` instead:
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use smol::net::{TcpListener, TcpStream};
/// use tether_smol::{Config, Listener, Server};
///
/// /// Serves only clients on this machine.
/// struct LocalOnly(TcpListener);
///
/// impl Listener for LocalOnly {
///     type Stream = TcpStream;
///
///     async fn accept(&mut self) -> std::io::Result<TcpStream> {
///         loop {
///             let (stream, peer) = self.0.accept().await?;
///             if peer.ip().is_loopback() {
///                 return Ok(stream);
///             }
///         }
///     }
///
///     fn configure(&self, stream: &TcpStream, config: &Config) {
///         tether_smol::configure_tcp(stream, config); // as `Server::bind` does
///     }
/// }
///
/// # smol::block_on(async {
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let addr = listener.local_addr()?;
/// let server = Server::from_listener(LocalOnly(listener), Config::default())?;
/// let client = tether_smol::connect(addr, Config::default()).await?;
/// let session = server.accept().await.unwrap();
/// # let _ = (client, session);
/// # Ok(()) })
/// # }
/// ```
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
    type Stream = smol::net::TcpStream;

    async fn accept(&mut self) -> io::Result<Self::Stream> {
        TcpListener::accept(self).await.map(|(s, _)| s)
    }

    fn configure(&self, stream: &Self::Stream, config: &Config) {
        configure_tcp(stream, config);
    }
}

#[cfg(unix)]
impl Listener for smol::net::unix::UnixListener {
    type Stream = smol::net::unix::UnixStream;

    async fn accept(&mut self) -> io::Result<Self::Stream> {
        smol::net::unix::UnixListener::accept(self).await.map(|(s, _)| s)
    }
}

/// A tether server on smol: accepts connections, yields one session per *new* session from
/// [`accept`](tether_async::Server::accept), and routes a reconnecting client's connection to
/// its existing session without the application noticing. Everything but construction is
/// [`tether_async::Server`]'s (this type dereferences to it).
#[derive(Debug)]
pub struct Server(tether_async::Server);

impl Server {
    /// Binds a TCP listener on `addr`. Accepted connections get `TCP_NODELAY`, keepalive and
    /// `TCP_USER_TIMEOUT`. `settings` is a [`Config`], or [`Settings`] to fix the seed. Fails on
    /// an invalid config or if the address cannot be bound.
    ///
    /// The server's tasks run on smol's global executor; take its sessions with
    /// [`accept`](tether_async::Server::accept), typically each in a task of its own:
    ///
    /// ```
    /// # fn main() -> Result<(), tether_smol::Error> {
    /// use bytes::Bytes;
    /// use tether_smol::{Config, Server};
    ///
    /// # smol::block_on(async {
    /// let server = Server::bind("127.0.0.1:0", Config::default()).await?; // port 0: any free one
    /// let addr = server.local_addr().unwrap();
    /// smol::spawn(async move {
    ///     while let Some(session) = server.accept().await {
    ///         smol::spawn(async move {
    ///             while let Some(m) = session.recv().await {
    ///                 let _ = session.send(m.payload).await; // echo
    ///             }
    ///         })
    ///         .detach();
    ///     }
    /// })
    /// .detach();
    /// let client = tether_smol::connect(addr, Config::default()).await?;
    /// client.send(Bytes::from_static(b"ping")).await?;
    /// assert_eq!(client.recv().await.unwrap().payload, "ping");
    /// # Ok(()) })
    /// # }
    /// ```
    pub async fn bind<A: AsyncToSocketAddrs>(
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
    /// network); each accepted stream goes through [`Listener::configure`] first. Fails on an
    /// invalid config. Like the client, it runs on smol's global executor and can be started
    /// from any thread. [`local_addr`](tether_async::Server::local_addr) is `None` for such a
    /// server: ask the listener before handing it over.
    ///
    /// A listener set up outside (here by `std`; it could be inherited, e.g. from systemd):
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use smol::net::TcpListener;
    /// use tether_smol::{Config, Server};
    ///
    /// # smol::block_on(async {
    /// let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let addr = std_listener.local_addr()?;
    /// let server = Server::from_listener(TcpListener::try_from(std_listener)?, Config::default())?;
    /// let client = tether_smol::connect(addr, Config::default()).await?;
    /// let session = server.accept().await.unwrap();
    /// # let _ = (client, session);
    /// # Ok(()) })
    /// # }
    /// ```
    ///
    /// For a listener of your own (TLS, filtering, a test network), see [`Listener`].
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
        tether_async::Server::start(current(), accept, settings, local_addr).map(Server)
    }
}

impl Server {
    /// The async layer's server this one wraps (what every method but construction is).
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
