//! The route table: which route a request goes to, decided by its host, the
//! listening port it arrived on, and its normalised path, compiled at start
//! so that a lookup costs the same with 2 routes or 1000.
//!
//! Hosts are looked up in a map (the exact name, then a `*.` wildcard of
//! its parent, then the routes without a host), each with a matcher per
//! listening port named by some route's `ports`. Within a matcher: an exact
//! path (`path_exact`, a map), then the longest matching prefix if it has
//! `prefix_wins`, then the first regex in file order (one `RegexSet` pass),
//! then the longest prefix on a segment boundary, found by looking up the
//! path's own segment boundaries in a map from the longest down. A host
//! whose routes match nothing falls through to the next kind of host.
//!
//! Among routes with the same host and the same path, one bound to the
//! request's port is taken before one that is not.
//!
//! This room only matches; it never touches a request or a connection.

use std::collections::HashMap;
use std::sync::Arc;

use fnv::FnvHashMap;

use regex::RegexSet;

use crate::config::{PathKind, RouteConfig};

/// One route as the request path sees it, with everything needed to forward.
#[derive(Debug)]
pub struct Route<T> {
    pub config: RouteConfig,
    /// Per-route state built once at start (the upstream client).
    pub state: T,
}

/// Why a route was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// `path_exact` is the path.
    Exact,
    /// The `path_regex` matches the path.
    Regex,
    /// `path` is a prefix of the path on a segment boundary.
    Prefix,
    /// `path` ends in `/` and the path is that without the slash: the
    /// request is answered with a redirect to the slash, as nginx does.
    AddSlash,
}

/// A route found for a request.
#[derive(Debug)]
pub struct Matched<'a, T> {
    pub route: &'a Arc<Route<T>>,
    pub how: How,
}

/// The compiled table.
#[derive(Debug)]
pub struct RouteTable<T> {
    /// In file order; the matchers hold indexes into it.
    routes: Vec<Arc<Route<T>>>,
    // The maps of the table hash with FNV, not SipHash: their keys come from
    // the configuration and never change, so a request cannot add colliding
    // keys (what a keyed hash protects against), and a request looks up to
    // two keys per path segment, where SipHash was most of the lookup's cost.
    hosts: FnvHashMap<String, PortMatchers>,
    /// `*.example.com` under `example.com`.
    wildcards: FnvHashMap<String, PortMatchers>,
    any_host: PortMatchers,
}

/// The matchers of one host: one per port some route is bound to, and one
/// for every other port.
#[derive(Debug, Default)]
struct PortMatchers {
    by_port: FnvHashMap<u16, Matcher>,
    other: Matcher,
}

/// A prefix route in a matcher: its index, and its `prefix_wins`.
type PrefixEntry = (usize, bool);

/// The routes of one host and port.
#[derive(Debug, Default)]
struct Matcher {
    exact: FnvHashMap<String, usize>,
    /// The set and, for each of its patterns, the route's index: in file
    /// order, so the lowest match is the first route written.
    regexes: Option<(RegexSet, Vec<usize>)>,
    prefixes: FnvHashMap<String, PrefixEntry>,
    /// Prefixes that end in `/` (other than `/`), keyed without it: the
    /// paths answered with a redirect to the slash.
    slashless: FnvHashMap<String, PrefixEntry>,
}

impl<T> RouteTable<T> {
    pub fn new(routes: Vec<Route<T>>) -> Self {
        let routes: Vec<Arc<Route<T>>> = routes.into_iter().map(Arc::new).collect();
        let mut by_host: HashMap<Option<&str>, Vec<usize>> = HashMap::new();
        for (index, route) in routes.iter().enumerate() {
            by_host
                .entry(route.config.host.as_deref())
                .or_default()
                .push(index);
        }
        let mut table = RouteTable {
            hosts: FnvHashMap::default(),
            wildcards: FnvHashMap::default(),
            any_host: PortMatchers::default(),
            routes: Vec::new(),
        };
        for (host, indexes) in by_host {
            let matchers = PortMatchers::build(&routes, &indexes);
            match host {
                None => table.any_host = matchers,
                Some(host) => match host.strip_prefix("*.") {
                    Some(parent) => {
                        table.wildcards.insert(parent.to_string(), matchers);
                    }
                    None => {
                        table.hosts.insert(host.to_string(), matchers);
                    }
                },
            }
        }
        table.routes = routes;
        table
    }

    /// The route for `host` (as the client sent it, port allowed), a
    /// request that arrived on listening port `port`, and `path` (normalised,
    /// without the query string).
    pub fn find(&self, host: Option<&str>, port: u16, path: &str) -> Option<Matched<'_, T>> {
        let found = host.map(strip_port).and_then(|host| {
            // Hosts are stored in lower case; a request in another case is
            // rare enough to pay for a copy.
            let lower;
            let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
                lower = host.to_ascii_lowercase();
                lower.as_str()
            } else {
                host
            };
            let exact = if self.hosts.is_empty() {
                None
            } else {
                self.hosts.get(host).and_then(|m| m.get(port).find(path))
            };
            exact.or_else(|| {
                if self.wildcards.is_empty() {
                    return None;
                }
                let (_, parent) = host.split_once('.')?;
                self.wildcards.get(parent)?.get(port).find(path)
            })
        });
        let (index, how) = found.or_else(|| self.any_host.get(port).find(path))?;
        let route = self.routes.get(index)?;
        Some(Matched { route, how })
    }

    /// Every route, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Route<T>>> {
        self.routes.iter()
    }
}

impl PortMatchers {
    fn build<T>(routes: &[Arc<Route<T>>], indexes: &[usize]) -> Self {
        let mut ports: Vec<u16> = indexes
            .iter()
            .flat_map(|&i| routes[i].config.shaping.ports.iter().copied())
            .collect();
        ports.sort_unstable();
        ports.dedup();
        let by_port = ports
            .into_iter()
            .map(|port| (port, Matcher::build(routes, indexes, Some(port))))
            .collect();
        PortMatchers {
            by_port,
            other: Matcher::build(routes, indexes, None),
        }
    }

    fn get(&self, port: u16) -> &Matcher {
        if self.by_port.is_empty() {
            return &self.other;
        }
        self.by_port.get(&port).unwrap_or(&self.other)
    }
}

impl Matcher {
    /// The matcher of the routes among `indexes` that take `port` (`None`:
    /// a port no route is bound to).
    fn build<T>(routes: &[Arc<Route<T>>], indexes: &[usize], port: Option<u16>) -> Self {
        let takes = |i: &usize| {
            let shaping = &routes[*i].config.shaping;
            match port {
                Some(port) => shaping.takes_port(port),
                None => shaping.ports.is_empty(),
            }
        };
        let taken: Vec<usize> = indexes.iter().copied().filter(takes).collect();
        // Routes bound to the port first, so that they win a shared key.
        let (bound, unbound): (Vec<usize>, Vec<usize>) = taken
            .iter()
            .partition(|&&i| !routes[i].config.shaping.ports.is_empty());
        let mut matcher = Matcher::default();
        let mut patterns = Vec::new();
        let mut pattern_routes = Vec::new();
        for i in bound.into_iter().chain(unbound) {
            let config = &routes[i].config;
            let path = config.path.clone();
            match &config.shaping.kind {
                PathKind::Exact => {
                    matcher.exact.entry(path).or_insert(i);
                }
                PathKind::Prefix => {
                    let entry = (i, config.shaping.prefix_wins);
                    if path.len() > 1 {
                        if let Some(bare) = path.strip_suffix('/') {
                            matcher.slashless.entry(bare.to_string()).or_insert(entry);
                        }
                    }
                    matcher.prefixes.entry(path).or_insert(entry);
                }
                PathKind::Regex(_) => {}
            }
        }
        for &i in &taken {
            if let PathKind::Regex(regex) = &routes[i].config.shaping.kind {
                patterns.push(regex.as_str());
                pattern_routes.push(i);
            }
        }
        if !patterns.is_empty() {
            // Each pattern compiled alone when the configuration was
            // checked; a set too large for the default limits gets more
            // room rather than a failure at start.
            let set = RegexSet::new(&patterns).or_else(|_| {
                regex::RegexSetBuilder::new(&patterns)
                    .size_limit(1 << 30)
                    .dfa_size_limit(1 << 26)
                    .build()
            });
            match set {
                Ok(set) => matcher.regexes = Some((set, pattern_routes)),
                Err(e) => {
                    tracing::error!(error = %e, "the route regexes could not be compiled together; regex routes will not match")
                }
            }
        }
        matcher
    }

    /// The route for `path`, and how it matched.
    fn find(&self, path: &str) -> Option<(usize, How)> {
        if !self.exact.is_empty() {
            if let Some(&i) = self.exact.get(path) {
                return Some((i, How::Exact));
            }
        }
        let prefix = self.longest_prefix(path);
        if let Some((_, true, _)) = prefix {
            return prefix.map(|(i, _, how)| (i, how));
        }
        if let Some((set, indexes)) = &self.regexes {
            if let Some(first) = set.matches(path).iter().next() {
                return indexes.get(first).map(|&i| (i, How::Regex));
            }
        }
        prefix.map(|(i, _, how)| (i, how))
    }

    /// The longest prefix route matching `path` on a segment boundary: the
    /// path itself, else the route whose path is `path` with a slash added
    /// (as nginx, which redirects to it), else for each `/` in the path
    /// from the end, the prefix through the slash, then the one before it.
    fn longest_prefix(&self, path: &str) -> Option<(usize, bool, How)> {
        if let Some(&(i, wins)) = self.prefixes.get(path) {
            return Some((i, wins, How::Prefix));
        }
        if !self.slashless.is_empty() {
            if let Some(&(i, wins)) = self.slashless.get(path) {
                return Some((i, wins, How::AddSlash));
            }
        }
        let bytes = path.as_bytes();
        for at in (0..bytes.len()).rev().filter(|&at| bytes[at] == b'/') {
            let candidates = [&path[..=at], &path[..at]];
            for candidate in candidates {
                if let Some(&(i, wins)) = self.prefixes.get(candidate) {
                    return Some((i, wins, How::Prefix));
                }
            }
        }
        None
    }
}

/// `prefix` matches `path` when it is equal to it, or is followed in `path`
/// by a `/`, or itself ends with `/`. So `/ws` takes `/ws` and `/ws/a` but
/// never `/wsx`, which belongs to a different application.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        None => false,
        Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
    }
}

/// `example.com:443` -> `example.com`; `[::1]:443` -> `[::1]`.
pub(crate) fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        match host.rfind(':') {
            Some(i) if host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..i],
            _ => host,
        }
    }
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
