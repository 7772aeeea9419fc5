//! Socket options for real TCP connections: tether-async's, on this runtime's TCP stream.

use socket2::SockRef;
use tether_async::Config;
use tokio::net::TcpStream;

/// Sets `TCP_NODELAY`, keepalive and (where the OS has it) `TCP_USER_TIMEOUT` on `stream`, with
/// the values [`tether_async::configure_tcp`] documents. Failures are logged and ignored.
///
/// [`connect`](crate::connect) and [`Server::bind`](crate::Server::bind) call it on every
/// connection; call it yourself in a connector of your own over TCP (or in
/// [`Listener::configure`](crate::Listener::configure)):
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tether_tokio::Error> {
/// use tether_tokio::{Config, Server};
/// use tokio::net::TcpStream;
///
/// # let server = Server::bind("127.0.0.1:0", Config::default()).await?;
/// # let addr = server.local_addr().unwrap();
/// let config = Config::default();
/// let options = config.clone();
/// let connector = move || {
///     let options = options.clone();
///     async move {
///         let stream = TcpStream::connect(addr).await?;
///         tether_tokio::configure_tcp(&stream, &options);
///         Ok(stream) // a proxy's handshake, say, could follow here
///     }
/// };
/// let session = tether_tokio::connect_with(connector, config).await?;
/// # let _ = session;
/// # Ok(()) }
/// ```
pub fn configure_tcp(stream: &TcpStream, config: &Config) {
    tether_async::configure_tcp(SockRef::from(stream), config);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
