//! The demonstration on smol: a tether client and server on loopback with a fault-injecting
//! proxy between them (resets, blackholes, truncated streams on a schedule), 100,000 messages each
//! way, then the same messages the naive way (length-prefixed frames over plain TCP, write and
//! forget) through the same faults. Prints a summary table; exits non-zero if tether lost,
//! duplicated or reordered anything or did not close cleanly. The body is
//! `tether_testkit::demo`, shared with tether-tokio's demo.
//!
//! Run: `cargo run --release -p tether-smol --example demo_smol [SEED]`

use std::net::SocketAddr;
use std::time::Duration;

use tether_smol::{Error, Session, Settings};
use tether_testkit::{demo, tether_async, BoxFuture, Harness};

/// tether-smol as a [`Harness`]: `Server::bind`, `connect`, `smol::spawn`, async-io's timers.
#[derive(Clone, Copy, Debug)]
struct Smol;

impl Harness for Smol {
    fn bind(&self, settings: Settings) -> BoxFuture<'static, Result<tether_async::Server, Error>> {
        Box::pin(
            async move { tether_smol::Server::bind("127.0.0.1:0", settings).await.map(Into::into) },
        )
    }

    fn connect(
        &self,
        addr: SocketAddr,
        settings: Settings,
    ) -> BoxFuture<'static, Result<Session, Error>> {
        Box::pin(tether_smol::connect(addr, settings))
    }

    fn spawn_detached(&self, task: BoxFuture<'static, ()>) {
        // Dropping a smol task cancels it.
        smol::spawn(task).detach();
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            async_io::Timer::after(duration).await;
        })
    }
}

fn main() {
    // Two executor threads, like the tokio demo's two workers (read at smol's first use).
    if std::env::var_os("SMOL_THREADS").is_none() {
        std::env::set_var("SMOL_THREADS", "2");
    }
    let ok = demo::run(Smol, "tether-smol", demo::seed_from_args(), smol::block_on);
    std::process::exit(if ok { 0 } else { 1 });
}
