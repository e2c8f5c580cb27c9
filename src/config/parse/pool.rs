//! `[[upstream]]`: named pools of servers (`servers` as URLs, `unix:`
//! paths or `{ url, weight, backup, max_conns }`), `balance` and
//! `hash_key`, `[upstream.health]`, `[upstream.passive]`, `retries`,
//! `retry_budget` and the keep-alive keys (`[upstream.health]` and
//! `[upstream.passive]` are read in `pool_health`); and the check that a route's
//! `upstream` naming a pool names one that exists.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::de::DeValue;

use super::checker::{edit_distance, Checker, Schema, Table};
use super::upstream::parse_upstream;
use crate::config::duration::Zero;
use crate::config::pool::{Balance, HashKey, PassiveHealth, PoolConfig, PoolServer, ServerAddress};
use crate::config::{Scheme, Upstream};

const POOL_SCHEMA: Schema = Schema {
    keys: &[
        "name",
        "servers",
        "balance",
        "hash_key",
        "health",
        "passive",
        "retries",
        "retry_budget",
        "keepalive",
        "keepalive_timeout",
        "resolve_interval",
    ],
    aliases: &[
        ("server", "servers"),
        ("resolve", "resolve_interval"),
        ("resolver_valid", "resolve_interval"),
        ("ip_hash", "balance"),
        ("least_conn", "balance"),
        ("random", "balance"),
        ("hash", "hash_key"),
        ("max_fails", "passive"),
        ("fail_timeout", "passive"),
        ("proxy_next_upstream_tries", "retries"),
        ("proxy_next_upstream", "retries"),
        ("check", "health"),
        ("health_check", "health"),
    ],
};

const SERVER_SCHEMA: Schema = Schema {
    keys: &["url", "weight", "backup", "max_conns"],
    aliases: &[("address", "url"), ("server", "url"), ("host", "url")],
};

const DEFAULT_RETRIES: u32 = 2;
const DEFAULT_RETRY_BUDGET: f64 = 0.2;
const DEFAULT_RESOLVE_INTERVAL: Duration = Duration::from_secs(5);
pub(super) const DEFAULT_FAIL_TIMEOUT: Duration = Duration::from_secs(10);

const SERVERS_EXAMPLE: &str =
    "servers = [\"http://app-1:8080\", { url = \"http://app-2:8080\", weight = 2 }]";

impl Checker<'_> {
    /// Every `[[upstream]]`, the invalid ones left out.
    pub(super) fn pools(&mut self, top: &Table<'_, '_>) -> Vec<PoolConfig> {
        let Some(tables) = self.array_of_tables(top, "upstream", "[[upstream]]") else {
            return Vec::new();
        };
        let mut pools: Vec<PoolConfig> = Vec::new();
        for table in tables {
            let Some(pool) = self.pool(&table) else { continue };
            if let Some(first) = pools.iter().find(|p| p.name == pool.name) {
                let message = format!(
                    "a pool named `{}` is already defined at {}",
                    pool.name, first.origin
                );
                let span = table.get("name").map_or(table.span.clone(), |v| v.span());
                self.error(
                    &span,
                    table.key_path("name"),
                    message,
                    "give each [[upstream]] a name of its own",
                );
                continue;
            }
            pools.push(pool);
        }
        pools
    }

    fn pool(&mut self, table: &Table<'_, '_>) -> Option<PoolConfig> {
        self.check_keys(table, &POOL_SCHEMA);
        let name = self.pool_name(table);
        let servers = self.servers(table);
        let balance = self.balance(table);
        // `Some(None)`: no active checks; `None`: the table is invalid.
        let health = match self.table(table, "health", "[upstream.health]") {
            Some(health) => self.health(&health).map(Some),
            None => Some(None),
        };
        let passive = match self.table(table, "passive", "[upstream.passive]") {
            Some(passive) => self.passive(&passive),
            None => PassiveHealth {
                max_fails: 1,
                fail_timeout: DEFAULT_FAIL_TIMEOUT,
            },
        };
        let retries = self.small_count(table, "retries", DEFAULT_RETRIES, "2");
        let retry_budget = self.retry_budget(table);
        let keepalive = self.keepalive(table);
        let keepalive_timeout = self.keepalive_timeout(table);
        let resolve_interval =
            self.duration(table, "resolve_interval", DEFAULT_RESOLVE_INTERVAL, Zero::Allowed);
        let resolve_interval = (!resolve_interval.is_zero()).then_some(resolve_interval);
        Some(PoolConfig {
            name: name?,
            servers: servers?,
            balance: balance?,
            health: health?,
            passive,
            retries,
            retry_budget,
            keepalive,
            keepalive_timeout,
            origin: self.origin(&table.span),
            resolve_interval,
        })
    }

    /// `name`: letters, digits, `-`, `_` and `.`, never a URL.
    fn pool_name(&mut self, table: &Table<'_, '_>) -> Option<String> {
        let Some((text, span)) = self.string(table, "name", "\"app\"") else {
            if table.get("name").is_none() {
                self.missing(
                    &table.span,
                    table.key_path("name"),
                    "this [[upstream]] has no `name`",
                    "add name = \"app\" and write upstream = \"app\" in the routes that use it",
                );
            }
            return None;
        };
        let valid = !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            let hint = if text.contains("://") || text.starts_with("unix:") {
                "the address goes in `servers`; the name is a word such as name = \"app\""
            } else {
                "use letters, digits, `-`, `_` and `.`, for example: name = \"app\""
            };
            self.error(
                &span,
                table.key_path("name"),
                format!("`{text}` is not a pool name"),
                hint,
            );
            return None;
        }
        Some(text.to_string())
    }

    /// `servers`: a non-empty list of addresses or server tables.
    fn servers(&mut self, table: &Table<'_, '_>) -> Option<Vec<PoolServer>> {
        let key = table.key_path("servers");
        let Some(value) = table.get("servers") else {
            self.missing(
                &table.span,
                key,
                "this [[upstream]] has no `servers`",
                format!("list the application's addresses, for example: {SERVERS_EXAMPLE}"),
            );
            return None;
        };
        let DeValue::Array(items) = value.get_ref() else {
            let hint = match value.get_ref() {
                DeValue::String(text) => format!("write a list: servers = [\"{text}\"]"),
                _ => format!("for example: {SERVERS_EXAMPLE}"),
            };
            self.type_error(value, key, "a list of servers", hint);
            return None;
        };
        if items.is_empty() {
            self.error(
                &value.span(),
                key,
                "the pool has no server",
                format!("for example: {SERVERS_EXAMPLE}"),
            );
            return None;
        }
        let mut servers = Vec::new();
        let mut ok = true;
        for (index, item) in items.iter().enumerate() {
            let path = format!("{key}[{index}]");
            let server = match item.get_ref() {
                DeValue::String(text) => {
                    self.server_address(text, &item.span(), &path)
                        .map(|address| PoolServer {
                            address,
                            weight: 1,
                            backup: false,
                            max_conns: None,
                        })
                }
                DeValue::Table(entries) => self.server_table(&Table {
                    entries,
                    path,
                    header: "a server of `servers`",
                    span: item.span(),
                }),
                _ => {
                    self.type_error(
                        item,
                        path,
                        "an address or a server table",
                        "write \"http://host:port\", \"unix:/path\" or { url = \"http://host:port\", weight = 2 }"
                            .to_string(),
                    );
                    None
                }
            };
            match server {
                Some(server) => servers.push(server),
                None => ok = false,
            }
        }
        if ok && servers.iter().all(|s| s.backup) {
            self.error(
                &value.span(),
                key,
                "every server of the pool is a backup, so none would ever be used first",
                "remove backup = true from at least one server",
            );
            return None;
        }
        ok.then_some(servers)
    }

    /// `{ url, weight, backup, max_conns }`.
    fn server_table(&mut self, table: &Table<'_, '_>) -> Option<PoolServer> {
        self.check_keys(table, &SERVER_SCHEMA);
        let address = match self.string(table, "url", "\"http://127.0.0.1:8080\"") {
            Some((text, span)) => self.server_address(text, &span, &table.key_path("url")),
            None => {
                if table.get("url").is_none() {
                    self.error(
                        &table.span,
                        table.key_path("url"),
                        "this server has no `url`",
                        "write { url = \"http://127.0.0.1:8080\", weight = 2 }",
                    );
                }
                None
            }
        };
        let weight = self.small_count(table, "weight", 1, "2");
        if weight == 0 {
            if let Some(value) = table.get("weight") {
                self.error(
                    &value.span(),
                    table.key_path("weight"),
                    "a weight of 0 would never pick the server",
                    "give a weight of 1 or more, or remove the server (backup = true keeps it for when the others are down)",
                );
                return None;
            }
        }
        let backup = self.boolean(table, "backup", false);
        let max_conns = match self.integer(table, "max_conns", "100") {
            None => None,
            Some((n, span)) => match usize::try_from(n) {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    self.error(
                        &span,
                        table.key_path("max_conns"),
                        format!("{n} is not allowed; the value must be at least 1"),
                        "leave max_conns out for no limit (nginx's max_conns=0), or give a number such as max_conns = 100",
                    );
                    return None;
                }
            },
        };
        Some(PoolServer {
            address: address?,
            weight,
            backup,
            max_conns,
        })
    }

    /// A server's address: `unix:/path` or an `http://`/`https://` URL.
    fn server_address(&mut self, text: &str, span: &Range<usize>, key: &str) -> Option<ServerAddress> {
        if let Some(rest) = text.strip_prefix("unix:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                self.error(
                    span,
                    key,
                    "the unix socket path is empty",
                    "write the socket's path, for example: \"unix:/run/app.sock\"",
                );
                return None;
            }
            let path = PathBuf::from(path);
            let path = if path.is_absolute() {
                path
            } else {
                self.base_dir.join(path)
            };
            return Some(ServerAddress::Unix(path));
        }
        match parse_upstream(text) {
            Ok(url) => Some(ServerAddress::Url(url)),
            Err(invalid) => {
                let hint = invalid.hint.replace("upstream = ", "");
                self.error(span, key, invalid.message, hint);
                None
            }
        }
    }

    /// `balance` and `hash_key`.
    fn balance(&mut self, table: &Table<'_, '_>) -> Option<Balance> {
        let hash_key = match self.string(table, "hash_key", "\"client_ip\"") {
            Some((text, span)) => Some((self.hash_key(text, &span, &table.key_path("hash_key"))?, span)),
            None if table.get("hash_key").is_some() => return None,
            None => None,
        };
        let balance = match self.string(table, "balance", "\"round_robin\"") {
            None if table.get("balance").is_some() => return None,
            None => Balance::RoundRobin,
            Some((text, span)) => match text {
                "round_robin" => Balance::RoundRobin,
                "least_conn" => Balance::LeastConn,
                "random_two" => Balance::RandomTwo,
                "hash" => Balance::Hash(hash_key.clone().map_or(HashKey::ClientIp, |(key, _)| key)),
                other => {
                    let hint = match other {
                        "ip_hash" => {
                            "write balance = \"hash\" with hash_key = \"client_ip\" (nginx's ip_hash)"
                                .to_string()
                        }
                        "random" | "random two" | "p2c" => "write balance = \"random_two\"".to_string(),
                        "roundrobin" | "rr" | "round-robin" => "write balance = \"round_robin\"".to_string(),
                        "leastconn" | "least-conn" | "least_connections" => {
                            "write balance = \"least_conn\"".to_string()
                        }
                        _ => {
                            const KNOWN: [&str; 4] = ["round_robin", "least_conn", "random_two", "hash"];
                            match KNOWN.iter().min_by_key(|k| edit_distance(other, k)) {
                                Some(close) if edit_distance(other, close) <= 3 => {
                                    format!("did you mean balance = \"{close}\"?")
                                }
                                _ => "one of \"round_robin\", \"least_conn\", \"random_two\", \"hash\""
                                    .to_string(),
                            }
                        }
                    };
                    self.error(
                        &span,
                        table.key_path("balance"),
                        format!("unknown balance `{other}`"),
                        hint,
                    );
                    return None;
                }
            },
        };
        if let (Some((_, span)), false) = (&hash_key, matches!(balance, Balance::Hash(_))) {
            self.error(
                span,
                table.key_path("hash_key"),
                "hash_key is only read with balance = \"hash\"",
                "add balance = \"hash\", or remove hash_key",
            );
            return None;
        }
        Some(balance)
    }

    fn hash_key(&mut self, text: &str, span: &Range<usize>, key: &str) -> Option<HashKey> {
        if text == "client_ip" {
            return Some(HashKey::ClientIp);
        }
        let parsed = match text.split_once(':') {
            Some(("header", name)) if http::HeaderName::from_bytes(name.as_bytes()).is_ok() => {
                Some(HashKey::Header(name.to_ascii_lowercase()))
            }
            Some(("cookie", name)) if !name.is_empty() && !name.contains([';', '=', ' ']) => {
                Some(HashKey::Cookie(name.to_string()))
            }
            Some(("query", name)) if !name.is_empty() && !name.contains(['&', '=', '#']) => {
                Some(HashKey::Query(name.to_string()))
            }
            _ => None,
        };
        if parsed.is_none() {
            let hint = match text {
                "$remote_addr" | "remote_addr" | "ip" | "client" => {
                    "write hash_key = \"client_ip\"".to_string()
                }
                t if t.starts_with("$http_") => {
                    format!(
                        "write hash_key = \"header:{}\"",
                        t["$http_".len()..].replace('_', "-")
                    )
                }
                t if t.starts_with("$cookie_") => {
                    format!("write hash_key = \"cookie:{}\"", &t["$cookie_".len()..])
                }
                t if t.starts_with("$arg_") => format!("write hash_key = \"query:{}\"", &t["$arg_".len()..]),
                _ => {
                    "one of \"client_ip\", \"header:X-User\", \"cookie:session\", \"query:room\"".to_string()
                }
            };
            self.error(span, key, format!("`{text}` is not a hash key"), hint);
        }
        parsed
    }

    /// `retry_budget`: a percentage, "20%".
    fn retry_budget(&mut self, table: &Table<'_, '_>) -> f64 {
        const KEY: &str = "retry_budget";
        let Some(value) = table.get(KEY) else {
            return DEFAULT_RETRY_BUDGET;
        };
        let parsed = match value.get_ref() {
            DeValue::String(text) => text
                .trim()
                .strip_suffix('%')
                .and_then(|n| n.trim().parse::<f64>().ok())
                .filter(|n| (0.0..=100.0).contains(n)),
            _ => None,
        };
        match parsed {
            Some(percent) => percent / 100.0,
            None => {
                self.error(
                    &value.span(),
                    table.key_path(KEY),
                    "retry_budget is a percentage of the pool's requests from \"0%\" to \"100%\"",
                    "for example: retry_budget = \"20%\" (at most one retry for every five requests)",
                );
                DEFAULT_RETRY_BUDGET
            }
        }
    }

    /// A small integer of 0 or more at `key`, `default` when absent or invalid.
    pub(super) fn small_count(
        &mut self,
        table: &Table<'_, '_>,
        key: &str,
        default: u32,
        example: &str,
    ) -> u32 {
        let Some((n, span)) = self.integer(table, key, example) else {
            return default;
        };
        match u32::try_from(n) {
            Ok(n) if n <= 10_000 => n,
            _ => {
                self.error(
                    &span,
                    table.key_path(key),
                    format!("{n} is out of range; the value must be from 0 to 10000"),
                    format!("for example: {key} = {example}"),
                );
                default
            }
        }
    }

    /// A route's `upstream` that is no URL: the name of a pool, or an error
    /// with the pool names it could have meant.
    pub(super) fn pool_reference<'p>(
        &mut self,
        pools: &'p [PoolConfig],
        names: &[String],
        text: &str,
        span: &Range<usize>,
        key: String,
    ) -> Option<&'p PoolConfig> {
        if let Some(pool) = pools.iter().find(|p| p.name == text) {
            return Some(pool);
        }
        // A pool that was written but is invalid has its own error already.
        if names.iter().any(|n| n == text) {
            return None;
        }
        let hint = match names.iter().min_by_key(|n| edit_distance(text, n)) {
            Some(close) if edit_distance(text, close) <= 2 => format!("did you mean upstream = \"{close}\"?"),
            _ if names.is_empty() => format!(
                "write a URL such as upstream = \"http://127.0.0.1:8080\", or define the pool: [[upstream]] name = \"{text}\" servers = [...]"
            ),
            _ => format!("pools defined: {}; or write a URL such as \"http://127.0.0.1:8080\"", names.join(", ")),
        };
        self.error(span, key, format!("no [[upstream]] is named `{text}`"), hint);
        None
    }
}

/// The names written in `[[upstream]]` tables, valid or not, so that a
/// route naming an invalid pool is not also told the pool does not exist.
pub(super) fn written_pool_names(top: &Table<'_, '_>) -> Vec<String> {
    let Some(value) = top.get("upstream") else {
        return Vec::new();
    };
    let DeValue::Array(items) = value.get_ref() else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| match item.get_ref() {
            DeValue::Table(t) => match t.get("name").map(|v| v.get_ref()) {
                Some(DeValue::String(name)) => Some(name.to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Whether a route's `upstream` names a pool rather than a URL: a name
/// written in an `[[upstream]]`, or a bare word with no scheme, port or dot.
pub(super) fn names_pool(text: &str, pool_names: &[String]) -> bool {
    pool_names.iter().any(|n| n == text)
        || (!text.is_empty() && !text.contains([':', '/', '.']) && !text.contains(char::is_whitespace))
}

/// What a route on `pool` keeps as its `upstream`: the pool's name as a
/// host, which is the Host sent for a client that sent none (as nginx's
/// `$proxy_host`), and the scheme that decides whether the route's
/// upstream TLS keys apply.
pub(super) fn pool_upstream(pool: &PoolConfig) -> Upstream {
    let scheme = if pool.has_https() {
        Scheme::Https
    } else {
        Scheme::Http
    };
    Upstream {
        scheme,
        host: pool.name.to_ascii_lowercase(),
        port: if scheme == Scheme::Https { 443 } else { 80 },
    }
}
