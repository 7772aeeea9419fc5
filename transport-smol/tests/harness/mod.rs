//! tether-smol as the [`Harness`] on which tether-testkit's shared test bodies run here
//! (tests/contract.rs, tests/fds.rs: the same bodies tether-tokio runs) and the demonstration
//! (examples/demo_smol.rs includes this file).
#![allow(dead_code, reason = "the example uses only part of it")]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tether_smol::{Error, Session, Settings};
use tether_testkit::tether_async;
use tether_testkit::{BoxFuture, Harness};

/// tether-smol as a [`Harness`]: `Server::bind`, `connect`, `smol::spawn`, async-io's timers.
#[derive(Clone, Copy, Debug)]
pub struct Smol;

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

/// Runs `f` on the calling thread; spawned tasks run on smol's global executor.
pub fn block_on<F: Future>(f: F) -> F::Output {
    smol::block_on(f)
}
