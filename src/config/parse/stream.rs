//! `[[stream]]`: a TCP or TLS listener of its own, its mode (`tls`), its
//! upstream (or, for passthrough, its SNI routes and `default`), timeouts,
//! `proxy_protocol` and `max_connections`; the keys a mode does not take,
//! and the addresses a stream may not share with another listener. The
//! values of single keys are read in `stream_values`.

use std::net::SocketAddr;
use std::time::Duration;

use super::checker::{Checker, Schema, Table};
use super::listen::{clash, Listened, STREAM_PORTS};
use super::tcp_upstream::parse_tcp_upstream;
use crate::config::duration::Zero;
use crate::config::{StreamConfig, StreamMode, TcpUpstream};

const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

const UPSTREAM_EXAMPLE: &str = "upstream = \"tcp://127.0.0.1:4222\"";

pub(super) const STREAM_SCHEMA: Schema = Schema {
    keys: &[
        "name",
        "listen",
        "tls",
        "upstream",
        "default",
        "route",
        "idle_timeout",
        "connect_timeout",
        "handshake_timeout",
        "proxy_protocol",
        "max_connections",
        "alpn",
        "protocol",
        "client_auth",
    ],
    aliases: &[
        ("proxy_pass", "upstream"),
        ("backend", "upstream"),
        ("server", "upstream"),
        ("ssl_preread", "tls"),
        ("ssl", "tls"),
        ("mode", "tls"),
        ("proxy_timeout", "idle_timeout"),
        ("timeout", "idle_timeout"),
        ("proxy_connect_timeout", "connect_timeout"),
        ("ssl_handshake_timeout", "handshake_timeout"),
        ("preread_timeout", "handshake_timeout"),
        ("limit_conn", "max_connections"),
        ("ssl_alpn", "alpn"),
        ("alpn_protocols", "alpn"),
        ("ssl_verify_client", "client_auth"),
        ("ssl_client_certificate", "client_auth"),
        ("routes", "route"),
        ("map", "route"),
        ("default_upstream", "default"),
        ("fallback", "default"),
    ],
};

/// What `tls` says, before the keys of the mode are gathered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Plain,
    Terminate,
    Passthrough,
}

impl Kind {
    fn written(self) -> &'static str {
        match self {
            Kind::Plain => "tls = \"none\"",
            Kind::Terminate => "tls = \"terminate\"",
            Kind::Passthrough => "tls = \"passthrough\"",
        }
    }
}

/// Why `key` has no place in a stream of `kind`, and what to do: `None`
/// when it has one.
fn misplaced(key: &str, kind: Kind) -> Option<(String, &'static str)> {
    let mode = kind.written();
    let (message, hint) = match (key, kind) {
        ("upstream", Kind::Passthrough) => (
            "a passthrough stream picks its upstream by SNI".to_string(),
            "write [[stream.route]] tables with `sni` and `upstream`, and default = \"tcp://...\" for the connections no route takes",
        ),
        ("default" | "route", Kind::Plain | Kind::Terminate) => (
            format!("`{key}` belongs to routing by SNI, which only tls = \"passthrough\" does; this stream has {mode}"),
            "write the one upstream as upstream = \"tcp://...\", or set tls = \"passthrough\"",
        ),
        ("alpn" | "client_auth", Kind::Passthrough) => (
            format!("`{key}` needs portcullis to take part in the handshake, which a passthrough stream does not"),
            "remove it: the upstream that terminates the TLS decides this itself",
        ),
        ("alpn" | "client_auth", Kind::Plain) => (
            format!("`{key}` needs TLS, and this stream has {mode}"),
            "remove it, or set tls = \"terminate\"",
        ),
        ("protocol", Kind::Plain | Kind::Passthrough) => (
            format!("a protocol adapter runs beside portcullis' own TLS handshake, and this stream has {mode}"),
            "set tls = \"terminate\" (protocol = \"nats\" lets ordinary NATS clients upgrade to TLS), or remove protocol",
        ),
        _ => return None,
    };
    Some((message, hint))
}

impl Checker<'_> {
    /// Every `[[stream]]`. `taken` are the other listeners' addresses, with
    /// where each was configured and what they are ("TLS listener"): a
    /// stream may take none of them, nor another stream's.
    pub(super) fn streams(
        &mut self,
        top: &Table<'_, '_>,
        taken: &[(&[(SocketAddr, String)], &str)],
    ) -> Vec<StreamConfig> {
        let Some(tables) = self.array_of_tables(top, "stream", "[[stream]]") else {
            return Vec::new();
        };
        let mut streams: Vec<StreamConfig> = Vec::new();
        let mut bound: Vec<(SocketAddr, String)> = Vec::new();
        let mut names: Vec<(String, String)> = Vec::new();
        for table in tables {
            let (stream, listened) = self.stream(&table);
            for entry in &listened {
                let name = entry.address.to_string();
                let taken = taken
                    .iter()
                    .find_map(|(listeners, what)| clash(&name, entry.address, listeners, what))
                    .or_else(|| clash(&name, entry.address, &bound, "stream listener"));
                if let Some(message) = taken {
                    self.error(
                        &entry.span,
                        entry.key.clone(),
                        message,
                        "a stream needs an address of its own: give it another port",
                    );
                }
            }
            bound.extend(listened.iter().map(|l| (l.address, l.key.clone())));
            let Some(stream) = stream else { continue };
            if let Some((_, first)) = names.iter().find(|(name, _)| *name == stream.name) {
                let span = table.get("name").map_or(table.span.clone(), |v| v.span());
                self.error(
                    &span,
                    table.key_path("name"),
                    format!(
                        "the name `{}` is also {first}'s: metrics and logs would mix them up",
                        stream.name
                    ),
                    "give each stream a name of its own, for example: name = \"nats\"",
                );
                continue;
            }
            names.push((stream.name.clone(), table.path.clone()));
            streams.push(stream);
        }
        streams
    }

    /// One stream (`None` when invalid), and its valid listen addresses.
    fn stream(&mut self, table: &Table<'_, '_>) -> (Option<StreamConfig>, Vec<Listened>) {
        self.check_keys(table, &STREAM_SCHEMA);
        let listened = match self.listen(table, STREAM_PORTS) {
            Some(listened) => listened,
            None => {
                if table.get("listen").is_none() {
                    self.missing(
                        &table.span,
                        table.key_path("listen"),
                        "this stream has no `listen`",
                        "add the addresses it takes, for example: listen = [\"0.0.0.0:4222\"]",
                    );
                }
                Vec::new()
            }
        };
        let kind = self.stream_kind(table);
        let upstream = self.tcp_upstream(table, "upstream");
        let default = self.tcp_upstream(table, "default");
        let routes = self.sni_routes(table);
        let alpn = self.alpn(table);
        let protocol = self.stream_protocol(table);
        let client_auth = self.client_auth_in(table, "[stream.client_auth]");
        let idle_timeout = self.duration(table, "idle_timeout", DEFAULT_IDLE_TIMEOUT, Zero::Rejected);
        let connect_timeout =
            self.duration(table, "connect_timeout", DEFAULT_CONNECT_TIMEOUT, Zero::Rejected);
        let handshake_timeout = self.duration(
            table,
            "handshake_timeout",
            DEFAULT_HANDSHAKE_TIMEOUT,
            Zero::Rejected,
        );
        let proxy_protocol = self.proxy_protocol(table);
        let max_connections = self
            .count(table, "max_connections", "10000")
            .unwrap_or(DEFAULT_MAX_CONNECTIONS);
        let name = self.stream_name(table, &listened);

        let Some(kind) = kind else {
            return (None, listened);
        };
        for (key, value) in table.entries.iter() {
            if let Some((message, hint)) = misplaced(key.get_ref(), kind) {
                self.error(&value.span(), table.key_path(key.get_ref()), message, hint);
            }
        }
        let mode = match kind {
            Kind::Plain => self
                .required_upstream(table, upstream)
                .map(|upstream| StreamMode::Plain { upstream }),
            Kind::Terminate => {
                self.required_upstream(table, upstream)
                    .map(|upstream| StreamMode::Terminate {
                        upstream,
                        alpn,
                        protocol,
                        client_auth,
                    })
            }
            Kind::Passthrough => {
                // A misplaced `upstream` was reported above, and says the same.
                let nothing = ["route", "default", "upstream"]
                    .iter()
                    .all(|key| table.get(key).is_none());
                if nothing {
                    self.missing(
                        &table.span,
                        table.key_path("route"),
                        "this passthrough stream has no [[stream.route]] and no `default`: it would close every connection",
                        "add a route per name, for example:\n[[stream.route]]\nsni = \"mqtt.example.com\"\nupstream = \"tcp://broker:8883\"\nor send every connection to one upstream with default = \"tcp://...\"",
                    );
                }
                Some(StreamMode::Passthrough { routes, default })
            }
        };
        let stream = match (mode, listened.is_empty()) {
            (Some(mode), false) => Some(StreamConfig {
                name,
                listen: listened.iter().map(|l| l.address).collect(),
                mode,
                idle_timeout,
                connect_timeout,
                handshake_timeout,
                proxy_protocol,
                max_connections,
                origin: self.origin(&table.span),
            }),
            _ => None,
        };
        (stream, listened)
    }

    /// `upstream` of a stream that forwards to one: reported missing when
    /// not written (an invalid one was reported where it is written).
    fn required_upstream(
        &mut self,
        table: &Table<'_, '_>,
        upstream: Option<TcpUpstream>,
    ) -> Option<TcpUpstream> {
        if upstream.is_none() && table.get("upstream").is_none() {
            self.missing(
                &table.span,
                table.key_path("upstream"),
                "this stream has no `upstream`",
                format!("add the address it forwards to, for example: {UPSTREAM_EXAMPLE}"),
            );
        }
        upstream
    }

    /// A `tcp://host:port` at `key`; `None` when absent or invalid.
    pub(super) fn tcp_upstream(&mut self, table: &Table<'_, '_>, key: &str) -> Option<TcpUpstream> {
        let (text, span) = self.string(table, key, "\"tcp://127.0.0.1:4222\"")?;
        match parse_tcp_upstream(text) {
            Ok(upstream) => Some(upstream),
            Err(invalid) => {
                self.error(&span, table.key_path(key), invalid.message, invalid.hint);
                None
            }
        }
    }

    /// `name`, or the first listen address as written.
    fn stream_name(&mut self, table: &Table<'_, '_>, listened: &[Listened]) -> String {
        let fallback = || {
            listened
                .first()
                .map_or_else(String::new, |l| l.address.to_string())
        };
        let Some((text, span)) = self.string(table, "name", "\"nats\"") else {
            return fallback();
        };
        let text = text.trim();
        let fits = !text.is_empty()
            && text.len() <= 64
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if !fits {
            self.error(
                &span,
                table.key_path("name"),
                format!("`{}` cannot be a stream name", text.escape_debug()),
                "use up to 64 letters, digits, `-`, `_`, `.` and `:`, for example: name = \"nats\"",
            );
            return fallback();
        }
        text.to_string()
    }
}
