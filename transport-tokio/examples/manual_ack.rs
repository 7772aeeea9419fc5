//! Manual acknowledgement: the server acknowledges a message only after it has processed it (here:
//! appended it to a log), so a message the server took but had not finished is not confirmed to
//! the client, and would be handed back by `End::Lost` if the session died in between.
//!
//! `cargo run -p tether-tokio --example manual_ack`

use bytes::Bytes;
use tether_tokio::{AckMode, Config, End, Server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config { ack_mode: AckMode::Manual, ..Config::default() };
    let server = Server::bind("127.0.0.1:0", config.clone()).await?;
    let addr = server.local_addr().expect("a TCP server has an address");
    let processor = tokio::spawn(async move {
        let session = server.accept().await.expect("a client");
        let mut log = Vec::new();
        while let Some(message) = session.recv().await {
            log.push(message.payload); // the processing the ack stands for
                                       // Only now does the client learn the message is safe (cumulative: everything up to
                                       // this sequence number).
            session.ack(message.seq).expect("a delivered message in manual mode");
        }
        log.len()
    });

    let client = tether_tokio::connect(addr, Config::default()).await?;
    for i in 0..100u32 {
        client.send(Bytes::from(format!("record {i}"))).await?;
    }
    match client.close().await {
        End::Closed => println!("every record was processed and acknowledged"),
        other => println!("the session ended otherwise: {other:?}"),
    }
    println!("the server processed {} records", processor.await.expect("the server task"));
    Ok(())
}
