//! # tether-core
//!
//! The sans-IO core of tether: sequenced, acknowledged, resumable message sessions that survive
//! any number of transport reconnects, detect dead peers in seconds, close only when everything
//! arrived, and never lose a message without handing it back.
//!
//! This crate performs no I/O, reads no clock and draws no OS randomness: time ([`Instant`]) and
//! seeds are passed in, so the same inputs always give the same outputs. Adapters (tokio, smol, the
//! simulator) move bytes and time between the world and a [`Session`] (client side) or an
//! [`Endpoint`] (server side), following the driving contract documented on [`Session`].
//!
//! The wire format is specified in `docs/PROTOCOL.md`; module ownership in `docs/ARCHITECTURE.md`.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

mod backoff;
mod config;
mod crc;
mod deadlines;
mod endpoint;
mod error;
mod event;
mod reason;
mod recv_buf;
mod rtt;
mod send_buf;
mod session;
mod shard;
mod time;
pub mod wire;

pub use config::{AckMode, Config, ConfigError, FirstConnect, MAX_WINDOW_BYTES};
pub use endpoint::{Endpoint, Handoff};
pub use error::{AckError, CloseError, SendError};
pub use event::{Delivery, Event, Stats, UnconfirmedMessage};
pub use reason::Reason;
pub use session::{ConnId, Role, Session, SessionId, SessionState, Transmit};
pub use shard::Shard;
pub use time::{Duration, Instant};
pub use wire::FrameSink;
