//! What a reload changed, for its log line and the answer to
//! `POST /reload`: routes and pools added, removed or changed, listeners
//! added or removed, whether the TLS settings changed, and the settings
//! that only a restart applies.
//!
//! Definitions are compared by what the file says, table by table: a
//! route moved down the file by an edit above it has not changed. A route
//! is named by its host and path, a pool by its name.

use std::fmt;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::config::Config;
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
    fn of(before: &[(String, &DeTable<'_>)], after: &[(String, &DeTable<'_>)]) -> Sorted {
        let mut sorted = Sorted::default();
        for (name, definition) in after {
            match before.iter().find(|(n, _)| n == name) {
                None => sorted.added.push(name.clone()),
                Some((_, old)) if !same_table(old, definition) => sorted.changed.push(name.clone()),
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
        let (old_file, new_file) = (File::read(&old.text), File::read(&new.text));
        let pools_kept = after
            .groups
            .iter()
            .filter(|g| before.groups.iter().any(|b| std::sync::Arc::ptr_eq(b, g)))
            .count();
        let mut restart = Vec::new();
        for (table, name) in [("stream", "[[stream]]"), ("admin", "[admin]"), ("log", "[log]")] {
            if !same_entry(old_file.get(table), new_file.get(table)) {
                restart.push(name);
            }
        }
        if old.server.threads != new.server.threads {
            restart.push("server.threads");
        }
        if old.server.max_connections_per_ip != new.server.max_connections_per_ip {
            restart.push("server.max_connections_per_ip");
        }
        Changes {
            routes: Sorted::of(
                &old_file.named("route", route_key),
                &new_file.named("route", route_key),
            ),
            pools: Sorted::of(
                &old_file.named("upstream", pool_key),
                &new_file.named("upstream", pool_key),
            ),
            pools_kept,
            listeners,
            tls: !same_entry(old_file.get("tls"), new_file.get("tls"))
                || old.tls.certificates.len() != new.tls.certificates.len()
                || old
                    .tls
                    .certificates
                    .iter()
                    .zip(&new.tls.certificates)
                    .any(|(a, b)| a.cert != b.cert || a.key != b.key),
            restart,
        }
    }

    /// The settings that changed but apply only at the next start.
    pub(crate) fn need_restart(&self) -> &[&'static str] {
        &self.restart
    }

    /// The routes, by name, that the new configuration removed or changed.
    pub(crate) fn routes_left_out(&self) -> impl Iterator<Item = &str> {
        self.routes
            .removed
            .iter()
            .chain(&self.routes.changed)
            .map(String::as_str)
    }
}

/// A configuration's text, parsed again to compare what it says.
struct File<'t>(Option<DeTable<'t>>);

impl<'t> File<'t> {
    fn read(text: &'t str) -> File<'t> {
        File(DeTable::parse(text).ok().map(Spanned::into_inner))
    }

    fn get(&self, key: &str) -> Option<&DeValue<'t>> {
        let table = self.0.as_ref()?;
        table
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .map(|(_, v)| v.get_ref())
    }

    /// Each table of the array `key`, by the name `name` gives it.
    fn named<'s>(&'s self, key: &str, name: fn(&DeTable<'t>) -> String) -> Vec<(String, &'s DeTable<'t>)> {
        let Some(DeValue::Array(items)) = self.get(key) else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| match item.get_ref() {
                DeValue::Table(table) => Some((name(table), table)),
                _ => None,
            })
            .collect()
    }
}

fn string<'a>(table: &'a DeTable<'_>, key: &str) -> Option<&'a str> {
    table
        .iter()
        .find(|(k, _)| k.get_ref() == key)
        .and_then(|(_, v)| match v.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            _ => None,
        })
}

/// A route as logs and metrics name it: its host and path.
fn route_key(table: &DeTable<'_>) -> String {
    let path = ["path", "path_exact", "path_regex"]
        .iter()
        .find_map(|k| string(table, k))
        .unwrap_or("/");
    format!(
        "{}{path}",
        string(table, "host").unwrap_or("").to_ascii_lowercase()
    )
}

fn pool_key(table: &DeTable<'_>) -> String {
    string(table, "name").unwrap_or("").to_owned()
}

/// Whether two values say the same, wherever they were written.
fn same(a: &DeValue<'_>, b: &DeValue<'_>) -> bool {
    match (a, b) {
        (DeValue::String(x), DeValue::String(y)) => x == y,
        (DeValue::Integer(x), DeValue::Integer(y)) => x.as_str() == y.as_str() && x.radix() == y.radix(),
        (DeValue::Float(x), DeValue::Float(y)) => x.as_str() == y.as_str(),
        (DeValue::Boolean(x), DeValue::Boolean(y)) => x == y,
        (DeValue::Datetime(x), DeValue::Datetime(y)) => x == y,
        (DeValue::Array(x), DeValue::Array(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|(p, q)| same(p.get_ref(), q.get_ref()))
        }
        (DeValue::Table(x), DeValue::Table(y)) => same_table(x, y),
        _ => false,
    }
}

fn same_table(x: &DeTable<'_>, y: &DeTable<'_>) -> bool {
    x.len() == y.len()
        && x.iter().all(|(k, v)| {
            y.iter()
                .find(|(k2, _)| k2.get_ref() == k.get_ref())
                .is_some_and(|(_, w)| same(v.get_ref(), w.get_ref()))
        })
}

fn same_entry(a: Option<&DeValue<'_>>, b: Option<&DeValue<'_>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => same(a, b),
        _ => false,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(text: &str) -> Vec<(String, String)> {
        let file = File::read(text);
        file.named("route", route_key)
            .into_iter()
            .map(|(name, _)| (name, String::new()))
            .collect()
    }

    #[test]
    fn positions_are_not_differences() {
        let a = "[[route]]\npath = \"/a\"\nupstream = \"http://x:1\"\n";
        let b = "# a comment above\n\n[[route]]\nupstream = \"http://x:1\"\npath = \"/a\"\n";
        let c = "[[route]]\npath = \"/a\"\nupstream = \"http://x:2\"\n";
        let (fa, fb, fc) = (File::read(a), File::read(b), File::read(c));
        let sorted = Sorted::of(&fa.named("route", route_key), &fb.named("route", route_key));
        assert_eq!(sorted.to_string(), "");
        let sorted = Sorted::of(&fa.named("route", route_key), &fc.named("route", route_key));
        assert_eq!(sorted.to_string(), "~/a");
        assert_eq!(routes(a), vec![("/a".to_owned(), String::new())]);
    }

    #[test]
    fn added_removed_and_changed() {
        let before = "[[route]]\npath = \"/a\"\nupstream = \"http://x:1\"\n\
                      [[route]]\nhost = \"Example.com\"\npath = \"/b\"\nupstream = \"http://x:1\"\n";
        let after = "[[route]]\nhost = \"example.com\"\npath = \"/b\"\nupstream = \"http://x:2\"\n\
                     [[route]]\npath_exact = \"/c\"\nupstream = \"http://x:1\"\n";
        let (fa, fb) = (File::read(before), File::read(after));
        let sorted = Sorted::of(&fa.named("route", route_key), &fb.named("route", route_key));
        assert_eq!(sorted.to_string(), "+/c -/a ~example.com/b");
    }
}
