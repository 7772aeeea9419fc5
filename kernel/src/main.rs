//! # tether-kernel
//!
//! The real-kernel fault suite: a tether server and client (and a plain length-prefixed TCP pair
//! doing the same work) in network namespaces joined by veth pairs, with faults injected by the
//! kernel itself: links set down, iptables blackholes, resets and random loss, `ss -K`, accept-queue
//! overflow, a server killed and restarted, a VIP moved to another host.
//!
//! ```text
//! tether-kernel run --prefix tk123 [--only NAME,NAME] [--table FILE]    orchestrator (root)
//! tether-kernel server --mode plain|tether --port P [--backlog N] [--pause-ms M]
//! tether-kernel client --mode plain|tether --addr IP:P [--count N] [--run-ms T] [--deadline-ms D]
//! tether-kernel burst  --mode plain|tether --addr IP:P [--count N] [--deadline-ms D]
//! ```
//!
//! Run it through `tests/kernel/run.sh`, which checks the prerequisites and cleans up.

mod common;
mod faults;
mod orchestrate;
mod plain;
mod report;
mod roles;
mod tether;
mod topo;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => orchestrate::main(&args[1..]),
        Some(role @ ("server" | "client" | "burst")) => {
            roles::main(role, &args[1..]).map(|()| true)
        }
        _ => Err("usage: tether-kernel run|server|client|burst --key value ... \
                  (see tests/kernel/run.sh)"
            .into()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("tether-kernel: {e}");
            ExitCode::from(2)
        }
    }
}
