//! The demonstration on smol: a tether client and server on loopback with a fault-injecting
//! proxy between them (resets, blackholes, truncated streams on a schedule), 100,000 messages each
//! way, then the same messages the naive way (length-prefixed frames over plain TCP, write and
//! forget) through the same faults. Prints a summary table; exits non-zero if tether lost,
//! duplicated or reordered anything or did not close cleanly. The body is
//! `tether_testkit::demo`, shared with tether-tokio's demo.
//!
//! Run: `cargo run --release -p tether-smol --example demo_smol [SEED]`

#[path = "../tests/harness/mod.rs"]
mod harness;

use harness::Smol;
use tether_testkit::demo;

fn main() {
    // Two executor threads, like the tokio demo's two workers (read at smol's first use).
    if std::env::var_os("SMOL_THREADS").is_none() {
        std::env::set_var("SMOL_THREADS", "2");
    }
    let ok = demo::run(Smol, "tether-smol", demo::seed_from_args(), smol::block_on);
    std::process::exit(if ok { 0 } else { 1 });
}
