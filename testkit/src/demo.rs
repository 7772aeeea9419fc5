//! The demonstration, written once for every runtime binding: a tether client and server on
//! loopback with a fault-injecting [`Proxy`] between them (resets, blackholes, truncated streams
//! on a schedule), 100,000 messages each way, then the same messages the naive way
//! (length-prefixed frames over plain TCP, write and forget) through the same faults. Prints a
//! report; [`run`] returns whether tether lost, duplicated or reordered nothing and closed cleanly.
//!
//! The tether half runs on the binding through a [`Harness`]; the naive half needs no runtime at
//! all (std threads and blocking sockets). A binding's `examples/demo.rs` is then a `Harness`
//! impl and
//!
//! ```ignore
//! let ok = tether_testkit::demo::run(Tokio, "tether-tokio", demo::seed_from_args(), |f| rt.block_on(f));
//! std::process::exit(if ok { 0 } else { 1 });
//! ```

use std::io::{ErrorKind, IsTerminal as _, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tether_async::{Config, End, Session};

use crate::proxy::{Proxy, ProxyStats};
use crate::util::{join, oneshot};
use crate::{BoxFuture, Harness};

const MESSAGES: u64 = 100_000;
const SIZE: usize = 64;
/// Each side sends a burst of this many messages every `TICK`: 100,000 take about 8 s.
const BURST: u64 = 250;
const TICK: Duration = Duration::from_millis(20);
/// The naive writer gives up on a write after this long (without it a blackhole blocks forever).
const NAIVE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the naive threads blocked in `accept`, `read` or a sleep look at their stop flag.
const POLL: Duration = Duration::from_millis(20);

/// The seed given as the first command-line argument, or 7.
pub fn seed_from_args() -> u64 {
    std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(7)
}

/// Runs the demonstration with the fault schedule of `seed` and prints its report.
///
/// `binding` names the runtime binding in the report (e.g. `"tether-tokio"`); `block_on` runs the
/// tether half (a future of `h`'s runtime) to completion and returns its output. Returns `true`
/// if tether delivered every message exactly once, in order, and both sides closed cleanly.
pub fn run<H: Harness>(
    h: H,
    binding: &str,
    seed: u64,
    block_on: impl FnOnce(BoxFuture<'static, Run>) -> Run,
) -> bool {
    let plan = schedule(seed);
    println!(
        "{MESSAGES} messages of {SIZE} B each way through a proxy injecting {} faults (seed {seed})\n",
        plan.len()
    );
    let tether = block_on(Box::pin(run_tether(h, plan.clone())));
    let naive = run_naive(plan);
    report(&format!("tether ({binding} over TCP)"), &tether);
    report("naive (length-prefixed frames over TCP, write and forget)", &naive);
    summary(&tether, &naive)
}

/// What one half of the demonstration (tether or naive) saw; produced by the tether half inside
/// the runtime and handed back through [`run`]'s `block_on`.
#[derive(Debug)]
pub struct Run {
    up: Arc<Tally>,
    down: Arc<Tally>,
    faults: ProxyStats,
    elapsed: Duration,
    reconnects: u64,
    ends: String,
}

// ----- the fault schedule -----

#[derive(Clone, Copy, Debug)]
enum Fault {
    Reset,
    Blackhole,
    SuffixLoss(u64),
}

/// A fault every 250–600 ms from 0.3 s to 7.5 s, drawn from `seed` (xorshift).
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

/// Sleeps until `deadline` in short steps; `false` (early) once `stop` is set.
fn sleep_until(deadline: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Relaxed) {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        thread::sleep(left.min(POLL));
    }
}

/// A thread applying `schedule` to `proxy` from now on, until `stop` is set.
fn inject(
    proxy: Arc<Proxy>,
    schedule: Vec<(Duration, Fault)>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    let start = Instant::now();
    thread::spawn(move || {
        for (at, fault) in schedule {
            if !sleep_until(start + at, &stop) {
                return;
            }
            match fault {
                Fault::Reset => proxy.reset_all(),
                Fault::Blackhole => proxy.blackhole_all(),
                Fault::SuffixLoss(n) => proxy.cut_all_after(n),
            };
        }
    })
}

// ----- messages, pacing, counting -----

/// Message `seq`: its number (8 bytes, big-endian) padded to `SIZE`.
fn message(seq: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(SIZE);
    b.put_u64(seq);
    b.put_bytes(b'.', SIZE - 8);
    b.freeze()
}

/// A tick every `TICK` from its creation on, the first at once; late ticks are caught up at
/// once (like tokio's `interval` with its default `MissedTickBehavior::Burst`).
struct Pacer {
    start: Instant,
    ticks: u32,
}

impl Pacer {
    fn new() -> Pacer {
        Pacer { start: Instant::now(), ticks: 0 }
    }

    /// How long to wait for the next tick (zero if it is due).
    fn next(&mut self) -> Duration {
        let due = self.start + TICK * self.ticks;
        self.ticks += 1;
        due.saturating_duration_since(Instant::now())
    }
}

/// What one receiving direction saw.
#[derive(Debug, Default)]
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

    /// Counts one received message; `expected_next` is the receiver's running position.
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
        *expected_next = seq.wrapping_add(1);
    }

    fn get(&self, counter: impl Fn(&Tally) -> &AtomicU64) -> u64 {
        counter(self).load(Relaxed)
    }

    fn lost(&self) -> u64 {
        self.get(|t| &t.sent) - self.get(|t| &t.delivered)
    }
}

/// How often the plain (non-terminal) progress prints a line.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// One half's progress on stdout: on a terminal an indicatif bar of all messages delivered, with
/// each direction's count as its message; otherwise a plain line every [`PLAIN_EVERY`] and one
/// at the end (no escape codes in a log).
struct Progress {
    /// The bar (hidden when stdout is not a terminal); also the elapsed-time clock.
    bar: ProgressBar,
    /// Shown before the counts: `tether` or `naive`.
    label: &'static str,
    /// When the last plain line was printed (`None` on a terminal: the bar draws itself).
    plain: Option<Instant>,
}

impl Progress {
    /// A progress display for the half named `label`, started now.
    fn new(label: &'static str) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(2 * MESSAGES), ProgressDrawTarget::hidden());
        let style = ProgressStyle::with_template("{prefix:<8}[{bar:16}] {msg}  {elapsed}")
            .expect("valid template")
            .progress_chars("#>-");
        bar.set_style(style);
        bar.set_prefix(label);
        bar.set_message(counts(0, 0));
        let on_terminal = std::io::stdout().is_terminal();
        if on_terminal {
            // Only now, so that the first frame drawn is complete.
            bar.set_draw_target(ProgressDrawTarget::stdout());
        }
        Progress { bar, label, plain: (!on_terminal).then(Instant::now) }
    }

    /// Shows the delivered counts of `up` (client to server) and `down`.
    fn update(&mut self, up: &Tally, down: &Tally) {
        let (u, d) = (up.get(|t| &t.delivered), down.get(|t| &t.delivered));
        self.bar.set_position(u + d);
        match &mut self.plain {
            None => self.bar.set_message(counts(u, d)),
            Some(last) if last.elapsed() >= PLAIN_EVERY => {
                *last = Instant::now();
                self.line(u, d);
            }
            Some(_) => {}
        }
    }

    /// The half is over: leaves the bar where it stopped (not full if messages were lost), or
    /// prints a last plain line.
    fn finish(self, up: &Tally, down: &Tally) {
        let (u, d) = (up.get(|t| &t.delivered), down.get(|t| &t.delivered));
        self.bar.set_position(u + d);
        if self.plain.is_some() {
            self.line(u, d);
        } else {
            self.bar.abandon_with_message(counts(u, d));
            // The bar's line is padded to the terminal's width: this ends it.
            println!();
        }
    }

    /// A plain progress line.
    fn line(&self, up: u64, down: u64) {
        let secs = self.bar.elapsed().as_secs_f64();
        println!("{:<8} {}  {secs:.1} s", self.label, counts(up, down));
    }
}

/// Each direction's delivered count, for the progress display.
fn counts(up: u64, down: u64) -> String {
    format!("client→server {up:>6}   server→client {down:>6}")
}

// ----- tether, on the binding's runtime -----

/// Short timers, so that faults are detected and healed quickly.
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

/// Sends MESSAGES over `s` in paced bursts, then closes (once `all_in` says the peer's messages
/// all arrived: a close stops new sends on both sides) or waits for the peer to.
async fn tether_send<H: Harness>(
    h: H,
    s: Session,
    out: Arc<Tally>,
    all_in: oneshot::Receiver<()>,
    close: bool,
) -> End {
    let mut pacer = Pacer::new();
    let mut seq = 0;
    while seq < MESSAGES {
        let wait = pacer.next();
        if !wait.is_zero() {
            h.sleep(wait).await;
        }
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
}

/// Receives everything from `r` into `inn`; signals `all_in` once all MESSAGES arrived.
async fn tether_recv(r: Session, inn: Arc<Tally>, all_in: oneshot::Sender<()>) {
    let mut next = 0;
    let mut all_in = Some(all_in);
    while let Some(m) = r.recv().await {
        inn.on_message(&mut next, &m.payload);
        if next == MESSAGES {
            if let Some(tx) = all_in.take() {
                tx.send(());
            }
        }
    }
}

/// One tether side: sends MESSAGES in paced bursts, receives everything, ends (the closing side
/// closes once it has sent everything and received all of the peer's messages).
async fn tether_side<H: Harness>(
    h: H,
    s: Session,
    out: Arc<Tally>,
    inn: Arc<Tally>,
    close: bool,
) -> End {
    let (tx, rx) = oneshot::channel();
    join(tether_send(h, s.clone(), out, rx, close), tether_recv(s, inn, tx)).await.0
}

/// Shows the progress every 100 ms until `done`, then ends it.
async fn watch<H: Harness>(
    h: &H,
    label: &'static str,
    up: &Tally,
    down: &Tally,
    done: &AtomicBool,
) {
    let mut progress = Progress::new(label);
    while !done.load(Relaxed) {
        progress.update(up, down);
        h.sleep(Duration::from_millis(100)).await;
    }
    progress.finish(up, down);
}

/// How a session ended, for the report.
fn describe(e: &End) -> String {
    match e {
        End::Closed => "closed cleanly".to_string(),
        End::Lost { reason, unconfirmed } => {
            format!("LOST ({reason}, {} unconfirmed)", unconfirmed.len())
        }
    }
}

/// The tether half: a server and a client of the binding through the proxy under `schedule`.
async fn run_tether<H: Harness>(h: H, schedule: Vec<(Duration, Fault)>) -> Run {
    let server = h.bind(config().into()).await.expect("bind");
    let proxy = Arc::new(Proxy::start(server.local_addr().expect("local_addr")).expect("proxy"));
    let (up, down) = (Tally::new(), Tally::new());
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let injector = inject(proxy.clone(), schedule, stop.clone());
    let (u, d, hs) = (up.clone(), down.clone(), h.clone());
    let srv = h.spawn(async move {
        let s = server.accept().await.expect("accept");
        tether_side(hs, s, d, u, false).await
    });
    let client = h.connect(proxy.addr(), config().into()).await.expect("connect");
    let stats = client.clone();
    let done = Arc::new(AtomicBool::new(false));
    let (u, d, hc, dn) = (up.clone(), down.clone(), h.clone(), done.clone());
    let cli = h.spawn(async move {
        let end = tether_side(hc, client, u, d, true).await;
        dn.store(true, Relaxed);
        end
    });
    watch(&h, "tether", &up, &down, &done).await;
    stop.store(true, Relaxed);
    let (client_end, server_end) = (cli.await, srv.await);
    let _ = injector.join();
    Run {
        up,
        down,
        faults: proxy.stats(),
        elapsed: start.elapsed(),
        reconnects: stats.stats().reconnects,
        ends: format!("client {}, server {}", describe(&client_end), describe(&server_end)),
    }
}

// ----- the naive way: 4-byte length + payload over plain TCP, write and forget, on threads -----

/// Writes message `seq` as one frame; false on an error or after `NAIVE_WRITE_TIMEOUT`.
fn naive_write(w: &mut TcpStream, seq: u64) -> bool {
    let mut frame = BytesMut::with_capacity(4 + SIZE);
    frame.put_u32(SIZE as u32);
    frame.put_slice(&message(seq));
    w.write_all(&frame).is_ok()
}

/// Fills `buf` from `r` (whose reads time out every `POLL`) until done, EOF, an error or `stop`.
fn read_full(r: &mut TcpStream, buf: &mut [u8], stop: &AtomicBool) -> bool {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => return false,
            Ok(n) => got += n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                if stop.load(Relaxed) {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}

/// A thread counting the frames arriving on `r` into `tally`, until EOF, an error or `stop`.
fn naive_reader(mut r: TcpStream, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    let _ = r.set_read_timeout(Some(POLL));
    thread::spawn(move || {
        let mut next = 0;
        let (mut len, mut buf) = ([0u8; 4], vec![0u8; SIZE]);
        while read_full(&mut r, &mut len, &stop)
            && u32::from_be_bytes(len) as usize == SIZE
            && read_full(&mut r, &mut buf, &stop)
        {
            tally.on_message(&mut next, &buf);
        }
    });
}

/// Sends from `next` on over `w` in paced bursts; on a write error (or timeout) returns false and
/// leaves `next` at the message that failed (the naive application retries it on a new connection).
fn naive_send(w: &mut TcpStream, next: &AtomicU64, tally: &Tally) -> bool {
    let mut pacer = Pacer::new();
    loop {
        thread::sleep(pacer.next());
        for _ in 0..BURST {
            let seq = next.load(Relaxed);
            if seq >= MESSAGES {
                return true;
            }
            if !naive_write(w, seq) {
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

/// Makes `s` a naive connection: no Nagle, blocking writes that time out.
fn naive_socket(s: &TcpStream) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_nodelay(true);
    let _ = s.set_write_timeout(Some(NAIVE_WRITE_TIMEOUT));
}

/// What the naive threads share: the two directions' tallies, where each sender is, the stop flag.
#[derive(Clone)]
struct Naive {
    up: Arc<Tally>,
    down: Arc<Tally>,
    up_next: Arc<AtomicU64>,
    down_next: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Naive {
    /// One server connection: a reader, and a writer continuing where the last one stopped, which
    /// then keeps the connection open for a while (until the client goes away).
    fn serve(&self, s: TcpStream) {
        naive_socket(&s);
        let Ok(r) = s.try_clone() else { return };
        naive_reader(r, self.up.clone(), self.stop.clone());
        let n = self.clone();
        thread::spawn(move || {
            let mut w = s;
            naive_send(&mut w, &n.down_next, &n.down);
            sleep_until(Instant::now() + Duration::from_secs(3), &n.stop);
            let _ = w.shutdown(Shutdown::Write);
        });
    }

    /// The server thread: accepts (polling, so that it can stop) and serves every connection.
    fn server(&self, listener: TcpListener) -> JoinHandle<()> {
        let n = self.clone();
        listener.set_nonblocking(true).expect("nonblocking listener");
        thread::spawn(move || {
            while !n.stop.load(Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => n.serve(s),
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        })
    }

    /// The client: connects, sends, and on a write error reconnects and resumes from the message
    /// that failed; once all is written, waits for the server's side, then hangs up. Returns the
    /// number of reconnects.
    fn client(&self, addr: SocketAddr, start: Instant) -> u64 {
        let mut reconnects = 0;
        loop {
            let Ok(mut s) = TcpStream::connect_timeout(&addr, NAIVE_WRITE_TIMEOUT) else {
                thread::sleep(Duration::from_millis(20));
                continue;
            };
            naive_socket(&s);
            if let Ok(r) = s.try_clone() {
                naive_reader(r, self.down.clone(), self.stop.clone());
            }
            if naive_send(&mut s, &self.up_next, &self.up) {
                while self.down_next.load(Relaxed) < MESSAGES
                    && start.elapsed() < Duration::from_secs(20)
                {
                    thread::sleep(Duration::from_millis(20));
                }
                thread::sleep(Duration::from_millis(300));
                return reconnects;
            }
            let _ = s.shutdown(Shutdown::Write);
            reconnects += 1;
        }
    }
}

/// The naive half: a server and a client on threads, through a proxy under `schedule`.
fn run_naive(schedule: Vec<(Duration, Fault)>) -> Run {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let proxy = Arc::new(Proxy::start(listener.local_addr().expect("local_addr")).expect("proxy"));
    let n = Naive {
        up: Tally::new(),
        down: Tally::new(),
        up_next: Arc::default(),
        down_next: Arc::default(),
        stop: Arc::default(),
    };
    let start = Instant::now();
    let injector = inject(proxy.clone(), schedule, n.stop.clone());
    let server = n.server(listener);
    let (nc, addr) = (n.clone(), proxy.addr());
    let client = thread::spawn(move || nc.client(addr, start));
    let mut progress = Progress::new("naive");
    while !client.is_finished() {
        progress.update(&n.up, &n.down);
        thread::sleep(Duration::from_millis(100));
    }
    progress.finish(&n.up, &n.down);
    let reconnects = client.join().expect("naive client");
    n.stop.store(true, Relaxed);
    let _ = (injector.join(), server.join());
    Run {
        up: n.up,
        down: n.down,
        faults: proxy.stats(),
        elapsed: start.elapsed(),
        reconnects,
        ends: "no notion of an end: the sender cannot tell what arrived".into(),
    }
}

// ----- the report -----

/// One row of the report's table.
fn row(name: &str, a: impl std::fmt::Display, b: impl std::fmt::Display) {
    println!("  {name:<34}{a:>16}{b:>16}");
}

/// The report of one half.
fn report(title: &str, run: &Run) {
    println!("\n{title}");
    row("", "client→server", "server→client");
    let (u, d) = (&run.up, &run.down);
    row("messages sent", u.get(|t| &t.sent), d.get(|t| &t.sent));
    row("delivered", u.get(|t| &t.delivered), d.get(|t| &t.delivered));
    row("duplicates", u.get(|t| &t.duplicates), d.get(|t| &t.duplicates));
    row("out of order", u.get(|t| &t.out_of_order), d.get(|t| &t.out_of_order));
    row("lost", u.lost(), d.lost());
    let errors = |t: &Tally| t.get(|t| &t.errors_seen_by_sender);
    row("errors the sender saw", errors(u), errors(d));
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

/// Whether tether kept its contract: everything delivered once, in order, both sides closed.
fn tether_ok(t: &Run) -> bool {
    [&t.up, &t.down].iter().all(|x| {
        x.get(|t| &t.delivered) == MESSAGES
            && x.get(|t| &t.duplicates) == 0
            && x.get(|t| &t.out_of_order) == 0
    }) && t.ends == "client closed cleanly, server closed cleanly"
}

/// Prints the two summary lines; returns [`tether_ok`].
fn summary(tether: &Run, naive: &Run) -> bool {
    let ok = tether_ok(tether);
    let sum = |f: fn(&Tally) -> u64| f(&naive.up) + f(&naive.down);
    let naive_lost = sum(Tally::lost);
    let naive_dup = sum(|t| t.get(|t| &t.duplicates));
    let naive_err = sum(|t| t.get(|t| &t.errors_seen_by_sender));
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
    ok
}
