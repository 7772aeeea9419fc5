//! A server on a runtime of several workers splits its sessions over as many shards, each on a
//! task of its own; a client that reconnects lands on any shard and is handed to its session's.

mod common;

use bytes::Bytes;
use common::{config, payload, quiet_config, within};
use tether_testkit::proxy::Proxy;
use tether_tokio::{connect, End, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_that_land_on_another_shard_reach_their_session_quickly() {
    within(30, async {
        // Timers of seconds (heartbeats 5 s, handshake timeout 5 s): a handed-over connection that
        // waited for a timer before being read would make the 20 rounds overrun `within`.
        let server = Server::bind("127.0.0.1:0", quiet_config()).await.unwrap();
        assert_eq!(server.shards(), 2, "one shard per worker");
        let proxy = Proxy::start(server.local_addr().unwrap()).unwrap();
        let mut pairs = Vec::new();
        for _ in 0..4 {
            let client = connect(proxy.addr(), quiet_config()).await.unwrap();
            pairs.push((client, server.accept().await.unwrap()));
        }
        let ids: Vec<u64> = pairs.iter().map(|(c, _)| c.id().unwrap().0).collect();
        assert!(ids.iter().any(|id| id % 2 == 0) && ids.iter().any(|id| id % 2 == 1), "{ids:?}");
        // Every round cuts every connection: each client reconnects, its connection is dealt to
        // either shard, and a resume on the wrong one is handed over.
        for round in 0..20u64 {
            for (i, (client, _)) in pairs.iter().enumerate() {
                client.send(payload(&format!("c{i}"), round)).await.unwrap();
            }
            for (i, (_, session)) in pairs.iter().enumerate() {
                let m = session.recv().await.unwrap();
                assert_eq!((m.seq, m.payload), (round, payload(&format!("c{i}"), round)));
            }
            proxy.reset_all();
        }
        for (client, session) in pairs {
            let closing = tokio::spawn(async move { session.close().await });
            assert_eq!(client.close().await, End::Closed);
            assert_eq!(closing.await.unwrap(), End::Closed);
        }
        assert_eq!(server.counts().sessions, 0);
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_current_thread_runtime_gets_one_shard() {
    let server = Server::bind("127.0.0.1:0", config()).await.unwrap();
    assert_eq!(server.shards(), 1);
    let client = connect(server.local_addr().unwrap(), config()).await.unwrap();
    let session = server.accept().await.unwrap();
    client.send(Bytes::from_static(b"one")).await.unwrap();
    assert_eq!(session.recv().await.unwrap().payload, Bytes::from_static(b"one"));
}
