//! The contract over real loopback TCP, on tokio: tether-testkit's shared test bodies (every fault
//! of its proxy and a random mix, blackhole detection, a server restart with the exact
//! unconfirmed list, close and abort, Sink/Stream, backpressure, batches, manual acks, a junk
//! flood, ...), the same bodies tether-smol runs. Tests about tokio itself stay in the other
//! files; the descriptor-leak body has a binary of its own (tests/fds.rs).

mod common;

use common::{block_on, Tokio};

tether_testkit::runtime_tests!(Tokio, block_on);
