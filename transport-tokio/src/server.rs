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
///
/// `accept` is an `async fn` in the impl. An error from it is logged and the server pauses
/// briefly before accepting again (e.g. out of file descriptors); to skip a connection, loop
/// inside `accept` instead:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tether_tokio::{Config, Listener, Server};
/// use tokio::net::{TcpListener, TcpStream};
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
///         tether_tokio::configure_tcp(stream, config); // as `Server::bind` does
///     }
/// }
///
/// let listener = TcpListener::bind("127.0.0.1:0").await?;
/// let addr = listener.local_addr()?;
/// let server = Server::from_listener(LocalOnly(listener), Config::default())?;
/// let client = tether_tokio::connect(addr, Config::default()).await?;
/// let session = server.accept().await.unwrap();
/// # let _ = (client, session);
/// # Ok(()) }
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
    ///
    /// The server's tasks run on the calling runtime; take its sessions with
    /// [`accept`](tether_async::Server::accept), typically each in a task of its own:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tether_tokio::Error> {
    /// use bytes::Bytes;
    /// use tether_tokio::{Config, Server};
    ///
    /// let server = Server::bind("127.0.0.1:0", Config::default()).await?; // port 0: any free one
    /// let addr = server.local_addr().unwrap();
    /// tokio::spawn(async move {
    ///     while let Some(session) = server.accept().await {
    ///         tokio::spawn(async move {
    ///             while let Some(m) = session.recv().await {
    ///                 let _ = session.send(m.payload).await; // echo
    ///             }
    ///         });
    ///     }
    /// });
    /// let client = tether_tokio::connect(addr, Config::default()).await?;
    /// client.send(Bytes::from_static(b"ping")).await?;
    /// assert_eq!(client.recv().await.unwrap().payload, "ping");
    /// # Ok(()) }
    /// ```
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
    /// tokio runtime or on an invalid config. [`local_addr`](tether_async::Server::local_addr) is
    /// `None` for such a server: ask the listener before handing it over.
    ///
    /// A TCP listener set up by hand (here: `SO_REUSEADDR` and a larger backlog):
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tether_tokio::{Config, Server};
    /// use tokio::net::TcpSocket;
    ///
    /// let socket = TcpSocket::new_v4()?;
    /// socket.set_reuseaddr(true)?;
    /// socket.bind("127.0.0.1:0".parse()?)?;
    /// let listener = socket.listen(4096)?;
    /// let addr = listener.local_addr()?;
    /// let server = Server::from_listener(listener, Config::default())?;
    /// let client = tether_tokio::connect(addr, Config::default()).await?;
    /// let session = server.accept().await.unwrap();
    /// # let _ = (client, session);
    /// # Ok(()) }
    /// ```
    ///
    /// For a listener of your own (TLS, filtering, a simulated network), see [`Listener`].
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
