//! Names that resolve to several addresses: each address of a server's
//! host name is a server of its own (compose `--scale`, a Kubernetes
//! headless Service), and the names are resolved again every
//! `resolve_interval`. When the addresses change, the pool's list of
//! servers is replaced whole: a server whose address stays is kept as it
//! is (connections, health, counters), a new address joins, and a vanished
//! one gets no new request while what it has open (requests in flight,
//! tunnels) finishes. A name that cannot be resolved keeps its servers.
//!
//! A server made from an address connects to that address and keeps the
//! name for TLS (SNI and the certificate check) and for the Host of
//! active health checks.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio_util::sync::CancellationToken;

use super::group::Group;
use super::server::Server;
use super::tls::RouteTls;
use super::{server_client, Limits};
use crate::config::{PoolServer, ProxyProtocol, ServerAddress, Upstream};
use crate::metrics::Metrics;

/// What it takes to make the servers of a pool from its entries.
#[derive(Debug)]
pub(crate) struct Resolver {
    pub(crate) pool: Arc<str>,
    pub(crate) entries: Vec<PoolServer>,
    pub(crate) connect_timeout: Duration,
    pub(crate) limits: Limits,
    /// The TLS of the route the pool was built for, for `https://` servers.
    pub(crate) tls: Option<RouteTls>,
    /// That route's `upstream_server_name`.
    pub(crate) server_name: Option<String>,
    /// `None`: names are never expanded; each stays one server.
    pub(crate) interval: Option<Duration>,
    /// The route's `send_proxy_protocol`.
    pub(crate) proxy_protocol: Option<ProxyProtocol>,
    pub(crate) metrics: Arc<Metrics>,
}

impl Resolver {
    /// The servers of the pool, with names resolved once now (blocking: at
    /// start, and in a reload off the serving threads). A name that does
    /// not resolve yet is one server that resolves it at every connection.
    /// A reload passes `before`, the pool of the previous configuration
    /// whose servers connect the same way: an entry written the same keeps
    /// its servers, with their keep-alive connections, health and counters.
    pub(crate) fn initial(&self, before: Option<&Group>) -> Vec<Arc<Server>> {
        let mut servers = Vec::new();
        for (index, entry) in self.entries.iter().enumerate() {
            let kept: Vec<Arc<Server>> = before
                .and_then(|group| {
                    let resolver = group.resolver.as_ref()?;
                    let old = resolver.entries.iter().position(|e| e == entry)?;
                    let current = group.servers.load();
                    Some(current.iter().filter(|s| s.entry() == old).cloned().collect())
                })
                .unwrap_or_default();
            if !kept.is_empty() {
                for server in &kept {
                    server.move_to(index);
                }
                servers.extend(kept);
                continue;
            }
            match self.name_of(entry) {
                Some(url) => {
                    let found: Vec<SocketAddr> = (url.host.as_str(), url.port)
                        .to_socket_addrs()
                        .map(|addrs| dedup(addrs.collect()))
                        .unwrap_or_default();
                    if found.is_empty() {
                        servers.push(self.server(index, None));
                    }
                    servers.extend(found.into_iter().map(|addr| self.server(index, Some(addr))));
                }
                None => servers.push(self.server(index, None)),
            }
        }
        servers
    }

    /// The entry's URL, when its host is a name to expand.
    fn name_of<'e>(&self, entry: &'e PoolServer) -> Option<&'e Upstream> {
        self.interval?;
        match &entry.address {
            ServerAddress::Url(url) if url.host.parse::<IpAddr>().is_err() => Some(url),
            _ => None,
        }
    }

    /// The server of entry `index`, at `resolved` when its name was resolved.
    fn server(&self, index: usize, resolved: Option<SocketAddr>) -> Arc<Server> {
        let entry = &self.entries[index];
        let (address, label, host) = match (&entry.address, resolved) {
            (ServerAddress::Url(url), Some(addr)) => {
                let at = Upstream {
                    scheme: url.scheme,
                    host: addr.ip().to_string(),
                    port: addr.port(),
                };
                let label: Arc<str> = at.to_string().into();
                (ServerAddress::Url(at), label, url.authority())
            }
            (ServerAddress::Url(url), None) => {
                (entry.address.clone(), url.to_string().into(), url.authority())
            }
            (ServerAddress::Unix(_), _) => (
                entry.address.clone(),
                entry.address.to_string().into(),
                "localhost".to_owned(),
            ),
        };
        let tls = self
            .tls
            .as_ref()
            .and_then(|tls| server_tls(tls, self.server_name.as_deref(), &entry.address));
        let idle = self.metrics.upstream_idle(&format!("{}@{}", self.pool, label));
        let client = server_client(
            &address,
            self.connect_timeout,
            self.limits,
            tls.as_ref(),
            idle,
            self.proxy_protocol,
        );
        let server = Server::new(label, client, entry.weight, entry.backup, entry.max_conns, host);
        Arc::new(server.with_entry(index, resolved))
    }

    /// Resolves every name again; the new list of servers when an address
    /// came or went, reusing the servers whose address stayed.
    async fn refresh(&self, current: &[Arc<Server>]) -> Option<Vec<Arc<Server>>> {
        let mut next = Vec::new();
        let mut changed = false;
        for (index, entry) in self.entries.iter().enumerate() {
            let mine = current.iter().filter(|s| s.entry() == index);
            let Some(url) = self.name_of(entry) else {
                next.extend(mine.cloned());
                continue;
            };
            let found = match tokio::net::lookup_host((url.host.as_str(), url.port)).await {
                Ok(addrs) => dedup(addrs.collect()),
                Err(e) => {
                    tracing::debug!(pool = %self.pool, server = %url, error = %e, "cannot resolve; keeping its servers");
                    Vec::new()
                }
            };
            if found.is_empty() {
                next.extend(mine.cloned());
                continue;
            }
            let before: Vec<Option<SocketAddr>> = mine.clone().map(|s| s.resolved).collect();
            for addr in &found {
                match current
                    .iter()
                    .find(|s| s.entry() == index && s.resolved == Some(*addr))
                {
                    Some(kept) => next.push(kept.clone()),
                    None => next.push(self.server(index, Some(*addr))),
                }
            }
            let after: Vec<Option<SocketAddr>> = found.iter().copied().map(Some).collect();
            if before != after {
                changed = true;
                tracing::info!(
                    pool = %self.pool,
                    server = %url,
                    addresses = ?found,
                    "upstream name resolves to other addresses; the pool follows"
                );
            }
        }
        changed.then_some(next)
    }
}

/// Sorted, each once: the order of a resolver's answer is no change.
fn dedup(mut addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    addrs.sort();
    addrs.dedup();
    addrs
}

/// The TLS of an `https://` server: the route's trust, and the route's
/// `upstream_server_name` or else the server's own host name.
pub(crate) fn server_tls(
    tls: &RouteTls,
    configured: Option<&str>,
    address: &ServerAddress,
) -> Option<RouteTls> {
    let ServerAddress::Url(url) = address else {
        return None;
    };
    let name = configured.unwrap_or(&url.host).to_owned();
    let server_name = ServerName::try_from(name).ok()?;
    Some(RouteTls {
        config: tls.config.clone(),
        server_name,
    })
}

/// Resolves the names of `group` every `resolve_interval` until `stop` fires.
pub(crate) async fn run(group: Arc<Group>, stop: CancellationToken) {
    let Some(resolver) = &group.resolver else { return };
    let Some(interval) = resolver.interval else { return };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let current = group.servers.load_full();
        let refreshed = tokio::select! {
            () = stop.cancelled() => return,
            r = resolver.refresh(&current) => r,
        };
        if let Some(next) = refreshed {
            group.servers.store(Arc::new(next));
        }
    }
}
