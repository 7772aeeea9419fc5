//! Pair harness: one `Endpoint` and any number of client `Session`s over in-memory stream links
//! with faults, a clock that jumps to the next deadline, and an application model on each side.
//! The contract checker (`check_contract`, `check_direction`) is what every test ends with.
//!
//! It is `tether_sim::harness`, shared with the fuzz targets (`fuzz/targets`); `raw` (a client
//! session played by hand-written frames) is the core tests' own.
#![allow(dead_code, unused_imports, reason = "each test file uses a different part of the harness")]

pub mod raw;

pub use tether_sim::harness::*;
