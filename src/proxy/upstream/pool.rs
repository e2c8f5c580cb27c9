//! The idle keep-alive connections of one upstream, newest first, so that a
//! few warm connections carry a steady load and the rest age out.
//!
//! A connection comes back (through [`Home::put`]) once its response body
//! has been read to the end with the connection in step; one whose response
//! was cut short, upgraded, or refused by the proxy is simply dropped,
//! which closes it.
//!
//! At most `keepalive` connections are kept idle (the route's key, as
//! nginx's `keepalive`): an application with a small worker pool would
//! otherwise be held by the connections a burst left behind. When one more
//! comes back, the oldest idle one is closed, as nginx closes the least
//! recently used: the newest are the warmest, and the oldest is the one
//! the upstream is likeliest to be closing anyway. With `keepalive = 0`
//! nothing is kept and every connection closes after its exchange.
//!
//! Idle connections are watched without a task each: every connection put
//! back is polled once with the waker of the pool's watcher task, so a
//! close (or stray bytes) from the upstream wakes that task, which then
//! drops what can no longer be used. The same task drops connections idle
//! for longer than `keepalive_timeout`. A checkout looks once more, so a
//! close the watcher has not seen yet still keeps the connection out of use.
//!
//! The number of idle connections is kept in the route's
//! `portcullis_upstream_idle_connections` gauge, adjusted under the lock
//! wherever the list changes: one atomic add, no label lookup.
//!
//! Checking out and giving back take one uncontended lock and no hashing:
//! each route has its own pool, and a route has one upstream.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;

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

/// How a pool keeps its idle connections: the route's `keepalive` and
/// `keepalive_timeout`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Idle connections kept at most; 0 keeps none.
    pub keepalive: usize,
    /// How long an idle connection is kept; the configuration refuses
    /// zero, which would close each one as it came back.
    pub idle_timeout: Duration,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    limits: Limits,
    /// `portcullis_upstream_idle_connections` of the route: `state.idle`'s
    /// length, kept by adding each change rather than setting it, so that
    /// two pools sharing a label (none do today) would still add up.
    idle_gauge: Gauge,
}

#[derive(Debug, Default)]
struct State {
    /// Oldest at the front, newest at the back.
    idle: VecDeque<Idle>,
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
    /// An empty pool; `idle_gauge` follows its number of idle connections.
    pub fn new(limits: Limits, idle_gauge: Gauge) -> Self {
        Pool {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                limits,
                idle_gauge,
            }),
        }
    }

    /// The most recently used connection that can take a request now, if
    /// any. Closed and expired connections met on the way are dropped.
    pub fn checkout(&self) -> Option<Conn> {
        let now = Instant::now();
        let mut state = self.inner.lock();
        let before = state.idle.len();
        let mut found = None;
        while let Some(mut idle) = state.idle.pop_back() {
            if now.duration_since(idle.since) <= self.inner.limits.idle_timeout
                && idle.conn.poll_idle(Waker::noop())
            {
                found = Some(idle.conn);
                break;
            }
        }
        self.inner.changed(before, state.idle.len());
        found
    }

    pub fn home(&self) -> Home {
        Home {
            inner: self.inner.clone(),
        }
    }
}

impl Home {
    /// Gives `conn` back for the next request: to be called once its
    /// response has been read to its end. With `keepalive` idle
    /// connections already kept, the oldest of them is closed to make room.
    pub fn put(&self, mut conn: Conn) {
        let keepalive = self.inner.limits.keepalive;
        if keepalive == 0 {
            // Dropping it closes it: no keep-alive on this route.
            return;
        }
        let mut state = self.inner.lock();
        let usable = match &state.watcher {
            Some(waker) => conn.poll_idle(waker),
            None => conn.poll_idle(Waker::noop()),
        };
        if !usable {
            return;
        }
        let before = state.idle.len();
        // nginx closes the least recently used connection when its cache is
        // full, and so does this: the front is the oldest. It is dropped
        // (closed) only after the lock is let go.
        let evicted = if before >= keepalive {
            state.idle.pop_front()
        } else {
            None
        };
        state.idle.push_back(Idle {
            conn,
            since: Instant::now(),
        });
        self.inner.changed(before, state.idle.len());
        if !state.watching {
            state.watching = true;
            // Only ever called from request handling, inside the runtime;
            // without one, idle connections are still dropped at checkout.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                // A quarter of the timeout: an idle connection is closed
                // within 1¼ times `keepalive_timeout`, for a wake-up every
                // 15 s at the default.
                let every = (self.inner.limits.idle_timeout / 4).max(Duration::from_millis(10));
                runtime.spawn(watch(Arc::downgrade(&self.inner), every));
            }
        }
        drop(state);
        drop(evicted);
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; should something ever, the
        // list of connections is still a valid list.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves the gauge by the change of the idle list from `before` to
    /// `after` connections.
    fn changed(&self, before: usize, after: usize) {
        if before != after {
            // Both are at most `keepalive + 1`, far below i64::MAX.
            self.idle_gauge.inc_by(after as i64 - before as i64);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let idle = self
            .state
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .idle
            .len();
        self.changed(idle, 0);
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
        let before = state.idle.len();
        let idle_timeout = pool.limits.idle_timeout;
        state
            .idle
            .retain_mut(|e| now.duration_since(e.since) <= idle_timeout && e.conn.poll_idle(cx.waker()));
        pool.changed(before, state.idle.len());
        Poll::Pending
    })
    .await
}
