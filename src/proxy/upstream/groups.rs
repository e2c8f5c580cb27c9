//! The pools of servers, built once at start from the routes: a route with
//! a URL upstream gets a pool of its own with that one server, and a route
//! naming an `[[upstream]]` shares that pool with every other route naming
//! it, built from the first of them (its `connect_timeout`, and its upstream
//! TLS keys for the `https://` servers).

use std::collections::HashMap;
use std::sync::Arc;

use super::group::{Group, Policy};
use super::resolve::Resolver;
use super::server::Server;
use super::tls::RouteTls;
use super::{client, Limits};
use crate::config::{Balance, Config, PassiveHealth, PoolConfig, RouteConfig};
use crate::metrics::Metrics;

/// The pools made so far.
pub(crate) struct Groups<'c> {
    pools: &'c [PoolConfig],
    metrics: Arc<Metrics>,
    named: HashMap<String, Arc<Group>>,
    all: Vec<Arc<Group>>,
}

impl<'c> Groups<'c> {
    pub(crate) fn new(config: &'c Config, metrics: Arc<Metrics>) -> Self {
        Groups {
            pools: &config.pools,
            metrics,
            named: HashMap::new(),
            all: Vec::new(),
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
        let servers = resolver.initial();
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
        self.named.insert(pool.name.clone(), group.clone());
        self.all.push(group.clone());
        group
    }

    /// A pool of the route's one upstream URL: never marked down, never retried.
    fn single(&mut self, route: &RouteConfig, tls: Option<&RouteTls>, label: &str) -> Arc<Group> {
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

    /// Every `[[upstream]]` pool made, each once.
    pub(crate) fn into_all(self) -> Vec<Arc<Group>> {
        self.all
    }
}
