//! The first connect over real loopback sockets: borrowed addresses, the resolver's error, and a
//! client told to wait for a server that is not up yet.

use std::time::Duration;

use bytes::Bytes;
use tether_tokio::{Config, Error, FirstConnect, Server};

fn config() -> Config {
    Config { handshake_timeout: Duration::from_secs(2), ..Config::default() }
}

/// A bound on each test (not a timing claim: a hang fails with a message instead of stalling).
async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f).await.expect("the test hung")
}

#[tokio::test]
async fn connect_takes_a_borrowed_address() {
    within(async {
        let server = Server::bind("127.0.0.1:0", config()).await.unwrap();
        let addr: String = server.local_addr().unwrap().to_string();
        let accept = tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..2 {
                got.push(server.accept().await.unwrap().recv().await.unwrap().payload);
            }
            got
        });
        let client = tether_tokio::connect(&addr, config()).await.unwrap();
        client.send(Bytes::from_static(b"borrowed")).await.unwrap();
        let (host, port) = addr.rsplit_once(':').unwrap();
        let again = tether_tokio::connect((host, port.parse().unwrap()), config()).await.unwrap();
        again.send(Bytes::from_static(b"host and port")).await.unwrap();
        assert_eq!(accept.await.unwrap(), ["borrowed", "host and port"]);
    })
    .await;
}

#[tokio::test]
async fn an_unresolvable_name_fails_at_once_with_the_resolver_error() {
    within(async {
        let long = Config { session_timeout: Duration::from_secs(120), ..config() };
        let err = tether_tokio::connect("no-such-host.invalid:7000", long).await.unwrap_err();
        assert!(matches!(err, Error::Connect(_)), "{err:?}");
        assert!(err.to_string().starts_with("could not connect: "), "{err}");
    })
    .await;
}

#[tokio::test]
async fn with_retry_a_client_started_before_its_server_connects_once_it_is_up() {
    within(async {
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let patient = Config { first_connect: FirstConnect::Retry, ..config() };
        let client = tokio::spawn(tether_tokio::connect(addr, patient));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!client.is_finished(), "the client keeps trying while nothing listens");
        let server = Server::bind(addr, config()).await.unwrap();
        let client = client.await.unwrap().expect("connected once the server was up");
        client.send(Bytes::from_static(b"late")).await.unwrap();
        assert_eq!(server.accept().await.unwrap().recv().await.unwrap().payload, "late");
    })
    .await;
}
