//! Misuse outside a tokio runtime is an error, not a panic.

use std::io;

use tether_tokio::{start, Config, Error, Listener, Server};
use tokio::io::DuplexStream;

struct NoConnections;

impl Listener for NoConnections {
    type Stream = DuplexStream;

    async fn accept(&mut self) -> io::Result<DuplexStream> {
        std::future::pending().await
    }
}

#[test]
fn starting_a_client_or_server_outside_a_runtime_says_so() {
    let connector = || async { Err::<DuplexStream, _>(io::Error::other("never called")) };
    let client = start(connector, Config::default());
    assert!(matches!(client, Err(Error::NoRuntime("tokio"))), "{client:?}");
    let server = Server::from_listener(NoConnections, Config::default());
    assert!(matches!(server, Err(Error::NoRuntime("tokio"))), "{server:?}");
    let message = Error::NoRuntime("tokio").to_string();
    assert!(message.contains("no tokio runtime"), "{message}");
}
