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
//! The proxy never parses what it forwards. It runs on std threads and blocking sockets, with no
//! async runtime, so tests on any runtime (and the demonstration) use the same proxy: one thread
//! polls the listener, and each proxied connection has one thread per direction. Dropping it stops
//! every thread (the drop waits for them, a few milliseconds) and closes every socket.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockRef, Socket, Type};

/// How often the accept thread polls the (non-blocking) listener and checks for a stop.
const ACCEPT_POLL: Duration = Duration::from_millis(2);
/// A write blocked by a peer that does not read wakes this often to check for a reset or a stop.
const WRITE_POLL: Duration = Duration::from_millis(20);
/// How long a connection to the upstream may take before the client is reset.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// After `refuse_for`, how often reopening the listener is retried while the port is busy.
const REBIND_RETRY: Duration = Duration::from_millis(10);
/// What each direction reads (and forwards) at most at once.
const CHUNK: usize = 64 * 1024;

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

/// One proxied connection. Its two direction threads share it; the proxy's list holds it weakly,
/// so the sockets close (each socket has exactly one descriptor) as soon as both threads are done.
#[derive(Debug)]
struct Conn {
    client: TcpStream,
    server: TcpStream,
    faults: Mutex<Faults>,
}

impl Conn {
    fn socket(&self, side: Side) -> &TcpStream {
        match side {
            Side::Client => &self.client,
            Side::Server => &self.server,
        }
    }

    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks the connection reset: closing either socket now sends an RST instead of a FIN
    /// (`SO_LINGER` 0), and shutting down their read sides wakes the threads blocked reading them,
    /// which then let go of the connection.
    fn reset(&self, faults: &mut Faults) {
        faults.reset = true;
        for s in [&self.client, &self.server] {
            let _ = SockRef::from(s).set_linger(Some(Duration::ZERO));
            let _ = s.shutdown(Shutdown::Read);
        }
    }
}

#[derive(Debug, Default)]
struct State {
    upstream: Option<SocketAddr>,
    delay: Duration,
    conns: Vec<Weak<Conn>>,
    stats: ProxyStats,
    /// `None` while refusing (`refuse_for`).
    listener: Option<TcpListener>,
    /// While refusing: when to reopen the listener.
    reopen_at: Option<Instant>,
    /// One thread per proxied connection (each runs its two directions).
    threads: Vec<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    /// Set (under the state lock) when the proxy is dropped.
    stop: AtomicBool,
    state: Mutex<State>,
    /// Names the proxy's threads (`proxy-PORT`).
    thread_name: String,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// The fault-injecting proxy. See the [module docs](self).
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on `127.0.0.1:0` and forwards to `upstream`. Needs no runtime: the proxy runs on
    /// threads of its own.
    pub fn start(upstream: SocketAddr) -> io::Result<Proxy> {
        let listener = listen(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            state: Mutex::new(State {
                upstream: Some(upstream),
                listener: Some(listener),
                ..State::default()
            }),
            thread_name: format!("proxy-{}", addr.port()),
        });
        let acceptor = thread::Builder::new().name(shared.thread_name.clone()).spawn({
            let shared = shared.clone();
            move || accept_loop(&shared, addr)
        })?;
        Ok(Proxy { addr, shared, acceptor: Some(acceptor) })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Forwards new connections to `upstream` from now on (e.g. a restarted server).
    pub fn set_upstream(&self, upstream: SocketAddr) {
        self.shared.lock().upstream = Some(upstream);
    }

    /// Delays every forwarded chunk by `delay` (existing and new connections).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.lock().delay = delay;
    }

    /// Resets every open connection (RST to both sides). Returns how many.
    pub fn reset_all(&self) -> usize {
        self.apply(|c, f, s| {
            c.reset(f);
            s.resets += 1;
        })
    }

    /// Blackholes every open connection. Returns how many.
    pub fn blackhole_all(&self) -> usize {
        self.apply(|_, f, s| {
            f.blackhole = true;
            s.blackholes += 1;
        })
    }

    /// Lets each direction of every open connection forward `bytes` more bytes, then resets it.
    /// Returns how many connections.
    pub fn cut_all_after(&self, bytes: u64) -> usize {
        self.apply(|_, f, s| {
            f.cut = [Some(bytes), Some(bytes)];
            s.cuts += 1;
        })
    }

    /// Sends a FIN to `side` of every open connection; what it sends is still forwarded.
    /// Returns how many.
    pub fn half_close_all(&self, side: Side) -> usize {
        self.apply(|c, f, s| {
            f.half_closed[side as usize] = true;
            let _ = c.socket(side).shutdown(Shutdown::Write);
            s.half_closes += 1;
        })
    }

    /// Closes the listening socket for `duration` (connects are refused), then reopens it. The
    /// listener is closed when this returns: a connection still waiting in its backlog is refused
    /// with it, not forwarded.
    pub fn refuse_for(&self, duration: Duration) {
        let mut st = self.shared.lock();
        st.stats.refusals += 1;
        st.listener = None;
        let until = Instant::now() + duration;
        st.reopen_at = Some(st.reopen_at.map_or(until, |t| t.max(until)));
    }

    /// What the proxy did so far.
    pub fn stats(&self) -> ProxyStats {
        let mut st = self.shared.lock();
        st.conns.retain(|c| c.strong_count() > 0);
        let mut stats = st.stats;
        stats.open = st.conns.len() as u64;
        stats
    }

    /// Applies `f` to every open connection not reset yet; returns how many.
    fn apply(&self, f: impl Fn(&Conn, &mut Faults, &mut ProxyStats)) -> usize {
        // Lock order everywhere: the state, then a connection's faults.
        let mut st = self.shared.lock();
        let st = &mut *st;
        st.conns.retain(|c| c.strong_count() > 0);
        let mut n = 0;
        for conn in st.conns.iter().filter_map(Weak::upgrade) {
            let mut faults = conn.faults();
            if faults.reset {
                continue;
            }
            f(&conn, &mut faults, &mut st.stats);
            n += 1;
        }
        n
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let conns: Vec<Weak<Conn>> = {
            let mut st = self.shared.lock();
            self.shared.stop.store(true, Ordering::SeqCst);
            st.listener = None;
            st.conns.drain(..).collect()
        };
        // Wake every direction thread: blocked reads return, blocked writes fail.
        for conn in conns.iter().filter_map(Weak::upgrade) {
            let _ = conn.client.shutdown(Shutdown::Both);
            let _ = conn.server.shutdown(Shutdown::Both);
        }
        drop(conns);
        // The acceptor first, so that no connection thread starts after the list is taken.
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let threads = std::mem::take(&mut self.shared.lock().threads);
        for t in threads {
            let _ = t.join();
        }
    }
}

/// A non-blocking listener on `addr`, with `SO_REUSEADDR` so that it can be reopened on the same
/// port while connections accepted from the old one are still open.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

fn accept_loop(shared: &Arc<Shared>, addr: SocketAddr) {
    while !shared.stopped() {
        let accepted = {
            let mut st = shared.lock();
            if st.listener.is_none() && st.reopen_at.is_some_and(|t| Instant::now() >= t) {
                match listen(addr) {
                    Ok(l) => {
                        st.listener = Some(l);
                        st.reopen_at = None;
                    }
                    Err(_) => st.reopen_at = Some(Instant::now() + REBIND_RETRY),
                }
            }
            match st.listener.as_ref().map(TcpListener::accept) {
                Some(Ok((client, _))) => {
                    st.stats.connections += 1;
                    st.threads.retain(|t| !t.is_finished());
                    Some((client, st.upstream))
                }
                _ => None,
            }
        };
        let Some((client, upstream)) = accepted else {
            thread::sleep(ACCEPT_POLL);
            continue;
        };
        let spawned = thread::Builder::new().name(shared.thread_name.clone()).spawn({
            let shared = shared.clone();
            move || run_conn(&shared, client, upstream)
        });
        if let Ok(t) = spawned {
            shared.lock().threads.push(t);
        }
    }
}

/// Connects to the upstream and runs both directions of one connection until both are done.
fn run_conn(shared: &Shared, client: TcpStream, upstream: Option<SocketAddr>) {
    let _ = client.set_nonblocking(false);
    let server = upstream.and_then(|u| TcpStream::connect_timeout(&u, CONNECT_TIMEOUT).ok());
    let Some(server) = server else {
        // Upstream down: the client sees its connection reset.
        let _ = SockRef::from(&client).set_linger(Some(Duration::ZERO));
        return;
    };
    for s in [&client, &server] {
        let _ = s.set_nodelay(true);
        let _ = s.set_write_timeout(Some(WRITE_POLL));
    }
    let conn = Arc::new(Conn { client, server, faults: Mutex::default() });
    {
        let mut st = shared.lock();
        if shared.stopped() {
            return;
        }
        st.conns.retain(|c| c.strong_count() > 0);
        st.conns.push(Arc::downgrade(&conn));
    }
    thread::scope(|scope| {
        let up = thread::Builder::new()
            .name(shared.thread_name.clone())
            .spawn_scoped(scope, || forward(shared, &conn, 0));
        if up.is_ok() {
            forward(shared, &conn, 1);
        }
    });
    // Both directions are done: dropping the last reference closes both sockets (RST if reset).
}

/// Why a write did not complete.
enum WriteFailed {
    /// The destination was half-closed by the proxy: drop what it would have received.
    HalfClosed,
    /// The connection is reset, the proxy stopped, or the destination failed.
    Done,
}

/// Forwards direction `dir` (0: client→server, 1: server→client) until EOF, error, reset or stop.
fn forward(shared: &Shared, conn: &Conn, dir: usize) {
    let (mut from, to, to_side) = match dir {
        0 => (&conn.client, &conn.server, Side::Server),
        _ => (&conn.server, &conn.client, Side::Client),
    };
    let mut buf = vec![0u8; CHUNK];
    loop {
        let read = from.read(&mut buf);
        if shared.stopped() {
            return;
        }
        let f = *conn.faults();
        if f.reset {
            return;
        }
        let n = match read {
            Ok(n) if n > 0 => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            _ => {
                // End of this direction: pass the FIN on unless the link is silent.
                if !f.blackhole && !f.half_closed[to_side as usize] {
                    let _ = to.shutdown(Shutdown::Write);
                }
                return;
            }
        };
        if f.blackhole || f.half_closed[to_side as usize] {
            shared.lock().stats.bytes_dropped += n as u64;
            continue;
        }
        let (k, cut_done) = {
            let mut faults = conn.faults();
            match faults.cut[dir] {
                Some(rem) => {
                    let k = n.min(usize::try_from(rem).unwrap_or(usize::MAX));
                    let left = rem - k as u64;
                    faults.cut[dir] = Some(left);
                    (k, left == 0)
                }
                None => (n, false),
            }
        };
        let delay = {
            let mut st = shared.lock();
            st.stats.bytes_dropped += (n - k) as u64;
            st.delay
        };
        if !delay.is_zero() {
            thread::sleep(delay);
        }
        if k > 0 {
            match write_all(shared, conn, to, to_side, &buf[..k]) {
                Ok(()) => shared.lock().stats.bytes_forwarded += k as u64,
                Err(WriteFailed::HalfClosed) => {
                    shared.lock().stats.bytes_dropped += k as u64;
                    continue;
                }
                Err(WriteFailed::Done) => return,
            }
        }
        if cut_done {
            let newly = {
                let mut faults = conn.faults();
                let newly = !faults.reset;
                if newly {
                    conn.reset(&mut faults);
                }
                newly
            };
            if newly {
                shared.lock().stats.resets += 1;
            }
            return;
        }
    }
}

/// Writes all of `data` to `to`; a write blocked by a peer that does not read wakes every
/// [`WRITE_POLL`] to see whether the connection was reset or the proxy stopped meanwhile.
fn write_all(
    shared: &Shared,
    conn: &Conn,
    mut to: &TcpStream,
    to_side: Side,
    mut data: &[u8],
) -> Result<(), WriteFailed> {
    while !data.is_empty() {
        match to.write(data) {
            Ok(0) => return Err(WriteFailed::Done),
            Ok(m) => data = &data[m..],
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                if shared.stopped() || conn.faults().reset {
                    return Err(WriteFailed::Done);
                }
            }
            Err(_) if conn.faults().half_closed[to_side as usize] => {
                return Err(WriteFailed::HalfClosed)
            }
            Err(_) => return Err(WriteFailed::Done),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
