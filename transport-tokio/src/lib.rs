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
//! client.send(Bytes::from_static(b"hello")).await?; // errors compose with `?`
//! let echo = client.recv().await;
//! # let _ = echo;
//! # Ok(()) }
//! ```
//!
//! ## Inside a turmoil simulation
//!
//! Sessions run unchanged inside [turmoil](https://docs.rs/turmoil) hosts: a client connects over
//! `turmoil::net::TcpStream` with [`connect_with`], a server accepts from a
//! `turmoil::net::TcpListener` through a small [`Listener`], and every heartbeat, timeout
//! and backoff runs on the host's simulated clock. With turmoil's `rng_seed` and
//! [`Settings::seeded`] on both sides, a run replays exactly. turmoil's TCP does not retransmit:
//! a partition with traffic across it kills the connection for good, which tether notices within
//! `idle_timeout` and resumes once the link is repaired (`hold` / `release` model an outage that
//! real TCP would ride out). See `docs/TESTING.md` and `tests/turmoil.rs`.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use tether_tokio::{Config, Listener, Server, Settings};
//!
//! struct SimListener(turmoil::net::TcpListener);
//!
//! impl Listener for SimListener {
//!     type Stream = turmoil::net::TcpStream;
//!
//!     async fn accept(&mut self) -> std::io::Result<Self::Stream> {
//!         self.0.accept().await.map(|(stream, _)| stream)
//!     }
//! }
//!
//! # fn main() -> turmoil::Result {
//! let config = Config {
//!     heartbeat_interval: Duration::from_millis(500),
//!     idle_timeout: Duration::from_secs(2),
//!     ..Config::default()
//! };
//! let mut sim = turmoil::Builder::new()
//!     .simulation_duration(Duration::from_secs(60))
//!     .rng_seed(7)
//!     .build();
//! let server_config = config.clone();
//! sim.host("server", move || {
//!     let config = server_config.clone();
//!     async move {
//!         let listener = turmoil::net::TcpListener::bind(("0.0.0.0", 7000)).await?;
//!         let server = Server::from_listener(SimListener(listener), Settings::seeded(config, 1))?;
//!         while let Some(session) = server.accept().await {
//!             tokio::spawn(async move {
//!                 while let Some(m) = session.recv().await {
//!                     let _ = session.send(m.payload).await; // echo
//!                 }
//!             });
//!         }
//!         Ok(())
//!     }
//! });
//! sim.client("client", async move {
//!     let connector = || turmoil::net::TcpStream::connect(("server", 7000));
//!     let session = tether_tokio::connect_with(connector, Settings::seeded(config, 2)).await?;
//!     session.send(Bytes::from_static(b"before")).await?;
//!     turmoil::partition("client", "server");
//!     session.send(Bytes::from_static(b"during")).await?;
//!     tokio::time::sleep(Duration::from_secs(5)).await; // simulated: the link is declared dead
//!     turmoil::repair("client", "server"); // the session resumes on a new connection
//!     for expected in ["before", "during"] {
//!         assert_eq!(session.recv().await.unwrap().payload, expected.as_bytes());
//!     }
//!     assert!(session.close().await.is_closed());
//!     Ok(())
//! });
//! sim.run()
//! # }
//! ```

mod client;
mod runtime;
mod server;
mod socket;

pub use client::{connect, connect_with, start};
pub use runtime::AsyncStream;
pub use server::{Listener, Server};
pub use socket::configure_tcp;
pub use tether_async::{
    AckError, AckMode, Address, Config, ConfigError, Connector, Duration, End, Error, FirstConnect,
    LinkEvent, Message, Reason, SendError, ServerCounts, Session, SessionId, SessionState,
    Settings, Stats, UnconfirmedMessage,
};
