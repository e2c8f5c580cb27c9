//! A pool at run time: its servers, how a request picks one (`balance`),
//! and the retry of an attempt that failed before anything was sent.
//!
//! A route with a plain URL upstream is a pool of one server that is never
//! marked down and never retried, so that every route forwards the same way.
//! A pool named by several routes is built once, from the first of them
//! (its `connect_timeout` and upstream TLS keys), so that its servers'
//! health and keep-alive connections are shared.
//!
//! Retries: a connection that could not be opened (refused, unreachable,
//! TLS failure, connect timeout) has sent nothing, so the request is tried
//! on another server whatever its method, up to `retries` more servers and
//! within `retry_budget`: each request adds that share of a token to a
//! bucket of at most [`BUDGET_CAP`] tokens, and each retry takes one, so
//! retries cannot multiply the load of a pool that is failing. Once a
//! connection is open the request is sent, and it is never sent twice: its
//! body streams from the client and is not kept.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use arc_swap::ArcSwap;
use http::{header, request, Method, Request, Response};
use serde::Serialize;

use super::balance::{self, Candidate};
use super::h1::body::UpstreamBody;
use super::h1::ExchangeError;
use super::resolve::Resolver;
use super::server::{Lease, Server, ServerView};
use super::Error;
use crate::config::{ActiveHealth, Balance, HashKey, PassiveHealth};
use crate::proxy::request_body::RequestBody;

/// Retry tokens a pool can save up: a fresh or quiet pool can still retry
/// this many times in a row.
pub(crate) const BUDGET_CAP: f64 = 10.0;

/// The servers of one pool and how they are chosen.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) name: Arc<str>,
    /// The servers now: replaced whole when names resolve to other
    /// addresses; a request holds the server it picked.
    pub(crate) servers: ArcSwap<Vec<Arc<Server>>>,
    /// How to make the servers again from their names, when they have any
    /// and `resolve_interval` is set.
    pub(crate) resolver: Option<Resolver>,
    balance: Balance,
    pub(crate) passive: PassiveHealth,
    pub(crate) health: Option<ActiveHealth>,
    retries: u32,
    retry_share: f64,
    /// Retry tokens, from 0 to `BUDGET_CAP`.
    tokens: Mutex<f64>,
    /// Held while smooth round robin moves the servers' running scores.
    scores: Mutex<()>,
    /// Where least_conn starts looking, so that ties rotate.
    rotate: AtomicUsize,
    /// A single server that is never marked down: picked without a look.
    single: bool,
    pub(crate) requests: AtomicU64,
    pub(crate) retried: AtomicU64,
    /// Fired when a reload leaves the pool out: its health checks and
    /// name resolution stop.
    pub(crate) retired: tokio_util::sync::CancellationToken,
}

/// What `/upstreams` shows of a pool.
#[derive(Debug, Serialize)]
pub(crate) struct GroupView {
    pub(crate) name: String,
    pub(crate) balance: &'static str,
    pub(crate) requests: u64,
    pub(crate) retries: u64,
    pub(crate) servers: Vec<ServerView>,
}

/// How a pool is set up, beside its servers.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub(crate) balance: Balance,
    pub(crate) passive: PassiveHealth,
    pub(crate) health: Option<ActiveHealth>,
    pub(crate) retries: u32,
    pub(crate) retry_budget: f64,
}

impl Group {
    pub(crate) fn new(
        name: Arc<str>,
        servers: Vec<Arc<Server>>,
        policy: Policy,
        resolver: Option<Resolver>,
    ) -> Self {
        let single = servers.len() == 1
            && policy.passive.max_fails == 0
            && policy.health.is_none()
            && resolver.is_none();
        Group {
            name,
            scores: Mutex::new(()),
            servers: ArcSwap::from_pointee(servers),
            resolver,
            balance: policy.balance,
            passive: policy.passive,
            health: policy.health,
            retries: policy.retries,
            retry_share: policy.retry_budget,
            tokens: Mutex::new(BUDGET_CAP),
            rotate: AtomicUsize::new(0),
            single,
            requests: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            retired: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// The hash of what `balance = "hash"` hashes, from the request head
    /// and the client's address; `None` for other balances, or when the
    /// request lacks the header, cookie or query parameter (it is then
    /// balanced round robin).
    pub(crate) fn hash_of(&self, parts: &request::Parts, client: IpAddr) -> Option<u64> {
        let Balance::Hash(key) = &self.balance else {
            return None;
        };
        match key {
            HashKey::ClientIp => Some(balance::stable_hash(client.to_canonical())),
            HashKey::Header(name) => parts
                .headers
                .get(name.as_str())
                .map(|v| balance::stable_hash(v.as_bytes())),
            HashKey::Cookie(name) => parts
                .headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(n, _)| n == name)
                .map(|(_, value)| balance::stable_hash(value)),
            HashKey::Query(name) => parts
                .uri
                .query()?
                .split('&')
                .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
                .find(|(n, _)| n == name)
                .map(|(_, value)| balance::stable_hash(value)),
        }
    }

    /// Sends `req` to a server of the pool, trying others when a
    /// connection cannot be opened, and returns the response head with the
    /// server's lease, which the response body holds to its end.
    pub(crate) async fn request(
        &self,
        mut req: Request<RequestBody>,
        key: Option<u64>,
    ) -> Result<(Response<UpstreamBody>, Lease), Error> {
        if !self.single {
            // A URL route's one server shows in no metric: its requests
            // are counted by the route.
            self.requests.fetch_add(1, Ordering::Relaxed);
            self.deposit();
        }
        let mut tried: Vec<u64> = Vec::new();
        let mut attempt = 0;
        loop {
            let Some(server) = self.pick(key, &tried) else {
                return Err(Error::AllDown(self.name.clone()));
            };
            let server = &server;
            let lease = server.lease();
            if !self.single {
                server.counts.requests.fetch_add(1, Ordering::Relaxed);
            }
            match server.client.connection(&req).await {
                Ok((conn, reused)) => {
                    // A kept connection the server closed meanwhile fails
                    // before any response byte; an idempotent request whose
                    // whole body is here can then be sent again.
                    let spare = (reused && attempt < self.retries).then(|| again(&req)).flatten();
                    match (server.client.send(conn, req).await, spare) {
                        (Ok(response), _) => return Ok((response, lease)),
                        (Err(Error::Exchange(ExchangeError::Closed | ExchangeError::Io(_))), Some(spare))
                            if self.withdraw() =>
                        {
                            req = spare;
                            attempt += 1;
                            self.count_retry(
                                server,
                                attempt,
                                "kept upstream connection was closed before the response; sending the request again",
                            );
                        }
                        // The client's body failing is no fault of the server's.
                        (Err(e @ Error::Exchange(ExchangeError::Body(_))), _) => return Err(e),
                        (Err(e), _) => {
                            server.counts.exchange_failures.fetch_add(1, Ordering::Relaxed);
                            server.failed(&self.name, self.passive);
                            return Err(e);
                        }
                    }
                }
                Err(e) => {
                    server.counts.connect_failures.fetch_add(1, Ordering::Relaxed);
                    server.failed(&self.name, self.passive);
                    tried.push(server.id);
                    if attempt >= self.retries || tried.len() >= self.servers.load().len() || !self.withdraw()
                    {
                        return Err(e);
                    }
                    attempt += 1;
                    let why = format!(
                        "cannot connect to upstream server ({}); retrying on another",
                        super::describe(&e)
                    );
                    self.count_retry(server, attempt, &why);
                }
            }
        }
    }

    fn count_retry(&self, server: &Server, attempt: u32, why: &str) {
        self.retried.fetch_add(1, Ordering::Relaxed);
        server.counts.retries.fetch_add(1, Ordering::Relaxed);
        tracing::info!(pool = %self.name, server = %server.label, attempt, "{why}");
    }

    /// The server for the next attempt: among the primaries that are up,
    /// have room and were not tried yet, else among the backups.
    fn pick(&self, key: Option<u64>, tried: &[u64]) -> Option<Arc<Server>> {
        let servers = self.servers.load();
        if self.single {
            return servers.first().filter(|_| tried.is_empty()).cloned();
        }
        let now = Instant::now();
        let mut candidates: Vec<Candidate> = Vec::with_capacity(servers.len());
        for backup in [false, true] {
            candidates.extend(
                servers
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| {
                        s.backup == backup && !tried.contains(&s.id) && s.has_room() && s.is_up(now)
                    })
                    .map(|(index, s)| Candidate {
                        index,
                        weight: s.weight,
                        in_flight: s.in_flight(),
                        id: s.id,
                    }),
            );
            if !candidates.is_empty() {
                break;
            }
        }
        if candidates.is_empty() {
            return None;
        }
        let index = match (&self.balance, key) {
            (Balance::Hash(_), Some(key)) => balance::rendezvous(&candidates, key),
            (Balance::LeastConn, _) => {
                let start = self.rotate.fetch_add(1, Ordering::Relaxed);
                balance::least_conn(&candidates, start % candidates.len())
            }
            (Balance::RandomTwo, _) => balance::random_two(&candidates),
            _ => {
                let _moving = self.scores.lock().unwrap_or_else(PoisonError::into_inner);
                let mut scores: Vec<i64> = servers
                    .iter()
                    .map(|s| s.rr_score.load(Ordering::Relaxed))
                    .collect();
                let picked = balance::round_robin(&candidates, &mut scores);
                for (server, score) in servers.iter().zip(scores) {
                    server.rr_score.store(score, Ordering::Relaxed);
                }
                picked
            }
        }?;
        servers.get(index).cloned()
    }

    fn deposit(&self) {
        if self.retries == 0 {
            return;
        }
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        *tokens = (*tokens + self.retry_share).min(BUDGET_CAP);
    }

    /// Takes a retry token, if there is one.
    fn withdraw(&self) -> bool {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            tracing::warn!(pool = %self.name, "retry budget spent; not retrying");
            false
        }
    }

    pub(crate) fn view(&self) -> GroupView {
        GroupView {
            name: self.name.to_string(),
            balance: match self.balance {
                Balance::RoundRobin => "round_robin",
                Balance::LeastConn => "least_conn",
                Balance::RandomTwo => "random_two",
                Balance::Hash(_) => "hash",
            },
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retried.load(Ordering::Relaxed),
            servers: self.servers.load().iter().map(|s| s.view()).collect(),
        }
    }
}

/// A copy of `req` to send again, if it is idempotent (RFC 9110 section
/// 9.2.2) and its whole body is here.
fn again(req: &Request<RequestBody>) -> Option<Request<RequestBody>> {
    let idempotent = matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    );
    if !idempotent {
        return None;
    }
    let body = req.body().replay()?;
    let mut copy = Request::new(body);
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}
