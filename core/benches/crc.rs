//! CRC-32C implementations side by side: `cargo bench -p tether-core --bench crc`
//! (`CRC_BENCH_QUICK=1` for a shorter run).
//!
//! One thread, one process. For each buffer size (64 B, 1 KiB, 16 KiB, 64 KiB, 256 KiB) and each
//! pattern, the implementations are timed in alternating batches (A B, then B A, ...): 41 rounds
//! with 8 MiB of input per batch (15 rounds of 4 MiB quick). Every round's time ratio is kept; the
//! table reports the median of those ratios (and the 25th-75th percentile range), which is robust
//! to other load on the machine, plus each implementation's median throughput for orientation.
//!
//! Patterns, as tether-core uses the CRC (`core/src/wire/frame.rs`):
//! - **one-shot**: `checksum(frame)`, as the receiver verifies a frame (`Frame::parse_head`) and as
//!   control frames are written;
//! - **incremental**: `append(append(append(0, header), payload), rest)`, as `DataFrameWriter`
//!   writes a data frame whose message is handed over by reference: the 24-byte header (length,
//!   type, seq, ack and the message's length prefix), then the payload, then the empty rest.
//!
//! Buffers:
//! - **warm**: the same buffer every time (in L1/L2);
//! - **cold**: a 128 MiB pool (beyond this machine's 32 MiB L3) cut into buffers of the size,
//!   visited in a shuffled order, so each buffer comes from memory.
//!
//! The implementations are the `crc32c` crate (SSE4.2 `crc32`, three interleaved streams) and the
//! `crc-fast` crate (CRC-32/ISCSI; carry-less-multiply folding fused with `crc32`: AVX-512
//! VPCLMULQDQ where the CPU and Rust (1.89+) allow it), called through the same wrappers as
//! `core/src/crc.rs`. Both are checked against each other and the check value first.

use std::hint::black_box;
use std::time::Instant;

/// An implementation: `checksum(data)` and `append(crc, data)` as in `core/src/crc.rs`, called
/// statically (no function pointers), as tether-core calls them.
trait Imp {
    const NAME: &'static str;
    fn checksum(data: &[u8]) -> u32;
    fn append(crc: u32, data: &[u8]) -> u32;
}

/// The `crc32c` crate.
struct Crc32c;

impl Imp for Crc32c {
    const NAME: &'static str = "crc32c 0.6";

    #[inline]
    fn checksum(data: &[u8]) -> u32 {
        crc32c::crc32c(data)
    }

    #[inline]
    fn append(crc: u32, data: &[u8]) -> u32 {
        crc32c::crc32c_append(crc, data)
    }
}

/// The `crc-fast` crate.
struct CrcFast;

impl Imp for CrcFast {
    const NAME: &'static str = "crc-fast 1.9";

    #[inline]
    fn checksum(data: &[u8]) -> u32 {
        crc_fast::crc32_iscsi(data)
    }

    #[inline]
    fn append(crc: u32, data: &[u8]) -> u32 {
        // A fresh CRC (0) resumes from the initial register, as the one-shot call starts: skip the
        // digest's set-up (it copies ~200 bytes of parameters and calls through a pointer).
        if crc == 0 {
            return crc_fast::crc32_iscsi(data);
        }
        if data.is_empty() {
            return crc;
        }
        // The digest's state is the CRC register: a finished CRC-32C `crc` resumes from `!crc`.
        let mut digest = crc_fast::Digest::new_with_init_state(
            crc_fast::CrcAlgorithm::Crc32Iscsi,
            u64::from(!crc),
        );
        digest.update(data);
        digest.finalize() as u32
    }
}

/// Header bytes before a data frame's payload: length 4, type 1, seq 8, ack 8, length prefix 3.
const HEADER: usize = 24;

#[derive(Clone, Copy, PartialEq)]
enum Pattern {
    OneShot,
    Incremental,
}

/// CRC of one frame of `frame.len()` bytes in the given pattern.
#[inline(always)]
fn run<I: Imp>(pattern: Pattern, frame: &[u8]) -> u32 {
    match pattern {
        Pattern::OneShot => I::checksum(frame),
        Pattern::Incremental => {
            let (header, payload) = frame.split_at(HEADER.min(frame.len()));
            let crc = I::append(0, header);
            let crc = I::append(crc, payload);
            I::append(crc, &[])
        }
    }
}

/// A tiny xorshift generator (fill data, shuffle order).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The frames to checksum: either one buffer (warm) or many in a pool (cold), and the order.
struct Frames {
    pool: Vec<u8>,
    size: usize,
    order: Vec<usize>,
}

impl Frames {
    fn new(size: usize, cold: bool, rng: &mut Rng) -> Frames {
        const POOL: usize = 128 << 20;
        let count = if cold { (POOL / size).max(2) } else { 1 };
        let pool: Vec<u8> = (0..count * size).map(|_| rng.next() as u8).collect();
        let mut order: Vec<usize> = (0..count).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.next() as usize % (i + 1));
        }
        Frames { pool, size, order }
    }

    fn frame(&self, i: usize) -> &[u8] {
        let at = self.order[i % self.order.len()] * self.size;
        &self.pool[at..at + self.size]
    }
}

/// Times `iters` frames through `I`, starting at frame `start`; returns seconds.
#[inline(never)]
fn batch<I: Imp>(pattern: Pattern, frames: &Frames, start: usize, iters: usize) -> f64 {
    let mut acc = 0u32;
    let t0 = Instant::now();
    for i in start..start + iters {
        acc ^= run::<I>(pattern, black_box(frames.frame(i)));
    }
    let secs = t0.elapsed().as_secs_f64();
    black_box(acc);
    secs
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn size_label(size: usize) -> String {
    if size >= 1024 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

/// Both implementations give the check value and agree with each other in both patterns.
fn check<I: Imp>() {
    assert_eq!(I::checksum(b"123456789"), 0xE306_9283, "{}", I::NAME);
    assert_eq!(I::append(I::append(0, b"1234"), b"56789"), 0xE306_9283, "{}", I::NAME);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let data: Vec<u8> = (0..300_000).map(|_| rng.next() as u8).collect();
    for len in [0, 1, 7, 63, 64, 255, 256, 257, 1024, 4099, 16384, 65536, 262_144, 300_000] {
        let d = &data[..len];
        let want = Crc32c::checksum(d);
        for pattern in [Pattern::OneShot, Pattern::Incremental] {
            assert_eq!(run::<I>(pattern, d), want, "{} at {len}", I::NAME);
        }
    }
}

fn main() {
    check::<Crc32c>();
    check::<CrcFast>();
    let quick = std::env::var_os("CRC_BENCH_QUICK").is_some();
    // Bytes per batch and rounds per cell: a batch takes about 0.5-2 ms warm.
    let (batch_bytes, rounds) = if quick { (4usize << 20, 15) } else { (8usize << 20, 41) };
    let sizes = [64usize, 1024, 16 * 1024, 64 * 1024, 256 * 1024];
    type Base = Crc32c;
    type Cand = CrcFast;
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);

    println!("CRC-32C: {} vs {} (one thread, alternating batches)", Cand::NAME, Base::NAME);
    println!(
        "  {} rounds per cell, {} MiB per batch; crc-fast's path here: {}",
        rounds,
        batch_bytes >> 20,
        crc_fast::get_calculator_target(crc_fast::CrcAlgorithm::Crc32Iscsi)
    );
    println!();
    println!(
        "| buffers | pattern | size | speed-up {} / {} (median) | p25-p75 | {} GB/s | {} GB/s |",
        Cand::NAME,
        Base::NAME,
        Base::NAME,
        Cand::NAME
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for cold in [false, true] {
        for &size in &sizes {
            let frames = Frames::new(size, cold, &mut rng);
            let iters = (batch_bytes / size).max(1);
            for pattern in [Pattern::OneShot, Pattern::Incremental] {
                // Warm-up: one batch each.
                batch::<Base>(pattern, &frames, 0, iters);
                batch::<Cand>(pattern, &frames, 0, iters);
                let mut ratios = Vec::with_capacity(rounds);
                let (mut tb, mut tc) = (Vec::new(), Vec::new());
                let mut start = 0;
                for round in 0..rounds {
                    let (b, c) = if round % 2 == 0 {
                        let b = batch::<Base>(pattern, &frames, start, iters);
                        let c = batch::<Cand>(pattern, &frames, start + iters, iters);
                        (b, c)
                    } else {
                        let c = batch::<Cand>(pattern, &frames, start, iters);
                        let b = batch::<Base>(pattern, &frames, start + iters, iters);
                        (b, c)
                    };
                    start += 2 * iters;
                    ratios.push(b / c);
                    tb.push(b);
                    tc.push(c);
                }
                for v in [&mut ratios, &mut tb, &mut tc] {
                    v.sort_by(f64::total_cmp);
                }
                let gbs = |t: &[f64]| (iters * size) as f64 / percentile(t, 0.5) / 1e9;
                println!(
                    "| {} | {} | {} | {:.2}x | {:.2}-{:.2} | {:.1} | {:.1} |",
                    if cold { "cold (128 MiB pool)" } else { "warm (one buffer)" },
                    if pattern == Pattern::OneShot { "one-shot" } else { "incremental" },
                    size_label(size),
                    percentile(&ratios, 0.5),
                    percentile(&ratios, 0.25),
                    percentile(&ratios, 0.75),
                    gbs(&tb),
                    gbs(&tc),
                );
            }
        }
    }
}
