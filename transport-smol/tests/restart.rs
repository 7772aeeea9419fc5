//! The server dies and a new one takes over its port: the client's resume is refused (the new
//! server never heard of the session), and the client's session ends `Lost` handing back exactly
//! the messages the dead server never confirmed, in order.

mod common;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{config, expect_within, payload, within, Cut, Cuttable, Switch};
use tether_smol::{configure_tcp, connect, Config, End, Listener, Reason, Server};

/// smol's TCP listener whose connections all die (now and later) when the test pulls the plug:
/// a server process crashing, as far as its peers can tell. Nothing it writes after the cut
/// leaves the process, so the client hears no goodbye (no abort frame), only a dead connection.
struct Mortal {
    listener: smol::net::TcpListener,
    plug: Arc<Switch>,
}

impl Listener for Mortal {
    type Stream = Cuttable<smol::net::TcpStream>;

    async fn accept(&mut self) -> io::Result<Self::Stream> {
        let (stream, _) = self.listener.accept().await?;
        Ok(Cuttable::new(stream, self.plug.clone()))
    }

    fn configure(&self, stream: &Self::Stream, config: &Config) {
        configure_tcp(&stream.inner, config);
    }
}

/// Binds a new server on `addr` once the old listener has let go of it.
async fn bind_again(addr: SocketAddr) -> Server {
    loop {
        match Server::bind(addr, config()).await {
            Ok(server) => return server,
            Err(tether_smol::Error::Io(e)) if e.kind() == io::ErrorKind::AddrInUse => {
                smol::Timer::after(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("binding {addr} again: {e}"),
        }
    }
}

#[test]
fn a_server_restart_ends_the_client_session_lost_with_exactly_the_unconfirmed_messages() {
    within(60, async {
        let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let plug = Switch::new();
        let server = Server::from_listener(Mortal { listener, plug: plug.clone() }, config());
        let server = server.unwrap();
        let client = connect(addr, config()).await.unwrap();
        let session = expect_within(Duration::from_secs(5), "accept", server.accept()).await;
        let session = session.expect("a session");

        // The server application takes 700 messages, then stops reading.
        let (taken, total) = (700u64, 1_000u64);
        let reader = smol::spawn(async move {
            for i in 0..taken {
                let m = session.recv().await.expect("a message");
                assert_eq!((m.seq, m.payload), (i, payload("up", i)));
            }
            session
        });
        for i in 0..total {
            assert_eq!(client.send(payload("up", i)).await.unwrap(), i);
        }
        let session = reader.await;
        // The client sees the taken ones confirmed (acks are delayed a little), no more.
        let confirmed = async {
            while client.stats().unconfirmed_messages > total - taken {
                smol::Timer::after(Duration::from_millis(5)).await;
            }
        };
        expect_within(Duration::from_secs(5), "confirmations", confirmed).await;
        smol::Timer::after(Duration::from_millis(50)).await;
        assert_eq!(client.stats().unconfirmed_messages, total - taken);

        // The crash: every connection dies, the process state goes (the session's last handle
        // and the server), the port is freed; a new server binds it.
        plug.cut(Cut::Error);
        drop(session);
        drop(server);
        let new_server = expect_within(Duration::from_secs(10), "rebind", bind_again(addr)).await;

        let end = expect_within(Duration::from_secs(20), "client end", client.ended()).await;
        let End::Lost { reason, unconfirmed } = end else { panic!("expected Lost, got {end:?}") };
        assert_eq!(reason, Reason::UnknownSession, "the new server refused the resume");
        let seqs: Vec<u64> = unconfirmed.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (taken..total).collect::<Vec<_>>(), "exactly the unconfirmed, in order");
        for m in &unconfirmed {
            assert_eq!(m.payload, payload("up", m.seq), "message {} handed back intact", m.seq);
        }
        assert!(client.recv().await.is_none());
        assert!(client.send(payload("up", total)).await.is_err(), "an ended session refuses");
        // The new server never saw a session.
        let stray = common::timeout(Duration::from_millis(50), new_server.accept()).await;
        assert!(stray.is_none(), "the new server accepted a session: {stray:?}");
    });
}
