//! Client and server over real loopback TCP, no faults.

mod common;

use std::time::Duration;

use common::{assert_all, config, payload, run_side, within};
use tether_smol::{connect, End, Server, SessionState};

/// 1,000 numbered messages each way, checked for order and content as they arrive and at the
/// end; then a clean close: `Closed` on both sides.
#[test]
fn a_thousand_messages_both_ways_then_clean_close() {
    within(60, async {
        let server = Server::bind("127.0.0.1:0", config()).await.unwrap();
        let addr = server.local_addr().unwrap();
        let n = 1_000;
        let srv = smol::spawn(async move {
            let s = server.accept().await.expect("a session");
            run_side(s, "down", n, false, Duration::ZERO).await
        });
        let client = connect(addr, config()).await.unwrap();
        assert_eq!(client.state(), SessionState::Connected);
        let stats = client.clone();
        let c = run_side(client, "up", n, true, Duration::ZERO).await;
        let s = srv.await;
        assert_eq!(c.end, End::Closed, "client end");
        assert_eq!(s.end, End::Closed, "server end");
        assert_all(&c.received, "down", n);
        assert_all(&s.received, "up", n);
        let stats = stats.stats();
        assert_eq!((stats.messages_sent, stats.messages_received), (n, n));
        assert_eq!(stats.unconfirmed_messages, 0);
        assert_eq!(stats.reconnects, 0);
    });
}

/// The server echoes; the client sends 1,000 numbered messages and gets each one back, in order
/// and unmodified (pipelined: the sender does not wait for each echo), then closes cleanly.
#[test]
fn echo_of_a_thousand_numbered_messages() {
    within(60, async {
        let server = Server::bind(("127.0.0.1", 0), config()).await.unwrap();
        let addr = server.local_addr().unwrap();
        let srv = smol::spawn(async move {
            let s = server.accept().await.expect("a session");
            let mut echoed = 0u64;
            while let Some(m) = s.recv().await {
                assert_eq!(m.seq, echoed);
                assert_eq!(m.payload, payload("echo", m.seq));
                s.send(m.payload).await.expect("echo");
                echoed += 1;
            }
            (echoed, s.ended().await)
        });
        let client = connect(addr.to_string(), config()).await.unwrap();
        let n = 1_000u64;
        let sender = async {
            for i in 0..n {
                assert_eq!(client.send(payload("echo", i)).await.unwrap(), i);
            }
        };
        let receiver = async {
            for i in 0..n {
                let m = client.recv().await.expect("an echo");
                assert_eq!(m.seq, i);
                assert_eq!(m.payload, payload("echo", i), "echo {i} differs");
            }
        };
        smol::future::zip(sender, receiver).await;
        assert_eq!(client.close().await, End::Closed);
        let (echoed, server_end) = srv.await;
        assert_eq!(echoed, n);
        assert_eq!(server_end, End::Closed);
        assert!(client.recv().await.is_none());
    });
}
