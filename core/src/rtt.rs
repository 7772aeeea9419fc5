//! Round-trip time estimation as in RFC 6298.

use crate::time::Duration;

/// Smoothed RTT and its variation from samples, in nanoseconds (compact: it lives in every session).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RttEstimator {
    /// Smoothed RTT; meaningful once `sampled`.
    srtt: u64,
    rttvar: u64,
    sampled: bool,
}

impl RttEstimator {
    /// Folds in one sample: the first sets SRTT = R, RTTVAR = R/2; later ones use alpha 1/8, beta 1/4.
    pub(crate) fn sample(&mut self, r: Duration) {
        let r = u64::try_from(r.as_nanos()).unwrap_or(u64::MAX / 8);
        if self.sampled {
            let delta = self.srtt.abs_diff(r);
            self.rttvar = (self.rttvar.saturating_mul(3)).saturating_add(delta) / 4;
            self.srtt = (self.srtt.saturating_mul(7)).saturating_add(r) / 8;
        } else {
            self.sampled = true;
            self.srtt = r;
            self.rttvar = r / 2;
        }
    }

    /// Smoothed RTT, once sampled.
    pub(crate) fn srtt(&self) -> Option<Duration> {
        self.sampled.then(|| Duration::from_nanos(self.srtt))
    }

    /// RTT variation, once sampled.
    pub(crate) fn rttvar(&self) -> Option<Duration> {
        self.sampled.then(|| Duration::from_nanos(self.rttvar))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_rfc_6298() {
        let mut e = RttEstimator::default();
        assert_eq!(e.srtt(), None);
        e.sample(Duration::from_millis(100));
        assert_eq!(e.srtt(), Some(Duration::from_millis(100)));
        assert_eq!(e.rttvar(), Some(Duration::from_millis(50)));
        e.sample(Duration::from_millis(200));
        assert_eq!(e.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(e.rttvar(), Some(Duration::from_micros(62_500)));
    }
}
