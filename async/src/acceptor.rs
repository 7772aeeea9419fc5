//! A server's shards and its acceptor: the task that takes connections from the listener and
//! deals them out to the shards in turn.
//!
//! The acceptor is a task of its own, not part of a shard's driver, so the listener is polled only
//! when the runtime says it may be readable (a driver polled it on every pass, and some listeners,
//! async-net's among them, try the `accept` system call again whenever they are polled). It ends,
//! closing the listener, once every shard's driver has finished.

use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Poll, Waker};
use std::time::Duration;

use crate::runtime::{Accept, ByteStream};
use crate::shared::{Incoming, Shared};
use crate::sync::Arc;

/// Pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

/// The shards of one server, shared by their drivers, the acceptor and the `Server` handle.
#[derive(Debug)]
pub(crate) struct Shards {
    /// Every shard's state, by index.
    pub(crate) all: Vec<Arc<Shared>>,
    /// Drivers still running.
    running: AtomicUsize,
    /// The acceptor, to wake when the last driver finishes.
    acceptor: Mutex<Option<Waker>>,
}

impl Shards {
    pub(crate) fn new(all: Vec<Arc<Shared>>) -> Shards {
        let running = AtomicUsize::new(all.len());
        Shards { all, running, acceptor: Mutex::new(None) }
    }

    /// A shard's driver has stopped.
    pub(crate) fn driver_finished(&self) {
        if self.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            let acceptor = self.acceptor.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(w) = acceptor {
                w.wake();
            }
        }
    }

    fn all_finished(&self, waker: &Waker) -> bool {
        let mut acceptor = self.acceptor.lock().unwrap_or_else(|p| p.into_inner());
        *acceptor = Some(waker.clone());
        self.running.load(Ordering::Acquire) == 0
    }

    /// Gives `stream` to the shard `first` or, if its driver has stopped, the next that runs.
    fn deal(&self, first: usize, mut stream: Box<dyn ByteStream>) {
        for k in 0..self.all.len() {
            let shard = &self.all[(first + k) % self.all.len()];
            match shard.hand_over(Incoming::new(stream, Vec::new())) {
                Ok(()) => return,
                Err(back) => stream = back.stream,
            }
        }
        // Every driver has stopped: dropping the stream closes it.
    }
}

/// Accepts from `accept` until every shard's driver has finished, dealing the connections out in
/// turn (a resume that lands on the wrong shard is handed to its session's shard there).
pub(crate) async fn run(mut accept: Accept, shards: std::sync::Arc<Shards>) {
    let mut next = 0usize;
    loop {
        let accepted = poll_fn(|cx| {
            if shards.all_finished(cx.waker()) {
                return Poll::Ready(None);
            }
            accept.poll_accept(cx).map(Some)
        })
        .await;
        match accepted {
            None => return,
            Some(Ok(stream)) => {
                shards.deal(next % shards.all.len(), stream);
                next = next.wrapping_add(1);
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "accept failed; pausing");
                let runtime = shards.all[0].clock.runtime().clone();
                let mut timer = runtime.new_timer(runtime.now() + ACCEPT_PAUSE);
                poll_fn(|cx| timer.as_mut().poll(cx)).await;
            }
        }
    }
}
