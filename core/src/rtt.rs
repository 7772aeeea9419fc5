//! Round-trip time estimation as in RFC 6298.

use crate::time::Duration;

/// Smoothed RTT and its variation from samples.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
}

impl RttEstimator {
    /// Folds in one sample: the first sets SRTT = R, RTTVAR = R/2; later ones use alpha 1/8, beta 1/4.
    pub(crate) fn sample(&mut self, r: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(r);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + r) / 8);
            }
        }
    }

    /// Smoothed RTT, once sampled.
    pub(crate) fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// RTT variation, once sampled.
    pub(crate) fn rttvar(&self) -> Option<Duration> {
        self.srtt.map(|_| self.rttvar)
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
