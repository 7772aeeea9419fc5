//! Socket options for real TCP connections: the OS's own liveness checks as a second line of
//! defence behind tether's heartbeats and timeouts.

use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tether_async::Config;
use tokio::net::TcpStream;

/// Sets `TCP_NODELAY`, keepalive and (where the OS has it) `TCP_USER_TIMEOUT` on `stream`.
///
/// Keepalive probes start after `idle_timeout` of silence; `TCP_USER_TIMEOUT` is twice the
/// `ack_timeout`. tether's own idle and ack-progress timeouts fire first; these only make the
/// kernel give up on a dead connection's buffers in bounded time too. Failures are logged and
/// ignored: an option the OS refuses is not a reason to drop the connection.
pub fn configure_tcp(stream: &TcpStream, config: &Config) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY refused");
    }
    let sock = SockRef::from(stream);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_options_are_set_as_documented() {
        use crate::Listener;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let config = Config {
            idle_timeout: Duration::from_secs(7),
            ack_timeout: Duration::from_secs(11),
            ..Config::default()
        };
        // What `Server::from_listener` (and so `Server::bind`) does with every stream a
        // `TcpListener` accepts; here applied to the connecting side, whose options read the same.
        listener.configure(&stream, &config);
        let sock = SockRef::from(&stream);
        assert!(sock.tcp_nodelay().unwrap(), "TCP_NODELAY");
        assert!(sock.keepalive().unwrap(), "SO_KEEPALIVE");
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(7));
        #[cfg(target_os = "linux")]
        {
            assert_eq!(sock.tcp_keepalive_interval().unwrap(), Duration::from_secs(1));
            assert_eq!(sock.tcp_keepalive_retries().unwrap(), 3);
            assert_eq!(sock.tcp_user_timeout().unwrap(), Some(Duration::from_secs(22)));
        }
    }
}
