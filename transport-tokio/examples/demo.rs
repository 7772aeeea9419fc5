//! The demonstration on tokio: a tether client and server on loopback with a fault-injecting
//! proxy between them (resets, blackholes, truncated streams on a schedule), 100,000 messages each
//! way, then the same messages the naive way (length-prefixed frames over plain TCP, write and
//! forget) through the same faults. Prints a summary table; exits non-zero if tether lost,
//! duplicated or reordered anything or did not close cleanly. The body is
//! `tether_testkit::demo`, shared with tether-smol's demo.
//!
//! Run: `cargo run --release -p tether-tokio --example demo [SEED]`

#[path = "../tests/harness/mod.rs"]
mod harness;

use harness::Tokio;
use tether_testkit::demo;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let ok = demo::run(Tokio, "tether-tokio", demo::seed_from_args(), |f| rt.block_on(f));
    std::process::exit(if ok { 0 } else { 1 });
}
