//! tether over TLS (rustls) with a self-signed certificate made at start-up.
//!
//! The server implements [`Listener`] for a TCP listener plus a `TlsAcceptor`: each accepted
//! connection is wrapped in a TLS server session before tether sees it. The client's connector
//! opens TCP and runs the TLS client handshake, trusting that one certificate; every reconnect
//! runs it again, and the session resumes over the new TLS connection. (This listener runs each
//! TLS handshake inside `accept`, one at a time: a real server would bound it with a timeout or
//! run handshakes concurrently and feed the finished streams to tether.)
//!
//! `cargo run -p tether-tokio --example tls`

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName};
use tether_tokio::{configure_tcp, Config, Listener, Server};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{rustls, TlsAcceptor, TlsConnector};

/// TCP connections, each wrapped in a TLS server session.
struct TlsListener {
    tcp: TcpListener,
    tls: TlsAcceptor,
}

impl Listener for TlsListener {
    type Stream = tokio_rustls::server::TlsStream<TcpStream>;

    async fn accept(&mut self) -> io::Result<Self::Stream> {
        let (tcp, _) = self.tcp.accept().await?;
        self.tls.accept(tcp).await
    }

    fn configure(&self, stream: &Self::Stream, config: &Config) {
        configure_tcp(stream.get_ref().0, config); // the TCP options under the TLS session
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (server_tls, client_tls) = self_signed("localhost")?;

    let tcp = TcpListener::bind("127.0.0.1:0").await?;
    let addr = tcp.local_addr()?;
    let listener = TlsListener { tcp, tls: TlsAcceptor::from(server_tls) };
    let server = Server::from_listener(listener, Config::default())?;
    tokio::spawn(async move {
        while let Some(session) = server.accept().await {
            tokio::spawn(async move {
                while let Some(m) = session.recv().await {
                    let _ = session.send(m.payload).await; // echo
                }
            });
        }
    });

    let connector = move || {
        let tls = TlsConnector::from(client_tls.clone());
        async move {
            let tcp = TcpStream::connect(addr).await?;
            tls.connect(ServerName::try_from("localhost").expect("a valid name"), tcp).await
        }
    };
    let client = tether_tokio::connect_with(connector, Config::default()).await?;
    client.send(Bytes::from_static(b"over TLS")).await?;
    let echo = client.recv().await.expect("the echo");
    println!("echoed: {}", String::from_utf8_lossy(&echo.payload));
    println!("closed cleanly: {}", client.close().await.is_closed());
    Ok(())
}

/// A server config with a fresh self-signed certificate for `name`, and a client config that
/// trusts exactly that certificate. Both use rustls' ring provider.
fn self_signed(
    name: &str,
) -> Result<(Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>), Box<dyn std::error::Error>> {
    let made = rcgen::generate_simple_self_signed(vec![name.to_owned()])?;
    let cert = CertificateDer::from(made.cert);
    let key = PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key.into())?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert)?;
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((Arc::new(server), Arc::new(client)))
}
