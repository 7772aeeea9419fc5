//! The core's own notion of time. The core never reads a clock: every entry point takes `now`.

use core::ops::{Add, Sub};
pub use core::time::Duration;

/// A point in time, as nanoseconds since an origin the caller chooses.
///
/// Adapters map their monotonic clock onto it (e.g. nanoseconds since the runtime started); the
/// simulator and fuzzers construct it directly. Only differences between instants are meaningful.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The origin: zero nanoseconds.
    pub const ZERO: Instant = Instant(0);

    /// An instant `nanos` nanoseconds after the origin.
    pub const fn from_nanos(nanos: u64) -> Self {
        Instant(nanos)
    }

    /// An instant `millis` milliseconds after the origin (saturating).
    pub const fn from_millis(millis: u64) -> Self {
        Instant(millis.saturating_mul(1_000_000))
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    /// Saturates at the far future rather than overflowing.
    fn add(self, d: Duration) -> Instant {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(nanos))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Saturates at zero when `rhs` is later than `self`.
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

/// The earliest of two optional deadlines.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_nanos(u64::MAX - 1);
        assert_eq!(t + Duration::from_secs(1), Instant::from_nanos(u64::MAX));
        assert_eq!(Instant::ZERO - t, Duration::ZERO);
        assert_eq!(Instant::from_millis(3) - Instant::from_millis(1), Duration::from_millis(2));
    }

    /// Adapters map a core deadline back onto their clock through `as_nanos`.
    #[test]
    fn nanoseconds_round_trip() {
        for n in [0, 1, 999, 1_500_000_000, u64::MAX] {
            assert_eq!(Instant::from_nanos(n).as_nanos(), n);
        }
        assert_eq!(Instant::from_millis(3).as_nanos(), 3_000_000);
        assert_eq!(Instant::from_millis(u64::MAX).as_nanos(), u64::MAX, "saturates");
    }
}
