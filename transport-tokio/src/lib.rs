//! # tether-tokio
//!
//! The tokio binding of [tether](tether_async): reliable, resumable message sessions over TCP (or
//! TLS, Unix sockets, anything `AsyncRead + AsyncWrite`).
//!
//! - [`connect`] / [`connect_with`] give a client [`Session`]; a background driver reconnects with
//!   exponential backoff and full jitter (the core's policy) and resumes.
//! - [`Server::bind`] / [`Server::from_listener`] and [`accept`](tether_async::Server::accept) give one [`Session`] per new
//!   session; reconnecting clients are routed to their session silently.
//! - A [`Session`] sends (waiting on backpressure), receives, closes cleanly or aborts, and reports
//!   how it ended ([`End`]): `Closed` means everything arrived both ways; `Lost` hands back exactly
//!   the unconfirmed messages.
//! - [`proxy`] is a fault-injecting TCP proxy (resets, blackholes, truncation, delays, half-closes,
//!   refused connects) for tests and the demonstration.
//!
//! The binding only moves bytes and time between tokio and [`tether_async`], which holds the
//! driver, the reconnect loop, server routing and the handles (re-exported here); every protocol
//! decision is made by `tether-core`.
//!
//! Time is tokio's: heartbeats, idle and ack timeouts, backoff and close timeouts all run on
//! tokio's clock and timers, so `tokio::time::pause()`, `#[tokio::test(start_paused = true)]`
//! and turmoil's simulated time drive them. With a fixed seed ([`Settings::seeded`]) a simulated
//! run replays exactly. Each client session and each server has a driver task on the runtime it
//! was started on.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tether_tokio::Error> {
//! use bytes::Bytes;
//! use tether_tokio::{Config, Server};
//!
//! let server = Server::bind("127.0.0.1:0", Config::default()).await?;
//! let addr = server.local_addr().unwrap();
//! tokio::spawn(async move {
//!     while let Some(session) = server.accept().await {
//!         tokio::spawn(async move {
//!             while let Some(m) = session.recv().await {
//!                 let _ = session.send(m.payload).await; // echo
//!             }
//!         });
//!     }
//! });
//! let client = tether_tokio::connect(addr, Config::default()).await?;
//! client.send(Bytes::from_static(b"hello")).await.ok();
//! let echo = client.recv().await;
//! # let _ = echo;
//! # Ok(()) }
//! ```

mod client;
pub mod proxy;
mod runtime;
mod server;
mod socket;

pub use client::{connect, connect_with, start, Connector};
pub use runtime::AsyncStream;
pub use server::{Listener, Server};
pub use socket::configure_tcp;
pub use tether_async::{
    AckError, AckMode, Config, ConfigError, Duration, End, Error, LinkEvent, Message, Reason,
    SendError, ServerCounts, Session, SessionId, SessionState, Settings, Stats, UnconfirmedMessage,
};
