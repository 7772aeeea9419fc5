//! tether-tokio as the [`Harness`] on which tether-testkit's shared test bodies run (tests/contract.rs,
//! tests/fds.rs) and the demonstration (examples/demo.rs includes this file).
#![allow(dead_code, reason = "the example uses only part of it")]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tether_testkit::tether_async;
use tether_testkit::{BoxFuture, Harness};
use tether_tokio::{Error, Session, Settings};

/// tether-tokio as a [`Harness`]: `Server::bind`, `connect`, `tokio::spawn`, tokio's clock.
#[derive(Clone, Copy, Debug)]
pub struct Tokio;

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

/// Runs `f` on a fresh multi-thread runtime of two workers, as
/// `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` does.
pub fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(f)
}
