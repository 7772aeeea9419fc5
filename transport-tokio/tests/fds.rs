//! No file descriptor leaks on tokio: tether-testkit's shared body (hundreds of faulted, refused and
//! junk connections, then the process has exactly the descriptors it had before), in a binary of
//! its own since it counts the whole process's descriptors. Linux only (/proc/self/fd).
#![cfg(target_os = "linux")]

mod common;

use common::{block_on, Tokio};

tether_testkit::runtime_tests!(Tokio, block_on, [fds]);
