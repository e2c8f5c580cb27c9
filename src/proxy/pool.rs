//! The idle keep-alive connections of one upstream, newest first, so that a
//! few warm connections carry a steady load and the rest age out.
//!
//! A connection comes back through its [`Lease`] once its response has been
//! read to the end. One whose response was cut short, upgraded, or refused
//! by the proxy is never offered again: dropping the lease drops the sender,
//! and hyper closes the connection once its exchange is over. A connection
//! the upstream closed, or idle for longer than the idle timeout, is dropped
//! at checkout, and a sweep every idle timeout closes those of a route that
//! no request touches any more.
//!
//! Checking out and giving back take one uncontended lock and no hashing:
//! each route has its own pool, and a route has one upstream.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use hyper::client::conn::http1::SendRequest;

use super::request_body::RequestBody;

pub type Sender = SendRequest<RequestBody>;

#[derive(Debug)]
pub struct Pool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    idle: Mutex<Vec<Idle>>,
    idle_timeout: Duration,
    sweeping: AtomicBool,
}

#[derive(Debug)]
struct Idle {
    sender: Sender,
    since: Instant,
}

impl Pool {
    pub fn new(idle_timeout: Duration) -> Self {
        Pool {
            inner: Arc::new(Inner {
                idle: Mutex::new(Vec::new()),
                idle_timeout,
                sweeping: AtomicBool::new(false),
            }),
        }
    }

    /// The most recently used connection that can take a request now, if
    /// any. Closed and expired connections met on the way are dropped; one
    /// still finishing its last exchange stays for a later checkout.
    pub fn checkout(&self) -> Option<Sender> {
        let now = Instant::now();
        let mut idle = self.inner.lock();
        let mut i = idle.len();
        while i > 0 {
            i -= 1;
            let entry = &idle[i];
            if entry.sender.is_closed() || now.duration_since(entry.since) > self.inner.idle_timeout {
                idle.remove(i);
            } else if entry.sender.is_ready() {
                return Some(idle.remove(i).sender);
            }
        }
        None
    }

    /// Ties `sender` to an exchange; [`Lease::release`] gives it back.
    pub fn lease(&self, sender: Sender) -> Lease {
        Lease {
            pool: self.inner.clone(),
            sender,
        }
    }
}

/// A connection out of the pool for one exchange. Dropped without
/// [`Lease::release`], the connection is closed once the exchange is over.
#[derive(Debug)]
pub struct Lease {
    pool: Arc<Inner>,
    sender: Sender,
}

impl Lease {
    /// Gives the connection back for the next request: to be called once
    /// the response has been read to its end.
    pub fn release(self) {
        if self.sender.is_closed() {
            return;
        }
        self.pool.lock().push(Idle {
            sender: self.sender,
            since: Instant::now(),
        });
        if !self.pool.sweeping.swap(true, Ordering::Relaxed) {
            // Only ever called from request handling, inside the runtime;
            // without one, idle connections are still dropped at checkout.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(sweep(Arc::downgrade(&self.pool), self.pool.idle_timeout));
            }
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Vec<Idle>> {
        // Nothing panics while holding the lock; should something ever, the
        // list of senders is still a valid list.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Drops closed and expired connections every `every`, until the pool is gone.
async fn sweep(pool: Weak<Inner>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        let now = Instant::now();
        pool.lock()
            .retain(|e| !e.sender.is_closed() && now.duration_since(e.since) <= pool.idle_timeout);
    }
}
