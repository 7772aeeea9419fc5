//! quinn rows: what a user would pick instead of tether for reliable messages, a QUIC stream
//! with length prefixes (ANCHORS.md's method): a quinn 0.11 endpoint pair on 127.0.0.1, a
//! self-signed certificate for "localhost" (rustls with ring), default transport config; one
//! unidirectional stream for throughput, one bidirectional stream for ping-pong, both through
//! the same framing code as raw TCP.

use std::sync::Arc;
use std::time::Duration;

use quinn::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use quinn::{ClientConfig, Connection, Endpoint, ServerConfig};

use super::{framed_ping_pong, framed_throughput};

/// A connected client and server, with their endpoints (kept alive as long as the connections).
struct Pair {
    client: Connection,
    server: Connection,
    _endpoints: (Endpoint, Endpoint),
}

async fn pair() -> Pair {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert_der = CertificateDer::from(cert.cert);
    let key = PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der());
    let server_config = ServerConfig::with_single_cert(vec![cert_der.clone()], key.into()).unwrap();
    let server = Endpoint::server(server_config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let mut roots = quinn::rustls::RootCertStore::empty();
    roots.add(cert_der).unwrap();
    let mut client = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    client
        .set_default_client_config(ClientConfig::with_root_certificates(Arc::new(roots)).unwrap());
    let connecting = client.connect(server.local_addr().unwrap(), "localhost").unwrap();
    let accepting = async { server.accept().await.unwrap().await.unwrap() };
    let (client_conn, server_conn) = tokio::join!(connecting, accepting);
    Pair { client: client_conn.unwrap(), server: server_conn, _endpoints: (client, server) }
}

/// quinn throughput over one unidirectional stream: messages sent and the time they took.
pub(crate) async fn throughput(size: usize) -> (u64, Duration) {
    let p = pair().await;
    let mut send = p.client.open_uni().await.unwrap();
    // A stream reaches the peer with its first bytes: the 4-byte preamble.
    tokio::io::AsyncWriteExt::write_all(&mut send, b"tthr").await.unwrap();
    let mut recv = p.server.accept_uni().await.unwrap();
    let mut pre = [0u8; 4];
    recv.read_exact(&mut pre).await.unwrap();
    let result = framed_throughput(send, recv, size).await;
    drop(p);
    result
}

/// quinn ping-pong of 64 B over one bidirectional stream: (median, p99) in µs.
pub(crate) async fn ping_pong() -> (f64, f64) {
    let p = pair().await;
    let (mut send, client_recv) = p.client.open_bi().await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut send, b"tthr").await.unwrap();
    let (server_send, mut server_recv) = p.server.accept_bi().await.unwrap();
    let mut pre = [0u8; 4];
    server_recv.read_exact(&mut pre).await.unwrap();
    let client = tokio::io::join(client_recv, send);
    let server = tokio::io::join(server_recv, server_send);
    let result = framed_ping_pong(client, server).await;
    drop(p);
    result
}
