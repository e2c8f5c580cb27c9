//! A future that waits beside a busy one (a cancellation, an idle timer) and
//! is polled only once it has been woken.
//!
//! `tokio::select!` polls every branch each time its task wakes, and a
//! connection's task wakes several times per request: each wake-up would
//! look at the drain signal, the hard stop and the timers again, for
//! nothing. [`Side`] gives its future a waker of its own, which notes the
//! wake-up and then wakes the task; [`Side::poll`] polls the future only
//! when that happened (and the first time, so that it can register).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

pub struct Side<F> {
    fut: Pin<Box<F>>,
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

impl<F: Future> Side<F> {
    pub fn new(fut: F) -> Self {
        let flag = Arc::new(Flag {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Side {
            fut: Box::pin(fut),
            waker: Waker::from(flag.clone()),
            flag,
        }
    }

    /// Polls the future if it was woken since the last poll; `Pending`
    /// otherwise. The task behind `cx` is woken when the future is.
    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.flag.task.register(cx.waker());
        if !self.flag.woken.swap(false, Ordering::Acquire) {
            return Poll::Pending;
        }
        self.fut.as_mut().poll(&mut Context::from_waker(&self.waker))
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
