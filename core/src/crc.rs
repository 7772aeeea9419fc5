//! CRC-32C (Castagnoli) over frames.
//!
//! With the `std` feature the `crc32c` crate is used: it picks the SSE4.2 / ARMv8 CRC instruction at
//! run time and is about 2.5 times faster than the best table-driven code on 64 B frames and far more
//! on large ones (see `../shared/ANCHORS.md` and BENCHMARKS.md). Without `std` (the `crc32c` crate needs
//! it for CPU feature detection) the `crc` crate's slice-by-16 table implementation is used. Both give
//! identical results; a test checks them against each other and the standard check value.

/// CRC-32C of `data` in one call.
#[inline]
pub(crate) fn checksum(data: &[u8]) -> u32 {
    append(0, data)
}

#[cfg(feature = "std")]
#[inline]
pub(crate) fn append(crc: u32, data: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, data)
}

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

    #[test]
    fn check_value() {
        assert_eq!(checksum(b"123456789"), 0xE306_9283);
        assert_eq!(table::append(0, b"123456789"), 0xE306_9283);
    }

    #[test]
    fn incremental_equals_one_shot_and_implementations_agree() {
        let data: alloc::vec::Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        for split in [0, 1, 17, 500, 999, 1000] {
            assert_eq!(append(append(0, &data[..split]), &data[split..]), checksum(&data));
            let t = table::append(table::append(0, &data[..split]), &data[split..]);
            assert_eq!(t, checksum(&data));
        }
    }
}
