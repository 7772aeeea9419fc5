//! The contract over real loopback TCP, on smol: tether-testkit's shared test bodies (every fault
//! of its proxy and a random mix, blackhole detection, a server restart with the exact
//! unconfirmed list, close and abort, Sink/Stream, backpressure, batches, manual acks, a junk
//! flood, ...), the same bodies tether-tokio runs. The descriptor-leak body has a binary of its
//! own (tests/fds.rs).

mod harness;

use harness::{block_on, Smol};

tether_testkit::runtime_tests!(Smol, block_on);
