//! Shards: one server's sessions split over several [`Endpoint`](crate::Endpoint)s, so that an
//! adapter can drive each on its own task, while the server's limits hold for all of them together.
//!
//! A session lives on the shard its id names (`id % count == index`): each shard issues only ids of
//! its own, so a resume is routed by id alone. A connection may be accepted by any shard; one whose
//! `Hello` resumes a session of another shard is handed over ([`Endpoint::poll_handoff`]) with the
//! bytes it sent so far, and the adapter replays them to the owning shard as a new connection.
//!
//! The limits (`max_handshakes`, `max_sessions`, `max_detached_sessions`) count across shards
//! through atomic counters shared by the shards of one server: a limit is never exceeded, and a
//! shard refuses only when the server as a whole is full.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};

/// One endpoint's place among the shards of a server; made by [`Shard::split`].
#[derive(Debug, Clone)]
pub struct Shard {
    index: u32,
    counts: Arc<Counts>,
}

/// What the limits count, shared by the shards of one server.
#[derive(Debug)]
struct Counts {
    handshakes: AtomicUsize,
    sessions: AtomicUsize,
    /// Detached sessions, as each shard last counted its own.
    detached: Vec<AtomicUsize>,
}

impl Shard {
    /// `count` shards (at least one) sharing one set of limits, in index order.
    pub fn split(count: u32) -> Vec<Shard> {
        let count = count.max(1);
        let counts = Arc::new(Counts {
            handshakes: AtomicUsize::new(0),
            sessions: AtomicUsize::new(0),
            detached: (0..count).map(|_| AtomicUsize::new(0)).collect(),
        });
        (0..count).map(|index| Shard { index, counts: counts.clone() }).collect()
    }

    /// A server of one shard.
    pub(crate) fn single() -> Shard {
        Shard::split(1).remove(0)
    }

    /// This shard's index, from 0.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// How many shards the server has.
    pub fn count(&self) -> u32 {
        self.counts.detached.len() as u32
    }

    /// The shard that owns session `id`.
    pub fn owner_of(&self, id: u64) -> u32 {
        (id % u64::from(self.count())) as u32
    }

    /// Takes one unit of `counter` if fewer than `max` are taken.
    fn try_take(counter: &AtomicUsize, max: usize) -> bool {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .is_ok()
    }

    pub(crate) fn try_take_handshake(&self, max: u32) -> bool {
        Shard::try_take(&self.counts.handshakes, max as usize)
    }

    pub(crate) fn release_handshake(&self) {
        self.counts.handshakes.fetch_sub(1, Ordering::AcqRel);
    }

    pub(crate) fn try_take_session(&self, max: u32) -> bool {
        Shard::try_take(&self.counts.sessions, max as usize)
    }

    pub(crate) fn release_session(&self) {
        self.counts.sessions.fetch_sub(1, Ordering::AcqRel);
    }

    /// Records this shard's detached sessions; returns the server's total.
    pub(crate) fn publish_detached(&self, mine: usize) -> usize {
        self.counts.detached[self.index as usize].store(mine, Ordering::Release);
        self.counts.detached.iter().map(|d| d.load(Ordering::Acquire)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_across_shards_and_never_exceed_the_maximum() {
        let shards = Shard::split(3);
        assert!(shards[0].try_take_session(2));
        assert!(shards[1].try_take_session(2));
        assert!(!shards[2].try_take_session(2), "the server as a whole is full");
        shards[0].release_session();
        assert!(shards[2].try_take_session(2));
        assert!(!shards[1].try_take_session(2));
        assert_eq!(shards[0].publish_detached(4), 4);
        assert_eq!(shards[2].publish_detached(1), 5);
        assert_eq!(shards[0].publish_detached(0), 1);
    }

    #[test]
    fn ids_belong_to_the_shard_their_remainder_names() {
        let shards = Shard::split(4);
        assert_eq!(shards[0].owner_of(8), 0);
        assert_eq!(shards[3].owner_of(7), 3);
        assert_eq!(Shard::split(0).len(), 1, "at least one shard");
    }
}
