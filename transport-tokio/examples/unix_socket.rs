//! tether over a Unix domain socket: the server accepts from a `tokio::net::UnixListener`, the
//! client connects with [`tether_tokio::connect_with`] and a connector that opens a
//! `UnixStream`. A reconnect opens a new stream to the same path and resumes the session.
//!
//! `cargo run -p tether-tokio --example unix_socket`

#[cfg(unix)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    use bytes::Bytes;
    use tether_tokio::{Config, Server};
    use tokio::net::{UnixListener, UnixStream};

    let dir = std::env::temp_dir().join(format!("tether-unix-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("socket");
    let _ = std::fs::remove_file(&path);

    let server = Server::from_listener(UnixListener::bind(&path)?, Config::default())?;
    tokio::spawn(async move {
        while let Some(session) = server.accept().await {
            tokio::spawn(async move {
                while let Some(m) = session.recv().await {
                    let _ = session.send(m.payload).await; // echo
                }
            });
        }
    });

    let socket = path.clone();
    let connector = move || UnixStream::connect(socket.clone());
    let client = tether_tokio::connect_with(connector, Config::default()).await?;
    client.send(Bytes::from_static(b"over a unix socket")).await?;
    let echo = client.recv().await.expect("the echo");
    println!("echoed: {}", String::from_utf8_lossy(&echo.payload));
    println!("closed cleanly: {}", client.close().await.is_closed());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[cfg(not(unix))]
fn main() {
    println!("Unix domain sockets need a Unix system");
}
