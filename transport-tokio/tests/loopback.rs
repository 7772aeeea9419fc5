//! Client and server over real loopback TCP, no faults.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{assert_all, config, run_side, within};
use tether_tokio::{connect, End, Server, SessionState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_messages_both_ways_then_clean_close() {
    within(60, async {
        let server = Server::bind("127.0.0.1:0", config()).await.unwrap();
        let addr = server.local_addr().unwrap();
        let n = 5_000;
        let srv = tokio::spawn(async move {
            let s = server.accept().await.unwrap();
            run_side(s, "down", n, false, Duration::ZERO).await
        });
        let client = connect(addr, config()).await.unwrap();
        assert_eq!(client.state(), SessionState::Connected);
        let c = run_side(client, "up", n, true, Duration::ZERO).await;
        let s = srv.await.unwrap();
        assert_eq!(c.end, End::Closed);
        assert_eq!(s.end, End::Closed);
        assert_all(&c.received, "down", n);
        assert_all(&s.received, "up", n);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_and_stats() {
    within(30, async {
        let server = Server::bind("127.0.0.1:0", config()).await.unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            let s = server.accept().await.unwrap();
            while let Some(m) = s.recv().await {
                if s.send(m.payload).await.is_err() {
                    break;
                }
            }
        });
        let client = connect(addr, config()).await.unwrap();
        for i in 0..100u32 {
            client.send(Bytes::from(i.to_string())).await.unwrap();
            let m = client.recv().await.unwrap();
            assert_eq!(m.payload, Bytes::from(i.to_string()));
        }
        let stats = client.stats();
        assert_eq!(stats.messages_sent, 100);
        assert_eq!(stats.messages_received, 100);
        assert!(client.id().is_some());
        assert_eq!(client.close().await, End::Closed);
    })
    .await;
}
