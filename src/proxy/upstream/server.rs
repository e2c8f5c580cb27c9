//! One server of a pool at run time: its client (with its own keep-alive
//! connections), its weight, its requests in flight, and whether it is up.
//!
//! A server is down while passive health has it down (`max_fails`
//! failures within `fail_timeout` take it out for `fail_timeout`) or while
//! active checks have it down (`fall` failed checks in a row, until `rise`
//! passes in a row). Every change of state is logged once.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Client;
use crate::config::PassiveHealth;

/// A server of a pool.
#[derive(Debug)]
pub(crate) struct Server {
    /// The address as written (`http://app-1:8080`, `unix:/run/app.sock`),
    /// for logs, metrics and the access log.
    pub(crate) label: Arc<str>,
    pub(crate) client: Client,
    pub(crate) weight: u32,
    pub(crate) backup: bool,
    pub(crate) max_conns: Option<usize>,
    /// What the `Host` of an active check is.
    pub(crate) host: String,
    /// A stable hash of `label`, for rendezvous hashing.
    pub(crate) id: u64,
    /// Which entry of the pool's `servers` this server comes from; a
    /// reload that keeps the server may move it to another place.
    entry: AtomicUsize,
    /// The address its entry's name resolved to, when it has a name that
    /// is resolved every `resolve_interval`.
    pub(crate) resolved: Option<std::net::SocketAddr>,
    /// Smooth round robin's running score, moved under the pool's lock.
    pub(crate) rr_score: std::sync::atomic::AtomicI64,
    in_flight: AtomicUsize,
    /// Set while `health` has the server down, passively or by checks: a
    /// server that is up is seen so without taking the lock.
    down: AtomicBool,
    health: Mutex<Health>,
    pub(crate) counts: Counts,
    /// Fired when a reload has left the server out of its pool and
    /// `tunnel_drain_after_reload` has passed: its tunnels close.
    pub(crate) retired: tokio_util::sync::CancellationToken,
}

/// What `/metrics` counts of a server.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    /// Attempts sent to the server (retries included).
    pub(crate) requests: AtomicU64,
    /// Connections that could not be opened.
    pub(crate) connect_failures: AtomicU64,
    /// Exchanges that failed before a response head.
    pub(crate) exchange_failures: AtomicU64,
    /// Requests tried on another server after this one failed.
    pub(crate) retries: AtomicU64,
}

#[derive(Debug)]
struct Health {
    /// Failures of requests counted since `window_start`.
    fails: u32,
    window_start: Instant,
    /// Passive health took the server out until then.
    down_until: Option<Instant>,
    /// Active checks have the server down.
    check_down: bool,
    /// Checks in a row that passed (when down) or failed (when up).
    streak: u32,
    last_check: Option<CheckResult>,
    /// When the server last went up or down.
    changed: Instant,
}

/// The outcome of the latest active check, as `/upstreams` shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CheckResult {
    pub(crate) ok: bool,
    /// The status, when a response came.
    pub(crate) status: Option<u16>,
    /// Why the check failed.
    pub(crate) error: Option<String>,
}

/// What `/upstreams` shows of a server.
#[derive(Debug, Serialize)]
pub(crate) struct ServerView {
    pub(crate) address: String,
    /// The address a name resolved to, for a server made from a name.
    pub(crate) resolved: Option<String>,
    pub(crate) state: &'static str,
    pub(crate) weight: u32,
    pub(crate) backup: bool,
    pub(crate) max_conns: Option<usize>,
    pub(crate) in_flight: usize,
    pub(crate) seconds_since_change: f64,
    pub(crate) last_check: Option<CheckResult>,
}

impl Server {
    pub(crate) fn new(
        label: Arc<str>,
        client: Client,
        weight: u32,
        backup: bool,
        max_conns: Option<usize>,
        host: String,
    ) -> Self {
        Server {
            id: super::balance::stable_hash(&*label),
            entry: AtomicUsize::new(0),
            resolved: None,
            rr_score: std::sync::atomic::AtomicI64::new(0),
            label,
            client,
            weight,
            backup,
            max_conns,
            host,
            in_flight: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            counts: Counts::default(),
            retired: tokio_util::sync::CancellationToken::new(),
            health: Mutex::new(Health {
                fails: 0,
                window_start: Instant::now(),
                down_until: None,
                check_down: false,
                streak: 0,
                last_check: None,
                changed: Instant::now(),
            }),
        }
    }

    /// The server made from entry `entry` of the pool, for `resolved`.
    pub(crate) fn with_entry(mut self, entry: usize, resolved: Option<std::net::SocketAddr>) -> Self {
        self.entry = AtomicUsize::new(entry);
        self.resolved = resolved;
        self
    }

    /// Which entry of the pool's `servers` this server comes from.
    pub(crate) fn entry(&self) -> usize {
        self.entry.load(Ordering::Relaxed)
    }

    /// Moves the server to entry `entry` of a reloaded pool.
    pub(crate) fn move_to(&self, entry: usize) {
        self.entry.store(entry, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Whether the server is up at `now` (whatever its load).
    pub(crate) fn is_up(&self, now: Instant) -> bool {
        if !self.down.load(Ordering::Acquire) {
            return true;
        }
        let mut health = self.lock();
        if let Some(until) = health.down_until {
            if now < until {
                return false;
            }
            health.down_until = None;
            self.down.store(health.check_down, Ordering::Release);
            if !health.check_down {
                health.changed = now;
                tracing::info!(server = %self.label, "upstream server is back after fail_timeout");
            }
        }
        !health.check_down
    }

    /// Whether the server can take one more request.
    pub(crate) fn has_room(&self) -> bool {
        self.max_conns.is_none_or(|max| self.in_flight() < max)
    }

    /// Counts the request as in flight until the lease is dropped.
    pub(crate) fn lease(self: &Arc<Self>) -> Lease {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Lease { server: self.clone() }
    }

    /// A failed attempt (connect, or the exchange before a response): with
    /// `max_fails` of them within `fail_timeout` the server goes down for
    /// `fail_timeout`.
    pub(crate) fn failed(&self, pool: &str, passive: PassiveHealth) {
        if passive.max_fails == 0 {
            return;
        }
        let now = Instant::now();
        let mut health = self.lock();
        if now.duration_since(health.window_start) > passive.fail_timeout {
            health.fails = 0;
            health.window_start = now;
        }
        health.fails += 1;
        if health.fails >= passive.max_fails && health.down_until.is_none() {
            health.fails = 0;
            health.down_until = Some(now + passive.fail_timeout);
            self.down.store(true, Ordering::Release);
            health.changed = now;
            tracing::warn!(
                pool,
                server = %self.label,
                fail_timeout = ?passive.fail_timeout,
                "upstream server marked down: {} failure(s) within fail_timeout",
                passive.max_fails
            );
        }
    }

    /// The result of one active check, with the pool's `rise` and `fall`.
    pub(crate) fn checked(&self, pool: &str, result: CheckResult, rise: u32, fall: u32) {
        let now = Instant::now();
        let mut health = self.lock();
        let ok = result.ok;
        if ok == health.check_down {
            health.streak += 1;
        } else {
            health.streak = 0;
        }
        if health.check_down && ok && health.streak >= rise {
            health.check_down = false;
            self.down.store(health.down_until.is_some(), Ordering::Release);
            health.streak = 0;
            health.changed = now;
            tracing::info!(pool, server = %self.label, "upstream server passes its health check again; back in use");
        } else if !health.check_down && !ok && health.streak >= fall {
            health.check_down = true;
            self.down.store(true, Ordering::Release);
            health.streak = 0;
            health.changed = now;
            tracing::warn!(pool, server = %self.label, error = ?result.error, status = ?result.status, "upstream server failed {fall} health check(s) in a row; marked down");
        }
        health.last_check = Some(result);
    }

    /// How long since the server last went up or down.
    pub(crate) fn since_change(&self) -> Duration {
        self.lock().changed.elapsed()
    }

    pub(crate) fn view(&self) -> ServerView {
        let up = self.is_up(Instant::now());
        let health = self.lock();
        ServerView {
            address: self.label.to_string(),
            resolved: self.resolved.map(|a| a.to_string()),
            state: if up { "up" } else { "down" },
            weight: self.weight,
            backup: self.backup,
            max_conns: self.max_conns,
            in_flight: self.in_flight(),
            seconds_since_change: health.changed.elapsed().as_secs_f64(),
            last_check: health.last_check.clone(),
        }
    }
}

/// A request in flight on a server; dropped when its response ends.
#[derive(Debug)]
pub(crate) struct Lease {
    pub(crate) server: Arc<Server>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.server.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
