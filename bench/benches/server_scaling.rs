//! Server scaling benchmark: aggregate messages per second through one tether server from 1, 16
//! and 256 clients, on a tokio multi-thread runtime with 1 and then 2 worker threads, in one run.
//! Every client sends 64-byte messages in batches (`send_many`) for `BENCH_SECS` (default 2),
//! then an end marker; the server application takes them in batches (`recv_many`), checks their
//! order and counts them. The rate is all messages over the time until the last session saw its
//! end marker. Method and figures: `BENCHMARKS.md` (server scaling).
//!
//! Run: `cargo bench -p tether-bench --bench server_scaling`. `BENCH_CLIENTS=1,16,256` picks the
//! client counts, `BENCH_WORKERS=1,2` the worker counts, `BENCH_ROUNDS` the rounds (default 2;
//! the median is reported).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use tether_tokio::{connect, Config, Server};

/// Message size.
const SIZE: usize = 64;
/// Messages per `send_many` batch.
const BATCH: usize = 256;
/// The sequence number of the message that ends a client's stream.
const END_MARKER: u64 = u64::MAX;

fn list(var: &str, default: &str) -> Vec<usize> {
    let list = std::env::var(var).unwrap_or_else(|_| default.to_string());
    list.split(',').filter_map(|s| s.trim().parse().ok()).collect()
}

fn secs() -> Duration {
    let s: f64 = std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    Duration::from_secs_f64(s)
}

/// Windows small enough that 256 clients' buffers stay well within memory.
fn config() -> Config {
    Config {
        max_unconfirmed_bytes: 1 << 20,
        receive_window_bytes: 1 << 20,
        max_unconfirmed_messages: 4096,
        receive_window_messages: 4096,
        max_handshakes: 1024,
        ..Config::default()
    }
}

fn payload(seq: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(SIZE);
    b.put_u64(seq);
    b.put_bytes(0, SIZE - 8);
    b.freeze()
}

/// One round: `clients` clients streaming to one server; returns aggregate messages per second.
async fn round(clients: usize) -> f64 {
    let server = Server::bind("127.0.0.1:0", config()).await.unwrap();
    let addr = server.local_addr().unwrap();
    let mut sessions = Vec::new();
    for _ in 0..clients {
        let client = connect(addr, config()).await.unwrap();
        sessions.push((client, server.accept().await.unwrap()));
    }
    let start = Instant::now();
    let deadline = start + secs();
    let mut tasks = Vec::new();
    for (client, session) in sessions {
        tasks.push(tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH * 4);
            let mut expected = 0u64;
            loop {
                session.recv_many(&mut batch, BATCH * 4).await;
                for m in batch.drain(..) {
                    let seq = u64::from_be_bytes(m.payload[..8].try_into().unwrap());
                    if seq == END_MARKER {
                        return (expected, Instant::now());
                    }
                    assert_eq!(seq, expected);
                    expected += 1;
                }
            }
        }));
        tokio::spawn(async move {
            let mut queue = VecDeque::with_capacity(BATCH);
            let mut seq = 0u64;
            while Instant::now() < deadline {
                queue.extend((seq..seq + BATCH as u64).map(payload));
                seq += BATCH as u64;
                client.send_many(&mut queue).await.unwrap();
            }
            client.send(payload(END_MARKER)).await.unwrap();
            client.close().await;
        });
    }
    let mut total = 0;
    let mut end = start;
    for t in tasks {
        let (n, at) = t.await.unwrap();
        total += n;
        end = end.max(at);
    }
    total as f64 / (end - start).as_secs_f64()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let rounds = std::env::var("BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    let workers = list("BENCH_WORKERS", "1,2");
    println!("server scaling: 64 B messages, send_many/recv_many, {:?} per round", secs());
    println!("| clients | {} | 2 workers / 1 worker |", {
        let cols: Vec<String> = workers.iter().map(|w| format!("{w} worker(s) msgs/s")).collect();
        cols.join(" | ")
    });
    for clients in list("BENCH_CLIENTS", "1,16,256") {
        let mut rates = Vec::new();
        for &w in &workers {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(w)
                .enable_all()
                .build()
                .unwrap();
            let xs: Vec<f64> = (0..rounds).map(|_| rt.block_on(round(clients))).collect();
            rates.push(median(xs));
        }
        let cells: Vec<String> = rates.iter().map(|r| format!("{:.0}", r)).collect();
        let ratio =
            match (workers.iter().position(|&w| w == 1), workers.iter().position(|&w| w == 2)) {
                (Some(a), Some(b)) => format!("{:.2}x", rates[b] / rates[a]),
                _ => "-".to_string(),
            };
        println!("| {clients} | {} | {ratio} |", cells.join(" | "));
    }
}
