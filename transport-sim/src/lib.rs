//! # tether-sim
//!
//! A deterministic simulated network for tether sessions. One seed drives one run: a virtual clock,
//! an event queue and a single seeded RNG decide every delay, split read, fault and application
//! action, so a run replays frame for frame. The simulator drives a core `Endpoint` and many client
//! `Session`s through the sans-IO driving contract exactly as a real adapter would, attacks them
//! with every fault class of DESIGN.md section 6, and checks the contract after every run.
//!
//! - [`sim`]: the engine (connections, events, faults, the adapter loop);
//! - [`link`]: per-direction stream link elements; [`datagram`]: datagram link elements;
//! - [`node`]: tether client and server nodes; [`naive`]: the write-and-forget baseline;
//! - [`check`]: the invariant checker; [`scenario`]: incident scenarios and random mixes;
//! - [`sweep`]: running many seeds and summarising them;
//! - [`harness`]: the step-by-step pair harness the core's tests and the fuzz targets drive.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod app;
pub mod check;
pub mod datagram;
pub mod harness;
pub mod link;
pub mod naive;
pub mod node;
pub mod rng;
pub mod scenario;
pub mod sim;
pub mod sweep;
pub mod trace;
