//! A session as a `futures` `Sink<Bytes>` and `Stream<Item = Message>`: the client forwards a
//! stream of payloads into the session with `SinkExt::send_all`, and the server folds the session's
//! messages with `StreamExt`. The Sink waits on backpressure; closing the Sink closes the session
//! cleanly and fails if anything was lost.
//!
//! `cargo run -p tether-tokio --example sink_stream`

use bytes::Bytes;
use futures_util::{stream, SinkExt, StreamExt};
use tether_tokio::{Config, Server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::bind("127.0.0.1:0", Config::default()).await?;
    let addr = server.local_addr().expect("a TCP server has an address");
    let counter = tokio::spawn(async move {
        let session = server.accept().await.expect("a client");
        // The stream ends when the session does (after the client's clean close).
        session.map(|m| m.payload.len()).fold(0, |total, n| async move { total + n }).await
    });

    let mut client = tether_tokio::connect(addr, Config::default()).await?;
    let payloads = stream::iter(0..10_000u32).map(|i| Ok(Bytes::from(i.to_be_bytes().to_vec())));
    client.send_all(&mut payloads.boxed()).await?;
    // Sink::close (not the inherent `close`, which returns the End): a clean close, or an error
    // naming what was lost.
    SinkExt::close(&mut client).await?;
    println!("the server received {} bytes", counter.await?);
    Ok(())
}
