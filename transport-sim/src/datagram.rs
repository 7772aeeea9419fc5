//! Datagram link elements, built now for datagram mode (a later issue): uniform and bursty
//! (Gilbert-Elliott) loss, duplication, reordering, corruption, an MTU, delay and jitter, and a
//! bandwidth limit, composable per direction like the stream elements.
//!
//! A [`DatagramPath`] takes one datagram sent at `now` and returns every copy that arrives, each
//! with its arrival time (none if it was lost; arrival order may differ from send order).

use bytes::{Bytes, BytesMut};
use tether_core::{Duration, Instant};

use crate::rng::SimRng;

/// One stage of a datagram path.
#[derive(Clone, Debug, PartialEq)]
pub enum DatagramElement {
    /// Each datagram is lost with probability `p`.
    UniformLoss {
        /// Loss probability.
        p: f64,
    },
    /// Gilbert-Elliott bursty loss: a good and a bad state with their own loss rates.
    BurstLoss {
        /// Probability of moving from good to bad per datagram.
        enter_bad: f64,
        /// Probability of moving from bad to good per datagram.
        leave_bad: f64,
        /// Loss probability in the bad state (the good state loses nothing).
        loss_in_bad: f64,
    },
    /// Each datagram is duplicated with probability `p` (the copy arrives up to `spread` later).
    Duplicate {
        /// Duplication probability.
        p: f64,
        /// Largest extra delay of the copy.
        spread: Duration,
    },
    /// Each datagram is held back by up to `extra` with probability `p`, so later ones overtake it.
    Reorder {
        /// Probability.
        p: f64,
        /// Largest extra delay.
        extra: Duration,
    },
    /// Flips one bit of a datagram with probability `p`.
    Corrupt {
        /// Probability.
        p: f64,
    },
    /// Datagrams larger than `max` bytes are dropped.
    Mtu {
        /// Largest datagram carried.
        max: usize,
    },
    /// One-way delay plus uniform jitter (jitter alone may reorder).
    Delay {
        /// Propagation delay.
        base: Duration,
        /// Largest extra delay.
        jitter: Duration,
    },
    /// Serialisation at a limited rate, with a bounded queue (tail drop beyond it).
    Bandwidth {
        /// Bytes per second.
        bytes_per_sec: u64,
        /// Most time a datagram may wait in the queue before being dropped.
        max_queue_delay: Duration,
    },
}

/// Counters of what a path did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DatagramStats {
    /// Datagrams sent into the path.
    pub sent: u64,
    /// Copies delivered.
    pub delivered: u64,
    /// Lost (random or bursty loss).
    pub lost: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Held back to be reordered.
    pub reordered: u64,
    /// Corrupted.
    pub corrupted: u64,
    /// Dropped for exceeding the MTU.
    pub too_big: u64,
    /// Dropped by the bandwidth queue.
    pub tail_dropped: u64,
}

/// A datagram path: elements plus their state.
#[derive(Debug)]
pub struct DatagramPath {
    elements: Vec<DatagramElement>,
    bad: bool,
    next_free: Instant,
    /// What happened so far.
    pub stats: DatagramStats,
}

impl DatagramPath {
    /// A path through `elements`, in order.
    pub fn new(elements: Vec<DatagramElement>) -> Self {
        DatagramPath {
            elements,
            bad: false,
            next_free: Instant::ZERO,
            stats: DatagramStats::default(),
        }
    }

    /// Sends one datagram at `now`; returns every copy that arrives, with its arrival time.
    pub fn send(&mut self, now: Instant, d: Bytes, rng: &mut SimRng) -> Vec<(Instant, Bytes)> {
        self.stats.sent += 1;
        let mut items = vec![(now, d)];
        for e in &self.elements {
            let mut next = Vec::with_capacity(items.len());
            for (at, b) in items {
                match e {
                    DatagramElement::UniformLoss { p } => {
                        if rng.chance(*p) {
                            self.stats.lost += 1;
                        } else {
                            next.push((at, b));
                        }
                    }
                    DatagramElement::BurstLoss { enter_bad, leave_bad, loss_in_bad } => {
                        self.bad =
                            if self.bad { !rng.chance(*leave_bad) } else { rng.chance(*enter_bad) };
                        if self.bad && rng.chance(*loss_in_bad) {
                            self.stats.lost += 1;
                        } else {
                            next.push((at, b));
                        }
                    }
                    DatagramElement::Duplicate { p, spread } => {
                        if rng.chance(*p) {
                            self.stats.duplicated += 1;
                            let later = at + rng.duration(Duration::ZERO, *spread);
                            next.push((later, b.clone()));
                        }
                        next.push((at, b));
                    }
                    DatagramElement::Reorder { p, extra } => {
                        if rng.chance(*p) {
                            self.stats.reordered += 1;
                            next.push((at + rng.duration(Duration::ZERO, *extra), b));
                        } else {
                            next.push((at, b));
                        }
                    }
                    DatagramElement::Corrupt { p } => {
                        if !b.is_empty() && rng.chance(*p) {
                            self.stats.corrupted += 1;
                            let mut m = BytesMut::from(&b[..]);
                            let i = rng.index(m.len());
                            m[i] ^= 1 << rng.below(8);
                            next.push((at, m.freeze()));
                        } else {
                            next.push((at, b));
                        }
                    }
                    DatagramElement::Mtu { max } => {
                        if b.len() > *max {
                            self.stats.too_big += 1;
                        } else {
                            next.push((at, b));
                        }
                    }
                    DatagramElement::Delay { base, jitter } => {
                        next.push((at + *base + rng.duration(Duration::ZERO, *jitter), b));
                    }
                    DatagramElement::Bandwidth { bytes_per_sec, max_queue_delay } => {
                        let start = at.max(self.next_free);
                        if start - at > *max_queue_delay {
                            self.stats.tail_dropped += 1;
                            continue;
                        }
                        let nanos =
                            (b.len() as u128 * 1_000_000_000 / u128::from(*bytes_per_sec)) as u64;
                        self.next_free = start + Duration::from_nanos(nanos);
                        next.push((self.next_free, b));
                    }
                }
            }
            items = next;
        }
        self.stats.delivered += items.len() as u64;
        items.sort_by_key(|x| x.0);
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        elements: Vec<DatagramElement>,
        n: u64,
        size: usize,
    ) -> (DatagramPath, Vec<(Instant, u64)>) {
        let mut p = DatagramPath::new(elements);
        let mut rng = SimRng::new(42);
        let mut out = Vec::new();
        for k in 0..n {
            let mut b = vec![0u8; size.max(8)];
            b[..8].copy_from_slice(&k.to_be_bytes());
            for (at, d) in p.send(Instant::from_nanos(k * 100_000), Bytes::from(b), &mut rng) {
                out.push((at, u64::from_be_bytes(d[..8].try_into().unwrap())));
            }
        }
        out.sort();
        (p, out)
    }

    #[test]
    fn uniform_loss_rate() {
        let (p, out) = run(vec![DatagramElement::UniformLoss { p: 0.1 }], 10_000, 20);
        let lost = 10_000 - out.len() as u64;
        assert!((800..1200).contains(&lost), "{lost}");
        assert_eq!(p.stats.lost, lost);
    }

    #[test]
    fn burst_loss_comes_in_runs() {
        let (p, out) = run(
            vec![DatagramElement::BurstLoss { enter_bad: 0.01, leave_bad: 0.2, loss_in_bad: 1.0 }],
            20_000,
            20,
        );
        let ids: Vec<u64> = out.iter().map(|x| x.1).collect();
        let mut gaps = 0;
        let mut lost_in_gaps = 0;
        for w in ids.windows(2) {
            if w[1] > w[0] + 1 {
                gaps += 1;
                lost_in_gaps += w[1] - w[0] - 1;
            }
        }
        assert!(p.stats.lost > 0 && gaps > 0);
        // Bursty: several losses per gap on average (uniform loss at this rate gives ~1).
        assert!(lost_in_gaps as f64 / gaps as f64 > 3.0, "{lost_in_gaps}/{gaps}");
    }

    #[test]
    fn duplication_and_reordering() {
        let (p, out) = run(
            vec![
                DatagramElement::Delay { base: Duration::from_millis(5), jitter: Duration::ZERO },
                DatagramElement::Duplicate { p: 0.1, spread: Duration::from_millis(1) },
                DatagramElement::Reorder { p: 0.1, extra: Duration::from_millis(3) },
            ],
            5_000,
            20,
        );
        assert_eq!(out.len() as u64, 5_000 + p.stats.duplicated);
        assert!(p.stats.duplicated > 300 && p.stats.reordered > 300);
        let ids: Vec<u64> = out.iter().map(|x| x.1).collect();
        assert!(ids.windows(2).any(|w| w[1] < w[0]), "nothing reordered");
        assert!(out.iter().all(|(at, _)| *at >= Instant::from_millis(5)));
    }

    #[test]
    fn corruption_mtu_and_bandwidth() {
        let (p, _) = run(vec![DatagramElement::Corrupt { p: 0.5 }], 1000, 100);
        assert!((400..600).contains(&p.stats.corrupted));
        let (p, out) = run(vec![DatagramElement::Mtu { max: 1200 }], 10, 1500);
        assert!(out.is_empty() && p.stats.too_big == 10);
        let (p, out) = run(
            vec![DatagramElement::Bandwidth {
                bytes_per_sec: 1_000_000,
                max_queue_delay: Duration::from_millis(10),
            }],
            1000,
            1000,
        );
        // 1 ms per datagram offered every 0.1 ms: the queue fills and tail-drops.
        assert!(p.stats.tail_dropped > 500, "{:?}", p.stats);
        assert!(out.windows(2).all(|w| w[1].0 > w[0].0));
    }

    #[test]
    fn deterministic() {
        let els = vec![
            DatagramElement::UniformLoss { p: 0.2 },
            DatagramElement::Delay {
                base: Duration::from_millis(1),
                jitter: Duration::from_millis(4),
            },
        ];
        assert_eq!(run(els.clone(), 500, 30).1, run(els, 500, 30).1);
    }
}
