//! The demonstration: a tether client and server on loopback with a fault-injecting proxy between
//! them (resets, blackholes, truncated streams on a schedule), 100,000 messages each way, then the
//! same messages the naive way (length-prefixed frames over plain TCP, write and forget) through the
//! same faults. Prints a summary table; exits non-zero if tether lost, duplicated or reordered
//! anything or did not close cleanly.
//!
//! Run: `cargo run --release -p tether-tokio --example demo [SEED]`

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use tether_testkit::proxy::{Proxy, ProxyStats};
use tether_tokio::{connect, Config, End, Server, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MESSAGES: u64 = 100_000;
const SIZE: usize = 64;
/// Each side sends a burst of this many messages every `TICK`: 100,000 take about 8 s.
const BURST: u64 = 250;
const TICK: Duration = Duration::from_millis(20);
/// The naive writer gives up on a write after this long (without it a blackhole blocks forever).
const NAIVE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug)]
enum Fault {
    Reset,
    Blackhole,
    SuffixLoss(u64),
}

fn schedule(seed: u64) -> Vec<(Duration, Fault)> {
    let mut x = seed | 1;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut t = Duration::from_millis(300);
    let mut out = Vec::new();
    while t < Duration::from_millis(7_500) {
        let fault = match rand() % 3 {
            0 => Fault::Reset,
            1 => Fault::Blackhole,
            _ => Fault::SuffixLoss(rand() % 20_000),
        };
        out.push((t, fault));
        t += Duration::from_millis(250 + rand() % 350);
    }
    out
}

/// Applies the schedule to `proxy` from `start` on, until `stop` is set.
async fn inject(proxy: Arc<Proxy>, schedule: Vec<(Duration, Fault)>, stop: Arc<AtomicBool>) {
    let start = tokio::time::Instant::now();
    for (at, fault) in schedule {
        tokio::time::sleep_until(start + at).await;
        if stop.load(Relaxed) {
            return;
        }
        match fault {
            Fault::Reset => proxy.reset_all(),
            Fault::Blackhole => proxy.blackhole_all(),
            Fault::SuffixLoss(n) => proxy.cut_all_after(n),
        };
    }
}

fn message(seq: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(SIZE);
    b.put_u64(seq);
    b.put_bytes(b'.', SIZE - 8);
    b.freeze()
}

/// What one receiving direction saw.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    delivered: AtomicU64,
    duplicates: AtomicU64,
    out_of_order: AtomicU64,
    seen: Mutex<Vec<bool>>,
    errors_seen_by_sender: AtomicU64,
}

impl Tally {
    fn new() -> Arc<Tally> {
        let t = Tally::default();
        *t.seen.lock().unwrap() = vec![false; MESSAGES as usize];
        Arc::new(t)
    }

    fn on_message(&self, expected_next: &mut u64, payload: &[u8]) {
        let seq = payload.get(..8).map_or(u64::MAX, |b| u64::from_be_bytes(b.try_into().unwrap()));
        let mut seen = self.seen.lock().unwrap();
        match seen.get_mut(seq as usize) {
            Some(true) => {
                self.duplicates.fetch_add(1, Relaxed);
            }
            Some(s) => {
                *s = true;
                self.delivered.fetch_add(1, Relaxed);
            }
            None => {
                self.out_of_order.fetch_add(1, Relaxed);
            }
        }
        if seq != *expected_next {
            self.out_of_order.fetch_add(1, Relaxed);
        }
        *expected_next = seq + 1;
    }
}

fn config() -> Config {
    Config {
        heartbeat_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(500),
        ack_timeout: Duration::from_millis(1_500),
        handshake_timeout: Duration::from_millis(1_000),
        reconnect_backoff_initial: Duration::from_millis(20),
        reconnect_backoff_max: Duration::from_millis(300),
        ..Config::default()
    }
}

fn progress(label: &str, up: &Tally, down: &Tally, start: Instant) {
    let bar = |t: &Tally| {
        let d = t.delivered.load(Relaxed);
        let filled = (d * 20 / MESSAGES) as usize;
        format!("[{}{}] {:>7}", "#".repeat(filled), " ".repeat(20 - filled), d)
    };
    print!(
        "\r{label:<8} client→server {}   server→client {}   {:>5.1} s ",
        bar(up),
        bar(down),
        start.elapsed().as_secs_f64()
    );
    let _ = std::io::stdout().flush();
}

/// One tether side: sends MESSAGES in paced bursts, receives everything, ends. The closing side
/// closes once it has sent everything and received all of the peer's messages (a close stops new
/// sends on both sides, so closing earlier would cut the peer short).
async fn tether_side(s: Session, out: Arc<Tally>, inn: Arc<Tally>, close: bool) -> End {
    let r = s.clone();
    let (all_in_tx, all_in) = tokio::sync::oneshot::channel::<()>();
    let sender = async move {
        let mut tick = tokio::time::interval(TICK);
        let mut seq = 0;
        while seq < MESSAGES {
            tick.tick().await;
            for _ in 0..BURST.min(MESSAGES - seq) {
                s.send(message(seq)).await.expect("send");
                out.sent.fetch_add(1, Relaxed);
                seq += 1;
            }
        }
        if close {
            let _ = all_in.await;
            s.close().await
        } else {
            s.ended().await
        }
    };
    let receiver = async move {
        let mut next = 0;
        let mut all_in_tx = Some(all_in_tx);
        while let Some(m) = r.recv().await {
            inn.on_message(&mut next, &m.payload);
            if next == MESSAGES {
                all_in_tx.take().map(|tx| tx.send(()));
            }
        }
    };
    tokio::join!(sender, receiver).0
}

struct Run {
    up: Arc<Tally>,
    down: Arc<Tally>,
    faults: ProxyStats,
    elapsed: Duration,
    reconnects: u64,
    ends: String,
}

async fn run_tether(schedule: Vec<(Duration, Fault)>) -> Run {
    let server = Server::bind("127.0.0.1:0", config()).await.expect("bind");
    let proxy = Arc::new(Proxy::start(server.local_addr().unwrap()).expect("proxy"));
    let (up, down) = (Tally::new(), Tally::new());
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let injector = tokio::spawn(inject(proxy.clone(), schedule, stop.clone()));
    let (u, d) = (up.clone(), down.clone());
    let srv = tokio::spawn(async move {
        let s = server.accept().await.expect("accept");
        tether_side(s, d, u, false).await
    });
    let client = connect(proxy.addr(), config()).await.expect("connect");
    let stats = client.clone();
    let (u, d) = (up.clone(), down.clone());
    let cli = tokio::spawn(tether_side(client, u, d, true));
    while !cli.is_finished() {
        progress("tether", &up, &down, start);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    progress("tether", &up, &down, start);
    println!();
    stop.store(true, Relaxed);
    let client_end = cli.await.expect("client task");
    let server_end = srv.await.expect("server task");
    injector.abort();
    let describe = |e: &End| match e {
        End::Closed => "closed cleanly".to_string(),
        End::Lost { reason, unconfirmed } => {
            format!("LOST ({reason}, {} unconfirmed)", unconfirmed.len())
        }
    };
    Run {
        up,
        down,
        faults: proxy.stats(),
        elapsed: start.elapsed(),
        reconnects: stats.stats().reconnects,
        ends: format!("client {}, server {}", describe(&client_end), describe(&server_end)),
    }
}

// ----- the naive way: 4-byte length + payload over plain TCP, write and forget -----

async fn naive_write(w: &mut tokio::net::tcp::OwnedWriteHalf, seq: u64) -> bool {
    let mut frame = BytesMut::with_capacity(4 + SIZE);
    frame.put_u32(SIZE as u32);
    frame.put_slice(&message(seq));
    matches!(tokio::time::timeout(NAIVE_WRITE_TIMEOUT, w.write_all(&frame)).await, Ok(Ok(())))
}

async fn naive_read(mut r: tokio::net::tcp::OwnedReadHalf, tally: Arc<Tally>) {
    let mut next = 0;
    let mut len = [0u8; 4];
    let mut buf = vec![0u8; SIZE];
    loop {
        if r.read_exact(&mut len).await.is_err() {
            return;
        }
        let n = u32::from_be_bytes(len) as usize;
        if n != SIZE || r.read_exact(&mut buf).await.is_err() {
            return;
        }
        tally.on_message(&mut next, &buf);
    }
}

/// Sends from `next` on over `w` in paced bursts; on a write error (or timeout) returns false and
/// leaves `next` at the message that failed (the naive application retries it on a new connection).
async fn naive_send(
    w: &mut tokio::net::tcp::OwnedWriteHalf,
    next: &AtomicU64,
    tally: &Tally,
) -> bool {
    let mut tick = tokio::time::interval(TICK);
    loop {
        tick.tick().await;
        for _ in 0..BURST {
            let seq = next.load(Relaxed);
            if seq >= MESSAGES {
                return true;
            }
            if !naive_write(w, seq).await {
                tally.errors_seen_by_sender.fetch_add(1, Relaxed);
                return false;
            }
            if seq == tally.sent.load(Relaxed) {
                tally.sent.fetch_add(1, Relaxed);
            }
            next.store(seq + 1, Relaxed);
        }
    }
}

async fn run_naive(schedule: Vec<(Duration, Fault)>) -> Run {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let proxy = Arc::new(Proxy::start(listener.local_addr().unwrap()).expect("proxy"));
    let (up, down) = (Tally::new(), Tally::new());
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let injector = tokio::spawn(inject(proxy.clone(), schedule, stop.clone()));
    // Server: every connection gets a reader, and the writer continues where the last one stopped.
    let down_next = Arc::new(AtomicU64::new(0));
    let (u, d, dn) = (up.clone(), down.clone(), down_next.clone());
    let server = tokio::spawn(async move {
        let mut tasks = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            let _ = s.set_nodelay(true);
            let (r, mut w) = s.into_split();
            tasks.push(tokio::spawn(naive_read(r, u.clone())));
            let (d, dn) = (d.clone(), dn.clone());
            tasks.push(tokio::spawn(async move {
                naive_send(&mut w, &dn, &d).await;
                // Keep the connection open until the client goes away.
                tokio::time::sleep(Duration::from_secs(3)).await;
            }));
        }
    });
    let up_next = AtomicU64::new(0);
    let mut readers = Vec::new();
    let mut reconnects = 0u64;
    {
        let client = async {
            loop {
                let Ok(s) = TcpStream::connect(proxy.addr()).await else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let _ = s.set_nodelay(true);
                let (r, mut w) = s.into_split();
                readers.push(tokio::spawn(naive_read(r, down.clone())));
                if naive_send(&mut w, &up_next, &up).await {
                    // Everything was written: let the server's side finish, then hang up.
                    while down_next.load(Relaxed) < MESSAGES
                        && start.elapsed() < Duration::from_secs(20)
                    {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    return;
                }
                reconnects += 1;
            }
        };
        let mut client = std::pin::pin!(client);
        loop {
            tokio::select! {
                _ = &mut client => break,
                _ = tokio::time::sleep(Duration::from_millis(100)) => progress("naive", &up, &down, start),
            }
        }
    }
    progress("naive", &up, &down, start);
    println!();
    stop.store(true, Relaxed);
    injector.abort();
    server.abort();
    for r in readers {
        r.abort();
    }
    Run {
        up,
        down,
        faults: proxy.stats(),
        elapsed: start.elapsed(),
        reconnects,
        ends: "no notion of an end: the sender cannot tell what arrived".into(),
    }
}

fn row(name: &str, a: impl std::fmt::Display, b: impl std::fmt::Display) {
    println!("  {name:<34}{a:>16}{b:>16}");
}

fn report(title: &str, run: &Run) {
    println!("\n{title}");
    row("", "client→server", "server→client");
    let (u, d) = (&run.up, &run.down);
    let get = |a: &AtomicU64| a.load(Relaxed);
    row("messages sent", get(&u.sent), get(&d.sent));
    row("delivered", get(&u.delivered), get(&d.delivered));
    row("duplicates", get(&u.duplicates), get(&d.duplicates));
    row("out of order", get(&u.out_of_order), get(&d.out_of_order));
    row("lost", get(&u.sent) - get(&u.delivered), get(&d.sent) - get(&d.delivered));
    row("errors the sender saw", get(&u.errors_seen_by_sender), get(&d.errors_seen_by_sender));
    let f = &run.faults;
    println!(
        "  faults injected: {} resets, {} blackholes, {} suffix losses   connections: {}",
        f.resets - f.cuts.min(f.resets),
        f.blackholes,
        f.cuts,
        f.connections
    );
    println!("  reconnects: {}   elapsed: {:.1} s", run.reconnects, run.elapsed.as_secs_f64());
    println!("  ending: {}", run.ends);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seed: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(7);
    let plan = schedule(seed);
    println!(
        "{} messages of {} B each way through a proxy injecting {} faults (seed {seed})\n",
        MESSAGES,
        SIZE,
        plan.len()
    );
    let tether = run_tether(plan.clone()).await;
    let naive = run_naive(plan).await;
    report("tether (tether-tokio over TCP)", &tether);
    report("naive (length-prefixed frames over TCP, write and forget)", &naive);

    let t = &tether;
    let ok = [&t.up, &t.down].iter().all(|x| {
        x.delivered.load(Relaxed) == MESSAGES
            && x.duplicates.load(Relaxed) == 0
            && x.out_of_order.load(Relaxed) == 0
    }) && t.ends == "client closed cleanly, server closed cleanly";
    let naive_lost: u64 = [&naive.up, &naive.down]
        .iter()
        .map(|x| x.sent.load(Relaxed) - x.delivered.load(Relaxed))
        .sum();
    let naive_dup: u64 = [&naive.up, &naive.down].iter().map(|x| x.duplicates.load(Relaxed)).sum();
    let naive_err: u64 =
        [&naive.up, &naive.down].iter().map(|x| x.errors_seen_by_sender.load(Relaxed)).sum();
    println!();
    if ok {
        println!(
            "tether: every message arrived exactly once, in order; both sides closed cleanly."
        );
    } else {
        println!("tether: CONTRACT VIOLATED");
    }
    println!(
        "naive:  {naive_lost} messages lost and {naive_dup} duplicated, while its senders saw only \
         {naive_err} write errors and never learned which messages were affected."
    );
    std::process::exit(if ok { 0 } else { 1 });
}
