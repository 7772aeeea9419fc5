//! The synchronisation primitives shared by handles and drivers: `std` normally, `loom` when the
//! crate is built with `RUSTFLAGS="--cfg tether_loom"` so the interleavings can be model-checked.

#[cfg(tether_loom)]
pub(crate) use loom::sync::atomic::AtomicU64;
#[cfg(tether_loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
#[cfg(not(tether_loom))]
pub(crate) use std::sync::atomic::AtomicU64;
#[cfg(not(tether_loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

/// Attempts to take a held lock before blocking on it; between attempts the wait doubles, from
/// one spin-loop hint up to `1 << MAX_BACKOFF` (about 300 hints in all, a few microseconds).
#[cfg(not(tether_loom))]
const SPIN_ATTEMPTS: u32 = 10;
#[cfg(not(tether_loom))]
const MAX_BACKOFF: u32 = 6;

/// Locks `m`, ignoring poisoning: every critical section leaves the state consistent before it can
/// panic (they only call into the core, which does not panic on any input).
///
/// A held lock is retried for a few microseconds before this blocks. The driver holds the lock
/// while the core encodes or decodes a batch of frames (microseconds), and a handle that blocked
/// on it for that long paid for a sleep and a wake-up (two system calls and a context switch)
/// each time: at 1 KiB per message that was most of the futex calls in a profile of the loopback
/// bench, and spinning first moved its throughput up by about a tenth (BENCHMARKS.md).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    #[cfg(not(tether_loom))]
    for attempt in 0..SPIN_ATTEMPTS {
        match m.try_lock() {
            Ok(g) => return g,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                for _ in 0..1u32 << attempt.min(MAX_BACKOFF) {
                    std::hint::spin_loop();
                }
            }
        }
    }
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(all(test, not(tether_loom)))]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_poisoned_lock_is_taken_all_the_same() {
        let m = Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 2);
    }

    #[test]
    fn a_lock_held_past_the_spinning_is_waited_for() {
        let m = Arc::new(Mutex::new(0));
        let held = lock(&m);
        let m2 = m.clone();
        let waiter = std::thread::spawn(move || *lock(&m2));
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished(), "lock returned while the mutex was held");
        drop(held);
        assert_eq!(waiter.join().unwrap(), 0);
    }
}
