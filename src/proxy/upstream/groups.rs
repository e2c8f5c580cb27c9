//! The pools of servers, built from the routes at start and at every
//! reload: a route with a URL upstream gets a pool of its own with that one
//! server, and a route naming an `[[upstream]]` shares that pool with every
//! other route naming it, built from the first of them (its
//! `connect_timeout`, and its upstream TLS keys for the `https://` servers).
//!
//! A reload keeps what did not change. A pool defined exactly as before is
//! the same pool, its health checks running on. A pool whose servers
//! connect as before (same name, timeouts, keep-alive and TLS, the CA file
//! unchanged) but whose list or policy changed is made anew around the
//! servers it keeps: an entry written as before keeps its servers, with
//! their keep-alive connections, health and counters. Definitions are
//! compared by what they say, never by where in the file they were
//! written.

use std::collections::HashMap;
use std::sync::Arc;

use super::group::{Group, Policy};
use super::resolve::Resolver;
use super::server::Server;
use super::tls::RouteTls;
use super::{client, Limits};
use crate::config::{Balance, Config, PassiveHealth, PoolConfig, RouteConfig, UpstreamTrust};
use crate::metrics::Metrics;

/// The pools of one configuration by their definitions, for the next
/// configuration to keep.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    /// By everything that defines the pool: kept whole.
    whole: HashMap<String, Arc<Group>>,
    /// `[[upstream]]` pools by how their servers connect: their servers kept.
    connecting: HashMap<String, Arc<Group>>,
}

/// The pools made so far.
pub(crate) struct Groups<'c> {
    pools: &'c [PoolConfig],
    metrics: Arc<Metrics>,
    named: HashMap<String, Arc<Group>>,
    all: Vec<Arc<Group>>,
    /// The previous configuration's pools.
    before: Option<&'c Registry>,
    registry: Registry,
}

impl<'c> Groups<'c> {
    /// `before` holds the pools of the configuration this one replaces.
    pub(crate) fn new(config: &'c Config, metrics: Arc<Metrics>, before: Option<&'c Registry>) -> Self {
        Groups {
            pools: &config.pools,
            metrics,
            named: HashMap::new(),
            all: Vec::new(),
            before,
            registry: Registry::default(),
        }
    }

    /// The pool of `route`, whose upstream TLS is `tls`; `label` is the
    /// route's label in the metrics.
    pub(crate) fn for_route(
        &mut self,
        route: &RouteConfig,
        tls: Option<&RouteTls>,
        label: &str,
    ) -> Arc<Group> {
        let pool = route
            .pool
            .as_ref()
            .and_then(|name| self.pools.iter().find(|p| &p.name == name));
        let Some(pool) = pool else {
            return self.single(route, tls, label);
        };
        if let Some(group) = self.named.get(&pool.name) {
            return group.clone();
        }
        let connecting = format!(
            "{}|{}|{:?}|{:?}",
            pool.name,
            connect_key(route),
            pool.keepalive,
            pool.keepalive_timeout
        );
        let whole = format!(
            "{connecting}|{:?}|{:?}|{:?}|{:?}|{}|{}|{:?}",
            pool.servers,
            pool.balance,
            pool.health,
            pool.passive,
            pool.retries,
            pool.retry_budget,
            pool.resolve_interval
        );
        if let Some(kept) = self.before.and_then(|b| b.whole.get(&whole)) {
            return self.register(pool, kept.clone(), whole, connecting);
        }
        let resolver = Resolver {
            pool: pool.name.as_str().into(),
            entries: pool.servers.clone(),
            connect_timeout: route.connect_timeout,
            limits: Limits {
                keepalive: pool.keepalive,
                idle_timeout: pool.keepalive_timeout,
            },
            tls: tls.cloned(),
            server_name: route.upstream_tls.as_ref().and_then(|t| t.server_name.clone()),
            interval: pool.resolve_interval,
            proxy_protocol: route.send_proxy_protocol,
            metrics: self.metrics.clone(),
        };
        let before = self.before.and_then(|b| b.connecting.get(&connecting));
        let servers = resolver.initial(before.map(|g| &**g));
        let policy = Policy {
            balance: pool.balance.clone(),
            passive: pool.passive,
            health: pool.health.clone(),
            retries: pool.retries,
            retry_budget: pool.retry_budget,
        };
        let group = Arc::new(Group::new(
            pool.name.as_str().into(),
            servers,
            policy,
            Some(resolver),
        ));
        self.register(pool, group, whole, connecting)
    }

    fn register(
        &mut self,
        pool: &PoolConfig,
        group: Arc<Group>,
        whole: String,
        connecting: String,
    ) -> Arc<Group> {
        self.named.insert(pool.name.clone(), group.clone());
        self.all.push(group.clone());
        self.registry.whole.insert(whole, group.clone());
        self.registry.connecting.insert(connecting, group.clone());
        group
    }

    /// A pool of the route's one upstream URL: never marked down, never retried.
    fn single(&mut self, route: &RouteConfig, tls: Option<&RouteTls>, label: &str) -> Arc<Group> {
        let whole = format!(
            "{label}|{}|{}|{:?}|{:?}",
            route.upstream,
            connect_key(route),
            route.keepalive,
            route.keepalive_timeout
        );
        if let Some(kept) = self.before.and_then(|b| b.whole.get(&whole)) {
            self.registry.whole.insert(whole, kept.clone());
            return kept.clone();
        }
        let group = self.make_single(route, tls, label);
        self.registry.whole.insert(whole, group.clone());
        group
    }

    fn make_single(&mut self, route: &RouteConfig, tls: Option<&RouteTls>, label: &str) -> Arc<Group> {
        let name: Arc<str> = route.upstream.to_string().into();
        let client = client(route, tls, self.metrics.upstream_idle(label));
        let server = Server::new(name.clone(), client, 1, false, None, route.upstream.authority());
        let policy = Policy {
            balance: Balance::RoundRobin,
            passive: PassiveHealth {
                max_fails: 0,
                fail_timeout: std::time::Duration::ZERO,
            },
            health: None,
            retries: 0,
            retry_budget: 0.0,
        };
        Arc::new(Group::new(name, vec![Arc::new(server)], policy, None))
    }

    /// Every `[[upstream]]` pool made, each once, and every pool by its
    /// definition.
    pub(crate) fn finish(self) -> (Vec<Arc<Group>>, Registry) {
        (self.all, self.registry)
    }
}

/// How the servers of `route`'s pool connect: its connect timeout, its
/// upstream TLS (with a digest of its CA file, so that a changed bundle is
/// read again) and its PROXY header.
fn connect_key(route: &RouteConfig) -> String {
    let tls = route.upstream_tls.as_ref().map(|tls| {
        let trust = match &tls.trust {
            UpstreamTrust::System => "system".to_owned(),
            UpstreamTrust::InsecureSkipVerify => "insecure".to_owned(),
            UpstreamTrust::CaFile { path, .. } => {
                let digest = std::fs::read(path)
                    .map(|bytes| super::balance::stable_hash(bytes.as_slice()))
                    .unwrap_or(0);
                format!("{}#{digest:x}", path.display())
            }
        };
        (trust, tls.server_name.clone())
    });
    format!(
        "{:?}|{tls:?}|{:?}",
        route.connect_timeout, route.send_proxy_protocol
    )
}
