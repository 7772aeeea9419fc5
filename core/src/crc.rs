//! CRC-32C (Castagnoli) over frames.
//!
//! With the `std` feature the `crc-fast` crate (CRC-32/ISCSI) is used. At run time it picks
//! carry-less-multiply folding fused with the SSE4.2 `crc32` instruction: AVX-512 VPCLMULQDQ where
//! the CPU has it (chosen by itself with Rust 1.89 or later, no feature flag), else PCLMULQDQ; on
//! AArch64 PMULL with the CRC instructions; elsewhere a table. Up to 256 bytes it runs a plain
//! `crc32` loop. Measured with `cargo bench -p tether-core --bench crc` on a 2-vCPU AMD EPYC with
//! AVX-512 VPCLMULQDQ, against the `crc32c` crate used before (SSE4.2 `crc32`, three interleaved
//! streams), alternating in one process: 1.9x as fast at 64 B, 1.5x at 1 KiB, 2.4x at 16 KiB, 2.2x
//! at 64 KiB and 2.1x at 256 KiB on warm buffers (about 58 against 26 GB/s at 64 KiB); 1.1-1.5x on
//! buffers coming from memory. The in-memory pair bench went from 24.6 M to 26.5 M msgs per
//! CPU-second at 64 B (1.08x), 5.5 M to 7.0 M at 1 KiB (1.27x), 145 k to 250 k at 64 KiB (1.72x).
//! BENCHMARKS.md ("CRC-32C implementation") has the tables.
//!
//! Without `std` (`crc-fast` needs it for CPU feature detection) the `crc` crate's slice-by-16
//! table implementation is used. All give identical results; tests check them against each
//! other (and the `crc32c` crate) and the standard check value.

/// CRC-32C of `data` in one call.
#[inline]
pub(crate) fn checksum(data: &[u8]) -> u32 {
    append(0, data)
}

/// Continues a CRC-32C whose value so far is `crc` (0 for a fresh checksum) over `data`.
#[cfg(feature = "std")]
#[inline]
pub(crate) fn append(crc: u32, data: &[u8]) -> u32 {
    // A CRC of 0 resumes from the initial register (`!0`), exactly where a one-shot checksum
    // starts: the one-shot call skips the digest's set-up (which copies ~200 bytes of parameters
    // and calls through a pointer), a measurable cost on small frames.
    if crc == 0 {
        return crc_fast::crc32_iscsi(data);
    }
    if data.is_empty() {
        return crc;
    }
    // The digest's state is the CRC register before the final inversion: `crc` resumes from `!crc`.
    let mut digest =
        crc_fast::Digest::new_with_init_state(crc_fast::CrcAlgorithm::Crc32Iscsi, u64::from(!crc));
    digest.update(data);
    // CRC-32/ISCSI is 32 bits wide: the upper half of the u64 is zero.
    digest.finalize() as u32
}

/// Continues a CRC-32C whose value so far is `crc` (0 for a fresh checksum) over `data`.
#[cfg(not(feature = "std"))]
#[inline]
pub(crate) fn append(crc: u32, data: &[u8]) -> u32 {
    table::append(crc, data)
}

/// The portable table-driven implementation (always compiled, so tests can compare it).
mod table {
    use crc::{Crc, Table, CRC_32_ISCSI};

    static CASTAGNOLI: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&CRC_32_ISCSI);

    /// Continues a CRC-32C whose value so far is `crc` (0 for a fresh checksum).
    #[allow(dead_code, reason = "used only without the std feature, and by tests")]
    pub(super) fn append(crc: u32, data: &[u8]) -> u32 {
        // A finished CRC-32C `crc` resumes from register `!crc`. The crc crate reflects a custom
        // initial value for reflected algorithms (refin), so it is passed pre-reflected.
        let mut digest = CASTAGNOLI.digest_with_initial((crc ^ 0xFFFF_FFFF).reverse_bits());
        digest.update(data);
        digest.finalize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// `append(crc, data)` of one implementation.
    type Append = fn(u32, &[u8]) -> u32;

    /// Every implementation, named: the one in use, the table, and (with `std`, where it is a
    /// dev-dependency's reference) the `crc32c` crate used before.
    fn implementations() -> Vec<(&'static str, Append)> {
        let mut all: Vec<(&'static str, Append)> =
            alloc::vec![("in use", append), ("table", table::append)];
        #[cfg(feature = "std")]
        all.push(("crc32c crate", crc32c::crc32c_append));
        all
    }

    /// The next value of a xorshift64 generator whose state is `x` (never 0).
    fn xorshift(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    /// Deterministic pseudo-random bytes.
    fn bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len).map(|_| xorshift(&mut x) as u8).collect()
    }

    #[test]
    fn check_value() {
        assert_eq!(checksum(b"123456789"), 0xE306_9283);
        for (name, f) in implementations() {
            assert_eq!(f(0, b"123456789"), 0xE306_9283, "{name}");
            assert_eq!(f(f(0, b"1234"), b"56789"), 0xE306_9283, "{name}");
        }
        assert_eq!(checksum(b""), 0);
    }

    #[test]
    fn incremental_equals_one_shot_and_implementations_agree() {
        let data = bytes(1000, 1);
        for split in [0, 1, 17, 500, 999, 1000] {
            for (name, f) in implementations() {
                assert_eq!(f(f(0, &data[..split]), &data[split..]), checksum(&data), "{name}");
            }
        }
    }

    /// Incremental equals one-shot at many split points, across the sizes where the accelerated
    /// code changes path (256 B: small loop vs folding; folding block sizes), in one to three
    /// pieces as `DataFrameWriter` appends them (header, payload, rest), empty pieces included.
    #[test]
    fn incremental_equals_one_shot_at_many_split_points() {
        let data = bytes(2100, 2);
        for len in [0, 1, 2, 7, 8, 9, 15, 16, 63, 64, 65, 255, 256, 257, 511, 512, 1024, 2100] {
            let d = &data[..len];
            let whole = table::append(0, d);
            assert_eq!(checksum(d), whole, "one-shot, {len} bytes");
            for a in (0..=len).step_by(len / 24 + 1).chain([len]) {
                assert_eq!(append(append(0, &d[..a]), &d[a..]), whole, "{len} bytes split at {a}");
                for b in (a..=len).step_by(len / 8 + 1).chain([len]) {
                    let crc = append(append(append(0, &d[..a]), &d[a..b]), &d[b..]);
                    assert_eq!(crc, whole, "{len} bytes split at {a} and {b}");
                }
            }
        }
    }

    /// Random lengths up to 300 KiB at random offsets: every implementation gives the same CRC,
    /// one-shot and split in three at random points. Fewer cases without optimisation (the table
    /// is slow there).
    #[test]
    fn random_lengths_up_to_300_kib_agree() {
        let data = bytes(300 * 1024 + 64, 3);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |bound: usize| (xorshift(&mut x) % bound as u64) as usize;
        let cases = if cfg!(debug_assertions) { 60 } else { 300 };
        for _ in 0..cases {
            let len = next(300 * 1024 + 1);
            let offset = next(64);
            let d = &data[offset..offset + len];
            let want = table::append(0, d);
            let (a, b) = {
                let (p, q) = (next(len + 1), next(len + 1));
                (p.min(q), p.max(q))
            };
            for (name, f) in implementations() {
                assert_eq!(f(0, d), want, "{name}: {len} bytes at offset {offset}");
                let split = f(f(f(0, &d[..a]), &d[a..b]), &d[b..]);
                assert_eq!(split, want, "{name}: {len} bytes split at {a} and {b}");
            }
        }
    }
}
