//! Stream links: one [`StreamPath`] per direction of a simulated connection, built from composable
//! [`StreamElement`]s (delay and jitter, bandwidth, corruption, and planted bugs used to prove the
//! checker can fail), plus the reader's behaviour (reads split and merged at random boundaries).
//!
//! A stream never reorders: whatever the elements do, arrival times in one direction are
//! non-decreasing, as TCP guarantees while the connection lasts.

use bytes::{Bytes, BytesMut};
use tether_core::wire::{Decoder, Frame};
use tether_core::{Duration, Instant};

use crate::rng::SimRng;

/// One stage a written chunk passes through on its way to the reader.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamElement {
    /// Fixed one-way delay plus uniform jitter in `0..=jitter` (order is still preserved).
    Delay {
        /// Propagation delay.
        base: Duration,
        /// Largest extra delay.
        jitter: Duration,
    },
    /// Serialisation at a limited rate: a chunk departs when the previous one has.
    Bandwidth {
        /// Link rate in bytes per second.
        bytes_per_sec: u64,
    },
    /// Flips one random bit of a chunk with the given probability (per written chunk). The
    /// receiver's CRC-32C must catch it.
    Corrupt {
        /// Probability per chunk.
        probability: f64,
    },
    /// Planted bug: re-encodes the message with sequence `seq` twice, with valid checksums
    /// (the second copy renumbered `seq + 1` and every later one shifted), so a duplicate gets
    /// past the CRC and the sequence check. Exists to prove the checker catches duplicates.
    PlantDuplicateFrame {
        /// The message to duplicate.
        seq: u64,
    },
    /// Planted bug: re-encodes the message with sequence `seq` with one payload byte changed
    /// and a valid checksum. Exists to prove the checker compares payloads.
    PlantCorruptPastCrc {
        /// The message to alter.
        seq: u64,
    },
}

/// How one direction of a connection behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct DirSpec {
    /// Stages, applied in order to every written chunk.
    pub elements: Vec<StreamElement>,
    /// The reader gets random-length pieces instead of whole arrived chunks.
    pub split_reads: bool,
    /// The reader wakes up to this long after data arrives, so several arrivals merge in one read.
    pub coalesce: Duration,
}

impl DirSpec {
    /// A plain link with one-way `delay` and nothing else.
    pub fn delay(delay: Duration) -> Self {
        DirSpec {
            elements: vec![StreamElement::Delay { base: delay, jitter: Duration::ZERO }],
            split_reads: false,
            coalesce: Duration::ZERO,
        }
    }

    /// The sum of the fixed delays (the one-way latency of an empty link).
    pub fn base_delay(&self) -> Duration {
        self.elements
            .iter()
            .map(|e| match e {
                StreamElement::Delay { base, .. } => *base,
                _ => Duration::ZERO,
            })
            .sum()
    }

    /// The largest delay any element can add to a small chunk.
    pub fn max_delay(&self) -> Duration {
        self.elements
            .iter()
            .map(|e| match e {
                StreamElement::Delay { base, jitter } => *base + *jitter,
                _ => Duration::ZERO,
            })
            .sum::<Duration>()
            + self.coalesce
    }
}

/// Both directions of a connection: `up` is client to server, `down` server to client.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkSpec {
    /// Client to server.
    pub up: DirSpec,
    /// Server to client.
    pub down: DirSpec,
}

impl LinkSpec {
    /// A symmetric link with one-way `delay`.
    pub fn symmetric(delay: Duration) -> Self {
        LinkSpec { up: DirSpec::delay(delay), down: DirSpec::delay(delay) }
    }

    /// Round-trip time of an empty link.
    pub fn rtt(&self) -> Duration {
        self.up.base_delay() + self.down.base_delay()
    }
}

#[derive(Debug)]
enum ElementState {
    Stateless,
    Bandwidth { next_free: Instant },
    Rewrite { decoder: Decoder, shift: u64 },
}

/// The running state of one direction's elements.
#[derive(Debug)]
pub struct StreamPath {
    elements: Vec<(StreamElement, ElementState)>,
    last_arrival: Instant,
    /// Chunks corrupted so far (faults injected).
    pub corrupted: u64,
    /// Planted bugs that took effect.
    pub planted: u64,
}

impl StreamPath {
    /// A fresh path for one direction of a new connection.
    pub fn new(spec: &DirSpec) -> Self {
        let elements = spec
            .elements
            .iter()
            .map(|e| {
                let st = match e {
                    StreamElement::Bandwidth { .. } => {
                        ElementState::Bandwidth { next_free: Instant::ZERO }
                    }
                    StreamElement::PlantDuplicateFrame { .. }
                    | StreamElement::PlantCorruptPastCrc { .. } => {
                        ElementState::Rewrite { decoder: Decoder::new(u32::MAX), shift: 0 }
                    }
                    _ => ElementState::Stateless,
                };
                (e.clone(), st)
            })
            .collect();
        StreamPath { elements, last_arrival: Instant::ZERO, corrupted: 0, planted: 0 }
    }

    /// Passes a chunk written at `now` through every element; returns its arrival time and bytes
    /// (possibly altered). Arrival times never go backwards.
    pub fn send(&mut self, now: Instant, bytes: Bytes, rng: &mut SimRng) -> (Instant, Bytes) {
        let mut at = now;
        let mut bytes = bytes;
        for (e, st) in &mut self.elements {
            match (e, st) {
                (StreamElement::Delay { base, jitter }, _) => {
                    at = at + *base + rng.duration(Duration::ZERO, *jitter);
                }
                (
                    StreamElement::Bandwidth { bytes_per_sec },
                    ElementState::Bandwidth { next_free },
                ) => {
                    let start = at.max(*next_free);
                    let nanos =
                        (bytes.len() as u128 * 1_000_000_000 / u128::from(*bytes_per_sec)) as u64;
                    *next_free = start + Duration::from_nanos(nanos);
                    at = *next_free;
                }
                (StreamElement::Corrupt { probability }, _)
                    if !bytes.is_empty() && rng.chance(*probability) =>
                {
                    let mut m = BytesMut::from(&bytes[..]);
                    let i = rng.index(m.len());
                    m[i] ^= 1 << rng.below(8);
                    bytes = m.freeze();
                    self.corrupted += 1;
                }
                (
                    StreamElement::PlantDuplicateFrame { seq: target },
                    ElementState::Rewrite { decoder, shift },
                ) => {
                    let (b, n) = rewrite(decoder, &bytes, |out, seq, ack, payload| {
                        let new_seq = seq + *shift;
                        encode(out, new_seq, ack, payload);
                        if seq == *target {
                            *shift += 1;
                            encode(out, seq + *shift, ack, payload);
                            return true;
                        }
                        false
                    });
                    bytes = b;
                    self.planted += n;
                }
                (
                    StreamElement::PlantCorruptPastCrc { seq: target },
                    ElementState::Rewrite { decoder, .. },
                ) => {
                    let (b, n) = rewrite(decoder, &bytes, |out, seq, ack, payload| {
                        if seq == *target && !payload.is_empty() {
                            let mut p = BytesMut::from(&payload[..]);
                            p[0] ^= 0x20;
                            encode(out, seq, ack, &p.freeze());
                            return true;
                        }
                        encode(out, seq, ack, payload);
                        false
                    });
                    bytes = b;
                    self.planted += n;
                }
                _ => {}
            }
        }
        at = at.max(self.last_arrival);
        self.last_arrival = at;
        (at, bytes)
    }

    /// The time the last chunk arrives (nothing written later arrives earlier).
    pub fn last_arrival(&self) -> Instant {
        self.last_arrival
    }

    /// Holds everything not yet arrived (and everything written later) until at least `until`.
    pub fn hold_until(&mut self, until: Instant) {
        self.last_arrival = self.last_arrival.max(until);
    }
}

/// A data frame carrying one message.
fn encode(out: &mut BytesMut, seq: u64, ack: u64, payload: &Bytes) {
    Frame::data(seq, ack, [payload]).encode(out);
}

/// Decodes whole frames of `bytes` (the writer always writes whole frames) and re-encodes them,
/// letting `data` rewrite each message of a data frame (called with the message's sequence
/// number, the frame's ack and the payload; it writes frames of its own, so runs are split into
/// one frame per message). Returns the new bytes and how many rewrites took effect.
fn rewrite(
    decoder: &mut Decoder,
    bytes: &Bytes,
    mut data: impl FnMut(&mut BytesMut, u64, u64, &Bytes) -> bool,
) -> (Bytes, u64) {
    decoder.push(bytes.clone());
    let mut out = BytesMut::with_capacity(bytes.len() + 64);
    let mut n = 0;
    while let Ok(Some(f)) = decoder.next_frame() {
        match f {
            Frame::Data { seq, ack, messages } => {
                for (seq, payload) in (seq..).zip(messages.iter()) {
                    if data(&mut out, seq, ack, &payload) {
                        n += 1;
                    }
                }
            }
            other => other.encode(&mut out),
        }
    }
    (out.freeze(), n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(seq: u64, len: usize) -> Bytes {
        let mut b = BytesMut::new();
        encode(&mut b, seq, 0, &Bytes::from(vec![b'x'; len]));
        b.freeze()
    }

    #[test]
    fn delay_jitter_never_reorders() {
        let spec = DirSpec {
            elements: vec![StreamElement::Delay {
                base: Duration::from_millis(5),
                jitter: Duration::from_millis(20),
            }],
            split_reads: false,
            coalesce: Duration::ZERO,
        };
        let mut p = StreamPath::new(&spec);
        let mut rng = SimRng::new(1);
        let mut last = Instant::ZERO;
        for k in 0..1000 {
            let (at, _) = p.send(Instant::from_nanos(k * 100_000), data(k, 10), &mut rng);
            assert!(at >= last);
            assert!(at >= Instant::from_nanos(k * 100_000) + Duration::from_millis(5));
            last = at;
        }
    }

    #[test]
    fn bandwidth_serialises() {
        let spec = DirSpec {
            elements: vec![StreamElement::Bandwidth { bytes_per_sec: 1_000_000 }],
            split_reads: false,
            coalesce: Duration::ZERO,
        };
        let mut p = StreamPath::new(&spec);
        let mut rng = SimRng::new(1);
        let chunk = Bytes::from(vec![0u8; 1000]);
        let (a, _) = p.send(Instant::ZERO, chunk.clone(), &mut rng);
        let (b, _) = p.send(Instant::ZERO, chunk, &mut rng);
        assert_eq!(a, Instant::from_millis(1));
        assert_eq!(b, Instant::from_millis(2));
    }

    #[test]
    fn corruption_is_caught_by_the_crc() {
        let spec = DirSpec {
            elements: vec![StreamElement::Corrupt { probability: 1.0 }],
            split_reads: false,
            coalesce: Duration::ZERO,
        };
        let mut p = StreamPath::new(&spec);
        let mut rng = SimRng::new(3);
        for k in 0..200 {
            let (_, b) = p.send(Instant::ZERO, data(k, 50), &mut rng);
            let mut d = Decoder::new(1 << 20);
            d.push(b);
            assert!(!matches!(d.next_frame(), Ok(Some(_))), "corruption undetected");
        }
        assert_eq!(p.corrupted, 200);
    }

    #[test]
    fn planted_duplicate_passes_the_crc() {
        let spec = DirSpec {
            elements: vec![StreamElement::PlantDuplicateFrame { seq: 1 }],
            split_reads: false,
            coalesce: Duration::ZERO,
        };
        let mut p = StreamPath::new(&spec);
        let mut rng = SimRng::new(3);
        let mut d = Decoder::new(1 << 20);
        for k in 0..3 {
            d.push(p.send(Instant::ZERO, data(k, 5), &mut rng).1);
        }
        let mut seqs = vec![];
        while let Ok(Some(Frame::Data { seq, .. })) = d.next_frame() {
            seqs.push(seq);
        }
        assert_eq!(seqs, vec![0, 1, 2, 3]);
        assert_eq!(p.planted, 1);
    }
}
