//! Runtime-agnostic async helpers for the test bodies: [`join`], [`yield_now`] and a
//! [`oneshot`] channel (the little the bodies used from tokio besides spawn and time).

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;

/// Runs both futures concurrently (in the calling task) and returns both outputs, like
/// `tokio::join!` of two.
pub async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut out_a, mut out_b) = (None, None);
    poll_fn(|cx| {
        if out_a.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                out_a = Some(v);
            }
        }
        if out_b.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                out_b = Some(v);
            }
        }
        if out_a.is_some() && out_b.is_some() {
            Poll::Ready((out_a.take().unwrap(), out_b.take().unwrap()))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// Lets the runtime run other tasks before this one goes on.
pub async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// A one-shot channel: one value from a [`Sender`](oneshot::Sender) to a
/// [`Receiver`](oneshot::Receiver), which resolves to `None` if the sender was dropped without
/// sending.
pub mod oneshot {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex, MutexGuard};
    use std::task::{Context, Poll, Waker};

    #[derive(Debug)]
    struct Slot<T> {
        value: Option<T>,
        sender_gone: bool,
        waker: Option<Waker>,
    }

    type Shared<T> = Arc<Mutex<Slot<T>>>;

    fn lock<T>(shared: &Shared<T>) -> MutexGuard<'_, Slot<T>> {
        shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends the one value.
    #[derive(Debug)]
    pub struct Sender<T>(Shared<T>);

    /// Receives it: a future of `Some(value)`, or `None` if the sender was dropped unused.
    #[derive(Debug)]
    pub struct Receiver<T>(Shared<T>);

    /// A connected pair.
    pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
        let shared = Arc::new(Mutex::new(Slot { value: None, sender_gone: false, waker: None }));
        (Sender(shared.clone()), Receiver(shared))
    }

    impl<T> Sender<T> {
        /// Sends `value` (kept until received, or dropped with the receiver).
        pub fn send(self, value: T) {
            lock(&self.0).value = Some(value);
            // Dropping `self` wakes the receiver.
        }
    }

    impl<T> Drop for Sender<T> {
        fn drop(&mut self) {
            let waker = {
                let mut slot = lock(&self.0);
                slot.sender_gone = true;
                slot.waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    impl<T> Future for Receiver<T> {
        type Output = Option<T>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            let mut slot = lock(&self.0);
            if let Some(value) = slot.value.take() {
                return Poll::Ready(Some(value));
            }
            if slot.sender_gone {
                return Poll::Ready(None);
            }
            slot.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}
