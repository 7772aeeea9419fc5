//! No file descriptor leaks on smol: tether-testkit's shared body (hundreds of faulted, refused and
//! junk connections, then the process has exactly the descriptors it had before), in a binary of
//! its own since it counts the whole process's descriptors. Linux only (/proc/self/fd).
#![cfg(target_os = "linux")]

mod harness;

use harness::{block_on, Smol};

tether_testkit::runtime_tests!(Smol, block_on, [fds]);
