//! Socket options for real TCP connections: tether-async's, on this runtime's TCP stream.

use smol::net::TcpStream;
use socket2::SockRef;
use tether_async::Config;

/// Sets `TCP_NODELAY`, keepalive and (where the OS has it) `TCP_USER_TIMEOUT` on `stream`, with
/// the values [`tether_async::configure_tcp`] documents. Failures are logged and ignored.
pub fn configure_tcp(stream: &TcpStream, config: &Config) {
    tether_async::configure_tcp(SockRef::from(stream), config);
}
