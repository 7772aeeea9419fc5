//! The integration test bodies, each a `pub async fn` generic over the [`Harness`](crate::Harness)
//! of a runtime binding, run as `#[test]`s by [`runtime_tests!`](crate::runtime_tests).

pub mod api;
pub mod faults;
#[cfg(target_os = "linux")]
pub mod fds;
pub mod loopback;
