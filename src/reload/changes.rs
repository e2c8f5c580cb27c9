//! What a reload changed, for its log line and the answer to
//! `POST /reload`: routes and pools added, removed or changed, listeners
//! added or removed, whether the TLS settings changed, and the settings
//! that only a restart applies.
//!
//! Definitions are compared by what they say: a route moved down the file
//! by an edit above it has not changed.

use std::fmt;

use crate::config::{Config, RouteConfig};
use crate::proxy::Shared;
use crate::server::listeners::ListenerChanges;

/// The differences between two configurations.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    routes: Sorted,
    pools: Sorted,
    /// Pools kept whole, with their connections and health.
    pools_kept: usize,
    listeners: ListenerChanges,
    tls: bool,
    restart: Vec<&'static str>,
}

/// Names added, removed and changed.
#[derive(Debug, Default)]
struct Sorted {
    added: Vec<String>,
    removed: Vec<String>,
    changed: Vec<String>,
}

impl Sorted {
    fn of(before: &[(String, String)], after: &[(String, String)]) -> Sorted {
        let mut sorted = Sorted::default();
        for (name, definition) in after {
            match before.iter().find(|(n, _)| n == name) {
                None => sorted.added.push(name.clone()),
                Some((_, old)) if old != definition => sorted.changed.push(name.clone()),
                Some(_) => {}
            }
        }
        for (name, _) in before {
            if !after.iter().any(|(n, _)| n == name) {
                sorted.removed.push(name.clone());
            }
        }
        sorted
    }

    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

impl fmt::Display for Sorted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (sign, names) in [("+", &self.added), ("-", &self.removed), ("~", &self.changed)] {
            if !names.is_empty() {
                parts.push(format!("{sign}{}", names.join(&format!(" {sign}"))));
            }
        }
        f.write_str(&parts.join(" "))
    }
}

impl Changes {
    pub(crate) fn between(
        old: &Config,
        new: &Config,
        before: &Shared,
        after: &Shared,
        listeners: ListenerChanges,
    ) -> Changes {
        let routes = |c: &Config| -> Vec<(String, String)> {
            c.routes
                .iter()
                .map(|r| (route_name(r), without_positions(&format!("{r:?}"))))
                .collect()
        };
        let pools = |c: &Config| -> Vec<(String, String)> {
            c.pools
                .iter()
                .map(|p| (p.name.clone(), without_positions(&format!("{p:?}"))))
                .collect()
        };
        let pools_kept = after
            .groups
            .iter()
            .filter(|g| before.groups.iter().any(|b| std::sync::Arc::ptr_eq(b, g)))
            .count();
        let same = |a: &dyn fmt::Debug, b: &dyn fmt::Debug| {
            without_positions(&format!("{a:?}")) == without_positions(&format!("{b:?}"))
        };
        let mut restart = Vec::new();
        if !same(&old.streams, &new.streams) {
            restart.push("[[stream]]");
        }
        if !same(&old.admin, &new.admin) {
            restart.push("[admin]");
        }
        if !same(&old.log, &new.log) {
            restart.push("[log]");
        }
        if old.server.threads != new.server.threads {
            restart.push("server.threads");
        }
        if old.server.max_connections_per_ip != new.server.max_connections_per_ip {
            restart.push("server.max_connections_per_ip");
        }
        Changes {
            routes: Sorted::of(&routes(old), &routes(new)),
            pools: Sorted::of(&pools(old), &pools(new)),
            pools_kept,
            listeners,
            tls: !same(&old.tls, &new.tls),
            restart,
        }
    }

    /// The settings that changed but apply only at the next start.
    pub(crate) fn need_restart(&self) -> &[&'static str] {
        &self.restart
    }
}

impl fmt::Display for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.routes.is_empty() {
            parts.push(format!("routes {}", self.routes));
        }
        if !self.pools.is_empty() {
            parts.push(format!("pools {}", self.pools));
        }
        let l = &self.listeners;
        if !l.added.is_empty() || !l.removed.is_empty() {
            let added = l.added.iter().map(|a| format!("+{a}"));
            let removed = l.removed.iter().map(|a| format!("-{a}"));
            parts.push(format!(
                "listeners {}",
                added.chain(removed).collect::<Vec<_>>().join(" ")
            ));
        }
        if self.tls {
            parts.push("tls settings changed".to_owned());
        }
        if parts.is_empty() {
            parts.push("nothing changed".to_owned());
        }
        if self.pools_kept > 0 {
            parts.push(format!("{} pool(s) kept whole", self.pools_kept));
        }
        f.write_str(&parts.join("; "))
    }
}

/// A route as logs and metrics name it: its host and path.
pub(crate) fn route_name(route: &RouteConfig) -> String {
    format!("{}{}", route.host.as_deref().unwrap_or(""), route.path)
}

/// A definition's debug text without where it was written: the lines and
/// columns of its origins, and the `route[N]` index some keys carry.
pub(crate) fn without_positions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let next = ["line: ", "column: ", "route["]
            .iter()
            .filter_map(|marker| rest.find(marker).map(|at| (at, marker.len())))
            .min();
        let Some((at, len)) = next else {
            out.push_str(rest);
            break;
        };
        out.push_str(&rest[..at + len]);
        rest = rest[at + len..].trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_not_differences() {
        let a = r#"Origin { file: "a.toml", line: 12, column: 5 }, key: "route[3].upstream""#;
        let b = r#"Origin { file: "a.toml", line: 40, column: 1 }, key: "route[7].upstream""#;
        assert_eq!(without_positions(a), without_positions(b));
        assert_ne!(
            without_positions(a),
            without_positions(r#"Origin { file: "b.toml", line: 12 }"#)
        );
    }

    #[test]
    fn sorted_names() {
        let before = vec![
            ("/a".to_owned(), "1".to_owned()),
            ("/b".to_owned(), "1".to_owned()),
        ];
        let after = vec![
            ("/b".to_owned(), "2".to_owned()),
            ("/c".to_owned(), "1".to_owned()),
        ];
        let s = Sorted::of(&before, &after);
        assert_eq!(s.to_string(), "+/c -/a ~/b");
    }
}
