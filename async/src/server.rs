//! The server: one endpoint, one driver, any number of sessions.

use std::net::SocketAddr;
use std::task::{Context, Poll};

use tether_core::{AckMode, Config, Endpoint};
use tracing::Instrument;

use crate::driver::{Driver, Source};
use crate::handle::{Session, Wait};
use crate::runtime::{Accept, Runtime};
use crate::settings::Settings;
use crate::shared::{new_waiter, Clock, Core, Shared, Waiter};
use crate::sync::Arc;
use crate::Error;

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
    /// A server on `runtime` accepting connections from `accept`; `local_addr` is what
    /// [`local_addr`](Self::local_addr) reports. Bindings call this from their `bind` and
    /// `from_listener`; applications use those.
    ///
    /// Fails if the config is invalid, or if no seed was given and the OS random generator fails.
    pub fn start(
        runtime: std::sync::Arc<dyn Runtime>,
        accept: Accept,
        settings: impl Into<Settings>,
        local_addr: Option<SocketAddr>,
    ) -> Result<Server, Error> {
        let settings = settings.into();
        let key =
            settings.endpoint_key().map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
        let config = settings.config;
        let clock = Clock::new(runtime.clone());
        let manual = config.ack_mode == AckMode::Manual;
        let core_config = Config { ack_mode: AckMode::Manual, ..config };
        let endpoint = Endpoint::new(core_config, key, clock.now()).map_err(Error::Config)?;
        let shared = Shared::new(Core::Server(Box::new(endpoint)), manual, clock);
        let span = tracing::info_span!("tether_server");
        let source = Source::Server { accept, paused_until: None };
        let driver = Driver::new(shared.clone(), source);
        runtime.spawn(Box::pin(driver.instrument(span)));
        Ok(Server { shared, local_addr, who: new_waiter() })
    }

    /// The address the listener is bound to, where the binding knows it (TCP).
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
