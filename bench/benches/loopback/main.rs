//! Loopback benchmark: raw length-prefixed framed TCP against tether-tokio, in one process and one
//! run, on the same tokio runtimes (throughput on the multi-thread runtime with 2 workers;
//! ping-pong on it and on a current-thread runtime). Method and figures: `BENCHMARKS.md`
//! (tether-tokio section), which follows `shared/ANCHORS.md`.
//!
//! The same tether measurements then run on smol (`smol.rs`), against raw framed TCP on smol.
//!
//! Run: `cargo bench -p tether-bench --bench loopback`. `BENCH_SECS` sets the send time per
//! throughput test (default 2.5), `BENCH_ROUND_TRIPS` the timed round trips per ping-pong round
//! (default 20000), `BENCH_SIZES` the message sizes, `BENCH_ONLY=raw|tether` one side only (also
//! `quinn`, and `inline` for the round-trip floors of `core_inline.rs` and `driver_floor.rs`;
//! comma-separated) and
//! `BENCH_PING=multi|current` one ping-pong runtime only (for profiling), `BENCH_RUNTIME=tokio|smol`
//! one runtime's tables only, `BENCH_TETHER=one|many` the per-message or batched tether rows only.

mod core_inline;
mod driver_floor;
mod quic;
mod smol;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use tether_tokio::{connect, Config, Server, Session};
use tokio::io::{
    AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufStream, BufWriter,
};
use tokio::net::{TcpListener, TcpStream};

const BUF: usize = 128 * 1024;

fn secs() -> Duration {
    let s: f64 = std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.5);
    Duration::from_secs_f64(s)
}

/// `BENCH_ONLY=tether` (or `raw`, `quinn`, or a comma-separated list such as `raw,tether`) runs
/// those sides only, e.g. to profile one; ratios to a side left out then read 0.
fn runs(side: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| only.split(',').any(|s| s.trim() == side))
}

/// `BENCH_TETHER=one` (or `many`) runs only the per-message (or batched) tether rows, e.g. to
/// profile one of them.
fn tether_mode(mode: &str) -> bool {
    std::env::var("BENCH_TETHER").map_or(true, |only| only == mode)
}

/// `BENCH_SIZES=64,1024` picks the message sizes (default 64, 1024, 65536).
fn sizes() -> Vec<usize> {
    let default = "64,1024,65536".to_string();
    let list = std::env::var("BENCH_SIZES").unwrap_or(default);
    list.split(',').filter_map(|s| s.trim().parse().ok()).collect()
}

/// `BENCH_PING=multi` (or `current`) runs the ping-pong on that runtime only.
fn pings_on(runtime: &str) -> bool {
    std::env::var("BENCH_PING").map_or(true, |only| only == runtime)
}

fn round_trips() -> usize {
    std::env::var("BENCH_ROUND_TRIPS").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000)
}

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
    let (c, s) = (c.unwrap(), s.unwrap().0);
    c.set_nodelay(true).unwrap();
    s.set_nodelay(true).unwrap();
    // The 4-byte preamble.
    let (mut c, mut s) = (c, s);
    c.write_all(b"tthr").await.unwrap();
    let mut pre = [0u8; 4];
    s.read_exact(&mut pre).await.unwrap();
    (c, s)
}

/// Raw framed TCP throughput: messages sent and the time they took.
async fn raw_throughput(size: usize) -> (u64, Duration) {
    let (c, s) = tcp_pair().await;
    framed_throughput(c, s, size).await
}

/// Length-prefixed frames written to `c` and read from `s` (TCP, or a QUIC stream): messages
/// sent and the time they took.
async fn framed_throughput<W, R>(c: W, s: R, size: usize) -> (u64, Duration)
where
    W: AsyncWrite + Unpin + Send + 'static,
    R: AsyncRead + Unpin + Send + 'static,
{
    let receiver = tokio::spawn(async move {
        let mut r = BufReader::with_capacity(BUF, s);
        let mut buf = vec![0u8; size];
        let mut expected = 0u64;
        loop {
            let len = r.read_u32().await.unwrap() as usize;
            if len == 0 {
                return (expected, Instant::now());
            }
            r.read_exact(&mut buf[..len]).await.unwrap();
            let seq = u64::from_be_bytes(buf[..8].try_into().unwrap());
            assert_eq!(seq, expected);
            expected += 1;
        }
    });
    let mut w = BufWriter::with_capacity(BUF, c);
    let mut payload = vec![0u8; size];
    let check_every = (16384 / size).max(1) as u64;
    let start = Instant::now();
    let deadline = start + secs();
    let mut seq = 0u64;
    loop {
        payload[..8].copy_from_slice(&seq.to_be_bytes());
        w.write_u32(size as u32).await.unwrap();
        w.write_all(&payload).await.unwrap();
        seq += 1;
        if seq % check_every == 0 && Instant::now() >= deadline {
            break;
        }
    }
    w.write_u32(0).await.unwrap();
    w.flush().await.unwrap();
    let (received, end) = receiver.await.unwrap();
    assert_eq!(received, seq);
    (seq, end - start)
}

fn config() -> Config {
    Config::default()
}

/// Payload memory for the tether sender, kept as a high-throughput application would keep it:
/// payloads are cut from chunks, and a chunk is reused once every payload cut from it was
/// confirmed and dropped. (Allocating fresh chunks instead, glibc returned the freed ones to the
/// kernel and page-faulted them in again: a third of the 64 KiB run's time. The raw TCP sender
/// reuses one buffer, so neither side pays for the allocator.)
#[derive(Default)]
struct PayloadPool {
    current: BytesMut,
    /// Oldest first.
    retired: VecDeque<BytesMut>,
}

/// Size of each `PayloadPool` chunk (or one payload, if larger).
const POOL_CHUNK: usize = 256 * 1024;
/// Chunks kept for reuse: more than a full unconfirmed buffer (8 MiB) of them.
const POOL_RETIRED: usize = 64;

impl PayloadPool {
    /// A payload of `8 + pad.len()` bytes starting with `seq`.
    fn payload(&mut self, seq: u64, pad: &[u8]) -> Bytes {
        let size = 8 + pad.len();
        if self.current.capacity() < size {
            let chunk = POOL_CHUNK.max(size);
            let free = self.retired.iter_mut().position(|b| b.try_reclaim(chunk));
            let next = free.and_then(|i| self.retired.remove(i));
            let next = next.unwrap_or_else(|| BytesMut::with_capacity(chunk));
            self.retired.push_back(std::mem::replace(&mut self.current, next));
            if self.retired.len() > POOL_RETIRED {
                self.retired.pop_front();
            }
        }
        self.current.put_u64(seq);
        self.current.put_slice(pad);
        self.current.split().freeze()
    }
}

/// The sequence number of the message that ends a tether throughput test.
const END_MARKER: u64 = u64::MAX;

/// Messages per batch in the batched tether rows (`send_many` / `recv_many`).
const BATCH: usize = 256;

/// A connected pair: the client session and the server's session.
type Pair = (Session, Session);

/// Runs a future to completion as a task of the runtime under test.
type Spawn = fn(Pin<Box<dyn Future<Output = (u64, Instant)> + Send>>) -> JoinAny<(u64, Instant)>;

/// A spawned task's result, whatever the runtime.
type JoinAny<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// tether throughput over `pair`, client to server, per message (`send`/`recv`) or batched
/// (`send_many`/`recv_many`): messages sent and the time they took. The receiver runs as a task
/// of its own (`spawn`), as the raw TCP receiver does.
async fn tether_throughput(
    (client, session): Pair,
    spawn: Spawn,
    size: usize,
    batched: bool,
) -> (u64, Duration) {
    let receiver = spawn(Box::pin(async move {
        let mut expected = 0u64;
        let mut batch = Vec::with_capacity(BATCH * 4);
        loop {
            let limit = if batched { BATCH * 4 } else { 1 };
            if batched {
                session.recv_many(&mut batch, limit).await;
            } else {
                batch.push(session.recv().await.unwrap());
            }
            for m in batch.drain(..) {
                assert_eq!(m.payload.len(), size);
                let seq = u64::from_be_bytes(m.payload[..8].try_into().unwrap());
                if seq == END_MARKER {
                    return (expected, Instant::now());
                }
                assert_eq!(seq, expected);
                expected += 1;
            }
        }
    }));
    let pad = vec![0u8; size - 8];
    let mut pool = PayloadPool::default();
    let mut queue = VecDeque::with_capacity(BATCH);
    let check_every = ((16384 / size).max(1) as u64).next_multiple_of(BATCH as u64);
    let start = Instant::now();
    let deadline = start + secs();
    let mut seq = 0u64;
    loop {
        let payload = pool.payload(seq, &pad);
        seq += 1;
        if batched {
            queue.push_back(payload);
            if queue.len() == BATCH {
                client.send_many(&mut queue).await.unwrap();
            }
        } else {
            client.send(payload).await.unwrap();
        }
        if seq % check_every == 0 && Instant::now() >= deadline {
            break;
        }
    }
    // The end marker follows the last message on the same session. (Telling the receiver the
    // count through shared memory instead raced: a receiver that had taken every message before
    // the count was stored waited for one more, forever.)
    client.send(pool.payload(END_MARKER, &pad)).await.unwrap();
    let (received, end) = receiver.await;
    assert_eq!(received, seq);
    drop(client);
    (seq, end - start)
}

/// A tokio server and client on loopback, connected.
async fn tokio_pair() -> Pair {
    let server = Server::bind("127.0.0.1:0", config()).await.unwrap();
    let client = connect(server.local_addr().unwrap(), config()).await.unwrap();
    (client, server.accept().await.unwrap())
}

fn tokio_spawn(f: Pin<Box<dyn Future<Output = (u64, Instant)> + Send>>) -> JoinAny<(u64, Instant)> {
    let task = tokio::spawn(f);
    Box::pin(async move { task.await.unwrap() })
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e6
}

/// Raw framed TCP ping-pong of 64 B: (median, p99) in µs.
async fn raw_ping_pong() -> (f64, f64) {
    let (c, s) = tcp_pair().await;
    framed_ping_pong(c, s).await
}

/// Length-prefixed 64 B frames echoed by `s` back to `c`: (median, p99) in µs.
async fn framed_ping_pong<S>(c: S, s: S) -> (f64, f64)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    tokio::spawn(async move {
        let mut s = BufStream::with_capacity(BUF, BUF, s);
        let mut buf = [0u8; 64];
        loop {
            let Ok(len) = s.read_u32().await else { return };
            if s.read_exact(&mut buf[..len as usize]).await.is_err() {
                return;
            }
            s.write_u32(len).await.unwrap();
            s.write_all(&buf[..len as usize]).await.unwrap();
            s.flush().await.unwrap();
        }
    });
    let mut c = BufStream::with_capacity(BUF, BUF, c);
    let payload = [7u8; 64];
    let mut buf = [0u8; 64];
    let mut times = Vec::with_capacity(round_trips());
    for i in 0..1_000 + round_trips() {
        let t = Instant::now();
        c.write_u32(64).await.unwrap();
        c.write_all(&payload).await.unwrap();
        c.flush().await.unwrap();
        let len = c.read_u32().await.unwrap();
        c.read_exact(&mut buf[..len as usize]).await.unwrap();
        if i >= 1_000 {
            times.push(t.elapsed());
        }
    }
    stop.store(true, Relaxed);
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

/// tether ping-pong of 64 B over `pair`, the server side echoing in a task of its own
/// (`spawn`): (median, p99) in µs.
async fn tether_ping_pong((client, session): Pair, spawn: Spawn) -> (f64, f64) {
    // Held until the end: dropping a smol task cancels it.
    let echo = spawn(Box::pin(async move {
        while let Some(m) = session.recv().await {
            if session.send(m.payload).await.is_err() {
                break;
            }
        }
        (0, Instant::now())
    }));
    let payload = Bytes::from_static(&[7u8; 64]);
    let mut times = Vec::with_capacity(round_trips());
    for i in 0..1_000 + round_trips() {
        let t = Instant::now();
        client.send(payload.clone()).await.unwrap();
        let m = client.recv().await.unwrap();
        assert_eq!(m.payload.len(), 64);
        if i >= 1_000 {
            times.push(t.elapsed());
        }
    }
    client.abort();
    drop(echo);
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

/// Runs `test` as a spawned task, as ANCHORS' method has it ("client and server are separate
/// tokio tasks"): a future run by `block_on` itself sits on the calling thread, outside the
/// runtime's workers, and is woken by other tasks through an extra poll of the I/O driver.
async fn as_task<T: Send + 'static>(test: impl Future<Output = T> + Send + 'static) -> T {
    tokio::spawn(test).await.unwrap()
}

/// Throughput rounds: raw, tether and tether batched alternate, and the table shows each one's
/// median round (loopback throughput on this 2-vCPU VM moved by up to 2x between single runs).
fn throughput_rounds() -> usize {
    std::env::var("BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3)
}

async fn throughput_table() {
    println!(
        "## Throughput (client → server, {:.1} s of sending per test, median of {} rounds)\n",
        secs().as_secs_f64(),
        throughput_rounds()
    );
    println!("| msg size | raw TCP msgs/s | quinn msgs/s | tether msgs/s | tether / raw | tether / quinn | batched msgs/s | batched / raw | batched / quinn |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut cpu_rows = Vec::new();
    for size in sizes() {
        let (mut raw, mut one, mut many) = (Vec::new(), Vec::new(), Vec::new());
        let mut quinn = Vec::new();
        for _ in 0..throughput_rounds() {
            if runs("raw") {
                raw.push(measured(raw_throughput(size)).await);
            }
            if runs("quinn") {
                quinn.push(measured(quic::throughput(size)).await);
            }
            if runs("tether") {
                let one_test = async move {
                    tether_throughput(tokio_pair().await, tokio_spawn, size, false).await
                };
                if tether_mode("one") {
                    one.push(measured(one_test).await);
                }
                let many_test = async move {
                    tether_throughput(tokio_pair().await, tokio_spawn, size, true).await
                };
                if tether_mode("many") {
                    many.push(measured(many_test).await);
                }
            }
        }
        if std::env::var("BENCH_VERBOSE").is_ok() {
            for (name, rounds) in
                [("raw", &raw), ("quinn", &quinn), ("tether", &one), ("batched", &many)]
            {
                eprintln!("{size} B {name}: {rounds:.0?} (msgs/s, CPU ns/msg)");
            }
        }
        let rate = |xs: &[(f64, f64)]| median(xs.iter().map(|x| x.0).collect());
        let cpu = |xs: &[(f64, f64)]| median(xs.iter().map(|x| x.1).collect());
        let (raw_rate, one_rate, many_rate) = (rate(&raw), rate(&one), rate(&many));
        let quinn_rate = rate(&quinn);
        let label = if size >= 1024 { format!("{} KiB", size / 1024) } else { format!("{size} B") };
        println!(
            "| {label} | {raw_rate:.0} | {quinn_rate:.0} | {one_rate:.0} | {:.2}x | {:.2}x | {many_rate:.0} | {:.2}x | {:.2}x |",
            one_rate / raw_rate,
            one_rate / quinn_rate,
            many_rate / raw_rate,
            many_rate / quinn_rate
        );
        let (raw_cpu, one_cpu, many_cpu) = (cpu(&raw), cpu(&one), cpu(&many));
        let quinn_cpu = cpu(&quinn);
        cpu_rows.push(format!(
            "| {label} | {raw_cpu:.0} | {quinn_cpu:.0} | {one_cpu:.0} | {:.2}x | {many_cpu:.0} | {:.2}x |",
            one_cpu / raw_cpu,
            many_cpu / raw_cpu
        ));
    }
    println!(
        "\nCPU time per message, both ends and the kernel's share (process user + system time \
         over the test, median of the rounds):\n"
    );
    println!("| msg size | raw TCP ns | quinn ns | tether ns | tether / raw | batched ns | batched / raw |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for row in cpu_rows {
        println!("{row}");
    }
}

/// The median, or 0 for no rounds (one side skipped).
fn median(xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        middle(xs)
    }
}

/// Runs a throughput test as its own task: (msgs/s, process CPU nanoseconds per message).
async fn measured(test: impl Future<Output = (u64, Duration)> + Send + 'static) -> (f64, f64) {
    let cpu_before = process_cpu();
    let (msgs, elapsed) = as_task(test).await;
    let cpu = process_cpu().zip(cpu_before).map_or(f64::NAN, |(after, before)| after - before);
    (msgs as f64 / elapsed.as_secs_f64(), cpu * 1e9 / msgs as f64)
}

/// User plus system CPU time of the whole process (every thread), in seconds, from
/// `/proc/self/stat` (fields 14 and 15, in ticks of 1/100 s: `USER_HZ`, fixed at 100 by the Linux
/// ABI); `None` where that file does not exist.
fn process_cpu() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// Ping-pong rounds per runtime: raw and tether alternate, each round on fresh connections, and
/// the table shows the median of the rounds' medians (and p99s). On the multi-thread runtime one
/// round can land the two ends on the same worker and the next on different ones (13 µs against
/// 40 µs for raw TCP here), so a single round's ratio says more about placement than about tether.
const PING_ROUNDS: usize = 5;

fn middle(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Ping-pong rows on `rt`: client and server tasks may sit on different worker threads on the
/// multi-thread runtime, and share one thread on the current-thread runtime. The last three rows
/// are floors of the adapter's design: the core driven inline by each end's own task, without and
/// with a timer registered with the runtime (`core_inline`), and by a driver task of its own that
/// hands messages to and from the application's task (`driver_floor`).
fn ping_pong_rows(rt: &tokio::runtime::Runtime, label: &str) {
    let (mut raw, mut quinn, mut tether) = (vec![], vec![], vec![]);
    let (mut inline, mut inline_timer, mut driver) = (vec![], vec![], vec![]);
    for _ in 0..PING_ROUNDS {
        if runs("raw") {
            raw.push(rt.block_on(as_task(raw_ping_pong())));
        }
        if runs("quinn") {
            quinn.push(rt.block_on(as_task(quic::ping_pong())));
        }
        if runs("tether") {
            let test = async { tether_ping_pong(tokio_pair().await, tokio_spawn).await };
            tether.push(rt.block_on(as_task(test)));
        }
        if runs("inline") {
            for (with_timer, rows) in [(false, &mut inline), (true, &mut inline_timer)] {
                let test = async move {
                    let mut times = core_inline::ping_pong(round_trips(), with_timer).await;
                    times.sort();
                    (percentile(&times, 0.5), percentile(&times, 0.99))
                };
                rows.push(rt.block_on(as_task(test)));
            }
            let test = async {
                let mut times = driver_floor::ping_pong(round_trips()).await;
                times.sort();
                (percentile(&times, 0.5), percentile(&times, 0.99))
            };
            driver.push(rt.block_on(as_task(test)));
        }
    }
    // (median of the rounds' medians, median of their p99s, every round's median)
    let summary = |rounds: &[(f64, f64)]| {
        if rounds.is_empty() {
            return (0.0, 0.0, String::new());
        }
        let medians: Vec<f64> = rounds.iter().map(|r| r.0).collect();
        let all = medians.iter().map(|m| format!("{m:.1}")).collect::<Vec<_>>().join(" / ");
        (middle(medians), middle(rounds.iter().map(|r| r.1).collect()), all)
    };
    let raw_median = summary(&raw).0;
    for (name, rounds) in [
        ("raw TCP", &raw),
        ("quinn", &quinn),
        ("tether", &tether),
        ("tether-core inline (floor)", &inline),
        ("tether-core inline + a timer (floor)", &inline_timer),
        ("tether-core, a driver task per end + a timer (floor)", &driver),
    ] {
        let (median, p99, all) = summary(rounds);
        let ratio = median / raw_median;
        println!("| {name} | {label} | {median:.1} | {p99:.1} | {ratio:.2}x | {all} |");
    }
}

fn main() {
    // smol's global executor reads this when it starts (two threads, as tokio's two workers).
    if std::env::var_os("SMOL_THREADS").is_none() {
        std::env::set_var("SMOL_THREADS", "2");
    }
    if on_runtime("tokio") {
        tokio_tables();
    }
    if on_runtime("smol") {
        smol::tables(throughput_rounds());
    }
}

/// `BENCH_RUNTIME=tokio` (or `smol`) runs that runtime's tables only.
fn on_runtime(runtime: &str) -> bool {
    std::env::var("BENCH_RUNTIME").map_or(true, |only| only == runtime)
}

fn tokio_tables() {
    let multi =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    multi.block_on(throughput_table());
    println!(
        "\n## Ping-pong round trip, 64 B ({PING_ROUNDS} rounds of {} timed after 1,000 warm-up)\n",
        round_trips()
    );
    println!("| transport | runtime | median µs | p99 µs | median ratio | round medians µs |");
    println!("|---|---|---:|---:|---:|---|");
    if pings_on("multi") {
        ping_pong_rows(&multi, "multi-thread (2 workers)");
    }
    if pings_on("current") {
        let single = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        ping_pong_rows(&single, "current-thread");
    }
}
