//! `StopSignal`: a one-shot broadcast inside a shard ("stop now"), awaited by any number of
//! tasks at once: accept loops, idle HTTP connections, the connection driver, an input.
//!
//! Built on a glommio semaphore with no permits: every waiter parks on it, `fire` closes
//! it, and a closed semaphore fails every waiter at once. Waiters leave its list when they
//! are dropped, so a signal raced in a select loop (polled anew each time round) never
//! piles up wakers.
//!
//! `ListenerOpen` counts the shard's accept loops, so that its stop can wait for every
//! listener to be closed.

use glommio::sync::Semaphore;
use std::cell::Cell;
use std::rc::Rc;

#[derive(Clone)]
pub struct StopSignal {
    inner: Rc<Inner>,
}

struct Inner {
    gate: Semaphore,
    fired: Cell<bool>,
}

impl Default for StopSignal {
    fn default() -> Self {
        StopSignal::new()
    }
}

impl StopSignal {
    pub fn new() -> StopSignal {
        StopSignal {
            inner: Rc::new(Inner {
                gate: Semaphore::new(0),
                fired: Cell::new(false),
            }),
        }
    }

    /// Wakes every waiter, now and later.
    pub fn fire(&self) {
        self.inner.fired.set(true);
        self.inner.gate.close();
    }

    pub fn is_fired(&self) -> bool {
        self.inner.fired.get()
    }

    /// Resolves once the signal fired (at once if it has).
    pub async fn fired(&self) {
        if self.is_fired() {
            return;
        }
        // No permit is ever given: this returns only when `fire` closes the semaphore.
        let _ = self.inner.gate.acquire(1).await;
    }

    /// Runs `work` until it ends, or until the signal fires (`None` then).
    pub async fn unless_fired<T>(&self, work: impl std::future::Future<Output = T>) -> Option<T> {
        futures_lite::future::or(async { Some(work.await) }, async {
            self.fired().await;
            None
        })
        .await
    }
}

thread_local! {
    /// The shard's own stop: fired once when the process is asked to stop.
    static SHARD_STOP: StopSignal = StopSignal::new();
}

/// This shard's stop signal (one per shard thread).
pub fn shard_stop() -> StopSignal {
    SHARD_STOP.with(StopSignal::clone)
}

thread_local! {
    /// The shard's accept loops still running. A stop waits for them: a loop the shard's
    /// end dropped could have an accept completing in the kernel, and the connection it took
    /// would close unread (a reset) instead of being served.
    static OPEN_LISTENERS: Cell<usize> = const { Cell::new(0) };
}

/// Held by one accept loop, from before it is spawned until it has closed its listener.
pub struct ListenerOpen(());

impl ListenerOpen {
    pub fn begin() -> ListenerOpen {
        OPEN_LISTENERS.with(|n| n.set(n.get() + 1));
        ListenerOpen(())
    }
}

impl Drop for ListenerOpen {
    fn drop(&mut self) {
        OPEN_LISTENERS.with(|n| n.set(n.get() - 1));
    }
}

/// How many of this shard's accept loops have not closed their listener yet.
pub fn open_listeners() -> usize {
    OPEN_LISTENERS.with(Cell::get)
}
