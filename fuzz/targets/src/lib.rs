//! # tether-fuzz-targets
//!
//! The bodies of tether's fuzz targets, shared by the cargo-fuzz binaries in `fuzz/fuzz_targets/`
//! (nightly, libFuzzer) and by `tests/replay.rs`, which replays every checked-in corpus file and
//! regression input on stable as an ordinary `cargo test`.
//!
//! Each target module exposes `fuzz(&[u8])`, which turns raw fuzzer bytes into the target's
//! structured [`arbitrary`] input and runs it; any panic is a finding. The properties each target
//! checks are listed on its module. `docs/TESTING.md` says how to fuzz and replay; `fuzz/FOUND.md`
//! lists what the fuzzers found.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::cell::RefCell;
use std::sync::OnceLock;

pub mod endpoint;
pub mod frame_decode;
pub mod gen;
pub mod pair;
pub mod session;

use tether_core::Config;
use tether_sim::harness::Net;

/// The world of the `pair` and `endpoint` targets: the pair harness the core's tests use
/// (`tether_sim::harness`), with `clients` client sessions running `config`. Every message goes
/// through an application's outbox, so each event is also checked against what was sent; events
/// are not kept (nothing reads them, and copying them costs executions). Odd seeds read in place
/// (`handle_input_buf`), even ones as owned chunks (`handle_input`).
pub fn net(config: Config, clients: usize, seed: u64) -> Net {
    let mut net = Net::new(config, clients, seed);
    net.apps_send_all = true;
    net.record_events = false;
    net.read_in_place = seed % 2 == 1;
    net
}

/// A target's entry point: raw fuzzer bytes in, a panic on any property violation.
pub type Entry = fn(&[u8]);

/// Every target, by name (the cargo-fuzz binary and corpus directory name) with its entry point.
pub const TARGETS: [(&str, Entry); 4] = [
    ("frame_decode", frame_decode::fuzz),
    ("session", session::fuzz),
    ("endpoint", endpoint::fuzz),
    ("pair", pair::fuzz),
];

/// True if the check for open core bug `id` (an entry of `fuzz/FOUND.md`, e.g. `"F1"`) is to be
/// stepped over: `id` is listed in the environment variable `TETHER_FUZZ_TOLERATE`
/// (comma-separated), or was passed to [`tolerate_on_this_thread`].
///
/// `fuzz/run.sh` sets the variable to every open bug so that fuzzing goes on past them instead of
/// finding the same crash again. The replay test tolerates them only while replaying the corpus;
/// each bug's own regression input is replayed strictly and must keep failing until the core is
/// fixed.
pub fn tolerated(id: &str) -> bool {
    static LIST: OnceLock<Vec<String>> = OnceLock::new();
    let env = LIST.get_or_init(|| {
        std::env::var("TETHER_FUZZ_TOLERATE")
            .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
            .unwrap_or_default()
    });
    env.iter().any(|k| k == id) || HERE.with(|h| h.borrow().iter().any(|k| k == id))
}

thread_local! {
    static HERE: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Replaces the list of open bugs tolerated on the calling thread (see [`tolerated`]).
pub fn tolerate_on_this_thread(ids: &[&str]) {
    HERE.with(|h| *h.borrow_mut() = ids.iter().map(|s| (*s).to_owned()).collect());
}
