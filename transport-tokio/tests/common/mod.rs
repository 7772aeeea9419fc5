//! Helpers shared by the integration tests: [`Tokio`], the [`Harness`] on which tether-testkit's
//! shared test bodies run here (tests/contract.rs, tests/fds.rs), and, for the tests that are
//! about tokio itself, tether-testkit's helpers (a test config, numbered payloads, one side of an
//! exchange) with `run_side` and `within` on tokio's clock.
#![allow(dead_code, reason = "each test file uses a different part")]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tether_testkit::tether_async;
use tether_testkit::{BoxFuture, Harness};
use tether_tokio::{Error, Session, Settings};

#[allow(unused_imports, reason = "each test file uses a different part")]
pub use tether_testkit::support::{assert_all, config, payload, quiet_config, Outcome};

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

/// [`tether_testkit::support::run_side`] on tokio.
pub async fn run_side(
    s: Session,
    tag: &'static str,
    n: u64,
    close: bool,
    pace: Duration,
) -> Outcome {
    tether_testkit::support::run_side(Tokio, s, tag, n, close, pace).await
}

/// Fails the test instead of hanging.
pub async fn within<T>(secs: u64, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f).await.expect("test timed out")
}
