//! A fault-injecting TCP proxy for tests and demonstrations.
//!
//! [`Proxy::start`] listens on an ephemeral loopback port and forwards every accepted connection
//! to an upstream address. Faults apply to the connections open at the time of the call (and
//! [`set_delay`](Proxy::set_delay) / [`refuse_for`](Proxy::refuse_for) to new ones too):
//!
//! - [`reset_all`](Proxy::reset_all): both sides get a TCP RST (bytes in flight are gone);
//! - [`blackhole_all`](Proxy::blackhole_all): the proxy keeps both sockets open and keeps reading,
//!   but forwards nothing and reports nothing: writes "succeed", nothing arrives;
//! - [`cut_all_after`](Proxy::cut_all_after): each direction forwards `n` more bytes, then both
//!   sides are reset, so an unknown suffix of what was written is lost;
//! - [`half_close_all`](Proxy::half_close_all): one side gets a FIN while the other direction
//!   keeps flowing;
//! - [`set_delay`](Proxy::set_delay): every chunk waits before being forwarded;
//! - [`refuse_for`](Proxy::refuse_for): the listening socket is closed for a while, so connects
//!   are refused by the kernel, then reopened on the same port.
//!
//! The proxy never parses what it forwards. Dropping it stops everything and closes every socket.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Which side of a proxied connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The side that connected to the proxy.
    Client,
    /// The upstream side.
    Server,
}

/// Counters of what the proxy did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted and forwarded.
    pub connections: u64,
    /// Connections currently open.
    pub open: u64,
    /// Connections reset by `reset_all` (or at the end of a cut).
    pub resets: u64,
    /// Connections blackholed.
    pub blackholes: u64,
    /// Connections cut after N bytes.
    pub cuts: u64,
    /// Connections half-closed.
    pub half_closes: u64,
    /// Times the listener was closed by `refuse_for`.
    pub refusals: u64,
    /// Bytes forwarded (both directions).
    pub bytes_forwarded: u64,
    /// Bytes read and dropped (blackholed, cut or half-closed directions).
    pub bytes_dropped: u64,
}

/// The fault state of one proxied connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Faults {
    reset: bool,
    blackhole: bool,
    /// Bytes each direction may still forward (index 0: client→server, 1: server→client).
    cut: [Option<u64>; 2],
    /// FIN sent to this side (index as `Side as usize`).
    half_closed: [bool; 2],
}

#[derive(Debug)]
struct ConnCtl {
    faults: watch::Sender<Faults>,
}

#[derive(Debug, Default)]
struct State {
    upstream: Option<SocketAddr>,
    delay: Duration,
    conns: Vec<Arc<ConnCtl>>,
    stats: ProxyStats,
}

/// The fault-injecting proxy. See the [module docs](self).
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    refuse: watch::Sender<Option<Duration>>,
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Proxy {
    /// Listens on `127.0.0.1:0` and forwards to `upstream`. Must be called within a tokio runtime.
    pub async fn start(upstream: SocketAddr) -> io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State { upstream: Some(upstream), ..State::default() }));
        let (refuse, refuse_rx) = watch::channel(None);
        let tasks = Arc::new(Mutex::new(JoinSet::new()));
        let accept = accept_loop(listener, addr, state.clone(), tasks.clone(), refuse_rx);
        tasks.lock().unwrap_or_else(|p| p.into_inner()).spawn(accept);
        Ok(Proxy { addr, state, refuse, tasks })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Forwards new connections to `upstream` from now on (e.g. a restarted server).
    pub fn set_upstream(&self, upstream: SocketAddr) {
        self.lock().upstream = Some(upstream);
    }

    /// Delays every forwarded chunk by `delay` (existing and new connections).
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// Resets every open connection (RST to both sides). Returns how many.
    pub fn reset_all(&self) -> usize {
        self.apply(|f, s| {
            f.reset = true;
            s.resets += 1;
        })
    }

    /// Blackholes every open connection. Returns how many.
    pub fn blackhole_all(&self) -> usize {
        self.apply(|f, s| {
            f.blackhole = true;
            s.blackholes += 1;
        })
    }

    /// Lets each direction of every open connection forward `bytes` more bytes, then resets it.
    /// Returns how many connections.
    pub fn cut_all_after(&self, bytes: u64) -> usize {
        self.apply(|f, s| {
            f.cut = [Some(bytes), Some(bytes)];
            s.cuts += 1;
        })
    }

    /// Sends a FIN to `side` of every open connection; what it sends is still forwarded.
    /// Returns how many.
    pub fn half_close_all(&self, side: Side) -> usize {
        self.apply(|f, s| {
            f.half_closed[side as usize] = true;
            s.half_closes += 1;
        })
    }

    /// Closes the listening socket for `duration` (connects are refused), then reopens it.
    pub fn refuse_for(&self, duration: Duration) {
        self.lock().stats.refusals += 1;
        self.refuse.send_replace(Some(duration));
    }

    /// What the proxy did so far.
    pub fn stats(&self) -> ProxyStats {
        let mut st = self.lock();
        st.conns.retain(|c| !c.faults.is_closed());
        let mut stats = st.stats;
        stats.open = st.conns.len() as u64;
        stats
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn apply(&self, f: impl Fn(&mut Faults, &mut ProxyStats)) -> usize {
        let mut st = self.lock();
        st.conns.retain(|c| !c.faults.is_closed());
        let st = &mut *st;
        let mut n = 0;
        for c in &st.conns {
            let mut faults = *c.faults.borrow();
            if faults.reset {
                continue;
            }
            f(&mut faults, &mut st.stats);
            c.faults.send_replace(faults);
            n += 1;
        }
        n
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).abort_all();
    }
}

async fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    tasks: Arc<Mutex<JoinSet<()>>>,
    mut refuse: watch::Receiver<Option<Duration>>,
) {
    let mut listener = Some(listener);
    loop {
        let Some(l) = &listener else {
            // Refusing: reopen after the pause (retrying briefly if the port is busy).
            let pause = (*refuse.borrow_and_update()).unwrap_or_default();
            tokio::time::sleep(pause).await;
            for _ in 0..100 {
                if let Ok(l) = TcpListener::bind(addr).await {
                    listener = Some(l);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if listener.is_none() {
                return;
            }
            continue;
        };
        tokio::select! {
            // A refusal first: a connection already waiting in the backlog when `refuse_for`
            // was called is refused with the listener, not forwarded.
            biased;
            changed = refuse.changed() => {
                if changed.is_err() {
                    return;
                }
                listener = None;
            }
            accepted = l.accept() => {
                let Ok((client, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let (tx, _) = watch::channel(Faults::default());
                let ctl = Arc::new(ConnCtl { faults: tx });
                let upstream = {
                    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                    st.conns.retain(|c| !c.faults.is_closed());
                    st.conns.push(ctl.clone());
                    st.stats.connections += 1;
                    st.upstream
                };
                let state = state.clone();
                let conn = async move {
                    let Some(upstream) = upstream else { return };
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        // Upstream down: the client sees its connection reset.
                        rst_on_close(&client);
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    proxy_conn(client, server, ctl, state).await;
                };
                tasks.lock().unwrap_or_else(|p| p.into_inner()).spawn(conn);
            }
        }
    }
}

async fn proxy_conn(
    client: TcpStream,
    server: TcpStream,
    ctl: Arc<ConnCtl>,
    state: Arc<Mutex<State>>,
) {
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = forward(0, cr, sw, Side::Server, ctl.clone(), state.clone());
    let down = forward(1, sr, cw, Side::Client, ctl, state);
    let (a, b) = tokio::join!(up, down);
    // Both directions are done: dropping the halves closes the sockets (RST if reset).
    drop((a, b));
}

/// Forwards one direction until EOF, error or reset. Returns the halves so that the sockets close
/// only when both directions are done.
async fn forward(
    dir: usize,
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    to_side: Side,
    ctl: Arc<ConnCtl>,
    state: Arc<Mutex<State>>,
) -> (OwnedReadHalf, Option<OwnedWriteHalf>) {
    let mut faults = ctl.faults.subscribe();
    let mut buf = vec![0u8; 64 * 1024];
    let mut fin_sent = false;
    loop {
        let f = *faults.borrow_and_update();
        if f.reset {
            break;
        }
        if f.half_closed[to_side as usize] && !fin_sent {
            fin_sent = true;
            let _ = to.shutdown().await;
        }
        tokio::select! {
            changed = faults.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            read = from.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => {
                        // End of this direction: pass the FIN on unless the link is silent.
                        let f = *faults.borrow();
                        if !f.blackhole && !f.reset && !fin_sent {
                            let _ = to.shutdown().await;
                        }
                        break;
                    }
                    Ok(n) => n,
                };
                let f = *faults.borrow();
                if f.reset {
                    break;
                }
                if f.blackhole || fin_sent {
                    lock(&state).stats.bytes_dropped += n as u64;
                    continue;
                }
                let mut k = n;
                let mut cut_done = false;
                if let Some(rem) = f.cut[dir] {
                    k = n.min(usize::try_from(rem).unwrap_or(usize::MAX));
                    let left = rem - k as u64;
                    cut_done = left == 0;
                    ctl.faults.send_modify(|f| f.cut[dir] = Some(left));
                    lock(&state).stats.bytes_dropped += (n - k) as u64;
                }
                let delay = lock(&state).delay;
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if k > 0 {
                    if to.write_all(&buf[..k]).await.is_err() {
                        break;
                    }
                    lock(&state).stats.bytes_forwarded += k as u64;
                }
                if cut_done {
                    ctl.faults.send_modify(|f| f.reset = true);
                    lock(&state).stats.resets += 1;
                    break;
                }
            }
        }
    }
    if faults.borrow().reset {
        // RST instead of FIN: linger 0, and do not send a FIN when the write half drops.
        rst_on_close(from.as_ref());
        rst_on_close(to.as_ref());
        to.forget();
        return (from, None);
    }
    (from, Some(to))
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Makes closing `s` send an RST instead of a FIN (`SO_LINGER` 0; closing does not block).
fn rst_on_close(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
}
