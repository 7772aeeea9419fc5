//! Helpers shared by the test bodies (and the bindings' own tests): a test config, numbered
//! payloads, and one side of an exchange (send N, receive everything, end) with its checks.

use std::time::Duration;

use bytes::Bytes;
use tether_async::{Config, End, Session};

use crate::util::{join, oneshot};
use crate::Harness;

/// Short timers so faults are detected and healed in well under a second.
pub fn config() -> Config {
    Config {
        heartbeat_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(600),
        ack_timeout: Duration::from_millis(1500),
        handshake_timeout: Duration::from_millis(1000),
        session_timeout: Duration::from_secs(20),
        close_timeout: Duration::from_secs(20),
        reconnect_backoff_initial: Duration::from_millis(20),
        reconnect_backoff_max: Duration::from_millis(200),
        ..Config::default()
    }
}

/// Message `i` from `tag`: recognisable and of varying length.
pub fn payload(tag: &str, i: u64) -> Bytes {
    let pad = "x".repeat((i % 97) as usize);
    Bytes::from(format!("{tag}-{i}-{pad}"))
}

/// [`config`] with timers long enough that only what a test does (acks, aborts) moves it, not
/// heartbeats or liveness timeouts.
pub fn quiet_config() -> Config {
    Config {
        heartbeat_interval: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(20),
        ack_timeout: Duration::from_secs(20),
        handshake_timeout: Duration::from_secs(5),
        ..config()
    }
}

/// Sends messages `range` (tagged "c") from `client` while `server` takes each one as it comes;
/// checks them and returns how long it took.
pub async fn stream_through(
    client: &Session,
    server: &Session,
    range: std::ops::Range<u64>,
) -> Duration {
    let start = std::time::Instant::now();
    let sender = async {
        for i in range.clone() {
            client.send(payload("c", i)).await.unwrap();
        }
    };
    let receiver = async {
        for i in range.clone() {
            assert_eq!(server.recv().await.unwrap().payload, payload("c", i));
        }
    };
    join(sender, receiver).await;
    start.elapsed()
}

/// What one side saw.
#[derive(Debug)]
pub struct Outcome {
    /// The payloads received, in order.
    pub received: Vec<Bytes>,
    /// How the session ended.
    pub end: End,
}

/// Message `i` of `tag`: how an exchange names its messages ([`payload`], or a binding's own).
pub type PayloadFn = fn(&str, u64) -> Bytes;

/// Sends `n` messages tagged `tag` (pausing `pace` every 100) and receives until the end. If
/// `close`, closes once everything was sent *and* the peer's `n` messages all arrived: a close stops
/// new sends on both sides, so closing earlier would cut the peer's sending short. Checks sequence
/// numbers as they arrive.
pub async fn run_side<H: Harness>(
    h: H,
    s: Session,
    tag: &'static str,
    n: u64,
    close: bool,
    pace: Duration,
) -> Outcome {
    let close_after = close.then_some(std::future::ready(()));
    run_side_with(h, s, tag, n, close_after, pace, payload).await
}

/// [`run_side`] with the messages of `payload_of`, closing (if `close_after` is given) only once
/// that future has completed too.
pub async fn run_side_with<H: Harness>(
    h: H,
    s: Session,
    tag: &'static str,
    n: u64,
    close_after: Option<impl std::future::Future<Output = ()>>,
    pace: Duration,
    payload_of: PayloadFn,
) -> Outcome {
    let r = s.clone();
    let (all_in_tx, all_in) = oneshot::channel::<()>();
    let sender = async move {
        for i in 0..n {
            let seq = s.send(payload_of(tag, i)).await.expect("send");
            assert_eq!(seq, i, "{tag}: sequence number of message {i}");
            if i % 100 == 99 && !pace.is_zero() {
                h.sleep(pace).await;
            }
        }
        match close_after {
            Some(gate) => {
                gate.await;
                let _ = all_in.await;
                s.close().await
            }
            None => s.ended().await,
        }
    };
    let receiver = async move {
        let mut received = Vec::new();
        let mut all_in_tx = Some(all_in_tx);
        while let Some(m) = r.recv().await {
            assert_eq!(m.seq, received.len() as u64, "sequence gap or duplicate");
            received.push(m.payload);
            if received.len() as u64 == n {
                if let Some(tx) = all_in_tx.take() {
                    tx.send(());
                }
            }
        }
        received
    };
    let (end, received) = join(sender, receiver).await;
    Outcome { received, end }
}

/// Every message of `tag` arrived exactly once, in order, unmodified.
pub fn assert_all(received: &[Bytes], tag: &str, n: u64) {
    assert_all_with(received, tag, n, payload);
}

/// [`assert_all`] for the messages of `payload_of`.
pub fn assert_all_with(received: &[Bytes], tag: &str, n: u64, payload_of: PayloadFn) {
    assert_eq!(received.len() as u64, n, "{tag}: wrong number of messages");
    for (i, p) in received.iter().enumerate() {
        assert_eq!(p, &payload_of(tag, i as u64), "{tag}: message {i} differs");
    }
}
