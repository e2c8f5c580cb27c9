//! Directives that need no key (portcullis does it anyway, or they tune
//! nginx's own machinery), those that have no translation yet, and the
//! response buffering and cache directives.

use super::Out;
use crate::parse::Directive;

/// A directive of the main context (outside `http` and `stream`).
pub(crate) fn main_context(out: &mut Out<'_>, d: &Directive) {
    other(out, d);
}

/// Reports a directive that the caller does not translate: not needed, or
/// needing a decision, with why.
pub(crate) fn other(out: &mut Out<'_>, d: &Directive) {
    let name = d.name.as_str();
    if let Some(why) = not_needed(name) {
        out.report.not_needed(d, why);
    } else if let Some(why) = buffering(d) {
        match why {
            Buffering::Same(why) => out.report.not_needed(d, why),
            Buffering::Differs(why) => out.report.approximated(d, why, false),
            Buffering::Missing(why) => out.report.decision(d, why),
        }
    } else if let Some(why) = unsupported(name) {
        out.report.decision(d, why);
    } else {
        out.report
            .decision(d, "portcullis has no equivalent; the directive is dropped");
    }
}

fn not_needed(name: &str) -> Option<&'static str> {
    const PROCESS: &[&str] = &[
        "worker_processes",
        "worker_connections",
        "worker_rlimit_nofile",
        "events",
        "user",
        "pid",
        "daemon",
        "master_process",
        "pcre_jit",
        "load_module",
        "env",
        "thread_pool",
        "worker_cpu_affinity",
        "timer_resolution",
        "lock_file",
        "multi_accept",
        "use",
        "accept_mutex",
        "worker_shutdown_timeout",
        "error_log",
    ];
    const TUNING: &[&str] = &[
        "sendfile",
        "tcp_nopush",
        "tcp_nodelay",
        "types_hash_max_size",
        "types_hash_bucket_size",
        "server_names_hash_bucket_size",
        "server_names_hash_max_size",
        "variables_hash_max_size",
        "variables_hash_bucket_size",
        "map_hash_max_size",
        "map_hash_bucket_size",
        "default_type",
        "types",
        "client_body_buffer_size",
        "client_header_buffer_size",
        "proxy_buffer_size",
        "proxy_buffers",
        "proxy_busy_buffers_size",
        "proxy_temp_file_write_size",
        "proxy_max_temp_file_size",
        "proxy_temp_path",
        "client_body_temp_path",
        "output_buffers",
        "open_file_cache",
        "open_file_cache_valid",
        "open_file_cache_min_uses",
        "open_file_cache_errors",
        "ssl_buffer_size",
        "resolver",
        "resolver_timeout",
        "reset_timedout_connection",
        "aio",
        "directio",
        "keepalive_requests",
        "lingering_close",
        "lingering_time",
        "lingering_timeout",
        "log_not_found",
        "server_tokens",
        "ssl_session_cache",
        "ssl_session_timeout",
        "ssl_prefer_server_ciphers",
        "ssl_dhparam",
        "ssl_conf_command",
        "http2_max_concurrent_streams",
        "http2_recv_buffer_size",
        "http2_chunk_size",
        "http2_idle_timeout",
        "large_client_header_buffers",
        "ssl_trusted_certificate",
        "zone",
        "keepalive_requests",
        "keepalive_time",
    ];
    const DONE_ANYWAY: &[(&str, &str)] = &[
        ("http2", "HTTP/2 is always offered over TLS"),
        (
            "proxy_http_version",
            "portcullis speaks HTTP/1.1 to upstreams, keep-alive and WebSockets included",
        ),
        (
            "proxy_ssl_server_name",
            "SNI is always sent to an https upstream named by a host name",
        ),
        (
            "proxy_next_upstream",
            "a failed connection is retried on another server of a pool (retries = 2)",
        ),
        (
            "proxy_next_upstream_tries",
            "a failed connection is retried on another server of a pool (retries = 2)",
        ),
        (
            "proxy_next_upstream_timeout",
            "a failed connection is retried on another server of a pool",
        ),
        (
            "gzip_vary",
            "a compressible response always gets Vary: Accept-Encoding",
        ),
        (
            "gzip_proxied",
            "upstream answers are compressed whatever their headers (Cache-Control: no-transform obeyed)",
        ),
        ("gzip_disable", "no exceptions for old browsers are needed"),
        ("gzip_http_version", "every HTTP version is compressed"),
        ("gzip_buffers", "compression streams"),
        (
            "port_in_redirect",
            "portcullis's own redirects keep the client's host",
        ),
        (
            "absolute_redirect",
            "portcullis's own redirects keep the client's host",
        ),
        (
            "ssl_session_tickets",
            "session tickets keys rotate every 6 hours ([tls] session_resumption)",
        ),
        ("etag", "static files always have nginx's ETag"),
        (
            "if_modified_since",
            "static files always answer If-Modified-Since",
        ),
        ("max_ranges", "one range is answered 206, several the whole file"),
        ("autoindex", "directories are never listed (autoindex off)"),
        ("msie_padding", "no exceptions for old browsers are needed"),
        ("ssl_protocols", "TLS 1.0 and 1.1 are never offered"),
        ("ssl_ciphers", "portcullis offers rustls' suites, all with forward secrecy ([tls] cipher_suites chooses among them)"),
        ("ssl_ecdh_curve", "portcullis offers X25519MLKEM768, X25519, P-256 and P-384 ([tls] groups chooses among them)"),
    ];
    if PROCESS.contains(&name) {
        return Some("nginx's processes; portcullis runs one process with a thread per CPU");
    }
    if TUNING.contains(&name) {
        return Some("tunes nginx's own machinery, which portcullis does not have");
    }
    DONE_ANYWAY.iter().find(|(n, _)| *n == name).map(|(_, why)| *why)
}

enum Buffering {
    Same(&'static str),
    Differs(&'static str),
    Missing(&'static str),
}

/// `proxy_buffering`, `proxy_request_buffering` and `proxy_cache*`: the one
/// place that maps them. Buffering is reported rather than written, since
/// nginx buffers by default and most imported routes stream better.
fn buffering(d: &Directive) -> Option<Buffering> {
    let on = d.arg(0) != "off";
    Some(match d.name.as_str() {
        "proxy_buffering" if on => Buffering::Differs(
            "portcullis streams responses unless the route sets response_buffering (true: 1 MiB ahead \
             of the client); add it where a slow client must not hold the application",
        ),
        "proxy_buffering" => {
            Buffering::Same("portcullis streams responses: proxy_buffering off is what it does")
        }
        "proxy_request_buffering" if on => Buffering::Differs(
            "portcullis streams request bodies unless the route sets request_buffering (true: 16 MiB \
                 in memory, the rest in a temporary file); add it for applications with few workers",
        ),
        "proxy_request_buffering" => {
            Buffering::Same("portcullis streams request bodies: proxy_request_buffering off is what it does")
        }
        name if name.starts_with("proxy_cache") || name == "proxy_no_cache" => {
            Buffering::Missing("portcullis has no response cache yet: every request reaches the upstream")
        }
        _ => return None,
    })
}

fn unsupported(name: &str) -> Option<&'static str> {
    Some(match name {
        "allow" | "deny" | "satisfy" => {
            "portcullis has no access lists by client address; put them in front of it or in the application"
        }
        "auth_basic" | "auth_basic_user_file" => {
            "portcullis has no basic authentication; the location is open without it"
        }
        "auth_request" | "auth_request_set" => {
            "portcullis has no forward authentication yet; the location is open without it"
        }
        "limit_req" | "limit_req_zone" | "limit_req_status" | "limit_rate" | "limit_rate_after" => {
            "portcullis has no request rate limits (max_connections_per_ip limits connections)"
        }
        "ssl_stapling_file" => {
            "portcullis fetches OCSP responses itself ([tls] ocsp_stapling); it does not read them from a file"
        }
        "ssl_early_data" => "portcullis does not accept TLS 1.3 early data (0-RTT)",
        "grpc_pass" | "fastcgi_pass" | "uwsgi_pass" | "scgi_pass" | "memcached_pass" => {
            "portcullis proxies HTTP only: this location has no translation"
        }
        "set" | "geo" | "split_clients" | "secure_link" | "secure_link_md5" | "ssi" | "add_trailer" => {
            "portcullis has no variables or modules of this kind"
        }
        n if n.starts_with("sub_filter") => "portcullis does not rewrite response bodies",
        n if n.starts_with("mirror") => "portcullis does not mirror requests",
        n if n.contains("lua") || n.starts_with("perl") || n.starts_with("js_") => {
            "portcullis runs no scripts"
        }
        n if n.starts_with("fastcgi_") || n.starts_with("uwsgi_") || n.starts_with("scgi_") => {
            "portcullis proxies HTTP only"
        }
        _ => return None,
    })
}
