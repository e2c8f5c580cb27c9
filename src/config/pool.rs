//! `[[upstream]]`: a named pool of servers that routes name in their
//! `upstream`, as nginx's `upstream {}` block: the servers with their
//! weights, how a request picks one, when a server counts as down, and how
//! often a failed attempt is tried again elsewhere.

use std::path::PathBuf;
use std::time::Duration;

use super::{Origin, Upstream};

/// One `[[upstream]]`.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// `name`: what a route's `upstream` names; unique among pools.
    pub name: String,
    /// `servers`: at least one, in the order written.
    pub servers: Vec<PoolServer>,
    /// `balance` (with `hash_key`): how a server is picked. Default round robin.
    pub balance: Balance,
    /// `[upstream.health]`: active checks; `None` (off) when absent.
    pub health: Option<ActiveHealth>,
    /// `[upstream.passive]`: failures of real requests that mark a server down.
    pub passive: PassiveHealth,
    /// `retries`: further servers tried after a failed attempt. Default 2.
    pub retries: u32,
    /// `retry_budget`: retries allowed as a share of the pool's requests,
    /// from 0 to 1. Default 0.2 ("20%").
    pub retry_budget: f64,
    /// `keepalive`: idle connections kept per server. Default 64.
    pub keepalive: usize,
    /// `keepalive_timeout`: how long an idle connection is kept. Default 60 s.
    pub keepalive_timeout: Duration,
    /// Where the pool was configured.
    pub origin: Origin,
    /// `resolve_interval`: how often the host names of `servers` are
    /// resolved again; each address of a name is a server of its own.
    /// Default 5 s; `None` ("0s"): names stay one server each, resolved
    /// at every new connection.
    pub resolve_interval: Option<Duration>,
}

impl PoolConfig {
    /// Whether any server is `https://`, so that routes on the pool take
    /// their upstream TLS keys.
    pub fn has_https(&self) -> bool {
        self.servers
            .iter()
            .any(|s| matches!(&s.address, ServerAddress::Url(u) if u.scheme == super::Scheme::Https))
    }
}

/// One entry of `servers`.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolServer {
    pub address: ServerAddress,
    /// `weight`: a share of the requests relative to the others. Default 1.
    pub weight: u32,
    /// `backup`: only used when every other server is down. Default false.
    pub backup: bool,
    /// `max_conns`: requests in flight at most; `None` is no limit.
    pub max_conns: Option<usize>,
}

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerAddress {
    /// `http://host:port` or `https://host:port`.
    Url(Upstream),
    /// `unix:/path`: a Unix domain socket, plain HTTP.
    Unix(PathBuf),
}

impl std::fmt::Display for ServerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerAddress::Url(url) => url.fmt(f),
            ServerAddress::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// `balance`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Balance {
    /// `"round_robin"`: smooth weighted round robin, as nginx's.
    RoundRobin,
    /// `"least_conn"`: fewest requests in flight relative to weight.
    LeastConn,
    /// `"random_two"`: the less loaded of two servers drawn at random.
    RandomTwo,
    /// `"hash"`: consistent (weighted rendezvous) hashing of `hash_key`.
    Hash(HashKey),
}

/// `hash_key`: what a request is hashed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// `"client_ip"`.
    ClientIp,
    /// `"header:Name"`, the name in lower case.
    Header(String),
    /// `"cookie:name"`.
    Cookie(String),
    /// `"query:name"`.
    Query(String),
}

impl std::fmt::Display for HashKey {
    /// As `hash_key` is written.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HashKey::ClientIp => f.write_str("client_ip"),
            HashKey::Header(name) => write!(f, "header:{name}"),
            HashKey::Cookie(name) => write!(f, "cookie:{name}"),
            HashKey::Query(name) => write!(f, "query:{name}"),
        }
    }
}

/// `[upstream.health]`.
#[derive(Debug, Clone)]
pub struct ActiveHealth {
    /// `path`: what is asked for with GET.
    pub path: String,
    /// `interval`: time between two checks of a server. Default 5 s.
    pub interval: Duration,
    /// `timeout`: a check without a response head by then fails. Default 2 s.
    pub timeout: Duration,
    /// `expect_status`: the statuses that pass, inclusive. Default 200-399.
    pub expect_status: (u16, u16),
    /// `rise`: passes in a row that bring a down server back. Default 2.
    pub rise: u32,
    /// `fall`: failures in a row that take a server down. Default 3.
    pub fall: u32,
}

/// `[upstream.passive]`.
#[derive(Debug, Clone, Copy)]
pub struct PassiveHealth {
    /// `max_fails`: failures within `fail_timeout` that mark a server down;
    /// 0 never does. Default 1, as nginx.
    pub max_fails: u32,
    /// `fail_timeout`: the window failures are counted in, and how long a
    /// server then stays down. Default 10 s, as nginx.
    pub fail_timeout: Duration,
}
