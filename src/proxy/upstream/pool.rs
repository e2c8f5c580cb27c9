//! The idle keep-alive connections of one upstream, newest first, so that a
//! few warm connections carry a steady load and the rest age out.
//!
//! A connection comes back (through [`Home::put`]) once its response body
//! has been read to the end with the connection in step; one whose response
//! was cut short, upgraded, or refused by the proxy is simply dropped,
//! which closes it.
//!
//! Idle connections are watched without a task each: every connection put
//! back is polled once with the waker of the pool's watcher task, so a
//! close (or stray bytes) from the upstream wakes that task, which then
//! drops what can no longer be used. The same task drops connections idle
//! for longer than the idle timeout. A checkout looks once more, so a close
//! the watcher has not seen yet still keeps the connection out of use.
//!
//! Checking out and giving back take one uncontended lock and no hashing:
//! each route has its own pool, and a route has one upstream.

use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use super::h1::Conn;

#[derive(Debug)]
pub struct Pool {
    inner: Arc<Inner>,
}

/// Where a connection out for an exchange goes back to.
#[derive(Debug, Clone)]
pub struct Home {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    idle_timeout: Duration,
}

#[derive(Debug, Default)]
struct State {
    idle: Vec<Idle>,
    /// The watcher's waker, once it runs; it is started by the first
    /// connection put back.
    watcher: Option<Waker>,
    watching: bool,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

impl std::fmt::Debug for Idle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idle")
            .field("since", &self.since)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub fn new(idle_timeout: Duration) -> Self {
        Pool {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                idle_timeout,
            }),
        }
    }

    /// The most recently used connection that can take a request now, if
    /// any. Closed and expired connections met on the way are dropped.
    pub fn checkout(&self) -> Option<Conn> {
        let now = Instant::now();
        let mut state = self.inner.lock();
        while let Some(mut idle) = state.idle.pop() {
            if now.duration_since(idle.since) <= self.inner.idle_timeout && idle.conn.poll_idle(Waker::noop())
            {
                return Some(idle.conn);
            }
        }
        None
    }

    pub fn home(&self) -> Home {
        Home {
            inner: self.inner.clone(),
        }
    }
}

impl Home {
    /// Gives `conn` back for the next request: to be called once its
    /// response has been read to its end.
    pub fn put(&self, mut conn: Conn) {
        let mut state = self.inner.lock();
        let usable = match &state.watcher {
            Some(waker) => conn.poll_idle(waker),
            None => conn.poll_idle(Waker::noop()),
        };
        if !usable {
            return;
        }
        state.idle.push(Idle {
            conn,
            since: Instant::now(),
        });
        if !state.watching {
            state.watching = true;
            // Only ever called from request handling, inside the runtime;
            // without one, idle connections are still dropped at checkout.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(watch(Arc::downgrade(&self.inner), self.inner.idle_timeout));
            }
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; should something ever, the
        // list of connections is still a valid list.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Drops idle connections that the upstream closed (woken by them) or that
/// expired (checked every `every`), until the pool is gone.
async fn watch(pool: Weak<Inner>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    poll_fn(|cx| {
        let Some(pool) = pool.upgrade() else {
            return Poll::Ready(());
        };
        while tick.poll_tick(cx).is_ready() {}
        let now = Instant::now();
        let mut state = pool.lock();
        if !state.watcher.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            state.watcher = Some(cx.waker().clone());
        }
        state
            .idle
            .retain_mut(|e| now.duration_since(e.since) <= pool.idle_timeout && e.conn.poll_idle(cx.waker()));
        Poll::Pending
    })
    .await
}
