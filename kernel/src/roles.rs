//! The roles run inside a namespace (`ip netns exec NS tether-kernel <role> ...`): a server or a
//! client, plain or tether. Each writes timestamped lines on stdout for the orchestrator.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::common::{ranges, Args};
use crate::emit;
use crate::{plain, tether};

/// What a client sends: `count` messages spread over `run`, giving up at `deadline`.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// Messages to send (ids `0..count`).
    pub count: u64,
    /// The sending is paced to last this long.
    pub run: Duration,
    /// The client stops and reports at this time after its start, finished or not.
    pub deadline: Duration,
}

/// The client's last line: whether it finished, which messages it got through and which not.
pub fn report_done(finished: bool, done: &[bool]) {
    let ids = |want: bool| {
        done.iter().enumerate().filter(move |(_, &d)| d == want).map(|(i, _)| i as u64)
    };
    emit!("done finished={finished} sent={} unsent={}", ranges(ids(true)), ranges(ids(false)));
}

/// The accept-overflow workload in either mode: `w.count` short connections at once, each run by
/// `one(id, done)`, which marks `done[id]` once its message got through; reports at the deadline.
pub async fn run_burst<F, Fut>(w: Workload, one: F)
where
    F: Fn(u64, Arc<Mutex<Vec<bool>>>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let start = Instant::now();
    let done = Arc::new(Mutex::new(vec![false; w.count as usize]));
    let tasks: Vec<_> = (0..w.count).map(|id| tokio::spawn(one(id, done.clone()))).collect();
    let all = async {
        for t in tasks {
            let _ = t.await;
        }
    };
    let finished = tokio::time::timeout_at(start + w.deadline, all).await.is_ok();
    let done = done.lock().map(|d| d.clone()).unwrap_or_default();
    report_done(finished, &done);
}

/// Runs the role named by `args[0]`: `server`, `client` or `burst`, with `--mode plain|tether`.
pub fn main(role: &str, args: &[String]) -> Result<(), String> {
    let a = Args::parse(args)?;
    let mode = a.str("mode")?.to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(async move {
        if role == "server" {
            let port = a.num("port", 0)? as u16;
            let backlog = a.num("backlog", 128)? as i32;
            let pause = Duration::from_millis(a.num("pause-ms", 0)?);
            return match mode.as_str() {
                "plain" => plain::server(port, backlog, pause).await,
                "tether" => tether::server(port, backlog, pause).await,
                m => Err(format!("unknown mode {m}")),
            };
        }
        let addr: SocketAddr = a.str("addr")?.parse().map_err(|e| format!("--addr: {e}"))?;
        let w = Workload {
            count: a.num("count", 3000)?,
            run: Duration::from_millis(a.num("run-ms", 6000)?),
            deadline: Duration::from_millis(a.num("deadline-ms", 30_000)?),
        };
        match (role, mode.as_str()) {
            ("client", "plain") => plain::client(addr, w).await,
            ("client", "tether") => tether::client(addr, w).await,
            ("burst", "plain") => plain::burst(addr, w).await,
            ("burst", "tether") => tether::burst(addr, w).await,
            (r, m) => return Err(format!("unknown role {r} / mode {m}")),
        }
        Ok(())
    })
}

/// A listener on `0.0.0.0:port` with an accept backlog of `backlog` (the kernel's accept queue).
pub fn listen(port: u16, backlog: i32) -> Result<TcpListener, String> {
    use socket2::{Domain, Socket, Type};
    let addr: SocketAddr = ([0, 0, 0, 0], port).into();
    let fail = |what: &str, e: std::io::Error| format!("listen on {addr}: {what}: {e}");
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| fail("socket", e))?;
    s.set_reuse_address(true).map_err(|e| fail("SO_REUSEADDR", e))?;
    s.bind(&addr.into()).map_err(|e| fail("bind", e))?;
    s.listen(backlog).map_err(|e| fail("listen", e))?;
    s.set_nonblocking(true).map_err(|e| fail("O_NONBLOCK", e))?;
    TcpListener::from_std(s.into()).map_err(|e| fail("tokio", e))
}

/// Exits the process once stdin reaches EOF (the orchestrator's "stop"), after waiting up to 2 s
/// for `active` sessions to end so their final lines are written.
pub fn exit_on_stdin_eof(active: Arc<AtomicUsize>) {
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
        let until = Instant::now() + Duration::from_secs(2);
        while active.load(Relaxed) > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        emit!("exit active={}", active.load(Relaxed));
        std::process::exit(0);
    });
}

/// Waits until message `i` is due: the workload is spread evenly over `w.run`, in steps of 25.
pub async fn pace(start: Instant, i: u64, w: &Workload) {
    if i % 25 == 0 && w.count > 0 {
        tokio::time::sleep_until(start + w.run.mul_f64(i as f64 / w.count as f64)).await;
    }
}

/// A short name for an I/O error: `eof`, `reset`, `refused`, ...
pub fn io_kind(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        UnexpectedEof => "eof".into(),
        ConnectionReset => "reset".into(),
        ConnectionRefused => "refused".into(),
        ConnectionAborted => "aborted".into(),
        BrokenPipe => "broken-pipe".into(),
        TimedOut => "timed-out".into(),
        k => format!("{k:?}").to_lowercase(),
    }
}
