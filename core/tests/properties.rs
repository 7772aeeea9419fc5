//! quickcheck properties: random schedules of sends, faults and time jumps must keep the contract;
//! the codec round-trips and never panics on random or mutated bytes.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use tether_core::wire::{Decoder, Frame, Hello, HelloKind, Positions, Welcome, INLINE_PAYLOAD_MAX};
use tether_core::{AckMode, Config, Duration, FrameSink, Reason};

#[derive(Clone, Debug)]
enum Op {
    ClientSend(u8),
    ServerSend(u8),
    Advance(u16),
    Reset,
    Blackhole,
    SuffixLoss,
    Corrupt,
    HalfOpen,
    Partition(u16),
    StallServer(bool),
    StallClient(bool),
    ClientClose,
    ServerClose,
    RestartServer,
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Op {
        match u8::arbitrary(g) % 20 {
            0..=3 => Op::ClientSend(u8::arbitrary(g) % 40),
            4..=6 => Op::ServerSend(u8::arbitrary(g) % 40),
            7..=10 => Op::Advance(u16::arbitrary(g) % 2000),
            11 => Op::Reset,
            12 => Op::Blackhole,
            13 => Op::SuffixLoss,
            14 => Op::Corrupt,
            15 => Op::HalfOpen,
            16 => Op::Partition(u16::arbitrary(g) % 3000),
            17 => Op::StallServer(bool::arbitrary(g)),
            18 => Op::StallClient(bool::arbitrary(g)),
            _ => match u8::arbitrary(g) % 8 {
                0 => Op::RestartServer,
                1..=3 => Op::ServerClose,
                _ => Op::ClientClose,
            },
        }
    }
}

#[derive(Clone, Debug)]
struct Schedule {
    seed: u64,
    manual_ack: bool,
    small_windows: bool,
    split_reads: bool,
    read_in_place: bool,
    /// No server restarts, long partitions or stalled readers: the network "heals", so both
    /// sides must end with a clean close.
    gentle: bool,
    ops: Vec<Op>,
}

impl Arbitrary for Schedule {
    fn arbitrary(g: &mut Gen) -> Schedule {
        Schedule {
            seed: u64::arbitrary(g),
            manual_ack: bool::arbitrary(g),
            small_windows: bool::arbitrary(g),
            split_reads: bool::arbitrary(g),
            read_in_place: bool::arbitrary(g),
            gentle: bool::arbitrary(g),
            ops: Vec::arbitrary(g),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Schedule>> {
        let me = self.clone();
        Box::new(self.ops.shrink().map(move |ops| Schedule { ops, ..me.clone() }))
    }
}

fn config_for(s: &Schedule) -> Config {
    let mut c = test_config();
    if s.manual_ack {
        c.ack_mode = AckMode::Manual;
    }
    if s.small_windows {
        c.receive_window_messages = 8;
        c.receive_window_bytes = 4096;
        c.max_message_size = 1024;
        c.max_frame_size = 1024 + 64;
        c.max_unconfirmed_messages = 16;
        c.max_unconfirmed_bytes = 8192;
    }
    c
}

/// Runs a schedule, heals the network, closes, and checks the contract. Returns whether the
/// network healed within session_timeout (then both sides must have closed cleanly).
fn run_schedule(s: &Schedule) -> Net {
    let mut net = Net::new(config_for(s), 1, s.seed);
    net.split_reads = s.split_reads;
    net.read_in_place = s.read_in_place;
    let limit = Duration::from_secs(600);
    assert!(net.run_until(Duration::from_secs(5), |n| n.server_app(0).is_some()));
    let size = if s.small_windows { 300 } else { 100 };
    for op in s.ops.iter().filter(|op| !s.gentle || gentle(op)) {
        if net.clients[0].app.ended() {
            break;
        }
        match *op {
            Op::ClientSend(n) => net.client_sends(0, n as usize, size),
            Op::ServerSend(n) => {
                if net.server_app(0).is_some() {
                    net.server_sends(0, n as usize, size)
                }
            }
            Op::Advance(ms) => net.run_for(Duration::from_millis(u64::from(ms))),
            Op::Reset => net.reset(0),
            Op::Blackhole => net.blackhole(0),
            Op::SuffixLoss => net.lose_suffix_then_reset(0),
            Op::Corrupt => {
                net.corrupt(0);
            }
            Op::HalfOpen => net.half_open(0),
            Op::Partition(ms) => net.partition(Duration::from_millis(u64::from(ms))),
            Op::StallServer(b) => net.server_stalled = b,
            Op::StallClient(b) => net.clients[0].app.stalled = b,
            Op::ClientClose => {
                let now = net.now;
                let _ = net.clients[0].session.close(now);
            }
            Op::ServerClose => {
                let now = net.now;
                if let Some(id) = net.clients[0].session.id() {
                    if let Some(session) = net.server.session_mut(id) {
                        let _ = session.close(now);
                    }
                }
            }
            Op::RestartServer => net.restart_server(),
        }
    }
    // Heal: readers read, the partition ends, then close from the client.
    net.server_stalled = false;
    net.clients[0].app.stalled = false;
    net.run_for(Duration::from_secs(4));
    let now = net.now;
    let _ = net.clients[0].session.close(now);
    assert!(net.run_to_end(limit), "a side never ended");
    check_contract(&net);
    net
}

/// Ops after which the network heals well within close_timeout and session_timeout.
fn gentle(op: &Op) -> bool {
    match op {
        Op::RestartServer | Op::StallServer(true) | Op::StallClient(true) => false,
        Op::Partition(ms) => u64::from(*ms) < test_config().close_timeout.as_millis() as u64 / 4,
        _ => true,
    }
}

#[test]
fn prop_random_schedules_keep_the_contract() {
    fn prop(s: Schedule) -> TestResult {
        let net = run_schedule(&s);
        let client = &net.clients[0].app;
        if std::env::var("PROP_VERBOSE").is_ok() {
            let st = net.clients[0].session.stats();
            eprintln!(
                "ops={} gentle={} closed={} lost={:?} sent={} recv={} reconnects={} disconnects={}",
                s.ops.len(),
                s.gentle,
                client.closed(),
                client.lost().map(|l| *l.0),
                client.sent.len(),
                client.delivered.len(),
                st.reconnects,
                st.disconnects
            );
        }
        let server_closed = net.server_apps.values().all(|a| a.closed());
        if s.gentle && !(client.closed() && server_closed) {
            return TestResult::error(format!(
                "healed network but the close was not clean: client lost {:?}",
                client.lost().map(|l| *l.0)
            ));
        }
        TestResult::passed()
    }
    QuickCheck::new().tests(300).max_tests(1000).quickcheck(prop as fn(Schedule) -> TestResult);
}

// ----- codec -----

#[derive(Clone, Debug)]
struct AnyFrame(Frame);

impl Arbitrary for AnyFrame {
    fn arbitrary(g: &mut Gen) -> AnyFrame {
        let p = Positions {
            received: u64::arbitrary(g),
            acked: u64::arbitrary(g),
            max_seq: u64::arbitrary(g),
            max_bytes: u64::arbitrary(g),
        };
        let mut secret = [0u8; 16];
        secret.iter_mut().for_each(|b| *b = u8::arbitrary(g));
        let reason = Reason::from_code(u8::arbitrary(g));
        let f = match u8::arbitrary(g) % 12 {
            0 => Frame::Hello(Hello {
                min_version: u16::arbitrary(g),
                max_version: u16::arbitrary(g),
                kind: if bool::arbitrary(g) { HelloKind::New } else { HelloKind::Resume },
                session_id: u64::arbitrary(g),
                secret,
                positions: p,
                max_message_size: u32::arbitrary(g),
            }),
            1 => Frame::Welcome(Welcome {
                version: u16::arbitrary(g),
                resumed: bool::arbitrary(g),
                session_id: u64::arbitrary(g),
                secret,
                positions: p,
                max_message_size: u32::arbitrary(g),
            }),
            2 => Frame::Reject {
                reason,
                min_version: u16::arbitrary(g),
                max_version: u16::arbitrary(g),
            },
            3 => {
                // One to four messages; the first seq leaves room for them (the decoder refuses a
                // run whose sequence numbers would wrap).
                let n = 1 + usize::arbitrary(g) % 4;
                let payloads: Vec<Bytes> =
                    (0..n).map(|_| Bytes::from(Vec::<u8>::arbitrary(g))).collect();
                Frame::data(u64::arbitrary(g) >> 1, u64::arbitrary(g), &payloads)
            }
            4 => Frame::Ack(p),
            5 => Frame::Ping { token: u64::arbitrary(g) },
            6 => Frame::Pong { token: u64::arbitrary(g) },
            7 => Frame::Close { final_seq: u64::arbitrary(g) },
            8 => Frame::CloseAck { final_seq: u64::arbitrary(g) },
            9 => Frame::CloseDone,
            10 => Frame::Abort { reason },
            _ => Frame::ConnClose { reason },
        };
        AnyFrame(f)
    }
}

fn encode(frames: &[AnyFrame]) -> Bytes {
    let mut b = BytesMut::new();
    frames.iter().for_each(|f| f.0.encode(&mut b));
    b.freeze()
}

#[test]
fn prop_codec_round_trips_in_any_chunking() {
    fn prop(frames: Vec<AnyFrame>, cuts: Vec<u16>) -> bool {
        let bytes = encode(&frames);
        let mut d = Decoder::new(1 << 16);
        let mut got = Vec::new();
        let mut rest = bytes;
        for c in cuts.iter().chain(std::iter::once(&u16::MAX)) {
            let n = (*c as usize).min(rest.len());
            d.push(rest.split_to(n));
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        got == frames.into_iter().map(|f| f.0).collect::<Vec<_>>() && d.buffered() == 0
    }
    QuickCheck::new().tests(2000).quickcheck(prop as fn(Vec<AnyFrame>, Vec<u16>) -> bool);
}

/// A sink that keeps payloads by reference, as an adapter doing vectored writes does.
#[derive(Default)]
struct Pieces {
    /// Sealed pieces, then `current`.
    pieces: Vec<Bytes>,
    current: BytesMut,
    /// Payloads handed over by reference.
    by_reference: usize,
}

impl Pieces {
    /// Everything held, in order.
    fn joined(&self) -> Vec<u8> {
        let sealed = self.pieces.iter().flat_map(|p| p.iter().copied());
        sealed.chain(self.current.iter().copied()).collect()
    }
}

impl FrameSink for Pieces {
    fn bytes(&mut self) -> &mut BytesMut {
        &mut self.current
    }

    fn put_payload(&mut self, payload: &Bytes) {
        self.pieces.push(self.current.split().freeze());
        self.pieces.push(payload.clone());
        self.by_reference += 1;
    }

    fn len(&self) -> usize {
        self.pieces.iter().map(Bytes::len).sum::<usize>() + self.current.len()
    }
}

#[test]
fn prop_a_sink_keeping_payloads_by_reference_gets_the_same_bytes() {
    fn prop(frames: Vec<AnyFrame>) -> bool {
        let mut sink = Pieces::default();
        frames.iter().for_each(|f| f.0.encode(&mut sink));
        let joined = sink.joined();
        // Every data payload above the inline size went in as the same allocation, not a copy.
        let by_reference = frames.iter().all(|f| match &f.0 {
            Frame::Data { messages, .. } => messages
                .iter()
                .filter(|payload| payload.len() > INLINE_PAYLOAD_MAX)
                .all(|payload| sink.pieces.iter().any(|p| p.as_ptr() == payload.as_ptr())),
            _ => true,
        });
        joined == encode(&frames) && sink.len() == joined.len() && by_reference
    }
    // Size 600: payloads on both sides of the inline limit.
    QuickCheck::new().rng(Gen::new(600)).tests(500).quickcheck(prop as fn(Vec<AnyFrame>) -> bool);
}

/// Data frames around the inline limit and above a typical adapter's by-reference threshold:
/// payloads above `INLINE_PAYLOAD_MAX` are handed over by reference (the CRC computed across
/// the pieces), the sink gets the same bytes as a `BytesMut`, and every frame decodes (its CRC
/// checks).
#[test]
fn frames_encoded_in_pieces_decode() {
    let m = INLINE_PAYLOAD_MAX;
    let sizes = [0, 1, m - 1, m, m + 1, 8191, 8192, 70_000];
    let frames: Vec<Frame> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let payload: Bytes = (0..n).map(|k| (k * 31 + i) as u8).collect();
            Frame::data(i as u64, 7, &[payload])
        })
        .collect();
    let mut sink = Pieces::default();
    let mut flat = BytesMut::new();
    for (f, &n) in frames.iter().zip(&sizes) {
        let before = sink.by_reference;
        f.encode(&mut sink);
        f.encode(&mut flat);
        let by_reference = usize::from(n > m);
        assert_eq!(sink.by_reference - before, by_reference, "{n} B");
    }
    let joined = sink.joined();
    assert_eq!(joined, &flat[..]);
    let mut d = Decoder::new(1 << 20);
    d.push(Bytes::from(joined));
    let mut got = Vec::new();
    while let Some(f) = d.next_frame().unwrap() {
        got.push(f);
    }
    assert_eq!(got, frames);
}

#[test]
fn prop_random_bytes_never_panic_and_respect_the_limit() {
    fn prop(chunks: Vec<Vec<u8>>) -> bool {
        let mut d = Decoder::new(256);
        for c in chunks {
            d.push(Bytes::from(c));
            loop {
                match d.next_frame() {
                    Ok(Some(_)) => continue,
                    Ok(None) => break,
                    Err(_) => return true,
                }
            }
            if d.buffered() > 256 + 9 + 64 * 1024 {
                return false;
            }
        }
        true
    }
    QuickCheck::new().tests(5000).quickcheck(prop as fn(Vec<Vec<u8>>) -> bool);
}

#[test]
fn prop_mutated_frames_never_panic_and_are_caught() {
    fn prop(frames: Vec<AnyFrame>, flips: Vec<(u16, u8)>) -> TestResult {
        let bytes = encode(&frames);
        if bytes.is_empty() || flips.is_empty() {
            return TestResult::discard();
        }
        let mut v = bytes.to_vec();
        for (at, bit) in &flips {
            let i = *at as usize % v.len();
            v[i] ^= 1 << (bit % 8);
        }
        let mut d = Decoder::new(1 << 16);
        d.push(Bytes::from(v.clone()));
        let mut decoded = Vec::new();
        while let Ok(Some(f)) = d.next_frame() {
            decoded.push(f);
        }
        // Whatever decoded must be a prefix of the original frames unless the mutation cancelled out.
        let original: Vec<Frame> = frames.into_iter().map(|f| f.0).collect();
        let changed = v != bytes.to_vec();
        TestResult::from_bool(!changed || decoded.len() < original.len() || decoded != original)
    }
    QuickCheck::new()
        .tests(3000)
        .quickcheck(prop as fn(Vec<AnyFrame>, Vec<(u16, u8)>) -> TestResult);
}
