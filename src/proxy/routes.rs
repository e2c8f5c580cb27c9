//! The route table: which upstream a request goes to, decided by its host and
//! the longest path prefix that ends on a segment boundary.
//!
//! This room only matches; it never touches a request or a connection.

use std::sync::Arc;

use crate::config::RouteConfig;

/// One route as the request path sees it, with everything needed to forward.
#[derive(Debug)]
pub struct Route<T> {
    pub config: RouteConfig,
    /// Per-route state built once at start (the upstream client).
    pub state: T,
}

/// Routes sorted for matching: host-specific routes before host-less ones,
/// and within each group the longest prefix first, so the first hit wins.
#[derive(Debug)]
pub struct RouteTable<T> {
    routes: Vec<Arc<Route<T>>>,
}

impl<T> RouteTable<T> {
    pub fn new(routes: Vec<Route<T>>) -> Self {
        let mut routes: Vec<Arc<Route<T>>> = routes.into_iter().map(Arc::new).collect();
        // Stable sort: among equal keys, the order of the file is kept.
        routes.sort_by(|a, b| {
            let key = |r: &Route<T>| (r.config.host.is_none(), std::cmp::Reverse(r.config.path.len()));
            key(a).cmp(&key(b))
        });
        RouteTable { routes }
    }

    /// The route for `host` (as the client sent it, port allowed) and `path`
    /// (without the query string).
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Arc<Route<T>>> {
        let host = host.map(strip_port);
        self.routes.iter().find(|r| {
            let host_ok = match (&r.config.host, host) {
                (None, _) => true,
                (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
                (Some(_), None) => false,
            };
            host_ok && prefix_matches(&r.config.path, path)
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Route<T>>> {
        self.routes.iter()
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
fn strip_port(host: &str) -> &str {
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
mod tests {
    use super::*;

    #[test]
    fn segment_boundaries() {
        assert!(prefix_matches("/ws", "/ws"));
        assert!(prefix_matches("/ws", "/ws/"));
        assert!(prefix_matches("/ws", "/ws/a"));
        assert!(!prefix_matches("/ws", "/wsx"));
        assert!(!prefix_matches("/ws", "/w"));
        assert!(prefix_matches("/", "/anything"));
        assert!(prefix_matches("/api/", "/api/v1"));
        assert!(!prefix_matches("/api/", "/api"));
    }

    #[test]
    fn ports_are_ignored_in_hosts() {
        assert_eq!(strip_port("example.com:443"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:8443"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }
}
