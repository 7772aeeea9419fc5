//! A set of deadlines keyed by id, ordered by time: what lets the endpoint find the next timer
//! and the expired ones without visiting every session.

use alloc::collections::{BTreeMap, BTreeSet};

use crate::time::Instant;

/// At most one deadline per key. Every operation is O(log n).
#[derive(Debug)]
pub(crate) struct Deadlines<K> {
    by_time: BTreeSet<(Instant, K)>,
    by_key: BTreeMap<K, Instant>,
}

impl<K: Ord + Copy> Default for Deadlines<K> {
    fn default() -> Self {
        Deadlines { by_time: BTreeSet::new(), by_key: BTreeMap::new() }
    }
}

impl<K: Ord + Copy> Deadlines<K> {
    /// Sets (or, with `None`, clears) the deadline of `key`.
    pub(crate) fn set(&mut self, key: K, deadline: Option<Instant>) {
        // Unchanged (the common case: the endpoint re-indexes every session it touched): skip
        // the two removals and insertions.
        if self.by_key.get(&key).copied() == deadline {
            return;
        }
        if let Some(old) = self.by_key.remove(&key) {
            self.by_time.remove(&(old, key));
        }
        if let Some(at) = deadline {
            self.by_key.insert(key, at);
            self.by_time.insert((at, key));
        }
    }

    /// The earliest deadline.
    pub(crate) fn earliest(&self) -> Option<Instant> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Removes and returns the key with the earliest deadline.
    pub(crate) fn pop_earliest(&mut self) -> Option<K> {
        let (_, key) = self.by_time.pop_first()?;
        self.by_key.remove(&key);
        Some(key)
    }

    /// Removes and returns a key whose deadline is at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<K> {
        if self.earliest()? <= now {
            self.pop_earliest()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_by_time_and_updatable() {
        let mut d = Deadlines::default();
        d.set(1u32, Some(Instant::from_millis(30)));
        d.set(2, Some(Instant::from_millis(10)));
        d.set(3, Some(Instant::from_millis(20)));
        d.set(2, Some(Instant::from_millis(40))); // moved later
        d.set(3, None); // cleared
        assert_eq!(d.earliest(), Some(Instant::from_millis(30)));
        assert_eq!(d.pop_due(Instant::from_millis(29)), None);
        assert_eq!(d.pop_due(Instant::from_millis(35)), Some(1));
        assert_eq!(d.pop_due(Instant::from_millis(35)), None);
        assert_eq!(d.pop_earliest(), Some(2));
        assert_eq!(d.earliest(), None);
    }

    #[test]
    fn setting_the_same_deadline_again_changes_nothing() {
        let mut d = Deadlines::default();
        d.set(1u32, Some(Instant::from_millis(10)));
        d.set(1, Some(Instant::from_millis(10)));
        d.set(2, None);
        assert_eq!(d.by_time.len(), 1);
        assert_eq!(d.by_key.len(), 1);
        assert_eq!(d.pop_earliest(), Some(1));
        d.set(1, None);
        assert_eq!(d.earliest(), None);
    }
}
