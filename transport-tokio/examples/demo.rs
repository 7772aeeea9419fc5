//! The demonstration on tokio: a tether client and server on loopback with a fault-injecting
//! proxy between them (resets, blackholes, truncated streams on a schedule), 100,000 messages each
//! way, then the same messages the naive way (length-prefixed frames over plain TCP, write and
//! forget) through the same faults. Prints a summary table; exits non-zero if tether lost,
//! duplicated or reordered anything or did not close cleanly. The body is
//! `tether_testkit::demo`, shared with tether-smol's demo.
//!
//! Run: `cargo run --release -p tether-tokio --example demo [SEED]`

use std::net::SocketAddr;
use std::time::Duration;

use tether_testkit::{demo, tether_async, BoxFuture, Harness};
use tether_tokio::{Error, Session, Settings};

/// tether-tokio as a [`Harness`]: `Server::bind`, `connect`, `tokio::spawn`, tokio's clock.
#[derive(Clone, Copy, Debug)]
struct Tokio;

impl Harness for Tokio {
    fn bind(&self, settings: Settings) -> BoxFuture<'static, Result<tether_async::Server, Error>> {
        Box::pin(async move {
            tether_tokio::Server::bind("127.0.0.1:0", settings).await.map(Into::into)
        })
    }

    fn connect(
        &self,
        addr: SocketAddr,
        settings: Settings,
    ) -> BoxFuture<'static, Result<Session, Error>> {
        Box::pin(tether_tokio::connect(addr, settings))
    }

    fn spawn_detached(&self, task: BoxFuture<'static, ()>) {
        drop(tokio::spawn(task));
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let ok = demo::run(Tokio, "tether-tokio", demo::seed_from_args(), |f| rt.block_on(f));
    std::process::exit(if ok { 0 } else { 1 });
}
