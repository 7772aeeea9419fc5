//! The handle API where it meets tokio itself: a panicking driver, a driver whose runtime is
//! dropped, handles used from another runtime, and the handles' `Send + Sync`. The API over TCP
//! (Sink/Stream, backpressure, close and abort, batches, manual acks, a junk flood, ...) is
//! tested by tether-testkit's shared bodies, in tests/contract.rs.

mod common;

use bytes::Bytes;
use common::{config, payload, within};
use tether_tokio::{connect, End, Reason, SendError, Server, Session};

/// A driver that panics (here: its connector does) takes only its own session down: the handle
/// ends `Lost` and refuses sends, and the process goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_driver_ends_its_session_only() {
    let connector = || -> std::future::Ready<std::io::Result<tokio::net::TcpStream>> {
        panic!("connector panics (on purpose)")
    };
    let session = tether_tokio::start(connector, config()).unwrap();
    let end = within(5, session.ended()).await;
    assert!(matches!(end, End::Lost { reason: Reason::TransportLost, .. }), "{end:?}");
    assert!(matches!(session.try_send(payload("p", 0)), Err(SendError::Ended(_))));
}

/// A client and its accepted server session whose drivers (and the server) run on a runtime of
/// their own, returned so the test can drop it.
fn session_on_its_own_runtime() -> (tokio::runtime::Runtime, Session, Session) {
    let drivers =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (client, session) = drivers.block_on(async {
        let server = Server::bind("127.0.0.1:0", config()).await.unwrap();
        let client = connect(server.local_addr().unwrap(), config()).await.unwrap();
        let session = server.accept().await.unwrap();
        (client, session)
    });
    (drivers, client, session)
}

/// A driver that stops without ending its session (its runtime was dropped) cannot lose messages
/// silently: the handle ends with `Lost` listing exactly the unconfirmed ones, and later sends
/// are refused.
#[test]
fn a_driver_dropped_with_its_runtime_ends_the_session_with_its_unconfirmed_messages() {
    let (drivers, client, session) = session_on_its_own_runtime();
    // Accepted but never read from: nothing the client sends is confirmed.
    for i in 0..10 {
        assert_eq!(client.try_send(payload("u", i)).unwrap(), i);
    }
    drop(drivers);
    assert!(matches!(client.try_send(payload("u", 10)), Err(SendError::Ended(_))));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let end = rt.block_on(within(5, client.ended()));
    let End::Lost { reason, unconfirmed } = end else { panic!("expected Lost, got {end:?}") };
    assert_eq!(reason, Reason::ApplicationAbort);
    let got: Vec<(u64, Bytes)> = unconfirmed.into_iter().map(|m| (m.seq, m.payload)).collect();
    let want: Vec<(u64, Bytes)> = (0..10).map(|i| (i, payload("u", i))).collect();
    assert_eq!(got, want);
    assert!(!rt.block_on(within(5, session.ended())).is_closed());
}

/// Handles used from another runtime's tasks (here: a current-thread runtime on its own thread,
/// while both drivers run on a multi-thread runtime) deliver every message of a request/response
/// exchange, confirm it, and close cleanly; once the drivers' runtime is gone, sends fail
/// instead of hanging.
#[test]
fn handles_work_from_another_runtime() {
    let (drivers, client, session) = session_on_its_own_runtime();
    let apps = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(within(30, async move {
            let echo = tokio::spawn(async move {
                while let Some(m) = session.recv().await {
                    session.send(m.payload).await.unwrap();
                }
                session.ended().await
            });
            for i in 0..500 {
                client.send(payload("ping", i)).await.unwrap();
                let m = client.recv().await.unwrap();
                assert_eq!(m.payload, payload("ping", i));
            }
            assert_eq!(client.close().await, End::Closed);
            assert_eq!(echo.await.unwrap(), End::Closed);
            client
        }))
    });
    let client = apps.join().unwrap();
    drop(drivers);
    let after = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(within(5, client.send(Bytes::from_static(b"late"))))
    });
    assert!(matches!(after.join().unwrap(), Err(SendError::Ended(_))));
}

/// Handles can be shared by tasks on any thread (a compile-time check).
#[test]
fn handles_are_send_and_sync() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<tether_tokio::Session>();
    shareable::<Server>();
    shareable::<tether_tokio::Error>();
}
