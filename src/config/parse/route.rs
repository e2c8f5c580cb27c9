//! `[[route]]`: host, path and upstream, the timeouts, upstream
//! keep-alive (`keepalive`, `keepalive_timeout`), `max_body`,
//! `websocket` and `path_normalization`, and no two routes with the same
//! host and path. The upstream address itself is parsed in `upstream`, TLS
//! to it in `upstream_tls`.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use toml::de::DeValue;

use super::checker::{Checker, Schema, Table};
use super::pool::{names_pool, pool_upstream};
use super::upstream::parse_upstream;
use crate::config::duration::Zero;
use crate::config::error::Invalid;
use crate::config::{
    Buffering, Compression, ErrorPages, Origin, PoolConfig, RouteAction, RouteConfig, Scheme, Upstream,
};

const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_TUNNEL_IDLE_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// nginx has no default (no `keepalive`, no cache); 64 covers a steady
/// load of dozens of requests in flight without holding hundreds of
/// connections after a burst.
const DEFAULT_KEEPALIVE: usize = 64;
/// nginx's default for `keepalive_timeout` in an `upstream` block.
const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);

const ROUTE_EXAMPLE: &str = "[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:8080\"";

/// What a route takes from the sections when it does not say:
/// `[compression]`, `[server]`'s `error_pages`, `[buffering]`.
pub(super) type RouteDefaults<'a> = (Option<&'a Arc<Compression>>, &'a Arc<ErrorPages>, &'a Buffering);

/// What two routes may not share: host and path.
struct RouteIdentity {
    host: Option<String>,
    path: String,
    /// Where the path was written, for the duplicate's message.
    path_span: Range<usize>,
}

pub(super) const ROUTE_SCHEMA: Schema = Schema {
    keys: &[
        "host",
        "path",
        "upstream",
        "read_timeout",
        "connect_timeout",
        "tunnel_idle_timeout",
        "keepalive",
        "keepalive_timeout",
        "max_body",
        "upstream_ca",
        "upstream_server_name",
        "upstream_insecure_skip_verify",
        "require_client_cert",
        "websocket",
        "path_normalization",
        "path_exact",
        "path_regex",
        "rewrite",
        "prefix_wins",
        "ports",
        "strip_prefix",
        "rewrite_prefix",
        "redirect",
        "status",
        "respond",
        "methods",
        "request",
        "response",
        "upstream_host",
        "forwarded_for",
        "redirect_rewrite",
        "cookie_path",
        "cookie_flags",
        // route_client.rs
        "send_proxy_protocol",
        "forwarded",
        // route_static.rs
        "root",
        "alias",
        "try_files",
        "index",
        "precompressed",
        // compression.rs
        "compression",
        // error_pages.rs
        "error_pages",
        "intercept_errors",
        // buffering.rs
        "request_buffering",
        "response_buffering",
    ],
    aliases: &[
        ("proxy_pass", "upstream"),
        ("proxy_protocol", "send_proxy_protocol"),
        ("send_proxy", "send_proxy_protocol"),
        ("forwarded_header", "forwarded"),
        ("websockets", "websocket"),
        ("allow_websocket", "websocket"),
        ("upgrade", "websocket"),
        ("merge_slashes", "path_normalization"),
        ("normalize_path", "path_normalization"),
        ("path_normalisation", "path_normalization"),
        ("proxy_ssl_trusted_certificate", "upstream_ca"),
        ("ca", "upstream_ca"),
        ("ca_file", "upstream_ca"),
        ("proxy_ssl_name", "upstream_server_name"),
        ("server_name_override", "upstream_server_name"),
        ("sni", "upstream_server_name"),
        ("proxy_ssl_verify", "upstream_insecure_skip_verify"),
        ("insecure_skip_verify", "upstream_insecure_skip_verify"),
        ("tls_skip_verify", "upstream_insecure_skip_verify"),
        ("client_max_body_size", "max_body"),
        ("max_body_size", "max_body"),
        ("max_request_body", "max_body"),
        ("body_limit", "max_body"),
        ("location", "path"),
        ("prefix", "path"),
        ("server_name", "host"),
        ("proxy_read_timeout", "read_timeout"),
        ("proxy_connect_timeout", "connect_timeout"),
        ("keepalive_connections", "keepalive"),
        ("upstream_keepalive", "keepalive"),
        // In [server], `keepalive_timeout` points to `idle_timeout` (nginx's
        // client-side directive); in a route it is the upstream's own key.
        ("keepalive_idle_timeout", "keepalive_timeout"),
        ("require_client_certificate", "require_client_cert"),
        ("ssl_verify_client", "require_client_cert"),
        ("mtls", "require_client_cert"),
        ("exact", "path_exact"),
        ("regex", "path_regex"),
        ("location_regex", "path_regex"),
        ("port", "ports"),
        ("listen_ports", "ports"),
        ("return", "redirect"),
        ("limit_except", "methods"),
        ("allow_methods", "methods"),
        ("proxy_set_header", "request"),
        ("add_header", "response"),
        ("headers", "request"),
        ("host_header", "upstream_host"),
        ("x_forwarded_for", "forwarded_for"),
        ("proxy_redirect", "redirect_rewrite"),
        ("proxy_cookie_path", "cookie_path"),
        ("proxy_cookie_flags", "cookie_flags"),
        ("gzip_static", "precompressed"),
        ("brotli_static", "precompressed"),
        ("document_root", "root"),
        ("directory_index", "index"),
        ("gzip", "compression"),
        ("brotli", "compression"),
        ("error_page", "error_pages"),
        ("proxy_intercept_errors", "intercept_errors"),
        ("proxy_request_buffering", "request_buffering"),
        ("client_body_buffer_size", "request_buffering"),
        ("proxy_buffering", "response_buffering"),
        ("proxy_buffer_size", "response_buffering"),
        ("proxy_buffers", "response_buffering"),
    ],
};

impl Checker<'_> {
    /// The routes; `defaults` are `[compression]`, `[server]`'s
    /// `error_pages` and `[buffering]`, for the routes that say nothing.
    pub(super) fn routes(
        &mut self,
        top: &Table<'_, '_>,
        pools: &[PoolConfig],
        defaults: RouteDefaults<'_>,
    ) -> Vec<RouteConfig> {
        let pool_names = super::pool::written_pool_names(top);
        let no_route = |checker: &mut Self, span: &Range<usize>| {
            checker.missing(
                span,
                "route",
                "no route: portcullis would have nowhere to send requests",
                format!("add at least one [[route]] with path and upstream, for example:\n{ROUTE_EXAMPLE}"),
            )
        };
        match top.get("route") {
            None => {
                no_route(self, &(0..0));
                return Vec::new();
            }
            Some(value) if matches!(value.get_ref(), DeValue::Array(items) if items.is_empty()) => {
                no_route(self, &value.span());
                return Vec::new();
            }
            Some(_) => {}
        }
        let Some(tables) = self.array_of_tables(top, "route", "[[route]]") else {
            return Vec::new();
        };

        let mut routes = Vec::new();
        // (host, path) -> (which route, where its path was written)
        let mut seen: HashMap<(Option<String>, String), (String, Origin)> = HashMap::new();
        for table in tables {
            let (route, identity) = self.route(&table, pools, &pool_names, defaults);
            // Duplicates are looked for even among routes with other
            // errors, so that one edit fixes both.
            if let Some(identity) = identity {
                let path_span = identity.path_span;
                let key = (identity.host, identity.path);
                if let Some((first, first_origin)) = seen.get(&key) {
                    let what = match &key.0 {
                        Some(host) => format!("host `{host}` and path `{}`", key.1),
                        None => format!("path `{}` (any host)", key.1),
                    };
                    let message = format!("duplicate route: {first} at {first_origin} already has {what}");
                    self.error(
                        &path_span,
                        table.key_path("path"),
                        message,
                        "remove one of the two, or tell them apart with `host`",
                    );
                    continue;
                }
                seen.insert(key, (table.path.clone(), self.origin(&path_span)));
            }
            routes.extend(route);
        }
        routes
    }

    /// One route (`None` when invalid), and what tells it apart from the
    /// others (`None` when its host or path is invalid).
    fn route(
        &mut self,
        table: &Table<'_, '_>,
        pools: &[PoolConfig],
        pool_names: &[String],
        (compression, error_pages, buffering): RouteDefaults<'_>,
    ) -> (Option<RouteConfig>, Option<RouteIdentity>) {
        self.check_keys(table, &ROUTE_SCHEMA);

        let host = match self.string(table, "host", "\"example.com\"") {
            Some((text, span)) => match check_host(text, false) {
                Ok(host) => Some(Some(host)),
                Err(invalid) => {
                    self.error(&span, table.key_path("host"), invalid.message, invalid.hint);
                    None
                }
            },
            None if table.get("host").is_some() => None,
            None => Some(None),
        };

        let path = self.route_path(table);

        let files = self.route_files(table, path.as_ref(), pools, pool_names);
        let action = match &files {
            Some(_) => Some(RouteAction::Files),
            None => self.route_action(table),
        };
        let mut pool = None;
        let upstream = match &action {
            // Routes that answer by themselves have no upstream to reach.
            Some(RouteAction::Redirect { .. } | RouteAction::Respond { .. }) => Some(no_upstream()),
            Some(RouteAction::Files) => files.as_ref().and_then(|f| {
                pool.clone_from(&f.pool);
                f.upstream.clone()
            }),
            None => None,
            Some(RouteAction::Proxy) => match self.string(table, "upstream", "\"http://127.0.0.1:8080\"") {
                Some((text, span)) if names_pool(text, pool_names) => {
                    let found =
                        self.pool_reference(pools, pool_names, text, &span, table.key_path("upstream"));
                    pool = found.map(|p| p.name.clone());
                    found.map(pool_upstream)
                }
                Some((text, span)) => match parse_upstream(text) {
                    Ok(upstream) => Some(upstream),
                    Err(invalid) => {
                        self.error(&span, table.key_path("upstream"), invalid.message, invalid.hint);
                        None
                    }
                },
                None => {
                    if table.get("upstream").is_none() {
                        self.missing(
                            &table.span,
                            table.key_path("upstream"),
                            "this route has no `upstream`",
                            "add the address of the application, for example: upstream = \"http://127.0.0.1:8080\"",
                        );
                    }
                    None
                }
            },
        };

        let proxies = match &action {
            Some(RouteAction::Redirect { .. } | RouteAction::Respond { .. }) => false,
            Some(RouteAction::Files) => files.as_ref().is_some_and(|f| f.pool.is_some()),
            _ => true,
        };
        let read_timeout = self.duration(table, "read_timeout", DEFAULT_READ_TIMEOUT, Zero::Rejected);
        let connect_timeout =
            self.duration(table, "connect_timeout", DEFAULT_CONNECT_TIMEOUT, Zero::Rejected);
        let tunnel_idle_timeout = self.duration(
            table,
            "tunnel_idle_timeout",
            DEFAULT_TUNNEL_IDLE_TIMEOUT,
            Zero::Rejected,
        );
        let keepalive = self.keepalive(table);
        let keepalive_timeout = self.keepalive_timeout(table);
        let max_body = self.max_body(table);
        let upstream_tls = self.upstream_tls(table, upstream.as_ref());
        let require_client_cert = self.boolean(table, "require_client_cert", false);
        let websocket = self.boolean(table, "websocket", true);
        let path_normalization = self.path_normalization(table);
        let mut shaping = self.route_shaping(table, path.as_ref().map(|(_, _, kind)| kind));
        shaping.methods = self.methods(table);
        shaping.action = action.unwrap_or_default();
        shaping.headers = self.route_headers(table);
        shaping.upstream_urls = self.upstream_urls(table, &shaping.rewrite);

        let identity = match (&host, &path) {
            (Some(host), Some((path, path_span, _))) => Some(RouteIdentity {
                host: host.clone(),
                path: identity_path(path, &shaping),
                path_span: path_span.clone(),
            }),
            _ => None,
        };
        let (send_proxy_protocol, forwarded) = self.route_client(table);
        let compression = self.route_compression(table, compression);
        let error_pages = self.error_pages(table, error_pages);
        let buffering = self.route_buffering(table, buffering, proxies);
        let route = match (host, path, upstream) {
            (Some(host), Some((path, _, _)), Some(upstream)) => Some(RouteConfig {
                host,
                path,
                upstream,
                read_timeout,
                connect_timeout,
                tunnel_idle_timeout,
                keepalive,
                keepalive_timeout,
                max_body,
                upstream_tls,
                require_client_cert,
                websocket,
                path_normalization,
                origin: self.origin(&table.span),
                pool,
                shaping,
                send_proxy_protocol,
                forwarded,
                files: files.and_then(|f| f.files),
                compression,
                error_pages,
                buffering,
            }),
            _ => None,
        };
        (route, identity)
    }

    /// `keepalive`: 0 or more idle connections.
    pub(super) fn keepalive(&mut self, table: &Table<'_, '_>) -> usize {
        let Some((n, span)) = self.integer(table, "keepalive", "64") else {
            return DEFAULT_KEEPALIVE;
        };
        match usize::try_from(n) {
            Ok(n) => n,
            Err(_) => {
                let message = if n < 0 {
                    format!("{n} is not allowed; the value must be 0 or more")
                } else {
                    format!("{n} is too large")
                };
                self.error(
                    &span,
                    table.key_path("keepalive"),
                    message,
                    "give the number of idle connections to keep, for example: keepalive = 64 \
                     (keepalive = 0 closes every connection after its exchange)",
                );
                DEFAULT_KEEPALIVE
            }
        }
    }

    /// `keepalive_timeout`: never zero. It is also how often the pool looks
    /// for expired connections, and someone writing "0s" most likely means
    /// no keep-alive, which is `keepalive = 0`.
    pub(super) fn keepalive_timeout(&mut self, table: &Table<'_, '_>) -> Duration {
        const KEY: &str = "keepalive_timeout";
        let timeout = self.duration(table, KEY, DEFAULT_KEEPALIVE_TIMEOUT, Zero::Allowed);
        if !timeout.is_zero() {
            return timeout;
        }
        if let Some(value) = table.get(KEY) {
            self.error(
                &value.span(),
                table.key_path(KEY),
                "a zero keepalive_timeout would close every idle connection at once",
                "write keepalive = 0 to close every upstream connection after its exchange, or give a duration such as keepalive_timeout = \"60s\"",
            );
        }
        DEFAULT_KEEPALIVE_TIMEOUT
    }

    /// `max_body`: at least one byte; absent means no limit.
    fn max_body(&mut self, table: &Table<'_, '_>) -> Option<u64> {
        let (bytes, span) = self.size(table, "max_body", "10MiB")?;
        if bytes == 0 {
            self.error(
                &span,
                table.key_path("max_body"),
                "0 would refuse every request body",
                "leave max_body out for no limit (nginx's client_max_body_size 0 means no limit), or give a size such as \"10MiB\"",
            );
            return None;
        }
        Some(bytes)
    }

    /// `path_normalization`: "on" (the default) forwards the normalised
    /// path, "off" the path as the client sent it. Routing always uses the
    /// normalised one.
    fn path_normalization(&mut self, table: &Table<'_, '_>) -> bool {
        let Some(value) = table.get("path_normalization") else {
            return true;
        };
        match value.get_ref() {
            DeValue::String(text) if text.as_ref() == "on" => true,
            DeValue::String(text) if text.as_ref() == "off" => false,
            DeValue::Boolean(b) => {
                let word = if *b { "on" } else { "off" };
                self.type_error(
                    value,
                    table.key_path("path_normalization"),
                    "\"on\" or \"off\"",
                    format!("write path_normalization = \"{word}\""),
                );
                true
            }
            _ => {
                self.type_error(
                    value,
                    table.key_path("path_normalization"),
                    "\"on\" or \"off\"",
                    "write path_normalization = \"off\" to forward the path exactly as the client sent it (routing still uses the normalised path)".to_string(),
                );
                true
            }
        }
    }
}

/// The upstream of a route that answers by itself: never connected to.
pub(super) fn no_upstream() -> Upstream {
    Upstream {
        scheme: Scheme::Http,
        host: "0.0.0.0".to_string(),
        port: 0,
    }
}

/// What tells a route's path apart from another's: how it matches, the
/// text, and the ports it is bound to.
fn identity_path(path: &str, shaping: &crate::config::RouteShaping) -> String {
    let kind = match shaping.kind {
        crate::config::PathKind::Prefix => "",
        crate::config::PathKind::Exact => "= ",
        crate::config::PathKind::Regex(_) => "~ ",
    };
    let mut ports = shaping.ports.clone();
    ports.sort_unstable();
    if ports.is_empty() {
        format!("{kind}{path}")
    } else {
        format!("{kind}{path}` on ports `{ports:?}")
    }
}

/// A route `path`: a prefix of the request path.
pub(super) fn check_path(path: &str) -> Result<(), Invalid> {
    if path.is_empty() {
        return Err(Invalid::new(
            "the path is empty",
            "write path = \"/\" to match every request",
        ));
    }
    if !path.starts_with('/') {
        let suggestion = if path.contains("://") {
            "the path is only the part after the host, such as path = \"/api\"; the address goes in `upstream`".to_string()
        } else {
            format!("write path = \"/{}\"", path.trim_start())
        };
        return Err(Invalid::new(
            format!("`{path}` does not start with `/`"),
            suggestion,
        ));
    }
    if let Some(index) = path.find(['?', '#']) {
        let what = if path[index..].starts_with('?') {
            "a query (`?`)"
        } else {
            "a fragment (`#`)"
        };
        return Err(Invalid::new(
            format!("`{path}` contains {what}; routes match on the path only"),
            format!("write path = \"{}\"", &path[..index]),
        ));
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Invalid::new(
            format!("`{}` contains a space or control character", path.escape_debug()),
            "request paths never contain them; percent-encode a space as %20",
        ));
    }
    Ok(())
}

/// A route `host` (`is_certificate_name` false) or a certificate name:
/// a DNS name or IP address, stored in lower case. Certificate names may be
/// wildcards (`*.example.com`), which cover one label.
pub(super) fn check_host(raw: &str, is_certificate_name: bool) -> Result<String, Invalid> {
    let what = if is_certificate_name { "name" } else { "host" };
    let text = raw.trim();
    if text.is_empty() {
        let hint = if is_certificate_name {
            "remove it, or write a name such as \"example.com\""
        } else {
            "remove `host` to match any host, or write a name such as host = \"example.com\""
        };
        return Err(Invalid::new(format!("the {what} is empty"), hint));
    }
    if let Some((_, rest)) = text.split_once("://") {
        let bare = rest.split(['/', ':']).next().unwrap_or(rest);
        return Err(Invalid::new(
            format!("`{text}` is a URL; a {what} is only the name"),
            format!("write \"{bare}\""),
        ));
    }
    if let Some(index) = text.find('/') {
        return Err(Invalid::new(
            format!("`{text}` contains a path; a {what} is only the name"),
            format!(
                "write \"{}\" (the path goes in the route's `path`)",
                &text[..index]
            ),
        ));
    }
    if text.starts_with('[') && text.ends_with(']') {
        let inner = &text[1..text.len() - 1];
        if inner.parse::<Ipv6Addr>().is_ok() {
            return Ok(text.to_ascii_lowercase());
        }
    }
    if text.parse::<Ipv6Addr>().is_ok() {
        return Ok(if is_certificate_name {
            text.to_ascii_lowercase()
        } else {
            format!("[{}]", text.to_ascii_lowercase())
        });
    }
    if let Some((name, _)) = text.rsplit_once(':') {
        let hint = if is_certificate_name {
            format!("write \"{name}\": certificates cover names, not ports")
        } else {
            format!("write host = \"{name}\": the port is ignored when matching")
        };
        return Err(Invalid::new(format!("`{text}` contains a port"), hint));
    }
    // `*.example.com` covers one label, for certificates and routes alike.
    let name = text.strip_prefix("*.").unwrap_or(text);
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
    {
        return Err(Invalid::new(
            format!("`{text}` contains `{bad}`, which is not allowed in a {what}"),
            "use letters, digits, `-` and `.` (write internationalized names in their xn-- form)",
        ));
    }
    if name.starts_with('.') || name.contains("..") {
        return Err(Invalid::new(
            format!("`{text}` has an empty label"),
            "write a name such as \"example.com\"",
        ));
    }
    Ok(text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_names() {
        assert_eq!(check_host("Example.COM", false).unwrap(), "example.com");
        assert_eq!(check_host("::1", false).unwrap(), "[::1]");
        assert!(check_host("example.com:443", false).is_err());
        assert_eq!(check_host("*.Example.com", false).unwrap(), "*.example.com");
        assert!(check_host("*.*.example.com", false).is_err());
        assert_eq!(check_host("*.Example.com", true).unwrap(), "*.example.com");
        assert!(check_host("https://example.com/", false)
            .unwrap_err()
            .hint
            .contains("\"example.com\""));
        assert!(check_host("a..b", true).is_err());
    }
}
