//! What every role shares: the workload's messages, the tether config, timestamped output lines,
//! id ranges, and a small argument parser.

use std::collections::HashMap;
use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use tether_tokio::{Config, FirstConnect};

/// Payload size of every workload message.
pub const MSG_SIZE: usize = 200;
/// Port of the plain length-prefixed TCP server.
pub const PLAIN_PORT: u16 = 7001;
/// Port of the tether server.
pub const TETHER_PORT: u16 = 7002;
/// The `idle_timeout` tether runs with: a dead path must be noticed within it.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// The tether config of both sides: short timers so a dead path is found within two seconds.
pub fn tether_config() -> Config {
    Config {
        heartbeat_interval: Duration::from_millis(250),
        idle_timeout: IDLE_TIMEOUT,
        ack_timeout: Duration::from_secs(3),
        handshake_timeout: Duration::from_secs(1),
        session_timeout: Duration::from_secs(30),
        close_timeout: Duration::from_secs(15),
        reconnect_backoff_initial: Duration::from_millis(50),
        reconnect_backoff_max: Duration::from_millis(500),
        // The faults hit first connections too (a burst into a full accept queue): clients wait
        // them out rather than report the first refusal.
        first_connect: FirstConnect::Retry,
        ..Config::default()
    }
}

/// Message `id`: the id (8 bytes, big-endian) then a filler derived from it, so a corrupted or
/// misattributed payload is recognised.
pub fn payload(id: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(MSG_SIZE);
    b.put_u64(id);
    for i in 0..MSG_SIZE - 8 {
        b.put_u8(filler(id, i));
    }
    b.freeze()
}

fn filler(id: u64, i: usize) -> u8 {
    (id.wrapping_mul(31).wrapping_add(i as u64) % 251) as u8
}

/// The id of a workload message, `None` if the payload is not exactly one.
pub fn parse(p: &[u8]) -> Option<u64> {
    if p.len() != MSG_SIZE {
        return None;
    }
    let id = u64::from_be_bytes(p[..8].try_into().ok()?);
    p[8..].iter().enumerate().all(|(i, &b)| b == filler(id, i)).then_some(id)
}

/// A length-prefixed frame of the plain protocol: 4-byte big-endian length, then the payload.
/// Length 0 is the client's "bye" (it finished on purpose).
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(4 + payload.len());
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Milliseconds since the Unix epoch: every namespace shares the clock, so roles' lines and the
/// orchestrator's fault times compare directly.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Writes one line `<now_ms> <text>` to stdout at once (not buffered: a role killed with SIGKILL
/// has written everything it reported).
pub fn emit_line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    // A closed stdout means the orchestrator is gone; there is nobody left to tell.
    let _ = writeln!(out, "{} {}", now_ms(), args);
    let _ = out.flush();
}

/// `emit!("R {} {}", tag, id)`: one timestamped output line.
#[macro_export]
macro_rules! emit {
    ($($t:tt)*) => { $crate::common::emit_line(format_args!($($t)*)) };
}

/// Formats ids as ranges in the given order: `0-9,12,15-20`; `-` when empty.
pub fn ranges(ids: impl IntoIterator<Item = u64>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut run: Option<(u64, u64)> = None;
    let push = |out: &mut Vec<String>, (a, b): (u64, u64)| {
        out.push(if a == b { a.to_string() } else { format!("{a}-{b}") });
    };
    for id in ids {
        run = match run {
            Some((a, b)) if b.checked_add(1) == Some(id) => Some((a, id)),
            Some(r) => {
                push(&mut out, r);
                Some((id, id))
            }
            None => Some((id, id)),
        };
    }
    if let Some(r) = run {
        push(&mut out, r);
    }
    if out.is_empty() {
        "-".into()
    } else {
        out.join(",")
    }
}

/// Parses what [`ranges`] wrote.
pub fn parse_ranges(s: &str) -> Result<Vec<u64>, String> {
    if s == "-" {
        return Ok(Vec::new());
    }
    let mut ids = Vec::new();
    for part in s.split(',') {
        let num = |x: &str| x.parse::<u64>().map_err(|e| format!("bad range {part:?}: {e}"));
        match part.split_once('-') {
            Some((a, b)) => ids.extend(num(a)?..=num(b)?),
            None => ids.push(num(part)?),
        }
    }
    Ok(ids)
}

/// `--key value` arguments.
#[derive(Debug, Default)]
pub struct Args(HashMap<String, String>);

impl Args {
    /// Parses `--key value` pairs; anything else is an error.
    pub fn parse(args: &[String]) -> Result<Args, String> {
        let mut map = HashMap::new();
        let mut it = args.iter();
        while let Some(k) = it.next() {
            let key = k.strip_prefix("--").ok_or_else(|| format!("expected --key, got {k:?}"))?;
            let v = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
            map.insert(key.to_string(), v.clone());
        }
        Ok(Args(map))
    }

    /// A required string.
    pub fn str(&self, key: &str) -> Result<&str, String> {
        self.0.get(key).map(String::as_str).ok_or_else(|| format!("missing --{key}"))
    }

    /// An optional string.
    pub fn opt(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A number, or `default` when absent.
    pub fn num(&self, key: &str, default: u64) -> Result<u64, String> {
        match self.0.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e| format!("--{key} {v:?}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_round_trip() {
        let ids = vec![0, 1, 2, 5, 7, 8, 3];
        let s = ranges(ids.clone());
        assert_eq!(s, "0-2,5,7-8,3");
        assert_eq!(parse_ranges(&s).unwrap(), ids);
        assert_eq!(ranges([]), "-");
        assert!(parse_ranges("-").unwrap().is_empty());
    }

    #[test]
    fn payload_round_trip() {
        for id in [0, 1, 2999, u64::MAX] {
            assert_eq!(parse(&payload(id)), Some(id));
        }
        let mut p = payload(7).to_vec();
        p[100] ^= 1;
        assert_eq!(parse(&p), None);
    }
}
