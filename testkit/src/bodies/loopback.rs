//! Client and server over real loopback TCP, no faults.

use std::time::Duration;

use bytes::Bytes;
use tether_async::{End, SessionState};

use crate::support::{assert_all, config, run_side};
use crate::Harness;

/// 5,000 messages each way, then a clean close on both sides.
pub async fn thousands_of_messages_both_ways_then_clean_close<H: Harness>(h: H) {
    h.clone()
        .within(60, async move {
            let server = h.bind(config().into()).await.unwrap();
            let addr = server.local_addr().unwrap();
            let n = 5_000;
            let hs = h.clone();
            let srv = h.spawn(async move {
                let s = server.accept().await.unwrap();
                run_side(hs, s, "down", n, false, Duration::ZERO).await
            });
            let client = h.connect(addr, config().into()).await.unwrap();
            assert_eq!(client.state(), SessionState::Connected);
            let c = run_side(h.clone(), client, "up", n, true, Duration::ZERO).await;
            let s = srv.await;
            assert_eq!(c.end, End::Closed);
            assert_eq!(s.end, End::Closed);
            assert_all(&c.received, "down", n);
            assert_all(&s.received, "up", n);
        })
        .await;
}

/// Request/response, then the stats count both ways.
pub async fn echo_and_stats<H: Harness>(h: H) {
    h.clone()
        .within(30, async move {
            let server = h.bind(config().into()).await.unwrap();
            let addr = server.local_addr().unwrap();
            drop(h.spawn(async move {
                let s = server.accept().await.unwrap();
                while let Some(m) = s.recv().await {
                    if s.send(m.payload).await.is_err() {
                        break;
                    }
                }
            }));
            let client = h.connect(addr, config().into()).await.unwrap();
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
