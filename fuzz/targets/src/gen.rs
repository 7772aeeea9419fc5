//! Structured pieces of fuzz inputs shared by the targets: configurations, frames whose fields are
//! either arbitrary or anchored to what the peer under test has said, and byte-level mutations.

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use tether_core::wire::{tests_support, Frame, Hello, HelloKind, Positions, Welcome};
use tether_core::{AckMode, Config, FirstConnect, Reason};

/// Largest payload a generated frame or message carries: big enough to cross window and batch
/// limits of the small configurations below, small enough to keep executions fast.
pub const MAX_FUZZ_PAYLOAD: usize = 1024;

/// A valid [`Config`], small enough that the fuzzer reaches its limits.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub struct ConfigChoice {
    manual_ack: bool,
    message: u16,
    frame_extra: u8,
    window_messages: u8,
    window_bytes_extra: u16,
    unconfirmed_messages: u8,
    unconfirmed_bytes_extra: u16,
    ack_every: u8,
    batch: u16,
    max_sessions: u8,
    max_detached: u8,
    max_handshakes: u8,
}

impl ConfigChoice {
    /// The configuration: short test timers, small limits. Always passes `Config::validate`.
    pub fn config(&self) -> Config {
        let message = 1 + u32::from(self.message) % MAX_FUZZ_PAYLOAD as u32;
        let frame = (message + tether_core::wire::DATA_FRAME_LEN)
            .max(tether_core::wire::MAX_CONTROL_FRAME_LEN)
            + u32::from(self.frame_extra % 64);
        let config = Config {
            max_message_size: message,
            max_frame_size: frame,
            max_unconfirmed_messages: 1 + u32::from(self.unconfirmed_messages % 64),
            max_unconfirmed_bytes: u64::from(message) + u64::from(self.unconfirmed_bytes_extra),
            receive_window_messages: 1 + u32::from(self.window_messages % 64),
            receive_window_bytes: u64::from(message) + u64::from(self.window_bytes_extra),
            ack_mode: if self.manual_ack { AckMode::Manual } else { AckMode::OnDelivery },
            ack_every: 1 + u32::from(self.ack_every % 40),
            transmit_batch_bytes: 1 + u32::from(self.batch),
            max_sessions: 1 + u32::from(self.max_sessions % 16),
            max_detached_sessions: 1 + u32::from(self.max_detached % 8),
            max_handshakes: 1 + u32::from(self.max_handshakes % 8),
            // The byte's high bit, unused by the limit above: existing corpora keep their meaning.
            first_connect: if self.max_handshakes & 0x80 != 0 {
                FirstConnect::Fail
            } else {
                FirstConnect::Retry
            },
            ..test_timers()
        };
        debug_assert_eq!(config.validate(), Ok(()));
        config
    }
}

/// The default configuration with the short timers the core's own tests use, so that faults
/// resolve in little virtual time, but a heartbeat every 250 ms (idle timeout 1 s) instead of
/// every 100 ms: idle virtual time is mostly heartbeats, and this halves the steps an input
/// costs (issue 16: executions per second) while every dead-peer path stays reachable.
pub fn test_timers() -> Config {
    Config {
        // Faults hit the first connection as much as any other: clients ride them out.
        first_connect: FirstConnect::Retry,
        heartbeat_interval: tether_core::Duration::from_millis(250),
        idle_timeout: tether_core::Duration::from_millis(1_000),
        ..tether_sim::harness::test_config()
    }
}

/// Values a generated frame can refer to: positions and identities the target has observed, so
/// that "almost right" frames (an ack one past what was sent, the right session id with a wrong
/// secret) are as easy for the fuzzer to produce as exact ones.
#[derive(Clone, Debug, Default)]
pub struct Anchors {
    /// Interesting sequence positions (receive positions, high-water marks, counts...).
    pub positions: Vec<u64>,
    /// Session ids worth naming.
    pub session_ids: Vec<u64>,
    /// Secrets worth presenting.
    pub secrets: Vec<[u8; 16]>,
}

/// A `u64` field: arbitrary, or an anchor plus a small offset.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Val {
    /// Exactly this value.
    Exact(u64),
    /// Anchor number `.0` (modulo their count) plus `.1`, wrapping.
    Near(u8, i8),
}

impl Val {
    fn get(self, a: &Anchors) -> u64 {
        match self {
            Val::Exact(v) => v,
            Val::Near(i, d) => pick(&a.positions, i).unwrap_or(0).wrapping_add_signed(i64::from(d)),
        }
    }
}

fn pick<T: Copy>(v: &[T], i: u8) -> Option<T> {
    (!v.is_empty()).then(|| v[usize::from(i) % v.len()])
}

/// A session id or secret: arbitrary, or one the target has seen.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Ident<T> {
    /// This value.
    Exact(T),
    /// Known value number `.0` (modulo their count).
    Known(u8),
}

impl Ident<u64> {
    fn get(self, a: &Anchors) -> u64 {
        match self {
            Ident::Exact(v) => v,
            Ident::Known(i) => pick(&a.session_ids, i).unwrap_or(0),
        }
    }
}

impl Ident<[u8; 16]> {
    fn get(self, a: &Anchors) -> [u8; 16] {
        match self {
            Ident::Exact(v) => v,
            Ident::Known(i) => pick(&a.secrets, i).unwrap_or([0; 16]),
        }
    }
}

/// Receive positions and window.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub struct PosSpec {
    received: Val,
    acked: Val,
    max_seq: Val,
    max_bytes: Val,
}

impl PosSpec {
    fn get(self, a: &Anchors) -> Positions {
        Positions {
            received: self.received.get(a),
            acked: self.acked.get(a),
            max_seq: self.max_seq.get(a),
            max_bytes: self.max_bytes.get(a),
        }
    }
}

/// A protocol version: usually a sensible one.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Version {
    /// The version this build speaks.
    Current,
    /// Any value.
    Exact(u16),
}

impl Version {
    fn get(self) -> u16 {
        match self {
            Version::Current => tether_core::wire::PROTOCOL_VERSION,
            Version::Exact(v) => v,
        }
    }
}

/// One frame, every field arbitrary or anchored.
#[derive(Arbitrary, Clone, Debug)]
pub enum FrameSpec {
    /// `Hello`.
    Hello {
        /// Lowest version.
        min: Version,
        /// Highest version.
        max: Version,
        /// Resume (else new).
        resume: bool,
        /// Session id.
        id: Ident<u64>,
        /// Secret.
        secret: Ident<[u8; 16]>,
        /// Receive positions.
        positions: PosSpec,
        /// Largest message accepted.
        max_message: u32,
    },
    /// `Welcome`.
    Welcome {
        /// Version.
        version: Version,
        /// Resumed flag.
        resumed: bool,
        /// Session id.
        id: Ident<u64>,
        /// Secret.
        secret: Ident<[u8; 16]>,
        /// Receive positions.
        positions: PosSpec,
        /// Largest message accepted.
        max_message: u32,
    },
    /// `Reject`.
    Reject(u8, u16, u16),
    /// `Data`: the bytes (bounded by [`MAX_FUZZ_PAYLOAD`]) cut into a run of `1 + n % 8`
    /// messages.
    Data(Val, Val, Vec<u8>, u8),
    /// `Data`: a run of `1 + n % 4` messages of a given length, filled (cheap large messages).
    DataFilled(Val, Val, u16, u8),
    /// `Ack`.
    Ack(PosSpec),
    /// `Ping`.
    Ping(u64),
    /// `Pong`.
    Pong(Val),
    /// `Close`.
    Close(Val),
    /// `CloseAck`.
    CloseAck(Val),
    /// `CloseDone`.
    CloseDone,
    /// `Abort`.
    Abort(u8),
    /// `ConnClose`.
    ConnClose(u8),
    /// Any type byte and body, with a correct length and checksum.
    Raw(u8, Vec<u8>),
}

impl FrameSpec {
    /// Appends the frame's bytes.
    pub fn encode(&self, a: &Anchors, out: &mut BytesMut) {
        let frame = match self {
            FrameSpec::Hello { min, max, resume, id, secret, positions, max_message } => {
                Frame::Hello(Hello {
                    min_version: min.get(),
                    max_version: max.get(),
                    kind: if *resume { HelloKind::Resume } else { HelloKind::New },
                    session_id: id.get(a),
                    secret: secret.get(a),
                    positions: positions.get(a),
                    max_message_size: *max_message,
                })
            }
            FrameSpec::Welcome { version, resumed, id, secret, positions, max_message } => {
                Frame::Welcome(Welcome {
                    version: version.get(),
                    resumed: *resumed,
                    session_id: id.get(a),
                    secret: secret.get(a),
                    positions: positions.get(a),
                    max_message_size: *max_message,
                })
            }
            FrameSpec::Reject(r, min, max) => Frame::Reject {
                reason: Reason::from_code(*r),
                min_version: *min,
                max_version: *max,
            },
            FrameSpec::Data(seq, ack, bytes, n) => {
                let bytes = Bytes::copy_from_slice(&bytes[..bytes.len().min(MAX_FUZZ_PAYLOAD)]);
                Frame::data(seq.get(a), ack.get(a), &cut(&bytes, 1 + usize::from(*n % 8)))
            }
            FrameSpec::DataFilled(seq, ack, len, n) => {
                let one = Bytes::from(vec![0x5a; usize::from(*len) % (MAX_FUZZ_PAYLOAD + 1)]);
                let run = vec![one; 1 + usize::from(*n % 4)];
                Frame::data(seq.get(a), ack.get(a), &run)
            }
            FrameSpec::Ack(p) => Frame::Ack(p.get(a)),
            FrameSpec::Ping(t) => Frame::Ping { token: *t },
            FrameSpec::Pong(t) => Frame::Pong { token: t.get(a) },
            FrameSpec::Close(s) => Frame::Close { final_seq: s.get(a) },
            FrameSpec::CloseAck(s) => Frame::CloseAck { final_seq: s.get(a) },
            FrameSpec::CloseDone => Frame::CloseDone,
            FrameSpec::Abort(r) => Frame::Abort { reason: Reason::from_code(*r) },
            FrameSpec::ConnClose(r) => Frame::ConnClose { reason: Reason::from_code(*r) },
            FrameSpec::Raw(ty, body) => {
                tests_support::raw_frame(out, *ty, &body[..body.len().min(MAX_FUZZ_PAYLOAD)]);
                return;
            }
        };
        frame.encode(out);
    }
}

/// `bytes` cut into `n` consecutive messages (the last ones empty when there are too few bytes).
fn cut(bytes: &Bytes, n: usize) -> Vec<Bytes> {
    let step = bytes.len().div_ceil(n);
    (0..n)
        .map(|i| bytes.slice((i * step).min(bytes.len())..((i + 1) * step).min(bytes.len())))
        .collect()
}

/// Bytes written to a connection: frames, damaged frames, or raw bytes.
#[derive(Arbitrary, Clone, Debug)]
pub enum Wire {
    /// A well-formed frame.
    Frame(FrameSpec),
    /// A frame with bits flipped at `(offset, mask)` pairs; with `fix_crc` the checksum (and
    /// length) is recomputed afterwards, so the damage reaches the parser.
    Mutated {
        /// The frame before damage.
        frame: FrameSpec,
        /// Byte offsets (modulo the frame's length) and XOR masks.
        flips: Vec<(u16, u8)>,
        /// Recompute length and checksum after flipping.
        fix_crc: bool,
    },
    /// The first bytes of a frame only.
    Truncated(FrameSpec, u16),
    /// Raw bytes.
    Raw(Vec<u8>),
}

impl Wire {
    /// Appends the bytes.
    pub fn encode(&self, a: &Anchors, out: &mut BytesMut) {
        match self {
            Wire::Frame(f) => f.encode(a, out),
            Wire::Mutated { frame, flips, fix_crc } => {
                let mut one = BytesMut::new();
                frame.encode(a, &mut one);
                let n = one.len();
                for (at, mask) in flips.iter().take(8) {
                    one[usize::from(*at) % n] ^= mask;
                }
                if *fix_crc && n >= 9 {
                    tests_support::raw_frame(out, one[4], &one[5..n - 4]);
                } else {
                    out.extend_from_slice(&one);
                }
            }
            Wire::Truncated(f, keep) => {
                let mut one = BytesMut::new();
                f.encode(a, &mut one);
                let keep = usize::from(*keep) % one.len();
                out.extend_from_slice(&one[..keep]);
            }
            Wire::Raw(b) => out.extend_from_slice(&b[..b.len().min(MAX_FUZZ_PAYLOAD)]),
        }
    }
}

/// Encodes `wires` (at most 16) into one byte string.
pub fn encode_all(wires: &[Wire], a: &Anchors) -> Bytes {
    let mut out = BytesMut::new();
    for w in wires.iter().take(16) {
        w.encode(a, &mut out);
    }
    out.freeze()
}

/// Splits `bytes` into pieces whose sizes cycle through `sizes` (each at least 1); one piece if
/// `sizes` is empty.
pub fn chunk(bytes: Bytes, sizes: &[u8]) -> Vec<Bytes> {
    if sizes.is_empty() {
        return vec![bytes];
    }
    let mut rest = bytes;
    let mut out = Vec::new();
    let mut k = 0;
    while !rest.is_empty() {
        let n = usize::from(sizes[k % sizes.len()]).max(1).min(rest.len());
        out.push(rest.split_to(n));
        k += 1;
    }
    out
}
