//! The same workload over tether (tether-tokio): the server acknowledges a message only after it
//! has written its `R` line (manual ack: "processed, then acked"), and the client hands every
//! message it was given back as unconfirmed to a new session when a session is lost.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tether_tokio::{
    configure_tcp, AckMode, Config, End, LinkEvent, Listener, Server, Session, UnconfirmedMessage,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::common::{parse, payload, ranges, tether_config};
use crate::emit;
use crate::roles::{exit_on_stdin_eof, listen, pace, run_burst, Workload};

/// A TCP listener that accepts nothing during its first `pause` (a busy server whose accept loop
/// is stalled), so the kernel's accept queue overflows under a burst.
struct PausedListener {
    inner: TcpListener,
    /// Accepting starts at this instant.
    resume_at: Option<Instant>,
    config: Config,
}

impl Listener for PausedListener {
    type Stream = TcpStream;

    async fn accept(&mut self) -> std::io::Result<TcpStream> {
        if let Some(at) = self.resume_at.take() {
            tokio::time::sleep_until(at).await;
        }
        let (s, _) = self.inner.accept().await?;
        configure_tcp(&s, &self.config);
        Ok(s)
    }
}

/// Serves tether sessions on `port`, recording each message (`R <session> <id>`) before acking it.
pub async fn server(port: u16, backlog: i32, pause: Duration) -> Result<(), String> {
    let inner = listen(port, backlog)?;
    let resume_at = (!pause.is_zero()).then(|| Instant::now() + pause);
    let listener = PausedListener { inner, resume_at, config: tether_config() };
    let config = Config { ack_mode: AckMode::Manual, ..tether_config() };
    let server = Server::from_listener(listener, config).map_err(|e| format!("server: {e}"))?;
    let active = Arc::new(AtomicUsize::new(0));
    exit_on_stdin_eof(active.clone());
    emit!("ready");
    while let Some(s) = server.accept().await {
        active.fetch_add(1, Relaxed);
        let active = active.clone();
        tokio::spawn(async move {
            serve(s).await;
            active.fetch_sub(1, Relaxed);
        });
    }
    Err("the tether server's driver stopped".into())
}

async fn serve(s: Session) {
    let tag = s.id().map_or(0, |i| i.0);
    emit!("session {tag}");
    watch_links(s.clone(), tag.to_string());
    let mut expected = 0;
    while let Some(m) = s.recv().await {
        if m.seq != expected {
            emit!("gap {tag} expected={expected} got={}", m.seq);
        }
        expected = m.seq + 1;
        match parse(&m.payload) {
            Some(id) => emit!("R {tag} {id}"),
            None => emit!("corrupt {tag} {}", m.seq),
        }
        if let Err(e) = s.ack(m.seq) {
            emit!("ack-error {tag} {e}");
        }
    }
    let end = s.ended().await;
    emit!("end {tag} {}", describe(&end));
}

fn describe(end: &End) -> String {
    match end {
        End::Closed => "closed".into(),
        End::Lost { reason, unconfirmed } => format!("lost {reason:?} {}", unconfirmed.len()),
    }
}

/// Reports the session's link events as `link <tag> disconnected <reason>` / `link <tag> resumed`.
fn watch_links(s: Session, tag: String) {
    tokio::spawn(async move {
        while let Some(ev) = s.next_link_event().await {
            match ev {
                LinkEvent::Disconnected { reason } => emit!("link {tag} disconnected {reason:?}"),
                LinkEvent::Resumed => emit!("link {tag} resumed"),
                other => emit!("link {tag} {other:?}"),
            }
        }
    });
}

/// The client application's queue: messages handed back by a lost session first, then new ones.
#[derive(Debug, Default)]
struct Queue {
    resend: VecDeque<u64>,
    next_fresh: u64,
}

/// Sends the workload on a session; when a session is lost, checks the unconfirmed list it hands
/// back and sends those messages again on a new session; closes cleanly at the end.
pub async fn client(addr: SocketAddr, w: Workload) {
    let start = Instant::now();
    let mut q = Queue::default();
    let work = sessions(addr, w, start, &mut q);
    match tokio::time::timeout_at(start + w.deadline, work).await {
        Ok(()) => emit!("done finished=true sent={}", ranges(0..w.count)),
        Err(_) => emit!(
            "done finished=false sent={} resend={}",
            ranges(0..q.next_fresh),
            ranges(q.resend.iter().copied())
        ),
    }
}

async fn sessions(addr: SocketAddr, w: Workload, start: Instant, q: &mut Queue) {
    for k in 0.. {
        let s = open(addr, k).await;
        let (all_sent, sent_ids) = drive(&s, k, w, start, q).await;
        let end = if all_sent { s.close().await } else { s.ended().await };
        match end {
            End::Closed => {
                emit!("closed {k}");
                return;
            }
            End::Lost { reason, unconfirmed } => {
                let ids = check_lost(k, &format!("{reason:?}"), &unconfirmed, &sent_ids);
                for id in ids.into_iter().rev() {
                    q.resend.push_front(id);
                }
            }
        }
    }
}

async fn open(addr: SocketAddr, k: u64) -> Session {
    loop {
        match tether_tokio::connect(addr, tether_config()).await {
            Ok(s) => {
                let id = s.id().map_or(0, |i| i.0);
                emit!("session {k} {id}");
                watch_links(s.clone(), k.to_string());
                return s;
            }
            Err(e) => emit!("connect-failed {k} {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends until everything was sent (`true`) or the session refuses (`false`); returns the ids in
/// sequence order (`sent_ids[seq]`).
async fn drive(
    s: &Session,
    k: u64,
    w: Workload,
    start: Instant,
    q: &mut Queue,
) -> (bool, Vec<u64>) {
    let mut sent_ids = Vec::new();
    loop {
        let id = match q.resend.pop_front() {
            Some(id) => id,
            None if q.next_fresh < w.count => {
                pace(start, q.next_fresh, &w).await;
                q.next_fresh += 1;
                q.next_fresh - 1
            }
            None => return (true, sent_ids),
        };
        match s.send(payload(id)).await {
            Ok(seq) => {
                if seq != sent_ids.len() as u64 {
                    emit!("seq-mismatch {k} expected={} got={seq}", sent_ids.len());
                }
                sent_ids.push(id);
            }
            Err(e) => {
                emit!("send-refused {k} {id} {e}");
                q.resend.push_front(id);
                return (false, sent_ids);
            }
        }
    }
}

/// Checks that `unconfirmed` is exactly the suffix of what session `k` sent from its first
/// unconfirmed sequence number on, with the right payloads; reports it; returns its ids.
fn check_lost(k: u64, reason: &str, unconfirmed: &[UnconfirmedMessage], sent: &[u64]) -> Vec<u64> {
    let confirmed = unconfirmed.first().map_or(sent.len(), |m| m.seq as usize).min(sent.len());
    let exact = confirmed + unconfirmed.len() == sent.len()
        && unconfirmed.iter().enumerate().all(|(i, m)| {
            m.seq as usize == confirmed + i && parse(&m.payload) == Some(sent[confirmed + i])
        });
    let ids: Vec<u64> = unconfirmed
        .iter()
        .map(|m| parse(&m.payload).or(sent.get(m.seq as usize).copied()).unwrap_or(u64::MAX))
        .collect();
    emit!(
        "lost {k} reason={reason} exact={exact} confirmed={} unconfirmed={}",
        ranges(sent[..confirmed].iter().copied()),
        ranges(ids.iter().copied())
    );
    ids
}

/// The accept-overflow workload over tether: `count` short sessions at once, each connect, send
/// one message, `close()`; a message handed back unconfirmed is sent again on a new session.
pub async fn burst(addr: SocketAddr, w: Workload) {
    run_burst(w, |id, done| short_session(addr, id, done)).await;
}

async fn short_session(addr: SocketAddr, id: u64, done: Arc<Mutex<Vec<bool>>>) {
    loop {
        let s = match tether_tokio::connect(addr, tether_config()).await {
            Ok(s) => s,
            Err(e) => {
                emit!("err connect {id} {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if let Err(e) = s.send(payload(id)).await {
            emit!("err send {id} {e}");
            continue;
        }
        match s.close().await {
            End::Closed => {
                if let Ok(mut d) = done.lock() {
                    d[id as usize] = true;
                }
                emit!("ok {id}");
                return;
            }
            End::Lost { reason, unconfirmed } => {
                let sid = s.id().map_or(0, |i| i.0);
                let check = check_lost(sid, &format!("{reason:?}"), &unconfirmed, &[id]);
                if check.is_empty() {
                    // Confirmed before the session was lost: it arrived; nothing to resend.
                    if let Ok(mut d) = done.lock() {
                        d[id as usize] = true;
                    }
                    emit!("ok {id}");
                    return;
                }
            }
        }
    }
}
