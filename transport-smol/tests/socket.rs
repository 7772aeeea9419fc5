//! The TCP options `configure_tcp` (and `Listener::configure` for smol's `TcpListener`, which
//! `Server::bind` applies to every accepted stream) set, read back from the kernel with socket2.

use std::time::Duration;

use socket2::SockRef;
use tether_smol::{configure_tcp, Config, Listener};

/// A connected pair over loopback: (connecting side, accepted side), and the listener.
fn pair() -> (smol::net::TcpStream, smol::net::TcpStream, smol::net::TcpListener) {
    smol::block_on(async {
        let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (connected, accepted) =
            smol::future::zip(smol::net::TcpStream::connect(addr), listener.accept()).await;
        (connected.unwrap(), accepted.unwrap().0, listener)
    })
}

/// What the kernel says: nodelay, keepalive on, keepalive time; and on Linux the probe
/// interval, probe count and user timeout.
fn assert_options(stream: &smol::net::TcpStream, keepalive: Duration, user_timeout: Duration) {
    let sock = SockRef::from(stream);
    assert!(sock.tcp_nodelay().unwrap(), "TCP_NODELAY");
    assert!(sock.keepalive().unwrap(), "SO_KEEPALIVE");
    assert_eq!(sock.tcp_keepalive_time().unwrap(), keepalive, "TCP_KEEPIDLE");
    #[cfg(target_os = "linux")]
    {
        assert_eq!(sock.tcp_keepalive_interval().unwrap(), Duration::from_secs(1), "TCP_KEEPINTVL");
        assert_eq!(sock.tcp_keepalive_retries().unwrap(), 3, "TCP_KEEPCNT");
        assert_eq!(sock.tcp_user_timeout().unwrap(), Some(user_timeout), "TCP_USER_TIMEOUT");
    }
    let _ = user_timeout;
}

#[test]
fn the_options_are_set_as_documented() {
    let (connected, accepted, listener) = pair();
    let sock = SockRef::from(&connected);
    assert!(!sock.tcp_nodelay().unwrap(), "a fresh socket has Nagle on");
    assert!(!sock.keepalive().unwrap(), "a fresh socket has no keepalive");
    let config = Config {
        idle_timeout: Duration::from_secs(7),
        ack_timeout: Duration::from_secs(11),
        ..Config::default()
    };
    // Keepalive after idle_timeout; user timeout twice the ack timeout.
    configure_tcp(&connected, &config);
    assert_options(&connected, Duration::from_secs(7), Duration::from_secs(22));
    // What `Server::bind` does with every stream its listener accepts.
    listener.configure(&accepted, &config);
    assert_options(&accepted, Duration::from_secs(7), Duration::from_secs(22));
}

#[test]
fn sub_second_timeouts_are_rounded_up_to_one_second() {
    let (connected, _accepted, _listener) = pair();
    let config = Config {
        heartbeat_interval: Duration::from_millis(50),
        idle_timeout: Duration::from_millis(300),
        ack_timeout: Duration::from_millis(200),
        ..Config::default()
    };
    configure_tcp(&connected, &config);
    assert_options(&connected, Duration::from_secs(1), Duration::from_secs(1));
}
