//! `[server]`: the TLS listeners' addresses, the handshake, header and idle
//! timeouts, the connection limits, the request head's size, the threads.

use std::net::SocketAddr;
use std::time::Duration;

use super::checker::{Checker, Schema, Table};
use super::listen::TLS_PORTS;
use crate::config::duration::Zero;
use crate::config::size;
use crate::config::{ProxyProtocolIn, ServerConfig};

const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// nginx's `keepalive_timeout`.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Browsers send a few KiB; large cookies and bearer tokens make some tens.
/// nginx's default (a 1 KiB buffer, then up to four 8 KiB lines) comes to
/// about 32 KiB; Go's net/http takes 1 MiB.
const DEFAULT_MAX_HEADER_SIZE: u64 = 64 * 1024;
/// hyper's HTTP/1.1 reader cannot be given a smaller buffer, and nginx's
/// default line limit is 8 KiB too.
const MIN_MAX_HEADER_SIZE: u64 = 8 * 1024;
/// Each connection may buffer this much before the head is complete; more
/// than 1 MiB (Go's default) only helps an attacker hold memory.
const MAX_MAX_HEADER_SIZE: u64 = 1024 * 1024;

const SERVER_SCHEMA: Schema = Schema {
    keys: &[
        "listen",
        "handshake_timeout",
        "header_read_timeout",
        "idle_timeout",
        "shutdown_grace",
        "max_connections",
        "max_connections_per_ip",
        "max_header_size",
        "threads",
        "underscores_in_headers",
        // real_ip.rs
        "trusted_proxies",
        "real_ip_header",
        "proxy_protocol",
        // proxy/request_id.rs
        "echo_request_id",
        "trace_context",
        // client_timeouts.rs
        "client_body_timeout",
        "send_timeout",
        "keepalive",
        // reload/
        "pid_file",
        "watch_config",
        "upgrade_tunnel_grace",
        "tunnel_drain_after_reload",
        // error_pages.rs
        "error_pages",
        "intercept_errors",
    ],
    aliases: &[
        ("worker_connections", "max_connections"),
        ("allow_underscores_in_headers", "underscores_in_headers"),
        ("limit_conn", "max_connections_per_ip"),
        ("max_conns_per_ip", "max_connections_per_ip"),
        ("connections_per_ip", "max_connections_per_ip"),
        ("large_client_header_buffers", "max_header_size"),
        ("client_header_buffer_size", "max_header_size"),
        ("max_header_bytes", "max_header_size"),
        ("max_request_header_size", "max_header_size"),
        ("worker_processes", "threads"),
        ("ssl_handshake_timeout", "handshake_timeout"),
        ("client_header_timeout", "header_read_timeout"),
        ("keepalive_timeout", "idle_timeout"),
        ("http2_idle_timeout", "idle_timeout"),
        ("keep_alive_timeout", "idle_timeout"),
        ("set_real_ip_from", "trusted_proxies"),
        ("trusted_proxy", "trusted_proxies"),
        ("real_ip_from", "trusted_proxies"),
        ("real_ip_recursive", "trusted_proxies"),
        ("accept_proxy_protocol", "proxy_protocol"),
        ("request_id", "echo_request_id"),
        ("add_request_id", "echo_request_id"),
        ("traceparent", "trace_context"),
        ("tracing", "trace_context"),
        ("keep_alive", "keepalive"),
        ("keepalive_requests", "keepalive"),
        ("body_timeout", "client_body_timeout"),
        ("client_send_timeout", "send_timeout"),
        ("write_timeout", "send_timeout"),
        ("pid", "pid_file"),
        ("pidfile", "pid_file"),
        ("auto_reload", "watch_config"),
        ("watch", "watch_config"),
        ("error_page", "error_pages"),
        ("proxy_intercept_errors", "intercept_errors"),
    ],
};

impl Checker<'_> {
    /// `[server]`, and its listen addresses with where each was configured
    /// (to tell a plain-HTTP listener that takes the same address).
    pub(super) fn server(&mut self, table: &Table<'_, '_>) -> (ServerConfig, Vec<(SocketAddr, String)>) {
        self.check_keys(table, &SERVER_SCHEMA);
        let defaults = default_server();
        let labels: Vec<(SocketAddr, String)> = match self.listen(table, TLS_PORTS) {
            Some(entries) => entries.into_iter().map(|l| (l.address, l.key)).collect(),
            None => defaults
                .listen
                .iter()
                .map(|&address| (address, "the default server.listen".to_string()))
                .collect(),
        };
        let listen = labels.iter().map(|(address, _)| *address).collect();
        let max_connections = self
            .count(table, "max_connections", "10000")
            .unwrap_or(DEFAULT_MAX_CONNECTIONS);
        let max_connections_per_ip = self.count(table, "max_connections_per_ip", "100");
        let max_header_size = self.max_header_size(table);
        let threads = self.count(table, "threads", "2");
        let underscores_in_headers = self.boolean(table, "underscores_in_headers", false);
        let trusted_proxies = self.trusted_proxies(table);
        let mut server = ServerConfig {
            listen,
            handshake_timeout: self.duration(
                table,
                "handshake_timeout",
                DEFAULT_HANDSHAKE_TIMEOUT,
                Zero::Rejected,
            ),
            header_read_timeout: self.duration(
                table,
                "header_read_timeout",
                DEFAULT_HEADER_READ_TIMEOUT,
                Zero::Rejected,
            ),
            idle_timeout: self.duration(table, "idle_timeout", DEFAULT_IDLE_TIMEOUT, Zero::Rejected),
            // Zero means "close everything at once on SIGTERM".
            shutdown_grace: self.duration(table, "shutdown_grace", DEFAULT_SHUTDOWN_GRACE, Zero::Allowed),
            max_connections,
            max_connections_per_ip,
            max_header_size,
            threads,
            underscores_in_headers,
            real_ip_header: self.real_ip_header(table),
            proxy_protocol: ProxyProtocolIn::Off,
            trusted_proxies,
            echo_request_id: self.boolean(table, "echo_request_id", false),
            trace_context: self.boolean(table, "trace_context", false),
            client_body_timeout: self.optional_timeout(table, "client_body_timeout"),
            send_timeout: self.optional_timeout(table, "send_timeout"),
            keepalive: self.boolean(table, "keepalive", true),
            pid_file: self
                .file_path(
                    table,
                    "pid_file",
                    "\"/run/portcullis.pid\"",
                    "/run/portcullis.pid",
                )
                .map(|(path, _)| path),
            watch_config: self.boolean(table, "watch_config", false),
            upgrade_tunnel_grace: self.duration(
                table,
                "upgrade_tunnel_grace",
                DEFAULT_UPGRADE_TUNNEL_GRACE,
                Zero::Allowed,
            ),
            tunnel_drain_after_reload: self.optional_timeout(table, "tunnel_drain_after_reload"),
            error_pages: self.error_pages(table, &Default::default()),
        };
        server.proxy_protocol = self.proxy_protocol_in(table, &server.trusted_proxies);
        (server, labels)
    }

    /// `max_header_size`: from 8 KiB to 1 MiB, default 64 KiB.
    fn max_header_size(&mut self, table: &Table<'_, '_>) -> usize {
        const KEY: &str = "max_header_size";
        let default = DEFAULT_MAX_HEADER_SIZE as usize;
        let Some((bytes, span)) = self.size(table, KEY, "64KiB") else {
            return default;
        };
        if bytes < MIN_MAX_HEADER_SIZE {
            let hint = if bytes > 0
                && bytes * 1024 <= MAX_MAX_HEADER_SIZE
                && bytes * 1024 >= MIN_MAX_HEADER_SIZE
            {
                format!("a number is bytes: for {bytes} KiB write {KEY} = \"{bytes}KiB\"")
            } else {
                format!("give at least \"8KiB\"; browsers alone send a few KiB of headers. For example: {KEY} = \"64KiB\"")
            };
            self.error(
                &span,
                table.key_path(KEY),
                format!(
                    "{} is below the minimum of 8KiB (8192 bytes)",
                    size::display(bytes)
                ),
                hint,
            );
            return default;
        }
        if bytes > MAX_MAX_HEADER_SIZE {
            self.error(
                &span,
                table.key_path(KEY),
                format!("{} is above the maximum of 1MiB", size::display(bytes)),
                "give at most \"1MiB\": every connection may hold this much before its request head is complete",
            );
            return default;
        }
        bytes as usize
    }
}

pub(super) fn default_server() -> ServerConfig {
    ServerConfig {
        listen: vec![SocketAddr::from(([127, 0, 0, 1], 8443))],
        handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
        idle_timeout: DEFAULT_IDLE_TIMEOUT,
        shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        max_connections: DEFAULT_MAX_CONNECTIONS,
        max_connections_per_ip: None,
        max_header_size: DEFAULT_MAX_HEADER_SIZE as usize,
        threads: None,
        underscores_in_headers: false,
        trusted_proxies: Vec::new(),
        real_ip_header: crate::config::RealIpHeader::XForwardedFor,
        proxy_protocol: ProxyProtocolIn::Off,
        echo_request_id: false,
        trace_context: false,
        client_body_timeout: None,
        send_timeout: None,
        keepalive: true,
        pid_file: None,
        watch_config: false,
        upgrade_tunnel_grace: DEFAULT_UPGRADE_TUNNEL_GRACE,
        tunnel_drain_after_reload: None,
        error_pages: Default::default(),
    }
}

/// A WebSocket open across an upgrade keeps its old process this long.
const DEFAULT_UPGRADE_TUNNEL_GRACE: Duration = Duration::from_secs(24 * 3600);
