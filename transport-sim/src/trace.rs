//! Run traces: a cheap hash of everything that happened (always on) and, when asked for, readable
//! lines (virtual time, node, direction, frame type, seq/ack, fault injected).

use std::fmt::Write as _;

use bytes::Bytes;
use tether_core::wire::{Decoder, Frame};
use tether_core::Instant;

/// FNV-1a, 64 bit: a fixed, seedless hash so trace hashes are stable across runs and builds.
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    /// Mixes in bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= u64::from(x);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01B3);
        }
    }

    /// Mixes in one number.
    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    /// The hash so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// What a run recorded about itself.
#[derive(Debug, Default)]
pub struct Trace {
    /// Keep readable lines (costly; off in sweeps).
    pub enabled: bool,
    /// Hash of every scheduled action, read, write and fault, in order.
    pub hash: Fnv,
    /// The readable trace, when enabled.
    pub lines: Vec<String>,
}

impl Trace {
    /// Mixes a tagged tuple into the hash.
    pub fn mix(&mut self, tag: u8, a: u64, b: u64, c: u64) {
        self.hash.u64(u64::from(tag) << 56 ^ a);
        self.hash.u64(b);
        self.hash.u64(c);
    }

    /// Adds a readable line (only when enabled; the closure is not run otherwise).
    pub fn line(&mut self, now: Instant, f: impl FnOnce() -> String) {
        if self.enabled {
            let s = f();
            self.hash.bytes(s.as_bytes());
            self.lines.push(format!("{} {s}", fmt_time(now)));
        }
    }
}

/// `12.345678s`: virtual time with microsecond precision.
pub fn fmt_time(t: Instant) -> String {
    let n = t.as_nanos();
    format!("{:>4}.{:06}s", n / 1_000_000_000, (n % 1_000_000_000) / 1_000)
}

/// A one-line description of a frame for the trace.
pub fn describe_frame(f: &Frame) -> String {
    match f {
        Frame::Hello(h) => format!(
            "Hello {:?} sid={:x} recv={} acked={} win={}",
            h.kind, h.session_id, h.positions.received, h.positions.acked, h.positions.max_seq
        ),
        Frame::Welcome(w) => format!(
            "Welcome resumed={} sid={:x} recv={} acked={}",
            w.resumed, w.session_id, w.positions.received, w.positions.acked
        ),
        Frame::Reject { reason, .. } => format!("Reject {reason:?}"),
        Frame::Data { seq, ack, messages } => {
            let last = seq + messages.count() as u64 - 1;
            let bytes: usize = messages.iter().map(|m| m.len()).sum();
            format!("Data seq={seq}..={last} ack={ack} msgs={} bytes={bytes}", messages.count())
        }
        Frame::Ack(p) => {
            format!("Ack recv={} acked={} win={}/{}", p.received, p.acked, p.max_seq, p.max_bytes)
        }
        Frame::Ping { token } => format!("Ping {token}"),
        Frame::Pong { token } => format!("Pong {token}"),
        Frame::Close { final_seq } => format!("Close final={final_seq}"),
        Frame::CloseAck { final_seq } => format!("CloseAck final={final_seq}"),
        Frame::CloseDone => "CloseDone".into(),
        Frame::Abort { reason } => format!("Abort {reason:?}"),
        Frame::ConnClose { reason } => format!("ConnClose {reason:?}"),
    }
}

/// Decodes what a tap on one direction of a connection sees, one description per whole frame.
pub fn tap_frames(decoder: &mut Decoder, bytes: &Bytes) -> String {
    decoder.push(bytes.clone());
    let mut out = String::new();
    loop {
        match decoder.next_frame() {
            Ok(Some(f)) => {
                if !out.is_empty() {
                    out.push_str(" | ");
                }
                out.push_str(&describe_frame(&f));
            }
            Ok(None) => break,
            Err(e) => {
                let _ = write!(out, " | <undecodable: {e}>");
                break;
            }
        }
    }
    if out.is_empty() {
        out.push_str("(partial frame)");
    }
    out
}

/// Counts whole frames in a buffer that starts at a frame boundary (cheap: length prefixes only).
pub fn count_frames(mut b: &[u8]) -> u64 {
    let mut n = 0;
    while b.len() >= 4 {
        let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize + 8;
        if len > b.len() {
            break;
        }
        b = &b[len..];
        n += 1;
    }
    n
}
