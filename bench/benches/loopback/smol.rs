//! The loopback benchmark on smol: raw framed TCP on smol (async-net streams through futures-lite's
//! 128 KiB `BufReader`/`BufWriter`, as the tokio rows use tokio's) against tether-smol, with the
//! tether measurements shared with the tokio rows. Tasks run on smol's global executor with two
//! threads (`SMOL_THREADS=2`, set before smol starts), the client in `smol::block_on`.

use std::time::{Duration, Instant};

use futures_lite::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use smol::net::{TcpListener, TcpStream};

use super::{
    config, median, percentile, process_cpu, round_trips, runs, secs, sizes, tether_ping_pong,
    tether_throughput, JoinAny, Pair, BUF, PING_ROUNDS,
};

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (c, s) = futures_lite::future::zip(TcpStream::connect(addr), l.accept()).await;
    let (mut c, s) = (c.unwrap(), s.unwrap().0);
    c.set_nodelay(true).unwrap();
    s.set_nodelay(true).unwrap();
    // The 4-byte preamble.
    let mut s = s;
    c.write_all(b"tthr").await.unwrap();
    let mut pre = [0u8; 4];
    s.read_exact(&mut pre).await.unwrap();
    (c, s)
}

/// Raw framed TCP throughput on smol: messages sent and the time they took.
async fn raw_throughput(size: usize) -> (u64, Duration) {
    let (c, s) = tcp_pair().await;
    let receiver = smol::spawn(async move {
        let mut r = BufReader::with_capacity(super::BUF, s);
        let mut buf = vec![0u8; size];
        let mut expected = 0u64;
        loop {
            let mut len = [0u8; 4];
            r.read_exact(&mut len).await.unwrap();
            let len = u32::from_be_bytes(len) as usize;
            if len == 0 {
                return (expected, Instant::now());
            }
            r.read_exact(&mut buf[..len]).await.unwrap();
            assert_eq!(u64::from_be_bytes(buf[..8].try_into().unwrap()), expected);
            expected += 1;
        }
    });
    let mut w = BufWriter::with_capacity(BUF, c);
    let mut frame = vec![0u8; 4 + size];
    frame[..4].copy_from_slice(&(size as u32).to_be_bytes());
    let check_every = (16384 / size).max(1) as u64;
    let start = Instant::now();
    let deadline = start + secs();
    let mut seq = 0u64;
    loop {
        frame[4..12].copy_from_slice(&seq.to_be_bytes());
        w.write_all(&frame).await.unwrap();
        seq += 1;
        if seq % check_every == 0 && Instant::now() >= deadline {
            break;
        }
    }
    w.write_all(&0u32.to_be_bytes()).await.unwrap();
    w.flush().await.unwrap();
    let (received, end) = receiver.await;
    assert_eq!(received, seq);
    (seq, end - start)
}

/// Raw framed TCP ping-pong of 64 B on smol: (median, p99) in µs.
async fn raw_ping_pong() -> (f64, f64) {
    let (c, s) = tcp_pair().await;
    smol::spawn(async move {
        let (r, w) = futures_lite::io::split(s);
        let (mut r, mut w) = (BufReader::with_capacity(BUF, r), BufWriter::with_capacity(BUF, w));
        let mut frame = [0u8; 68];
        while r.read_exact(&mut frame).await.is_ok() {
            w.write_all(&frame).await.unwrap();
            w.flush().await.unwrap();
        }
    })
    .detach();
    let (r, w) = futures_lite::io::split(c);
    let (mut r, mut w) = (BufReader::with_capacity(BUF, r), BufWriter::with_capacity(BUF, w));
    let mut frame = [7u8; 68];
    frame[..4].copy_from_slice(&64u32.to_be_bytes());
    let mut times = Vec::with_capacity(round_trips());
    for i in 0..1_000 + round_trips() {
        let t = Instant::now();
        w.write_all(&frame).await.unwrap();
        w.flush().await.unwrap();
        r.read_exact(&mut frame).await.unwrap();
        if i >= 1_000 {
            times.push(t.elapsed());
        }
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

async fn smol_pair() -> Pair {
    let server = tether_smol::Server::bind("127.0.0.1:0", config()).await.unwrap();
    let client = tether_smol::connect(server.local_addr().unwrap(), config()).await.unwrap();
    (client, server.accept().await.unwrap())
}

fn smol_spawn(
    f: std::pin::Pin<Box<dyn std::future::Future<Output = (u64, Instant)> + Send>>,
) -> JoinAny<(u64, Instant)> {
    Box::pin(smol::spawn(f))
}

/// Runs a throughput test as a task: (msgs/s, process CPU nanoseconds per message).
fn measured(
    test: impl std::future::Future<Output = (u64, Duration)> + Send + 'static,
) -> (f64, f64) {
    let cpu_before = process_cpu();
    let (msgs, elapsed) = smol::block_on(smol::spawn(test));
    let cpu = process_cpu().zip(cpu_before).map_or(f64::NAN, |(after, before)| after - before);
    (msgs as f64 / elapsed.as_secs_f64(), cpu * 1e9 / msgs as f64)
}

/// The smol tables: throughput and ping-pong, raw TCP on smol against tether-smol.
pub(crate) fn tables(rounds: usize) {
    println!("\n## smol: throughput (client → server, median of {rounds} rounds)\n");
    println!("| msg size | raw TCP msgs/s | tether msgs/s | tether / raw | batched msgs/s | batched / raw | raw / tether / batched CPU ns |");
    println!("|---:|---:|---:|---:|---:|---:|---|");
    for size in sizes() {
        let (mut raw, mut one, mut many) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            if runs("raw") {
                raw.push(measured(raw_throughput(size)));
            }
            if runs("tether") {
                one.push(measured(async move {
                    tether_throughput(smol_pair().await, smol_spawn, size, false).await
                }));
                many.push(measured(async move {
                    tether_throughput(smol_pair().await, smol_spawn, size, true).await
                }));
            }
        }
        let rate = |xs: &[(f64, f64)]| median(xs.iter().map(|x| x.0).collect());
        let cpu = |xs: &[(f64, f64)]| median(xs.iter().map(|x| x.1).collect());
        let (r, o, m) = (rate(&raw), rate(&one), rate(&many));
        let label = if size >= 1024 { format!("{} KiB", size / 1024) } else { format!("{size} B") };
        println!(
            "| {label} | {r:.0} | {o:.0} | {:.2}x | {m:.0} | {:.2}x | {:.0} / {:.0} / {:.0} |",
            o / r,
            m / r,
            cpu(&raw),
            cpu(&one),
            cpu(&many)
        );
    }
    println!("\n## smol: ping-pong round trip, 64 B ({PING_ROUNDS} rounds)\n");
    println!("| transport | median µs | p99 µs | median ratio |");
    println!("|---|---:|---:|---:|");
    let (mut raw, mut tether) = (Vec::new(), Vec::new());
    for _ in 0..PING_ROUNDS {
        if runs("raw") {
            raw.push(smol::block_on(smol::spawn(raw_ping_pong())));
        }
        if runs("tether") {
            let test = async { tether_ping_pong(smol_pair().await, smol_spawn).await };
            tether.push(smol::block_on(smol::spawn(test)));
        }
    }
    let summary = |xs: &[(f64, f64)]| {
        (median(xs.iter().map(|x| x.0).collect()), median(xs.iter().map(|x| x.1).collect()))
    };
    let ((rm, rp), (tm, tp)) = (summary(&raw), summary(&tether));
    println!("| raw TCP (smol) | {rm:.1} | {rp:.1} | 1.00x |");
    println!("| tether-smol | {tm:.1} | {tp:.1} | {:.2}x |", tm / rm);
}
