//! Helpers shared by the integration tests: [`Tokio`], the `Harness` on which tether-testkit's
//! shared test bodies run here (tests/contract.rs, tests/fds.rs), and, for the tests that are
//! about tokio itself, tether-testkit's helpers (a test config, numbered payloads, one side of an
//! exchange) with `run_side` and `within` on tokio's clock.
#![allow(dead_code, reason = "each test file uses a different part")]

use std::future::Future;
use std::time::Duration;

use tether_tokio::Session;

#[allow(unused_imports, reason = "each test file uses a different part")]
pub use tether_testkit::support::{assert_all, config, payload, quiet_config, Outcome};

#[path = "../harness/mod.rs"]
mod harness;
#[allow(unused_imports, reason = "each test file uses a different part")]
pub use harness::{block_on, Tokio};

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
