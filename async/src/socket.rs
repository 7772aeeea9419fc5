//! Socket options for real TCP connections, the same on every runtime: the OS's own liveness
//! checks as a second line of defence behind tether's heartbeats and timeouts.

use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tether_core::Config;

/// Sets `TCP_NODELAY`, keepalive and (where the OS has it) `TCP_USER_TIMEOUT` on `sock` (a
/// binding passes its TCP stream as `SockRef::from(&stream)`).
///
/// Keepalive probes start after `idle_timeout` of silence (at least 1 s), then every second, 3 of
/// them (Linux, Android, macOS, FreeBSD); `TCP_USER_TIMEOUT` is twice the `ack_timeout` (at least
/// 1 s; Linux, Android, Fuchsia). tether's own idle and ack-progress timeouts fire first; these
/// only make the kernel give up on a dead connection's buffers in bounded time too. Failures are
/// logged and ignored: an option the OS refuses is not a reason to drop the connection.
///
/// ```
/// use socket2::SockRef;
/// use tether_async::Config;
///
/// # fn main() -> std::io::Result<()> {
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let stream = std::net::TcpStream::connect(listener.local_addr()?)?;
/// tether_async::configure_tcp(SockRef::from(&stream), &Config::default());
/// assert!(stream.nodelay()?);
/// # Ok(()) }
/// ```
pub fn configure_tcp(sock: SockRef<'_>, config: &Config) {
    if let Err(e) = sock.set_tcp_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY refused");
    }
    let idle = config.idle_timeout.max(Duration::from_secs(1));
    let keepalive = TcpKeepalive::new().with_time(idle);
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "macos",
        target_os = "freebsd"
    ))]
    let keepalive = keepalive.with_interval(Duration::from_secs(1)).with_retries(3);
    if let Err(e) = sock.set_tcp_keepalive(&keepalive) {
        tracing::debug!(error = %e, "keepalive refused");
    }
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
    {
        let user_timeout = config.ack_timeout.saturating_mul(2).max(Duration::from_secs(1));
        if let Err(e) = sock.set_tcp_user_timeout(Some(user_timeout)) {
            tracing::debug!(error = %e, "TCP_USER_TIMEOUT refused");
        }
    }
}
