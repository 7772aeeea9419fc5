//! Sessions over other streams and broken connections: a Unix socket through the generic entry
//! points (`connect_with`, `Server::from_listener`), and TCP connections the test cuts mid-stream
//! (errors and EOFs), which the session must survive by resuming on new connections.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    assert_all, config, expect_within, run_side, run_side_gated, within, Cut, Cuttable, Switch,
};
use tether_smol::{connect_with, End, LinkEvent, Reason, Server};

const SECS_5: Duration = Duration::from_secs(5);

/// The switch of the connection the client opened last.
fn latest(switches: &Mutex<Vec<Arc<Switch>>>) -> Arc<Switch> {
    switches.lock().unwrap().last().cloned().expect("a connection")
}

/// 1,000 messages each way over a Unix socket (a stream without vectored writes: large
/// messages go out as one contiguous copy), then a clean close.
#[cfg(unix)]
#[test]
fn unix_socket_session() {
    let dir = std::env::temp_dir().join(format!("tether-smol-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("server.sock");
    let _ = std::fs::remove_file(&path);
    within(60, async {
        let listener = smol::net::unix::UnixListener::bind(&path).unwrap();
        let server = Server::from_listener(listener, config()).unwrap();
        assert!(server.local_addr().is_none());
        let n = 1_000;
        let srv = smol::spawn(async move {
            let s = server.accept().await.expect("a session");
            run_side(s, "down", n, false, Duration::ZERO).await
        });
        let connector = move || smol::net::unix::UnixStream::connect(path.clone());
        let client = connect_with(connector, config()).await.expect("connected");
        let stats = client.clone();
        let c = run_side(client, "up", n, true, Duration::ZERO).await;
        let s = srv.await;
        assert_eq!(c.end, End::Closed, "client end");
        assert_eq!(s.end, End::Closed, "server end");
        assert_all(&c.received, "down", n);
        assert_all(&s.received, "up", n);
        assert_eq!(stats.stats().unconfirmed_messages, 0);
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// The test cuts the client's TCP connection three times while 2,000 messages flow each way
/// (twice with errors, once with an EOF). Each time the client sees `Disconnected` then
/// `Resumed`, reconnecting through its connector; in the end every message arrived exactly once,
/// in order, all were confirmed, and both sides close cleanly.
#[test]
fn cut_connections_are_resumed_without_loss_or_duplication() {
    within(90, async {
        let server = Server::bind("127.0.0.1:0", config()).await.unwrap();
        let addr = server.local_addr().unwrap();
        let n = 2_000;
        let pace = Duration::from_millis(10);
        let srv = smol::spawn(async move {
            let s = server.accept().await.expect("a session");
            let out = run_side(s, "down", n, false, pace).await;
            // No second session may have appeared: every reconnect resumed.
            let extra = common::timeout(Duration::from_millis(20), server.accept()).await;
            assert!(extra.is_none(), "a reconnect made a new session");
            out
        });
        // Each connection the connector opens gets a switch of its own; the test cuts the latest.
        let switches: Arc<Mutex<Vec<Arc<Switch>>>> = Arc::default();
        let opened = switches.clone();
        let connections = switches.clone();
        let connector = move || {
            let switch = Switch::new();
            opened.lock().unwrap().push(switch.clone());
            async move {
                let stream = smol::net::TcpStream::connect(addr).await?;
                tether_smol::configure_tcp(&stream, &config());
                Ok(Cuttable::new(stream, switch))
            }
        };
        let client = connect_with(connector, config()).await.expect("connected");
        let watcher = client.clone();
        let cuts = smol::spawn(async move {
            for (k, how) in [Cut::Error, Cut::Eof, Cut::Error].into_iter().enumerate() {
                // Wait until traffic has flowed, then cut the connection in use. The client
                // closes only after the cuts, so each lands on a live session.
                while watcher.stats().messages_received < 300 * (k as u64 + 1) {
                    smol::Timer::after(Duration::from_millis(2)).await;
                }
                let current = latest(&switches);
                current.cut(how);
                let what = format!("cut {k} ({how:?})");
                let lost = expect_within(SECS_5, &what, watcher.next_link_event()).await;
                let transport_lost = LinkEvent::Disconnected { reason: Reason::TransportLost };
                assert_eq!(lost, Some(transport_lost), "{what}");
                let resumed = expect_within(SECS_5, &what, watcher.next_link_event()).await;
                assert_eq!(resumed, Some(LinkEvent::Resumed), "{what}");
            }
        });
        let stats = client.clone();
        let c = run_side_gated(client, "up", n, Some(cuts), pace).await;
        let s = srv.await;
        assert_eq!(c.end, End::Closed, "client end");
        assert_eq!(s.end, End::Closed, "server end");
        assert_all(&c.received, "down", n);
        assert_all(&s.received, "up", n);
        let stats = stats.stats();
        assert_eq!(stats.unconfirmed_messages, 0);
        assert_eq!(stats.reconnects, 3);
        // One new connection per cut (more only if an attempt failed on a loaded machine).
        let opened = connections.lock().unwrap().len();
        assert!(opened >= 4, "{opened} connections for 3 cuts");
    });
}
