//! The baseline: length-prefixed frames over plain TCP, write and forget, as naive code does it.
//!
//! The client counts a message as sent when `write_all` returned `Ok`. On an error it reconnects
//! and retries that same message (the most a naive writer can do: it knows only about the write
//! that failed, not about the ones before it that the kernel took and then lost).

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::common::{frame, parse, payload, MSG_SIZE};
use crate::emit;
use crate::roles::{exit_on_stdin_eof, io_kind, listen, pace, report_done, run_burst, Workload};

/// Serves plain connections on `port`: records every whole frame (`R <conn> <id>`), and how each
/// connection ended (`bye` after the client's end marker, `abnormal` otherwise).
pub async fn server(port: u16, backlog: i32, pause: Duration) -> Result<(), String> {
    let listener = listen(port, backlog)?;
    exit_on_stdin_eof(Arc::new(AtomicUsize::new(0)));
    emit!("ready");
    tokio::time::sleep(pause).await;
    let mut conn = 0u64;
    loop {
        match listener.accept().await {
            Ok((s, _)) => {
                conn += 1;
                tokio::spawn(read_conn(s, conn));
            }
            Err(e) => {
                emit!("accept-error {}", io_kind(&e));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn read_conn(s: TcpStream, conn: u64) {
    let mut r = BufReader::new(s);
    let mut buf = vec![0u8; MSG_SIZE];
    let why = loop {
        let mut len = [0u8; 4];
        if let Err(e) = r.read_exact(&mut len).await {
            break io_kind(&e);
        }
        let n = u32::from_be_bytes(len) as usize;
        if n == 0 {
            emit!("bye {conn}");
            return;
        }
        if n != MSG_SIZE {
            break format!("bad-length-{n}");
        }
        if let Err(e) = r.read_exact(&mut buf).await {
            break io_kind(&e);
        }
        match parse(&buf) {
            Some(id) => emit!("R {conn} {id}"),
            None => emit!("corrupt {conn}"),
        }
    };
    emit!("abnormal {conn} {why}");
}

/// Sends the workload over one connection at a time, reconnecting after a write error.
pub async fn client(addr: SocketAddr, w: Workload) {
    let start = Instant::now();
    let mut written = vec![false; w.count as usize];
    let mut next = 0u64;
    let mut conn: Option<TcpStream> = None;
    let work = async {
        while next < w.count {
            pace(start, next, &w).await;
            let stream = match conn.as_mut() {
                Some(s) => s,
                None => conn.insert(connect_retrying(addr).await),
            };
            match stream.write_all(&frame(&payload(next))).await {
                Ok(()) => {
                    written[next as usize] = true;
                    next += 1;
                }
                Err(e) => {
                    emit!("err write {}", io_kind(&e));
                    conn = None;
                }
            }
        }
        if let Some(mut s) = conn.take() {
            // The end marker and a FIN: the server tells a finished client from a vanished one.
            let _ = s.write_all(&frame(&[])).await;
            let _ = s.shutdown().await;
        }
    };
    let finished = tokio::time::timeout_at(start + w.deadline, work).await.is_ok();
    report_done(finished, &written);
}

async fn connect_retrying(addr: SocketAddr) -> TcpStream {
    loop {
        match tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                emit!("connected");
                return s;
            }
            Ok(Err(e)) => emit!("err connect {}", io_kind(&e)),
            Err(_) => emit!("err connect timeout"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The accept-overflow workload: `count` short connections at once, each connect, write one
/// message and the end marker, close. A failed step is retried on a new connection.
pub async fn burst(addr: SocketAddr, w: Workload) {
    run_burst(w, |id, done| short_conn(addr, id, done)).await;
}

async fn short_conn(addr: SocketAddr, id: u64, done: Arc<Mutex<Vec<bool>>>) {
    loop {
        match one_shot(addr, id).await {
            Ok(()) => {
                if let Ok(mut d) = done.lock() {
                    d[id as usize] = true;
                }
                emit!("ok {id}");
                return;
            }
            Err((stage, e)) => {
                emit!("err {stage} {} {id}", io_kind(&e));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn one_shot(addr: SocketAddr, id: u64) -> Result<(), (&'static str, std::io::Error)> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| ("connect", e))?;
    let mut bytes = frame(&payload(id));
    bytes.extend_from_slice(&frame(&[]));
    s.write_all(&bytes).await.map_err(|e| ("write", e))?;
    // close(): the naive client is done; dropping the socket is the close.
    drop(s);
    Ok(())
}
