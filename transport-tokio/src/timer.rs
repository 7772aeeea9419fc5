//! The drivers' timers, kept by one thread per process instead of the runtime.
//!
//! A driver always has a deadline armed (at least the next heartbeat). Kept by tokio, an armed
//! timer makes every park of the runtime compute and pass a timeout to `epoll_wait` (the kernel
//! arms a timer for it), which cost a loopback round trip 0.2-0.4 µs. This thread sleeps on a
//! condition variable until the earliest deadline of every driver and wakes the driver whose
//! deadline passed; the runtime parks without a timeout while no other timer is armed.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::task::Waker;
use std::time::Instant;

/// One driver's timer: armed for one instant at a time; [`poll_fired`](Timer::poll_fired)
/// reports (once) that it passed, and the waker given last is woken then.
#[derive(Debug)]
pub(crate) struct Timer {
    slot: Arc<Slot>,
    service: &'static Service,
}

#[derive(Debug)]
struct Slot {
    id: u64,
    state: Mutex<SlotState>,
}

#[derive(Debug, Default)]
struct SlotState {
    at: Option<Instant>,
    fired: bool,
    waker: Option<Waker>,
}

/// Every armed deadline, earliest first, and the condition the thread waits on.
#[derive(Debug, Default)]
struct Service {
    armed: Mutex<BTreeMap<(Instant, u64), Weak<Slot>>>,
    changed: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The process's timer service, its thread started on first use.
fn service() -> io::Result<&'static Service> {
    static SERVICE: OnceLock<Service> = OnceLock::new();
    static STARTED: OnceLock<Result<(), String>> = OnceLock::new();
    let service = SERVICE.get_or_init(Service::default);
    let started = STARTED.get_or_init(|| {
        std::thread::Builder::new()
            .name("tether-timer".into())
            .spawn(|| service.run())
            .map(drop)
            .map_err(|e| e.to_string())
    });
    match started {
        Ok(()) => Ok(service),
        Err(e) => Err(io::Error::other(format!("cannot start the tether-timer thread: {e}"))),
    }
}

impl Service {
    /// Fires each deadline when it passes, sleeping until the earliest one in between.
    fn run(&self) {
        let mut due = Vec::new();
        let mut armed = lock(&self.armed);
        loop {
            let now = Instant::now();
            while let Some(entry) = armed.first_entry().filter(|e| e.key().0 <= now) {
                let ((at, _), slot) = entry.remove_entry();
                due.push((at, slot));
            }
            if !due.is_empty() {
                drop(armed);
                for (at, slot) in due.drain(..) {
                    if let Some(slot) = slot.upgrade() {
                        slot.fire(at);
                    }
                }
                armed = lock(&self.armed);
                continue;
            }
            armed = match armed.first_key_value() {
                Some((&(at, _), _)) => {
                    let wait = at.saturating_duration_since(now);
                    self.changed
                        .wait_timeout(armed, wait)
                        .map_or_else(|p| p.into_inner().0, |r| r.0)
                }
                None => self.changed.wait(armed).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }

    /// Replaces `slot`'s deadline `old` by `new` (either may be absent).
    fn rearm(&self, slot: &Arc<Slot>, old: Option<Instant>, new: Option<Instant>) {
        let mut armed = lock(&self.armed);
        if let Some(old) = old {
            armed.remove(&(old, slot.id));
        }
        if let Some(new) = new {
            let earliest = armed.first_key_value().is_none_or(|(&(t, _), _)| new < t);
            armed.insert((new, slot.id), Arc::downgrade(slot));
            if earliest {
                self.changed.notify_one();
            }
        }
    }
}

impl Slot {
    /// The deadline `at` passed: unless it was re-armed since, mark it fired and wake the driver.
    fn fire(&self, at: Instant) {
        let mut state = lock(&self.state);
        if state.at != Some(at) {
            return;
        }
        state.at = None;
        state.fired = true;
        let waker = state.waker.take();
        drop(state);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Timer {
    /// A disarmed timer. Fails only if the timer thread cannot be started.
    pub(crate) fn new() -> io::Result<Timer> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot { id, state: Mutex::new(SlotState::default()) });
        Ok(Timer { slot, service: service()? })
    }

    /// Arms the timer for `at` (replacing the deadline armed before, fired or not); `waker` is
    /// woken once `at` has passed.
    pub(crate) fn arm(&self, at: Instant, waker: &Waker) {
        let mut state = lock(&self.slot.state);
        let old = state.at.replace(at);
        state.fired = false;
        register(&mut state, waker);
        drop(state);
        self.service.rearm(&self.slot, old, Some(at));
    }

    /// True once after the armed deadline passed; otherwise `waker` is the one woken then.
    pub(crate) fn poll_fired(&self, waker: &Waker) -> bool {
        let mut state = lock(&self.slot.state);
        if state.fired {
            state.fired = false;
            return true;
        }
        if state.at.is_some() {
            register(&mut state, waker);
        }
        false
    }
}

fn register(state: &mut SlotState, waker: &Waker) {
    if !state.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
        state.waker = Some(waker.clone());
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        let old = lock(&self.slot.state).at.take();
        self.service.rearm(&self.slot, old, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;
    use std::time::Duration;

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn wait_for(count: &Count, n: usize) {
        let give_up = Instant::now() + Duration::from_secs(5);
        while count.0.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < give_up, "not woken");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn fires_once_at_the_deadline_and_wakes_the_last_waker() {
        let first = Arc::new(Count::default());
        let second = Arc::new(Count::default());
        let timer = Timer::new().unwrap();
        let start = Instant::now();
        timer.arm(start + Duration::from_millis(30), &Waker::from(first.clone()));
        assert!(!timer.poll_fired(&Waker::from(second.clone())));
        wait_for(&second, 1);
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert_eq!(first.0.load(Ordering::SeqCst), 0, "the waker given last is woken");
        assert!(timer.poll_fired(&Waker::from(second.clone())));
        assert!(!timer.poll_fired(&Waker::from(second.clone())), "reported once");
    }

    #[test]
    fn rearming_replaces_the_deadline_and_dropping_disarms() {
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        let late = Timer::new().unwrap();
        late.arm(Instant::now() + Duration::from_secs(3600), &waker);
        late.arm(Instant::now() + Duration::from_millis(10), &waker); // earlier: replaces
        wait_for(&count, 1);
        assert!(late.poll_fired(&waker));
        let dropped = Timer::new().unwrap();
        dropped.arm(Instant::now() + Duration::from_millis(10), &waker);
        drop(dropped);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "a dropped timer does not fire");
        let armed = lock(&late.service.armed);
        assert!(armed.values().all(|w| w.upgrade().is_some()), "nothing stale is kept");
    }

    #[test]
    fn a_deadline_already_past_fires_at_once() {
        let count = Arc::new(Count::default());
        let timer = Timer::new().unwrap();
        timer.arm(Instant::now(), &Waker::from(count.clone()));
        wait_for(&count, 1);
        assert!(timer.poll_fired(&Waker::from(count.clone())));
    }
}
