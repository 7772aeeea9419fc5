//! The synchronisation primitives shared by handles and drivers: `std` normally, `loom` when the
//! crate is built with `RUSTFLAGS="--cfg tether_loom"` so the interleavings can be model-checked.

#[cfg(tether_loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
#[cfg(not(tether_loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning: every critical section leaves the state consistent before it can
/// panic (they only call into the core, which does not panic on any input).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
