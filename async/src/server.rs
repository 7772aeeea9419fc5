//! The server: its sessions split over shards, one endpoint, driver and lock per shard.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tether_core::{AckMode, Config, Endpoint, Shard};
use tracing::Instrument;

use crate::acceptor::{self, Shards};
use crate::driver::{Driver, Source};
use crate::handle::Session;
use crate::runtime::{Accept, Runtime};
use crate::settings::Settings;
use crate::shared::{new_waiter, Clock, Core, Shared, Waiter};
use crate::Error;

/// Most shards a server is split into, whatever the runtime's parallelism.
const MAX_SHARDS: usize = 64;

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
    shards: std::sync::Arc<Shards>,
    local_addr: Option<SocketAddr>,
    /// The waiter of `poll_accept`.
    who: Waiter,
    /// The shard whose accept queue is looked at first next time.
    turn: AtomicUsize,
}

impl Server {
    /// A server on `runtime` accepting connections from `accept`; `local_addr` is what
    /// [`local_addr`](Self::local_addr) reports. Bindings call this from their `bind` and
    /// `from_listener`; applications use those.
    ///
    /// The sessions are split over [`Runtime::parallelism`] shards, each driven by a task of its
    /// own with a lock of its own, so sessions on different shards never wait for each other
    /// (the limits of the config hold for the server as a whole; see [`tether_core::Shard`]).
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
        let count = u32::try_from(runtime.parallelism().clamp(1, MAX_SHARDS)).unwrap_or(1);
        let mut all = Vec::new();
        for shard in Shard::split(count) {
            let endpoint = Endpoint::sharded(core_config.clone(), key, clock.now(), shard)
                .map_err(Error::Config)?;
            all.push(Shared::new(Core::Server(Box::new(endpoint)), manual, clock.clone()));
        }
        let shards = std::sync::Arc::new(Shards::new(all));
        for (index, shared) in shards.all.iter().enumerate() {
            let span = tracing::info_span!("tether_server", shard = index);
            let driver = Driver::new(shared.clone(), Source::Server { shards: shards.clone() });
            runtime.spawn(Box::pin(driver.instrument(span)));
        }
        let span = tracing::info_span!("tether_acceptor");
        runtime.spawn(Box::pin(acceptor::run(accept, shards.clone()).instrument(span)));
        Ok(Server { shards, local_addr, who: new_waiter(), turn: AtomicUsize::new(0) })
    }

    /// The address the listener is bound to, where the binding knows it (TCP).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The next new session. Resumed connections never show up here. `None` once every shard's
    /// driver has stopped. Serve each session in a task of its own, so that a slow one holds no
    /// other up:
    ///
    /// ```no_run
    /// # async fn demo(server: tether_async::Server) {
    /// while let Some(session) = server.accept().await {
    ///     tokio::spawn(async move { // with smol: `smol::spawn(..).detach()`
    ///         while let Some(m) = session.recv().await {
    ///             let _ = session.send(m.payload).await; // echo
    ///         }
    ///     });
    /// }
    /// # }
    /// ```
    pub async fn accept(&self) -> Option<Session> {
        let mut wait = AcceptWait { server: self, who: new_waiter(), waiting: false };
        std::future::poll_fn(|cx| {
            let poll = self.poll_accept_as(cx, wait.who);
            wait.waiting = poll.is_pending();
            poll
        })
        .await
    }

    /// Polls for the next new session (see [`accept`](Self::accept)).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<Option<Session>> {
        self.poll_accept_as(cx, self.who)
    }

    /// Polls every shard's accept queue, starting with a different shard each time so that none
    /// waits behind another; a wait is registered with each shard that has none ready.
    fn poll_accept_as(&self, cx: &mut Context<'_>, who: Waiter) -> Poll<Option<Session>> {
        let all = &self.shards.all;
        let first = self.turn.fetch_add(1, Ordering::Relaxed);
        let mut stopped = 0;
        for k in 0..all.len() {
            let shard = &all[(first + k) % all.len()];
            match shard.poll_accept((cx, who)) {
                Poll::Ready(Some(id)) => {
                    self.forget(who);
                    return Poll::Ready(Some(Session::new(shard.clone(), id)));
                }
                Poll::Ready(None) => stopped += 1,
                Poll::Pending => {}
            }
        }
        if stopped == all.len() {
            return Poll::Ready(None);
        }
        Poll::Pending
    }

    /// Withdraws `who`'s accept waits.
    fn forget(&self, who: Waiter) {
        for shard in &self.shards.all {
            shard.forget(None, who);
        }
    }

    /// Sessions the server holds (attached or detached), and connections it knows of, summed
    /// over its shards: a snapshot, for metrics and health checks.
    ///
    /// ```no_run
    /// # fn demo(server: &tether_async::Server) {
    /// let counts = server.counts();
    /// println!(
    ///     "{} sessions ({} detached), {} handshakes in flight",
    ///     counts.sessions, counts.detached, counts.handshakes
    /// );
    /// # }
    /// ```
    pub fn counts(&self) -> ServerCounts {
        let mut counts = ServerCounts::default();
        for shard in &self.shards.all {
            if let Core::Server(e) = &shard.lock().core {
                counts.sessions += e.session_count();
                counts.detached += e.detached_count();
                counts.handshakes += e.handshake_count();
                counts.connections += e.connection_count();
            }
        }
        counts
    }

    /// How many shards the sessions are split over.
    pub fn shards(&self) -> usize {
        self.shards.all.len()
    }
}

/// The wait of one `accept()`: withdrawn from every shard if the future is dropped while waiting.
struct AcceptWait<'a> {
    server: &'a Server,
    who: Waiter,
    waiting: bool,
}

impl Drop for AcceptWait<'_> {
    fn drop(&mut self) {
        if self.waiting {
            self.server.forget(self.who);
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
        self.forget(self.who);
        for shard in &self.shards.all {
            shard.drop_acceptor();
        }
    }
}
