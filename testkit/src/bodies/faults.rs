//! The session survives every fault the proxy injects, over real loopback sockets: thousands of
//! messages both ways, each delivered exactly once and in order, all confirmed, clean close on
//! both sides. Also: blackhole detection, and a server restart that ends the client's session
//! with the exact unconfirmed list.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_async::{Config, End, LinkEvent, Reason, Session};

use crate::proxy::{Proxy, Side};
use crate::support::{assert_all, config, payload, run_side};
use crate::Harness;

const N: u64 = 3_000;
/// The senders pause this long every 100 messages, so faults land mid-stream (~1 s of traffic).
const PACE: Duration = Duration::from_millis(30);

/// Runs N messages each way through a proxy while `faults` acts on it (given the harness, the
/// proxy and a handle to the client session, to watch); checks the contract. Returns the
/// client's reconnect count.
async fn exchange_under<H, F, Fut>(h: H, faults: F) -> u64
where
    H: Harness,
    F: FnOnce(H, Arc<Proxy>, Session) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    h.clone()
        .within(90, async move {
            let server = h.bind(config().into()).await.unwrap();
            let proxy = Arc::new(Proxy::start(server.local_addr().unwrap()).unwrap());
            let hs = h.clone();
            let srv = h.spawn(async move {
                let s = server.accept().await.unwrap();
                let out = run_side(hs.clone(), s, "down", N, false, PACE).await;
                // No second session may appear: every reconnect resumed.
                assert!(hs.timeout(Duration::from_millis(10), server.accept()).await.is_none());
                out
            });
            let client = h.connect(proxy.addr(), config().into()).await.unwrap();
            let stats_handle = client.clone();
            let fault_task = h.spawn(faults(h.clone(), proxy.clone(), client.clone()));
            let c = run_side(h.clone(), client, "up", N, true, PACE).await;
            let s = srv.await;
            fault_task.await;
            assert_eq!(c.end, End::Closed, "client end");
            assert_eq!(s.end, End::Closed, "server end");
            assert_all(&c.received, "down", N);
            assert_all(&s.received, "up", N);
            let stats = stats_handle.stats();
            assert_eq!(stats.unconfirmed_messages, 0);
            stats.reconnects
        })
        .await
}

/// Four resets of every connection while messages flow both ways.
pub async fn resets<H: Harness>(h: H) {
    let reconnects = exchange_under(h, |h, p, _| async move {
        for _ in 0..4 {
            h.sleep(Duration::from_millis(150)).await;
            p.reset_all();
        }
    })
    .await;
    assert!(reconnects >= 1, "no reconnect happened");
}

/// Connections cut after 1000, 10 and 5000 more bytes each way: an unknown suffix is lost.
pub async fn cut_after_n_bytes_loses_an_unknown_suffix<H: Harness>(h: H) {
    let reconnects = exchange_under(h, |h, p, _| async move {
        for bytes in [1_000, 10, 5_000] {
            h.sleep(Duration::from_millis(200)).await;
            p.cut_all_after(bytes);
        }
    })
    .await;
    assert!(reconnects >= 1);
}

/// A FIN to the client, later one to the server, while the other direction keeps flowing.
pub async fn half_close_either_side<H: Harness>(h: H) {
    let reconnects = exchange_under(h, |h, p, _| async move {
        h.sleep(Duration::from_millis(200)).await;
        p.half_close_all(Side::Client);
        h.sleep(Duration::from_millis(300)).await;
        p.half_close_all(Side::Server);
    })
    .await;
    assert!(reconnects >= 1);
}

/// New connections are refused for 700 ms right after a reset: the client keeps retrying and
/// resumes only once the proxy listens again.
pub async fn refused_connects_for_a_while<H: Harness>(h: H) {
    let reconnects = exchange_under(h, |h, p, client| async move {
        h.sleep(Duration::from_millis(200)).await;
        p.refuse_for(Duration::from_millis(700));
        let t0 = Instant::now();
        p.reset_all();
        let disconnected = client.next_link_event().await;
        assert!(matches!(disconnected, Some(LinkEvent::Disconnected { .. })), "{disconnected:?}");
        assert_eq!(client.next_link_event().await, Some(LinkEvent::Resumed));
        let away = t0.elapsed();
        assert!(away >= Duration::from_millis(600), "resumed after {away:?}, while refused");
    })
    .await;
    assert!(reconnects >= 1);
}

/// Every forwarded chunk is held 5 ms each way for a while: the session runs on, and its RTT
/// estimate shows the delay.
pub async fn delay<H: Harness>(h: H) {
    exchange_under(h, |h, p, client| async move {
        h.sleep(Duration::from_millis(100)).await;
        let before = client.stats().rtt.unwrap_or_default();
        p.set_delay(Duration::from_millis(5));
        h.sleep(Duration::from_millis(400)).await;
        let during = client.stats().rtt.unwrap_or_default();
        p.set_delay(Duration::ZERO);
        assert!(during >= Duration::from_millis(7), "RTT {during:?} with 2 x 5 ms of delay");
        assert!(during > before, "RTT {before:?} -> {during:?}");
    })
    .await;
}

/// Eight faults of every kind, drawn from a seed (printed; `TETHER_TEST_SEED` replays one).
pub async fn random_mix<H: Harness>(h: H) {
    let seed: u64 = std::env::var("TETHER_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
            as u64,
    );
    println!("random_mix seed {seed} (rerun with TETHER_TEST_SEED={seed})");
    exchange_under(h, move |h, p, _| async move {
        let mut x = seed | 1;
        let mut rand = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..8 {
            h.sleep(Duration::from_millis(50 + rand() % 150)).await;
            match rand() % 6 {
                0 => drop(p.reset_all()),
                1 => drop(p.blackhole_all()),
                2 => drop(p.cut_all_after(rand() % 4_000)),
                3 => drop(p.half_close_all(if rand() % 2 == 0 {
                    Side::Client
                } else {
                    Side::Server
                })),
                4 => {
                    p.refuse_for(Duration::from_millis(rand() % 300));
                    p.reset_all();
                }
                _ => p.set_delay(Duration::from_millis(rand() % 4)),
            }
        }
        p.set_delay(Duration::ZERO);
    })
    .await;
}

/// A blackholed connection (writes succeed, nothing arrives, nobody is told) is detected within
/// `idle_timeout` (plus scheduling slack) and the session resumes on a new connection. The ack
/// timeout is set far beyond, so only the idle timer can detect it in time.
pub async fn blackhole_is_detected_within_idle_timeout_and_resumed<H: Harness>(h: H) {
    h.clone()
        .within(60, async move {
            let cfg = Config { ack_timeout: Duration::from_secs(10), ..config() };
            let idle = cfg.idle_timeout;
            let server = h.bind(cfg.clone().into()).await.unwrap();
            let proxy = Proxy::start(server.local_addr().unwrap()).unwrap();
            let hs = h.clone();
            let srv = h.spawn(async move {
                let s = server.accept().await.unwrap();
                run_side(hs, s, "down", N, false, PACE).await
            });
            let client = h.connect(proxy.addr(), cfg.into()).await.unwrap();
            let watcher = client.clone();
            let hd = h.clone();
            let detect = h.spawn(async move {
                hd.sleep(Duration::from_millis(300)).await;
                assert_eq!(proxy.blackhole_all(), 1);
                let t0 = Instant::now();
                let first = watcher.next_link_event().await;
                let detected = t0.elapsed();
                assert!(
                    matches!(first, Some(LinkEvent::Disconnected { reason: Reason::IdleTimeout })),
                    "{first:?}"
                );
                assert_eq!(watcher.next_link_event().await, Some(LinkEvent::Resumed));
                let resumed = t0.elapsed();
                (detected, resumed, proxy)
            });
            let c = run_side(h.clone(), client, "up", N, true, PACE).await;
            let s = srv.await;
            let (detected, resumed, _proxy) = detect.await;
            // Generous slack for a loaded 2-core machine, still far below TCP's minutes.
            assert!(detected <= idle + Duration::from_secs(1), "detected after {detected:?}");
            assert!(resumed <= idle + Duration::from_secs(3), "resumed after {resumed:?}");
            assert_eq!(c.end, End::Closed);
            assert_eq!(s.end, End::Closed);
            assert_all(&c.received, "down", N);
            assert_all(&s.received, "up", N);
        })
        .await;
}

/// The server restarts (its session table is gone): the client's resume is refused and its session
/// ends `Lost` with exactly the messages the server application never took, in order.
pub async fn server_restart_ends_the_client_session_with_the_exact_unconfirmed_list<H: Harness>(
    h: H,
) {
    h.clone()
        .within(60, async move {
            let server = h.bind(config().into()).await.unwrap();
            let proxy = Proxy::start(server.local_addr().unwrap()).unwrap();
            let client = h.connect(proxy.addr(), config().into()).await.unwrap();
            let session = server.accept().await.unwrap();
            // The server application takes 700 messages, then stops reading.
            let taken = 700u64;
            let reader = h.spawn(async move {
                for i in 0..taken {
                    let m = session.recv().await.unwrap();
                    assert_eq!(m.payload, payload("up", i));
                }
                session
            });
            let total = 1_000u64;
            for i in 0..total {
                client.send(payload("up", i)).await.unwrap();
            }
            let session = reader.await;
            // Wait until the client saw every taken message confirmed (acks are delayed a little).
            while client.stats().unconfirmed_messages > total - taken {
                h.sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(client.stats().unconfirmed_messages, total - taken);
            // "Restart": a new server takes over the address the proxy forwards to; the old one's
            // connections die with an RST, and the old process state is dropped.
            let new_server = h.bind(config().into()).await.unwrap();
            proxy.set_upstream(new_server.local_addr().unwrap());
            proxy.reset_all();
            drop(session);
            drop(server);
            let end = client.ended().await;
            let End::Lost { reason, unconfirmed } = end else {
                panic!("expected Lost, got {end:?}")
            };
            assert_eq!(reason, Reason::UnknownSession);
            let seqs: Vec<u64> = unconfirmed.iter().map(|m| m.seq).collect();
            assert_eq!(seqs, (taken..total).collect::<Vec<_>>());
            for m in &unconfirmed {
                assert_eq!(m.payload, payload("up", m.seq));
            }
            assert!(client.recv().await.is_none());
            assert!(client.send(payload("up", total)).await.is_err());
            // The new server never saw a session.
            assert!(h.timeout(Duration::from_millis(50), new_server.accept()).await.is_none());
        })
        .await;
}
