//! A value with one owner task that other tasks may borrow when it is free, without the owner
//! ever missing a wake-up: the driver's I/O state, which the driver task runs and a handle may
//! flush inline (`DriverCell`).
//!
//! The owner never blocks on the value: when a guest holds it, the owner's attempt fails, and the
//! guest learns (when it lets go) that it must wake the owner. Model-checked with loom below.

use std::ops::{Deref, DerefMut};

use crate::sync::{lock, AtomicUsize, Mutex, MutexGuard, Ordering};

/// Someone holds the value.
const BUSY: usize = 1;
/// The owner tried while a guest held the value (only ever set together with `BUSY`).
const MISSED: usize = 2;

/// The shared value (see the module docs).
#[derive(Debug)]
pub(crate) struct Handoff<T> {
    /// `BUSY` and `MISSED` in one word: every attempt and every release is one read-modify-write
    /// of it, so they are totally ordered and an owner's failed attempt cannot pass a guest's
    /// release unseen. (An atomic word rather than `Mutex::try_lock` also lets loom explore
    /// every interleaving of the attempts.)
    state: AtomicUsize,
    /// Only locked by whoever set `BUSY` (and by `take`), so never contended for long.
    value: Mutex<Option<T>>,
}

/// Access to the value (`None` inside once taken); lets go when dropped.
pub(crate) struct Hold<'a, T> {
    state: &'a AtomicUsize,
    guard: Option<MutexGuard<'a, Option<T>>>,
}

impl<T> Hold<'_, T> {
    /// Lets go; true if the owner tried meanwhile.
    fn release(mut self) -> bool {
        self.guard = None;
        let before = self.state.swap(0, Ordering::SeqCst);
        std::mem::forget(self);
        before & MISSED != 0
    }
}

impl<T> Deref for Hold<'_, T> {
    type Target = Option<T>;

    fn deref(&self) -> &Option<T> {
        self.guard.as_ref().expect("held until released")
    }
}

impl<T> DerefMut for Hold<'_, T> {
    fn deref_mut(&mut self) -> &mut Option<T> {
        self.guard.as_mut().expect("held until released")
    }
}

impl<T> Drop for Hold<'_, T> {
    fn drop(&mut self) {
        self.guard = None;
        self.state.store(0, Ordering::SeqCst);
    }
}

/// What a guest's attempt did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Visit<R> {
    /// `f`'s result, `None` if the value was busy or already taken.
    pub(crate) ran: Option<R>,
    /// The owner tried while this guest held the value: the guest must wake it.
    pub(crate) wake_owner: bool,
}

impl<T> Handoff<T> {
    pub(crate) fn new(value: T) -> Handoff<T> {
        Handoff { state: AtomicUsize::new(0), value: Mutex::new(Some(value)) }
    }

    fn hold(&self) -> Hold<'_, T> {
        Hold { state: &self.state, guard: Some(lock(&self.value)) }
    }

    /// A guest runs `f` on the value if nobody holds it (and it was not taken).
    pub(crate) fn visit<R>(&self, f: impl FnOnce(&mut T) -> R) -> Visit<R> {
        if self.state.compare_exchange(0, BUSY, Ordering::SeqCst, Ordering::SeqCst).is_err() {
            return Visit { ran: None, wake_owner: false };
        }
        let mut hold = self.hold();
        let ran = hold.as_mut().map(f);
        let wake_owner = hold.release();
        Visit { ran, wake_owner }
    }

    /// The owner's access, or `None` if a guest holds the value, in which case that guest's
    /// [`Visit::wake_owner`] is true. (The owner holds it itself only inside its own poll, so
    /// `BUSY` here always means a guest.)
    pub(crate) fn try_own(&self) -> Option<Hold<'_, T>> {
        let mut current = self.state.load(Ordering::SeqCst);
        loop {
            let (next, owned) = if current == 0 { (BUSY, true) } else { (current | MISSED, false) };
            match self.state.compare_exchange(current, next, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) if owned => return Some(self.hold()),
                Ok(_) => return None,
                Err(actual) => current = actual,
            }
        }
    }

    /// Takes the value out for good, waiting for a guest that holds it.
    pub(crate) fn take(&self) -> Option<T> {
        lock(&self.value).take()
    }
}

#[cfg(all(test, tether_loom))]
mod loom_tests {
    use super::*;
    use crate::sync::Arc;

    /// Whatever the interleaving, an owner whose attempt failed is woken by the guest that held
    /// the value; and nobody ever sees the value while another holds it.
    #[test]
    fn loom_owner_never_misses_a_guest() {
        loom::model(|| {
            let cell = Arc::new(Handoff::new(0u32));
            let guest = {
                let cell = cell.clone();
                // The yield lets loom switch threads while the guest holds the value (the real
                // guest, a driver pass, does plenty of synchronisation there).
                loom::thread::spawn(move || {
                    cell.visit(|v| {
                        loom::thread::yield_now();
                        *v += 1;
                    })
                })
            };
            let owned = cell.try_own().map(|mut g| {
                if let Some(v) = g.as_mut() {
                    *v += 10;
                }
            });
            let visit = guest.join().unwrap();
            assert!(owned.is_some() || visit.wake_owner, "the owner's failed attempt was lost");
            let total = cell.take().unwrap();
            let expected = u32::from(owned.is_some()) * 10 + u32::from(visit.ran.is_some());
            assert_eq!(total, expected);
        });
    }

    /// Two guests and the owner: a failed owner attempt is reported to one of the guests.
    #[test]
    fn loom_owner_never_misses_either_of_two_guests() {
        loom::model(|| {
            let cell = Arc::new(Handoff::new(()));
            let guests: Vec<_> = (0..2)
                .map(|_| {
                    let cell = cell.clone();
                    loom::thread::spawn(move || {
                        cell.visit(|_| loom::thread::yield_now()).wake_owner
                    })
                })
                .collect();
            let owned = cell.try_own().is_some();
            let woken = guests.into_iter().map(|g| g.join().unwrap()).filter(|w| *w).count();
            assert!(owned || woken >= 1, "the owner's failed attempt was lost");
        });
    }
}
