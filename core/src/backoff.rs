//! Reconnect backoff: exponential growth with full jitter, from a seeded generator.

use crate::time::Duration;

/// A small deterministic generator (SplitMix64) for jitter. Not for secrets.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Exponential backoff with full jitter: attempt `n` waits a uniform delay in
/// `[0, min(max, initial * 2^n)]`. The bounds come from the config at each call.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    attempt: u32,
    rng: SplitMix64,
}

impl Backoff {
    /// A backoff at its first attempt, jittered from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Backoff { attempt: 0, rng: SplitMix64::new(seed) }
    }

    /// The delay before the next attempt; each call counts one more failed attempt.
    pub(crate) fn next_delay(&mut self, initial: Duration, max: Duration) -> Duration {
        let shift = self.attempt.min(31);
        let ceiling = initial.saturating_mul(1u32 << shift).min(max);
        self.attempt = self.attempt.saturating_add(1);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.rng.next_u64() % nanos.saturating_add(1))
    }

    /// Starts over from `initial` after a success.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_the_ceiling_and_resets() {
        let initial = Duration::from_millis(10);
        let max = Duration::from_millis(300);
        let mut b = Backoff::new(7);
        for n in 0..40u32 {
            let ceiling = (initial * 2u32.pow(n.min(10))).min(max);
            assert!(b.next_delay(initial, max) <= ceiling);
        }
        b.reset();
        assert!(b.next_delay(initial, max) <= initial);
    }

    /// The jitter comes from SplitMix64 itself (Steele, Lea and Flood; Vigna's reference
    /// `splitmix64.c`): its first outputs from seed 0, so a slip in the mixing steps (which would
    /// still look random, and clump or skew reconnects) is caught.
    #[test]
    fn splitmix64_matches_the_reference_outputs() {
        let mut g = SplitMix64::new(0);
        assert_eq!(g.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(g.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(g.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn same_seed_same_delays() {
        let (initial, max) = (Duration::from_millis(10), Duration::from_secs(1));
        let (mut a, mut b) = (Backoff::new(99), Backoff::new(99));
        for _ in 0..10 {
            assert_eq!(a.next_delay(initial, max), b.next_delay(initial, max));
        }
    }
}
