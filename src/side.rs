//! A future that waits beside a busy one (a cancellation, an idle timer) and
//! is polled only once it has been woken.
//!
//! `tokio::select!` polls every branch each time its task wakes, and a
//! connection's task wakes several times per request: each wake-up would
//! look at the drain signal, the hard stop and the timers again, for
//! nothing. [`Side`] gives its future a waker of its own, which notes the
//! wake-up and then wakes the task; [`Side::poll`] polls the future only
//! when that happened (and the first time, so that it can register).
//! [`OwnWaker`], that waker, serves the client stream's reads as well
//! (`server::quiet`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

pub struct Side<F> {
    fut: Pin<Box<F>>,
    waker: OwnWaker,
}

impl<F: Future> Side<F> {
    pub fn new(fut: F) -> Self {
        // Woken to begin with, so that the first poll registers the future.
        let waker = OwnWaker::new();
        waker.note();
        Side {
            fut: Box::pin(fut),
            waker,
        }
    }

    /// Polls the future if it was woken since the last poll; `Pending`
    /// otherwise. The task behind `cx` is woken when the future is.
    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.waker.register(cx.waker());
        if !self.waker.take() {
            return Poll::Pending;
        }
        self.fut
            .as_mut()
            .poll(&mut Context::from_waker(self.waker.waker()))
    }
}

/// A waker to give a future or a stream inside a task: a wake-up through it
/// is noted, then passed on to the task.
pub struct OwnWaker {
    flag: Arc<Flag>,
    waker: Waker,
}

struct Flag {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl OwnWaker {
    pub fn new() -> Self {
        let flag = Arc::new(Flag {
            woken: AtomicBool::new(false),
            task: AtomicWaker::new(),
        });
        OwnWaker {
            waker: Waker::from(flag.clone()),
            flag,
        }
    }

    /// The waker to poll with.
    pub fn waker(&self) -> &Waker {
        &self.waker
    }

    /// The task to wake: to be called at every poll of the task.
    pub fn register(&self, task: &Waker) {
        self.flag.task.register(task);
    }

    /// Notes a wake-up without waking the task.
    pub fn note(&self) {
        self.flag.woken.store(true, Ordering::Release);
    }

    /// Whether a wake-up came since the last [`OwnWaker::take`] or
    /// [`OwnWaker::clear`].
    pub fn woken(&self) -> bool {
        self.flag.woken.load(Ordering::Acquire)
    }

    /// Whether a wake-up came, forgetting it.
    pub fn take(&self) -> bool {
        self.flag.woken.swap(false, Ordering::AcqRel)
    }

    pub fn clear(&self) {
        self.flag.woken.store(false, Ordering::Release);
    }
}

impl Default for OwnWaker {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::sync::CancellationToken;

    #[tokio::test]
    async fn a_cancellation_is_seen_and_wakes_the_task() {
        let token = CancellationToken::new();
        let mut side = Side::new(token.clone().cancelled_owned());
        let cancel = token.clone();
        tokio::spawn(async move { cancel.cancel() });
        std::future::poll_fn(|cx| side.poll(cx)).await;
        assert!(token.is_cancelled());
    }

    #[tokio::test]
    async fn a_future_not_woken_is_not_polled_again() {
        let polls = std::cell::Cell::new(0);
        let mut side = Side::new(std::future::poll_fn(|_| {
            polls.set(polls.get() + 1);
            Poll::<()>::Pending
        }));
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        for _ in 0..3 {
            assert!(side.poll(&mut cx).is_pending());
        }
        assert_eq!(polls.get(), 1);
    }
}
