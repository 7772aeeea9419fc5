//! # tether-smol
//!
//! The smol / async-io binding of [tether](tether_async): reliable, resumable message sessions
//! over TCP (or TLS, Unix sockets, any futures-io `AsyncRead + AsyncWrite`), without tokio.
//!
//! - [`connect`] / [`connect_with`] give a client [`Session`]; a background driver reconnects with
//!   exponential backoff and full jitter (the core's policy) and resumes.
//! - [`Server::bind`] / [`Server::from_listener`] and [`accept`](tether_async::Server::accept)
//!   give one [`Session`] per new session; reconnecting clients are routed to their session
//!   silently.
//! - A [`Session`] sends (waiting on backpressure), receives, closes cleanly or aborts, and reports
//!   how it ended ([`End`]): `Closed` means everything arrived both ways; `Lost` hands back exactly
//!   the unconfirmed messages.
//!
//! The binding only moves bytes and time between smol and [`tether_async`], which holds the
//! driver, the reconnect loop, server routing and the handles (re-exported here); every protocol
//! decision is made by `tether-core`. It is the same API as `tether-tokio`'s.
//!
//! Time is async-io's: heartbeats, idle and ack timeouts, backoff and close timeouts run on
//! async-io's timers (which are set in `std::time::Instant`s, the runtime's clock). Each client
//! session and each server has a driver task on smol's global executor (`smol::spawn`), so
//! sessions can be started from any thread, inside `smol::block_on` or an executor or not: there
//! is no "outside the runtime" error here. tether starts no thread of its own.
//!
//! ```no_run
//! # fn main() -> Result<(), tether_smol::Error> {
//! use bytes::Bytes;
//! use tether_smol::{Config, Server};
//!
//! smol::block_on(async {
//!     let server = Server::bind("127.0.0.1:0", Config::default()).await?;
//!     let addr = server.local_addr().unwrap();
//!     smol::spawn(async move {
//!         while let Some(session) = server.accept().await {
//!             smol::spawn(async move {
//!                 while let Some(m) = session.recv().await {
//!                     let _ = session.send(m.payload).await; // echo
//!                 }
//!             })
//!             .detach();
//!         }
//!     })
//!     .detach();
//!     let client = tether_smol::connect(addr, Config::default()).await?;
//!     client.send(Bytes::from_static(b"hello")).await?; // errors compose with `?`
//!     let echo = client.recv().await;
//!     # let _ = echo;
//!     Ok(())
//! })
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
