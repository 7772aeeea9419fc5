//! The server: one endpoint, one driver, any number of sessions.

use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use tether_core::{AckMode, Config, Endpoint};
use tokio::net::{TcpListener, ToSocketAddrs};
use tracing::Instrument;

use crate::driver::{AcceptFn, AsyncStream, BoxStream, Driver, Source};
use crate::handle::{Session, Wait};
use crate::shared::{new_waiter, Clock, Core, Shared, Waiter};
use crate::socket::configure_tcp;
use crate::sync::Arc;
use crate::Error;

/// A source of incoming connections for a [`Server`]: implemented for [`TcpListener`] and (on
/// Unix) `tokio::net::UnixListener`; implement it for anything else that accepts streams.
pub trait Listener: Send + 'static {
    /// The accepted streams.
    type Stream: AsyncStream;
    /// Polls for the next incoming connection.
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Stream>>;
    /// Prepares a stream just accepted, before a session runs on it: for TCP, the socket options
    /// of [`configure_tcp`]. The default does nothing.
    fn configure(&self, _stream: &Self::Stream, _config: &Config) {}
}

impl Listener for TcpListener {
    type Stream = tokio::net::TcpStream;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Stream>> {
        TcpListener::poll_accept(self, cx).map_ok(|(s, _)| s)
    }

    fn configure(&self, stream: &Self::Stream, config: &Config) {
        configure_tcp(stream, config);
    }
}

#[cfg(unix)]
impl Listener for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Stream>> {
        tokio::net::UnixListener::poll_accept(self, cx).map_ok(|(s, _)| s)
    }
}

/// A tether server: accepts connections, yields one [`Session`] per *new* session from
/// [`accept`](Self::accept), and routes a reconnecting client's connection to its existing session
/// without the application noticing.
///
/// The config's limits hold: `max_sessions`, `max_detached_sessions`, `max_handshakes` (beyond it
/// new connections are refused at once) and `handshake_timeout` (junk connections are dropped).
///
/// **Dropping** the `Server` stops handing out new sessions: new sessions that arrive afterwards,
/// and accepted-but-never-taken ones, are aborted. Sessions whose handles are alive keep running
/// (and can still resume) until they end; the listener closes when the last one has.
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
    local_addr: Option<SocketAddr>,
    /// The waiter of `poll_accept`.
    who: Waiter,
}

impl Server {
    /// Binds a TCP listener on `addr`. Accepted connections get `TCP_NODELAY`, keepalive and
    /// `TCP_USER_TIMEOUT`. Must be called within a tokio runtime.
    pub async fn bind<A: ToSocketAddrs>(addr: A, config: Config) -> Result<Server, Error> {
        config.validate().map_err(Error::Config)?;
        let listener = TcpListener::bind(addr).await.map_err(Error::Io)?;
        let local_addr = listener.local_addr().ok();
        let mut server = Server::from_listener(listener, config)?;
        server.local_addr = local_addr;
        Ok(server)
    }

    /// A server accepting from any [`Listener`] (a TCP or Unix listener, a TLS acceptor, a test
    /// network); each accepted stream goes through [`Listener::configure`] first. Must be called
    /// within a tokio runtime.
    pub fn from_listener<L: Listener>(mut listener: L, config: Config) -> Result<Server, Error> {
        let stream_config = config.clone();
        let accept: AcceptFn = Box::new(move |cx| {
            let accepted = listener.poll_accept(cx);
            accepted.map_ok(|s| {
                listener.configure(&s, &stream_config);
                Box::new(s) as BoxStream
            })
        });
        Server::start(accept, config)
    }

    fn start(accept: AcceptFn, config: Config) -> Result<Server, Error> {
        let clock = Clock::new();
        let manual = config.ack_mode == AckMode::Manual;
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| Error::Io(io::Error::other(e.to_string())))?;
        let core_config = Config { ack_mode: AckMode::Manual, ..config };
        let endpoint = Endpoint::new(core_config, key, clock.now()).map_err(Error::Config)?;
        let shared = Shared::new(Core::Server(Box::new(endpoint)), manual, clock);
        let span = tracing::info_span!("tether_server");
        let source = Source::Server { accept, paused_until: None };
        let driver = Driver::new(shared.clone(), source).map_err(Error::Io)?;
        tokio::spawn(driver.instrument(span));
        Ok(Server { shared, local_addr: None, who: new_waiter() })
    }

    /// The address the TCP listener is bound to (`None` for other listeners).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The next new session. Resumed connections never show up here. `None` if the driver stopped.
    pub async fn accept(&self) -> Option<Session> {
        let mut wait = Wait::new(&self.shared, None);
        std::future::poll_fn(|cx| wait.poll(cx, |w| self.shared.poll_accept(w)))
            .await
            .map(|id| Session::new(self.shared.clone(), id))
    }

    /// Polls for the next new session (see [`accept`](Self::accept)).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<Option<Session>> {
        let accepted = self.shared.poll_accept((cx, self.who));
        accepted.map(|id| id.map(|id| Session::new(self.shared.clone(), id)))
    }

    /// Sessions the endpoint holds (attached or detached), and connections it knows of.
    pub fn counts(&self) -> ServerCounts {
        let inner = self.shared.lock();
        match &inner.core {
            Core::Server(e) => ServerCounts {
                sessions: e.session_count(),
                detached: e.detached_count(),
                handshakes: e.handshake_count(),
                connections: e.connection_count(),
            },
            Core::Client(_) => ServerCounts::default(),
        }
    }
}

/// A snapshot of a server's tables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerCounts {
    /// Sessions held, attached or detached.
    pub sessions: usize,
    /// Sessions held without a connection.
    pub detached: usize,
    /// Connections whose handshake is in progress.
    pub handshakes: usize,
    /// Connections the endpoint knows (handshaking, rejecting or attached).
    pub connections: usize,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.forget(None, self.who);
        self.shared.drop_acceptor();
    }
}
