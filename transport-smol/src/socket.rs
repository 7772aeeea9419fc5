//! Socket options for real TCP connections: tether-async's, on this runtime's TCP stream.

use smol::net::TcpStream;
use socket2::SockRef;
use tether_async::Config;

/// Sets `TCP_NODELAY`, keepalive and (where the OS has it) `TCP_USER_TIMEOUT` on `stream`, with
/// the values [`tether_async::configure_tcp`] documents. Failures are logged and ignored.
///
/// [`connect`](crate::connect) and [`Server::bind`](crate::Server::bind) call it on every
/// connection; call it yourself in a connector of your own over TCP (or in
/// [`Listener::configure`](crate::Listener::configure)):
///
/// ```
/// # fn main() -> Result<(), tether_smol::Error> {
/// use smol::net::TcpStream;
/// use tether_smol::{Config, Server};
///
/// # smol::block_on(async {
/// # let server = Server::bind("127.0.0.1:0", Config::default()).await?;
/// # let addr = server.local_addr().unwrap();
/// let config = Config::default();
/// let options = config.clone();
/// let connector = move || {
///     let options = options.clone();
///     async move {
///         let stream = TcpStream::connect(addr).await?;
///         tether_smol::configure_tcp(&stream, &options);
///         Ok(stream) // a proxy's handshake, say, could follow here
///     }
/// };
/// let session = tether_smol::connect_with(connector, config).await?;
/// # let _ = session;
/// # Ok(()) })
/// # }
/// ```
pub fn configure_tcp(stream: &TcpStream, config: &Config) {
    tether_async::configure_tcp(SockRef::from(stream), config);
}
