//! Configuration: the only place that knows TOML, environment variables and
//! file positions. Everything after it receives the typed, validated values
//! defined here; a value that reaches the rest of the proxy is already known
//! to be well formed.

mod access_template;
mod buffering;
mod client_addr;
mod compression;
mod duration;
mod error;
mod error_pages;
mod header_rules;
mod parse;
mod pool;
mod route_shaping;
mod server_answers;
mod size;
mod static_files;
mod stream;

pub use access_template::{AccessTemplate, LogField, Piece, LOG_FIELDS};
pub use buffering::Buffering;
pub use client_addr::{IpNet, ProxyProtocolIn, RealIpHeader};
pub use compression::{Compression, CompressionLevel, Encoding, DEFAULT_TYPES};
pub use error::{ConfigError, ConfigErrors, Origin};
pub use error_pages::{ErrorPage, ErrorPages};
pub use header_rules::{ForwardedFor, HeaderRule, HeaderRules, RouteHeaders, RuleSet, UpstreamHost, When};
pub use parse::{embedded_default, from_str, load, EMBEDDED_DEFAULT};
pub use pool::{ActiveHealth, Balance, HashKey, PassiveHealth, PoolConfig, PoolServer, ServerAddress};
pub use route_shaping::{PathKind, PathRewrite, RouteAction, RouteShaping, UpstreamUrls};
pub use server_answers::{UnknownHost, UnknownSni};
pub use static_files::{Fallback, FilesDir, Precompressed, StaticFiles, TryFile};
pub use stream::{ProxyProtocol, SniRoute, StreamConfig, StreamMode, StreamProtocol, TcpUpstream};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from, for messages; `None` for the embedded default.
    pub source: Option<PathBuf>,
    /// The text it was read from, for the admin listener's `/config`.
    pub text: std::sync::Arc<str>,
    pub server: ServerConfig,
    pub tls: TlsConfig,
    pub routes: Vec<RouteConfig>,
    pub log: LogConfig,
    /// `[http]`: the plain-HTTP listener (ACME challenges, redirects);
    /// `None` when the table is absent.
    pub http: Option<HttpConfig>,
    /// `[admin]`: health, metrics and live connections; `None` (off) when
    /// the table is absent.
    pub admin: Option<AdminConfig>,
    /// `[[stream]]`: TCP and TLS listeners of their own, in the order written.
    pub streams: Vec<StreamConfig>,
    /// `[[upstream]]`: pools of servers that routes name, in the order written.
    pub pools: Vec<PoolConfig>,
    /// `[headers]`: header rules of every route.
    pub headers: HeaderRules,
    /// `[compression]`: for the answers of no route, and the routes that
    /// say nothing. `None` (the default): off.
    pub compression: Option<Arc<Compression>>,
}

/// `[admin]`.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// `listen`: default `127.0.0.1:9901`, never a public address unless
    /// written so.
    pub listen: SocketAddr,
}

/// `[server]`: the TLS listeners and connection-level limits.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `listen`: at least one address. Default `["127.0.0.1:8443"]`, or
    /// none in a configuration of `[[stream]]` tables without a route.
    pub listen: Vec<SocketAddr>,
    /// `handshake_timeout`: one deadline for the whole TLS handshake. Default 10 s.
    pub handshake_timeout: Duration,
    /// `header_read_timeout`: longest wait for a complete request head. Default 30 s.
    pub header_read_timeout: Duration,
    /// `idle_timeout`: a connection with no request in flight and no byte
    /// moving either way for this long is shut down gracefully (HTTP/2:
    /// GOAWAY). Default 75 s.
    pub idle_timeout: Duration,
    /// `shutdown_grace`: how long requests in flight may run after SIGTERM. Default 30 s.
    pub shutdown_grace: Duration,
    /// `max_connections`: concurrent client connections, counted for as
    /// long as the socket is open (an upgraded WebSocket included).
    /// Default 10 000.
    pub max_connections: usize,
    /// `max_connections_per_ip`: concurrent connections from one client
    /// address (IPv6: one /64), counted across the TLS and plain-HTTP
    /// listeners; more are closed at accept, before any TLS. `None` (the
    /// default) is no limit.
    pub max_connections_per_ip: Option<usize>,
    /// `max_header_size`: the largest request head in bytes (request line
    /// and headers; over HTTP/2, the header list as RFC 9113 counts it).
    /// Larger is answered 431. Default 64 KiB; from 8 KiB to 1 MiB.
    pub max_header_size: usize,
    /// `threads`: runtime worker threads; `None` means one per CPU.
    pub threads: Option<usize>,
    /// `underscores_in_headers`: keep request header names that contain
    /// `_`. Default false: CGI-style stacks fold `_` and `-` together, so
    /// such a name could pass for a header the proxy sets. Even when true,
    /// a name that folds onto one of those is dropped.
    pub underscores_in_headers: bool,
    /// `trusted_proxies`: the networks whose `real_ip_header` (and PROXY
    /// protocol header) is believed. Empty (the default): nobody's.
    pub trusted_proxies: Vec<IpNet>,
    /// `real_ip_header`: where a trusted peer names the client; the client
    /// is its rightmost untrusted entry. Default `x-forwarded-for`.
    pub real_ip_header: RealIpHeader,
    /// `proxy_protocol`: whether connections to the TLS listeners start
    /// with a PROXY protocol header (v1 or v2) from `trusted_proxies`.
    /// Default off.
    pub proxy_protocol: ProxyProtocolIn,
    /// `echo_request_id`: send the request's `X-Request-Id` back to the
    /// client. Default false.
    pub echo_request_id: bool,
    /// `trace_context`: start a W3C `traceparent` for a request that has
    /// no valid one. Default false (one that comes is always passed).
    pub trace_context: bool,
    /// `client_body_timeout`: the longest wait between two reads of a
    /// request body. `None` (the default): no limit.
    pub client_body_timeout: Option<Duration>,
    /// `send_timeout`: the longest a write to the client may wait for the
    /// client to take something. `None` (the default): no limit.
    pub send_timeout: Option<Duration>,
    /// `keepalive`: serve more than one HTTP/1.1 request per connection.
    /// Default true.
    pub keepalive: bool,
    /// `pid_file`: the process ID is written there while the proxy runs,
    /// for `portcullis reload` and init systems. Default none.
    pub pid_file: Option<PathBuf>,
    /// `watch_config`: reload when the configuration file changes.
    /// Default false.
    pub watch_config: bool,
    /// `upgrade_tunnel_grace`: after a binary upgrade, how long the old
    /// process keeps its tunnels open. Default 24 h.
    pub upgrade_tunnel_grace: Duration,
    /// `tunnel_drain_after_reload`: close a tunnel this long after a
    /// reload removed its route or its server; `None` (the default)
    /// keeps it until it closes.
    pub tunnel_drain_after_reload: Option<Duration>,
    /// `error_pages` and `intercept_errors`: for the answers of no route,
    /// and the routes that say nothing. Default: none.
    pub error_pages: Arc<ErrorPages>,
}

/// `[tls]`.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Certificate/key pairs. Empty means "make an in-memory self-signed
    /// certificate for localhost", which is what the embedded default does.
    pub certificates: Vec<CertificateSource>,
    /// `min_version`: "1.2" (default) or "1.3".
    pub min_version: TlsVersion,
    /// `bootstrap`: what to serve while configured files do not exist yet.
    pub bootstrap: Bootstrap,
    /// `watch`: follow certificate changes with filesystem events. Default true.
    pub watch: bool,
    /// `poll_interval`: re-read certificate files this often and reload when
    /// their content changed, for filesystems without events. Default 60 s;
    /// `"0s"` (stored as `None`) turns polling off.
    pub poll_interval: Option<Duration>,
    /// `hsts`: the Strict-Transport-Security value added to every response
    /// sent over TLS that has none, e.g. "max-age=63072000;
    /// includeSubDomains". Off (`None`) unless set.
    pub hsts: Option<String>,
    /// `cipher_suites`: the suites offered, in the server's order of
    /// preference. Default: every suite of the provider (all AEAD with
    /// forward secrecy), TLS 1.3 first.
    pub cipher_suites: Vec<rustls::CipherSuite>,
    /// `groups`: key-exchange groups in order of preference. Default:
    /// X25519MLKEM768 (post-quantum hybrid), X25519, secp256r1, secp384r1.
    pub groups: Vec<rustls::NamedGroup>,
    /// `session_resumption`: stateless tickets (keys rotated every six
    /// hours, kept across certificate reloads) and a stateful cache.
    /// Default true.
    pub session_resumption: bool,
    /// `ocsp_stapling`: fetch an OCSP response for every certificate that
    /// names a responder, and staple it to handshakes (see
    /// [`crate::tls::ocsp`]). Default false.
    pub ocsp_stapling: bool,
    /// `[tls.client_auth]`: client certificates (mutual TLS). `None`: no
    /// client certificate is asked for.
    pub client_auth: Option<ClientAuthConfig>,
    /// `unknown_sni`: what a handshake naming no certificate's name gets.
    /// Default: the first certificate.
    pub unknown_sni: UnknownSni,
}

/// `[tls.client_auth]`.
#[derive(Debug, Clone)]
pub struct ClientAuthConfig {
    /// `ca`: a PEM bundle of the CA certificates client certificates must
    /// chain to. Read by the TLS loader, which reports a bad file at
    /// `ca_origin`.
    pub ca: PathBuf,
    pub ca_origin: Origin,
    /// `mode`: "required" (the default) or "optional".
    pub mode: ClientAuthMode,
    /// `pinned_sha256`: when not empty, only leaf certificates with one of
    /// these SHA-256 fingerprints are accepted, after the chain verifies.
    pub pinned_sha256: Vec<[u8; 32]>,
}

/// `[tls.client_auth] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMode {
    /// A handshake without a valid client certificate fails.
    Required,
    /// A client may connect without a certificate; routes with
    /// `require_client_cert` answer it 403. A certificate that is
    /// presented must still be valid.
    Optional,
}

/// `[tls] bootstrap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bootstrap {
    /// Missing certificate files are an error at start (the default).
    Off,
    /// `"self-signed"`: missing files are replaced by a temporary in-memory
    /// self-signed certificate until the real files appear.
    SelfSigned,
}

/// `[http]`: plain HTTP, for ACME http-01 challenges and redirects.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `listen`: at least one address, e.g. `["0.0.0.0:80", "[::]:80"]`.
    pub listen: Vec<SocketAddr>,
    /// `acme_webroot`: the directory certbot's `--webroot -w` writes to;
    /// `/.well-known/acme-challenge/<token>` is served from it.
    pub acme_webroot: Option<PathBuf>,
    /// `redirect_to_https`: answer every other request with 308 to https.
    /// Default true; when false, requests are routed like TLS traffic.
    pub redirect_to_https: bool,
    /// `proxy_protocol`: as `[server]`'s, for the plain listener.
    pub proxy_protocol: ProxyProtocolIn,
    /// `unknown_host`: what a request for a host no route or certificate
    /// names gets. Default: the usual answer.
    pub unknown_host: UnknownHost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

/// One certificate chain and its private key, as paths read anew at every
/// load (never canonicalized: renewal tools re-point symlinks).
#[derive(Debug, Clone)]
pub struct CertificateSource {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Names the certificate must cover; empty means "whatever its SANs say".
    pub names: Vec<String>,
    /// Where `cert` was configured, so that a load error can point at it.
    pub cert_origin: Origin,
    /// Where `key` was configured.
    pub key_origin: Origin,
    /// The table this pair was configured in, for messages: `tls` or
    /// `tls.certificate[N]`.
    pub config_key: String,
}

/// One `[[route]]`.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// `host`: match only this Host (case-insensitive, port ignored); `None` matches any.
    pub host: Option<String>,
    /// `path`: a prefix that starts with `/`, matched on segment boundaries.
    pub path: String,
    pub upstream: Upstream,
    /// `read_timeout`: longest wait for response headers, or between two
    /// reads of a response body. Default 60 s.
    pub read_timeout: Duration,
    /// `connect_timeout`: longest wait for a TCP connection to the upstream,
    /// and then for its TLS handshake (`https://`). Default 10 s.
    pub connect_timeout: Duration,
    /// `tunnel_idle_timeout`: an upgraded connection with no byte in either
    /// direction for this long is closed. Default 24 h.
    pub tunnel_idle_timeout: Duration,
    /// `keepalive`: idle connections to the upstream kept open for the
    /// next requests, as nginx's `keepalive` in an `upstream` block. When
    /// one more comes back, the oldest idle one is closed. 0 keeps none:
    /// every connection closes after its exchange. Default 64.
    pub keepalive: usize,
    /// `keepalive_timeout`: an idle upstream connection unused for this
    /// long is closed. Default 60 s; never zero.
    pub keepalive_timeout: Duration,
    /// `max_body`: the largest request body in bytes. A larger declared
    /// length is answered 413 before anything is forwarded; a streamed body
    /// that grows past it is cut off there. `None` (the default) is no limit.
    pub max_body: Option<u64>,
    /// How an `https://` upstream is verified; `Some` exactly when the
    /// upstream is `https://`.
    pub upstream_tls: Option<UpstreamTls>,
    /// `require_client_cert`: a request without a verified client
    /// certificate is answered 403. Default false; needs `[tls.client_auth]`.
    pub require_client_cert: bool,
    /// `websocket`: forward `Upgrade: websocket` requests and tunnel the
    /// answer. Default true; when false an upgrade request is answered 400.
    /// No other upgrade is ever forwarded.
    pub websocket: bool,
    /// `path_normalization`: forward the normalised path (true, "on", the
    /// default) or the raw one ("off"), for applications that sign exact
    /// paths. Routing uses the normalised path either way.
    pub path_normalization: bool,
    /// Where this route was configured.
    pub origin: Origin,
    /// The `[[upstream]]` pool the route's `upstream` names, when it names
    /// one; `upstream` then holds the pool's name as its host.
    pub pool: Option<String>,
    /// How the path is matched (`path_exact`, `path_regex`, `ports`,
    /// `prefix_wins`, `methods`) and rewritten, what the route does
    /// (`upstream`, `redirect`, `respond`), its header rules and how the
    /// upstream's URLs in responses are made the client's.
    pub shaping: RouteShaping,
    /// `send_proxy_protocol`: each upstream connection starts with a PROXY
    /// header of this version naming the client; such a route keeps no
    /// idle connections. `None` (the default): no header.
    pub send_proxy_protocol: Option<ProxyProtocol>,
    /// `forwarded`: append an RFC 7239 `Forwarded` element. Default false.
    pub forwarded: bool,
    /// `root` or `alias` and the keys that go with them: the files this
    /// route serves (its action is then `RouteAction::Files`).
    pub files: Option<std::sync::Arc<StaticFiles>>,
    /// `compression` over `[compression]`; `None`: off on this route.
    pub compression: Option<Arc<Compression>>,
    /// `error_pages` and `intercept_errors`, each over `[server]`'s.
    pub error_pages: Arc<ErrorPages>,
    /// `request_buffering` and `response_buffering`, each over
    /// `[buffering]`'s.
    pub buffering: Buffering,
}

impl RouteConfig {
    /// Where the route forwards, as logs and `portcullis check` say it:
    /// its upstream URL, or `pool <name>`.
    pub fn upstream_text(&self) -> String {
        if let Some(files) = &self.files {
            let fallback = match &files.fallback {
                Fallback::Pool(pool) => format!(", else pool {pool}"),
                Fallback::Status(_) | Fallback::NotFound => String::new(),
            };
            return format!("files {}{fallback}", files.dir.path().display());
        }
        match &self.pool {
            Some(pool) => format!("pool {pool}"),
            None => self.upstream.to_string(),
        }
    }
}

/// TLS to an `https://` upstream: whom to trust, and which name to check.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    pub trust: UpstreamTrust,
    /// `upstream_server_name`: the name sent in SNI and checked against the
    /// upstream's certificate, in place of the upstream's host. A DNS name
    /// (lower case) or an IP literal (IPv6 without brackets).
    pub server_name: Option<String>,
    /// The route as `route[N]`, for messages about the trust it uses.
    pub route_key: String,
    /// Where the route's `upstream` was written.
    pub upstream_origin: Origin,
}

/// Which certificates an `https://` upstream's certificate must chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamTrust {
    /// No `upstream_ca`: the system trust store, as curl does.
    System,
    /// `upstream_ca`: the certificates of this PEM file, and no others.
    /// The path is resolved against the configuration file's directory.
    CaFile { path: PathBuf, origin: Origin },
    /// `upstream_insecure_skip_verify = true`: any certificate.
    InsecureSkipVerify,
}

/// A validated upstream address: `http://host:port` or `https://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub scheme: Scheme,
    /// A DNS name or an IP literal (IPv6 without brackets). Resolved at every
    /// new connection, never once at start.
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// The scheme as written in a URL, without `://`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

impl Upstream {
    /// `host:port`, with brackets around an IPv6 literal.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.authority())
    }
}

/// `[log]`.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `access_log`: one line per request on stderr. Default true.
    pub access_log: bool,
    /// `level`: a tracing filter such as "info" or "portcullis=debug".
    /// Default "info"; `RUST_LOG` wins when set.
    pub level: String,
    /// `format`: "text" (default, nginx combined-like) or "json", one
    /// object per line.
    pub format: LogFormat,
    /// `access_template`: access lines written from this template, with
    /// `{placeholders}`, like nginx's `log_format`. `None`: `format`'s.
    pub access_template: Option<AccessTemplate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
    /// `"combined"`: access lines in nginx's `combined` format, bare; the
    /// other lines as text.
    Combined,
}
