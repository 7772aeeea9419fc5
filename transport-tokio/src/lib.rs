//! # tether-tokio
//!
//! The tokio adapter for [tether](tether_core): reliable, resumable message sessions over TCP (or
//! TLS, Unix sockets, anything `AsyncRead + AsyncWrite`).
//!
//! - [`connect`] / [`connect_with`] give a client [`Session`]; a background driver reconnects with
//!   exponential backoff and full jitter (the core's policy) and resumes.
//! - [`Server::bind`] / [`Server::from_listener`] and [`Server::accept`] give one [`Session`] per new
//!   session; reconnecting clients are routed to their session silently.
//! - A [`Session`] sends (waiting on backpressure), receives, closes cleanly or aborts, and reports
//!   how it ended ([`End`]): `Closed` means everything arrived both ways; `Lost` hands back exactly
//!   the unconfirmed messages.
//! - [`proxy`] is a fault-injecting TCP proxy (resets, blackholes, truncation, delays, half-closes,
//!   refused connects) for tests and the demonstration.
//!
//! The adapter only moves bytes and time: every protocol decision is made by `tether-core`.
//!
//! Threads: each client session and each server has a driver task on the runtime it was created
//! on. The drivers' deadlines (heartbeats, timeouts, delayed acks) are kept by one thread per
//! process, `tether-timer`, started with the first driver: a tokio timer kept armed for every
//! driver made each park of the runtime slower (see BENCHMARKS.md). It sleeps until the earliest
//! deadline and only wakes the driver whose deadline passed.
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
mod driver;
mod handle;
pub mod proxy;
mod read_buf;
mod server;
mod shared;
mod socket;
mod sync;
mod timer;
mod write_queue;

pub use client::{connect, connect_with, start, Connector};
pub use driver::AsyncStream;
pub use handle::Session;
pub use server::{Listener, Server, ServerCounts};
pub use shared::{End, LinkEvent, Message};
pub use socket::configure_tcp;
pub use tether_core::{
    AckError, AckMode, Config, ConfigError, Duration, Reason, SendError, SessionId, SessionState,
    Stats, UnconfirmedMessage,
};

/// Errors of the adapter's API. Misuse and set-up failures (`Config`, `Io`) come before any
/// I/O on a session; `Send` and `Ended` are about one session.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid: fix the named field.
    #[error("invalid configuration: {0}")]
    Config(#[source] ConfigError),
    /// An I/O error while setting up (binding, the OS random generator).
    #[error("I/O error while setting up: {0}")]
    Io(#[source] std::io::Error),
    /// A message was refused (see [`SendError`]); the message is handed back inside.
    #[error("message refused: {0}")]
    Send(#[source] SendError),
    /// The session ended (e.g. before its first handshake, or a close that ended as lost).
    #[error("{}", describe_end(.0))]
    Ended(End),
}

fn describe_end(end: &End) -> String {
    match end {
        End::Closed => "session closed".to_string(),
        End::Lost { reason, unconfirmed } => {
            format!("session lost ({reason}); {} messages unconfirmed", unconfirmed.len())
        }
    }
}
