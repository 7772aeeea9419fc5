//! smol needs no "inside the runtime": clients and servers start from a plain thread (their
//! drivers go to smol's global executor), and work.

mod common;

use std::time::{Duration, Instant};

use common::{config, payload, within};
use tether_smol::{start, End, Server};

#[test]
fn a_client_and_a_server_start_outside_any_executor() {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    let listener = smol::net::TcpListener::try_from(std_listener).unwrap();
    let server = Server::from_listener(listener, config()).expect("no executor needed");
    let connector = move || smol::net::TcpStream::connect(addr);
    let client = start(connector, config()).expect("no executor needed");
    // Queued before the first handshake; delivered once connected.
    client.try_send(payload("early", 0)).unwrap();
    let session = within(10, server.accept()).expect("a session");
    // Nothing polls on this thread now: the drivers make progress on their own.
    let deadline = Instant::now() + Duration::from_secs(10);
    let m = loop {
        if let Some(m) = session.try_recv() {
            break m;
        }
        assert!(Instant::now() < deadline, "the early message never arrived");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!((m.seq, m.payload), (0, payload("early", 0)));
    within(10, async {
        let closing = smol::spawn(async move {
            let end = session.close().await;
            (end, session.recv().await)
        });
        assert!(client.recv().await.is_none(), "nothing sent back");
        assert_eq!(client.ended().await, End::Closed);
        assert_eq!(closing.await, (End::Closed, None));
    });
}
