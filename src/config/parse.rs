//! Reading `proxy.toml` into a validated [`Config`].
//!
//! The TOML text is parsed into toml's spanned document tree and walked by
//! hand rather than deserialized with serde: serde stops at the first
//! problem, while an operator editing a configuration wants every problem
//! of the file at once, each at its line and column with a suggestion.
//! Every check records its error and carries on with a default, and the
//! [`Config`] is only returned when no check failed.
//!
//! Rules that are not obvious from the schema:
//! - unknown keys are errors everywhere, so that a misspelled setting
//!   never silently falls back to its default;
//! - relative `cert` and `key` paths are resolved against the directory
//!   of the configuration file, not the working directory, so that the
//!   proxy behaves the same whoever starts it; paths are never
//!   canonicalized because certificate renewal tools re-point symlinks;
//! - names are compared case-insensitively and stored in lower case
//!   (`host`, `names`, upstream hosts);
//! - `http.acme_webroot` is resolved like `cert` and `key`; the directory
//!   is not looked at here (it may be created after the proxy starts);
//! - an address may be a TLS listener, a plain-HTTP one or the admin
//!   listener, never two of them;
//! - three environment variables override the file, for containers whose
//!   image carries the file: `PORTCULLIS_LISTEN` (comma-separated
//!   addresses) replaces `server.listen`, and `PORTCULLIS_TLS_CERT` with
//!   `PORTCULLIS_TLS_KEY` replace `[tls] cert` and `key`. They are checked
//!   like the file's values, and their errors name the variable. The two
//!   TLS variables come together: a certificate from the environment is
//!   never paired with a key from the file, nor the reverse. Relative paths
//!   from the environment are resolved against the current directory, as a
//!   shell would. The file is still checked as written: a variable
//!   replaces a value, it does not excuse an error in it.

mod upstream_tls;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

mod client_auth;

use super::duration::{self, Zero};
use super::error::Invalid;
use super::size;

mod tls_policy;
use super::{
    AdminConfig, Bootstrap, CertificateSource, Config, ConfigError, ConfigErrors, HttpConfig, LogConfig,
    LogFormat, Origin, RouteConfig, Scheme, ServerConfig, TlsConfig, TlsVersion, Upstream,
};

/// The configuration used when no file is given: a local TLS front for an
/// application on 8080 (pages and REST) and 9222 (WebSocket), with a
/// self-signed certificate made at start because no certificate is named.
pub const EMBEDDED_DEFAULT: &str = r#"# portcullis built-in configuration: used when no configuration file is given.
# No [tls] certificate: portcullis makes a self-signed one for localhost.

[server]
listen = ["127.0.0.1:8443"]

[[route]]
path = "/"
upstream = "http://127.0.0.1:8080"

[[route]]
path = "/ws"
upstream = "http://127.0.0.1:9222"
"#;

/// The name given to the embedded default in messages.
const EMBEDDED_NAME: &str = "<embedded default>";

const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(60);
/// Shorter poll intervals would re-read and parse the certificate files
/// many times a second for nothing: renewals happen every few weeks.
const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);
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
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_TUNNEL_IDLE_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
const DEFAULT_LOG_LEVEL: &str = "info";
const DEFAULT_ADMIN_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9901);

/// Replaces `server.listen`: one address or several, separated by commas.
const ENV_LISTEN: &str = "PORTCULLIS_LISTEN";
/// Replaces `[tls] cert`; needs [`ENV_TLS_KEY`].
const ENV_TLS_CERT: &str = "PORTCULLIS_TLS_CERT";
/// Replaces `[tls] key`; needs [`ENV_TLS_CERT`].
const ENV_TLS_KEY: &str = "PORTCULLIS_TLS_KEY";

const ROUTE_EXAMPLE: &str = "[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:8080\"";

/// Reads and validates the configuration file at `path`, with the
/// overrides of the process environment (`PORTCULLIS_LISTEN`,
/// `PORTCULLIS_TLS_CERT`, `PORTCULLIS_TLS_KEY`).
///
/// A file that cannot be read is reported like any other configuration
/// error, naming the path and what to do about it.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    Config::load_with_env(path, &process_env)
}

/// Validates configuration `text`, as read from `file`. The environment
/// is not consulted: the result depends on `text` alone, which is what
/// tests and tools that build a configuration in memory want; use
/// [`Config::from_str_with_env`] to apply overrides.
///
/// `file` names the source in messages and is the base for relative
/// certificate paths; it is not read.
pub fn from_str(text: &str, file: &Path) -> Result<Config, ConfigErrors> {
    check(text, file, EnvOverrides::default())
}

/// Looks a variable up in the process environment. A value that is not
/// UTF-8 is taken with replacement characters, so that the path it names
/// fails to load with an error that names the variable, rather than being
/// ignored.
fn process_env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|value| value.to_string_lossy().into_owned())
}

// Associated functions rather than free ones beside `from_str`: they are
// reachable as `portcullis::config::Config::...` from this module alone.
impl Config {
    /// Validates configuration `text`, as read from `file`, then applies
    /// the overrides that `env` gives: `env(name)` is the value of the
    /// environment variable `name`, `None` when unset. A pure function of
    /// its arguments (and of the current directory, for relative paths
    /// from the environment), so tests pass a map:
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use std::path::Path;
    /// use portcullis::config::Config;
    ///
    /// let env = HashMap::from([("PORTCULLIS_LISTEN", "0.0.0.0:443,[::]:443")]);
    /// let text = "[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:8080\"\n";
    /// let config = Config::from_str_with_env(text, Path::new("proxy.toml"), &|name| {
    ///     env.get(name).map(|value| value.to_string())
    /// })
    /// .unwrap();
    /// assert_eq!(config.server.listen.len(), 2);
    /// ```
    ///
    /// Errors in the variables are reported with those of the file, after
    /// them, each with the origin `environment variable NAME`.
    pub fn from_str_with_env(
        text: &str,
        file: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        check(text, file, EnvOverrides::read(env))
    }

    /// [`load`] with the environment given by `env`, as in
    /// [`Config::from_str_with_env`].
    pub fn load_with_env(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
        let overrides = EnvOverrides::read(env);
        match std::fs::read_to_string(path) {
            Ok(text) => check(&text, path, overrides),
            Err(error) => {
                let mut errors = ConfigErrors::from(unreadable(path, &error));
                errors.0.extend(overrides.errors);
                Err(errors)
            }
        }
    }

    /// The embedded default ([`EMBEDDED_DEFAULT`]) with the environment
    /// given by `env`, as in [`Config::from_str_with_env`]. The text itself
    /// is always valid, so every error is about a variable.
    pub fn embedded_default_with_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
        let config = Config::from_str_with_env(EMBEDDED_DEFAULT, Path::new(EMBEDDED_NAME), env)?;
        Ok(Config {
            source: None,
            ..config
        })
    }
}

/// Checks `text` from `file` and applies `overrides`.
fn check(text: &str, file: &Path, overrides: EnvOverrides) -> Result<Config, ConfigErrors> {
    let name = file.display().to_string();
    let EnvOverrides {
        listen: env_listen,
        pair: env_pair,
        certificate_set: env_certificate,
        errors: env_errors,
    } = overrides;
    let mut checker = Checker {
        file: name.clone(),
        text,
        base_dir: file.parent().unwrap_or(Path::new("")).to_path_buf(),
        errors: Vec::new(),
        missing: Vec::new(),
        env_listen,
        env_pair,
        env_certificate,
    };
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    let parsed = checker.config(root.get_ref());
    let mut errors = if syntax_errors.is_empty() {
        let mut all = checker.errors;
        all.append(&mut checker.missing);
        ConfigErrors(all)
    } else {
        let syntax = SyntaxReport::new(&syntax_errors, &name, text);
        syntax.with_trustworthy(checker.errors)
    };
    // The file's errors in file order, then the environment's, which have
    // no position and are never a consequence of a syntax error.
    errors.sort();
    errors.0.extend(env_errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Config {
        source: Some(file.to_path_buf()),
        ..parsed
    })
}

/// The syntax errors of a file, and how far the recovered document can be
/// trusted.
struct SyntaxReport {
    errors: Vec<ConfigError>,
    /// From here on the recovered document is unreliable: a broken table
    /// header or an unclosed bracket puts what follows in the wrong place.
    cutoff: Option<(usize, usize)>,
}

impl SyntaxReport {
    /// Keeps at most one error per line: the parser recovers and goes on,
    /// and the later errors on a line are usually consequences of the first.
    fn new(errors: &[toml::de::Error], file: &str, text: &str) -> Self {
        let mut report: Vec<ConfigError> = Vec::new();
        let mut cutoff = None;
        for error in errors {
            let offset = error.span().map_or(0, |span| span.start);
            let origin = Origin::at_offset(file, text, offset);
            let message = error.message().trim();
            let line = text.lines().nth(origin.line.saturating_sub(1)).unwrap_or("");
            let on_header = line.trim_start().starts_with('[');
            if on_header || message.starts_with("unclosed") {
                let position = (origin.line, origin.column);
                cutoff = Some(cutoff.map_or(position, |c: (usize, usize)| c.min(position)));
            }
            if report.iter().any(|e| e.origin.line == origin.line) {
                continue;
            }
            let hint = syntax_hint(message, on_header);
            report.push(ConfigError::new(
                origin,
                "",
                format!("TOML syntax: {message}"),
                hint,
            ));
        }
        SyntaxReport {
            errors: report,
            cutoff,
        }
    }

    /// The syntax errors, and those of `checks` that a syntax error cannot
    /// have caused. Checks for missing settings are never passed here: the
    /// text that set them may be what the parser could not read.
    fn with_trustworthy(self, checks: Vec<ConfigError>) -> ConfigErrors {
        let broken_lines: Vec<usize> = self.errors.iter().map(|e| e.origin.line).collect();
        let mut kept = self.errors;
        for check in checks {
            let position = (check.origin.line, check.origin.column);
            let after_cutoff = self.cutoff.is_some_and(|cutoff| position >= cutoff);
            if !after_cutoff && !broken_lines.contains(&check.origin.line) {
                kept.push(check);
            }
        }
        ConfigErrors(kept)
    }
}

/// The configuration described by [`EMBEDDED_DEFAULT`], with the
/// overrides of the process environment, so that
/// `PORTCULLIS_LISTEN=0.0.0.0:8443 portcullis` works without a file.
///
/// The text is a constant that the tests load, so only a variable can be
/// wrong; then the errors are printed on stderr and the process exits
/// with code 2, as the binary does for any configuration error. Callers
/// that want the errors use [`Config::embedded_default_with_env`].
pub fn embedded_default() -> Config {
    match Config::embedded_default_with_env(&process_env) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            std::process::exit(2);
        }
    }
}

fn unreadable(path: &Path, error: &std::io::Error) -> ConfigError {
    use std::io::ErrorKind;
    let (message, hint) = match error.kind() {
        ErrorKind::NotFound => (
            "the configuration file does not exist".to_string(),
            "check the path, or create the file: proxy.toml.example documents every setting".to_string(),
        ),
        ErrorKind::PermissionDenied => (
            "the configuration file cannot be read: permission denied".to_string(),
            "make it readable by the user portcullis runs as".to_string(),
        ),
        ErrorKind::IsADirectory => (
            "this is a directory, not a configuration file".to_string(),
            "give the path of the TOML file itself, such as /etc/portcullis/proxy.toml".to_string(),
        ),
        ErrorKind::InvalidData => (
            "the configuration file is not UTF-8 text".to_string(),
            "save it as UTF-8".to_string(),
        ),
        _ => (
            format!("the configuration file cannot be read: {error}"),
            "check that the path names a readable file".to_string(),
        ),
    };
    ConfigError::new(Origin::whole_file(path.display().to_string()), "", message, hint)
}

/// A table being checked, with what is needed to report on its keys.
struct Table<'a, 'i> {
    entries: &'a DeTable<'i>,
    /// Dotted path of the table, such as `route[2]`; empty for the top level.
    path: String,
    /// How the table is written in the file, for messages: `[[route]]`.
    header: &'static str,
    /// Where the table was written (its header, or its first key).
    span: Range<usize>,
}

impl<'a, 'i> Table<'a, 'i> {
    fn get(&self, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
        self.entries.get(key)
    }

    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{}", self.path, key)
        }
    }
}

/// What two routes may not share: host and path.
struct RouteIdentity {
    host: Option<String>,
    path: String,
    /// Where the path was written, for the duplicate's message.
    path_span: Range<usize>,
}

/// The keys a table accepts, and names from elsewhere (mostly nginx) that
/// people reach for, mapped to the portcullis name.
struct Schema {
    keys: &'static [&'static str],
    aliases: &'static [(&'static str, &'static str)],
}

const TOP_SCHEMA: Schema = Schema {
    keys: &["server", "tls", "http", "route", "log", "admin"],
    aliases: &[
        ("routes", "route"),
        ("location", "route"),
        ("ssl", "tls"),
        ("plain_http", "http"),
        ("acme", "http"),
        ("metrics", "admin"),
        ("health", "admin"),
        ("status", "admin"),
        ("stub_status", "admin"),
    ],
};

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
    ],
};

const TLS_SCHEMA: Schema = Schema {
    keys: &[
        "cert",
        "key",
        "min_version",
        "certificate",
        "bootstrap",
        "watch",
        "poll_interval",
        "hsts",
        "cipher_suites",
        "groups",
        "session_resumption",
        "client_auth",
    ],
    aliases: &[
        ("ssl_certificate", "cert"),
        ("ssl_ciphers", "cipher_suites"),
        ("ciphers", "cipher_suites"),
        ("ciphersuites", "cipher_suites"),
        ("ssl_ecdh_curve", "groups"),
        ("curves", "groups"),
        ("ecdh_curves", "groups"),
        ("kx_groups", "groups"),
        ("ssl_session_tickets", "session_resumption"),
        ("session_tickets", "session_resumption"),
        ("ssl_session_cache", "session_resumption"),
        ("ssl_certificate_key", "key"),
        ("ssl_protocols", "min_version"),
        ("certificates", "certificate"),
        ("self_signed", "bootstrap"),
        ("inotify", "watch"),
        ("watch_files", "watch"),
        ("reload_interval", "poll_interval"),
        ("interval", "poll_interval"),
        ("ssl_client_certificate", "client_auth"),
        ("ssl_verify_client", "client_auth"),
        ("mtls", "client_auth"),
    ],
};

const HTTP_SCHEMA: Schema = Schema {
    keys: &["listen", "acme_webroot", "redirect_to_https"],
    aliases: &[
        ("root", "acme_webroot"),
        ("webroot", "acme_webroot"),
        ("acme_root", "acme_webroot"),
        ("acme_challenge_dir", "acme_webroot"),
        ("return", "redirect_to_https"),
        ("redirect", "redirect_to_https"),
        ("https_redirect", "redirect_to_https"),
        ("force_https", "redirect_to_https"),
    ],
};

const CERTIFICATE_SCHEMA: Schema = Schema {
    keys: &["cert", "key", "names"],
    aliases: &[
        ("ssl_certificate", "cert"),
        ("ssl_certificate_key", "key"),
        ("server_name", "names"),
    ],
};

const ROUTE_SCHEMA: Schema = Schema {
    keys: &[
        "host",
        "path",
        "upstream",
        "read_timeout",
        "connect_timeout",
        "tunnel_idle_timeout",
        "max_body",
        "upstream_ca",
        "upstream_server_name",
        "upstream_insecure_skip_verify",
        "require_client_cert",
        "websocket",
        "path_normalization",
    ],
    aliases: &[
        ("proxy_pass", "upstream"),
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
        ("require_client_certificate", "require_client_cert"),
        ("ssl_verify_client", "require_client_cert"),
        ("mtls", "require_client_cert"),
    ],
};

const LOG_SCHEMA: Schema = Schema {
    keys: &["access_log", "level", "format"],
    aliases: &[
        ("error_log", "level"),
        ("log_level", "level"),
        ("log_format", "format"),
        ("access_log_format", "format"),
    ],
};

const ADMIN_SCHEMA: Schema = Schema {
    keys: &["listen"],
    aliases: &[("address", "listen"), ("bind", "listen"), ("addr", "listen")],
};

/// Walks the document, collecting errors.
struct Checker<'t> {
    file: String,
    text: &'t str,
    base_dir: PathBuf,
    /// Problems with what is written.
    errors: Vec<ConfigError>,
    /// Problems with what is not written (a missing route, a certificate
    /// without its key). Kept apart because they are only trustworthy
    /// when the whole file parsed: text after a syntax error may be lost.
    missing: Vec<ConfigError>,
    /// `PORTCULLIS_LISTEN`'s valid addresses when it is set: they replace
    /// `server.listen`, and are what the other listeners may not take.
    env_listen: Option<Vec<SocketAddr>>,
    /// The pair `PORTCULLIS_TLS_CERT` and `PORTCULLIS_TLS_KEY` name, when
    /// both are set and valid: it replaces `[tls] cert` and `key`.
    env_pair: Option<CertificateSource>,
    /// Whether either TLS variable is set, valid or not: a certificate is
    /// configured for `bootstrap` to stand in for.
    env_certificate: bool,
}

impl Checker<'_> {
    fn origin(&self, span: &Range<usize>) -> Origin {
        Origin::at_offset(self.file.clone(), self.text, span.start)
    }

    fn error(
        &mut self,
        span: &Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let error = ConfigError::new(self.origin(span), key, message, hint);
        self.errors.push(error);
    }

    /// Records something required that is not written.
    fn missing(
        &mut self,
        span: &Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let error = ConfigError::new(self.origin(span), key, message, hint);
        self.missing.push(error);
    }

    fn config(&mut self, root: &DeTable<'_>) -> Config {
        let top = Table {
            entries: root,
            path: String::new(),
            header: "the top level",
            span: 0..0,
        };
        self.check_keys(&top, &TOP_SCHEMA);

        let (mut server, mut tls_listeners) = match self.table(&top, "server", "[server]") {
            Some(table) => self.server(&table),
            None => {
                let server = default_server();
                let labels = server
                    .listen
                    .iter()
                    .map(|&address| (address, "the default server.listen".to_string()))
                    .collect();
                (server, labels)
            }
        };
        if let Some(listen) = &self.env_listen {
            server.listen = listen.clone();
            tls_listeners = listen
                .iter()
                .map(|&address| (address, ENV_LISTEN.to_string()))
                .collect();
        }
        let mut tls = match self.table(&top, "tls", "[tls]") {
            Some(table) => self.tls(&table),
            None => TlsConfig {
                certificates: Vec::new(),
                min_version: TlsVersion::V1_2,
                bootstrap: Bootstrap::Off,
                watch: true,
                poll_interval: Some(DEFAULT_POLL_INTERVAL),
                hsts: None,
                cipher_suites: tls_policy::default_cipher_suites(),
                groups: tls_policy::default_groups(),
                session_resumption: true,
                client_auth: None,
            },
        };
        if let Some(pair) = self.env_pair.clone() {
            // The `[tls]` pair, when written, is always the first.
            match tls.certificates.first_mut() {
                Some(first) if first.config_key == "tls" => *first = pair,
                _ => tls.certificates.insert(0, pair),
            }
        }
        let mut plain_listeners = Vec::new();
        let http = self.table(&top, "http", "[http]").map(|table| {
            let (http, listeners) = self.http(&table, &tls_listeners);
            plain_listeners = listeners;
            http
        });
        let admin = self
            .table(&top, "admin", "[admin]")
            .map(|table| self.admin(&table, &tls_listeners, &plain_listeners));
        let routes = self.routes(&top);
        self.client_cert_routes(&top);
        let log = match self.table(&top, "log", "[log]") {
            Some(table) => self.log(&table),
            None => LogConfig {
                access_log: true,
                level: DEFAULT_LOG_LEVEL.to_string(),
                format: LogFormat::Text,
            },
        };
        Config {
            source: None,
            server,
            tls,
            routes,
            log,
            http,
            admin,
        }
    }

    /// Reports every key of `table` that `schema` does not know.
    fn check_keys(&mut self, table: &Table<'_, '_>, schema: &Schema) {
        for (key, _) in table.entries.iter() {
            let name: &str = key.get_ref();
            if schema.keys.contains(&name) {
                continue;
            }
            let hint = match suggest(name, schema) {
                Some(Suggestion::Alias(known)) => {
                    format!("portcullis calls this setting `{known}`")
                }
                Some(Suggestion::Close(known)) => format!("did you mean `{known}`?"),
                None => format!("valid keys in {}: {}", table.header, schema.keys.join(", ")),
            };
            self.error(
                &key.span(),
                table.key_path(name),
                format!("unknown key `{name}` in {}", table.header),
                hint,
            );
        }
    }

    /// The sub-table `key` of `parent`, if present and a table.
    fn table<'a, 'i>(
        &mut self,
        parent: &Table<'a, 'i>,
        key: &str,
        header: &'static str,
    ) -> Option<Table<'a, 'i>> {
        let value = parent.get(key)?;
        match value.get_ref() {
            DeValue::Table(entries) => Some(Table {
                entries,
                path: parent.key_path(key),
                header,
                span: value.span(),
            }),
            other => {
                self.error(
                    &value.span(),
                    parent.key_path(key),
                    format!("expected a table, found {}", describe(other)),
                    format!("write {header} on a line of its own, followed by its settings"),
                );
                None
            }
        }
    }

    /// The tables of the array of tables `key` of `parent`; `None` when absent.
    fn array_of_tables<'a, 'i>(
        &mut self,
        parent: &Table<'a, 'i>,
        key: &str,
        header: &'static str,
    ) -> Option<Vec<Table<'a, 'i>>> {
        let value = parent.get(key)?;
        let path = parent.key_path(key);
        let items = match value.get_ref() {
            DeValue::Array(items) => items,
            DeValue::Table(_) => {
                self.error(
                    &value.span(),
                    path.clone(),
                    format!("`[{path}]` declares a single table, but {header} is a list of tables"),
                    format!("write {header} with double brackets before each entry"),
                );
                return Some(Vec::new());
            }
            other => {
                self.error(
                    &value.span(),
                    path,
                    format!("expected a list of tables, found {}", describe(other)),
                    format!("write a {header} header followed by the entry's settings"),
                );
                return Some(Vec::new());
            }
        };
        let mut tables = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{index}]");
            match item.get_ref() {
                DeValue::Table(entries) => tables.push(Table {
                    entries,
                    path: item_path,
                    header,
                    span: item.span(),
                }),
                other => self.error(
                    &item.span(),
                    item_path,
                    format!("expected a table, found {}", describe(other)),
                    format!("write a {header} header followed by the entry's settings"),
                ),
            }
        }
        Some(tables)
    }

    fn type_error(&mut self, value: &Spanned<DeValue<'_>>, key_path: String, expected: &str, hint: String) {
        self.error(
            &value.span(),
            key_path,
            format!("expected {expected}, found {}", describe(value.get_ref())),
            hint,
        );
    }

    /// The string at `key`, if present and a string. `example` is a TOML
    /// value shown when the type is wrong.
    fn string<'a>(
        &mut self,
        table: &Table<'a, '_>,
        key: &str,
        example: &str,
    ) -> Option<(&'a str, Range<usize>)> {
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::String(text) => Some((text.as_ref(), value.span())),
            _ => {
                self.type_error(
                    value,
                    table.key_path(key),
                    "a string",
                    format!("write it in double quotes, for example: {key} = {example}"),
                );
                None
            }
        }
    }

    fn integer(&mut self, table: &Table<'_, '_>, key: &str, example: &str) -> Option<(i128, Range<usize>)> {
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::Integer(number) => match i128::from_str_radix(number.as_str(), number.radix()) {
                Ok(n) => Some((n, value.span())),
                Err(_) => {
                    self.error(
                        &value.span(),
                        table.key_path(key),
                        format!("{number} is too large"),
                        format!("for example: {key} = {example}"),
                    );
                    None
                }
            },
            DeValue::String(text) if text.trim().parse::<i128>().is_ok() => {
                self.type_error(
                    value,
                    table.key_path(key),
                    "an integer",
                    format!("remove the quotes: {key} = {}", text.trim()),
                );
                None
            }
            _ => {
                self.type_error(
                    value,
                    table.key_path(key),
                    "an integer",
                    format!("for example: {key} = {example}"),
                );
                None
            }
        }
    }

    /// A positive integer no larger than `usize::MAX`.
    fn count(&mut self, table: &Table<'_, '_>, key: &str, example: &str) -> Option<usize> {
        let (n, span) = self.integer(table, key, example)?;
        if n < 1 {
            self.error(
                &span,
                table.key_path(key),
                format!("{n} is not allowed; the value must be at least 1"),
                format!("for example: {key} = {example}"),
            );
            return None;
        }
        match usize::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                self.error(
                    &span,
                    table.key_path(key),
                    format!("{n} is too large"),
                    format!("for example: {key} = {example}"),
                );
                None
            }
        }
    }

    fn boolean(&mut self, table: &Table<'_, '_>, key: &str, default: bool) -> bool {
        let Some(value) = table.get(key) else {
            return default;
        };
        match value.get_ref() {
            DeValue::Boolean(b) => *b,
            other => {
                let hint = match other {
                    DeValue::String(text) if matches!(text.as_ref(), "true" | "false") => {
                        format!("remove the quotes: {key} = {text}")
                    }
                    _ => format!("write {key} = true or {key} = false"),
                };
                self.type_error(value, table.key_path(key), "true or false", hint);
                default
            }
        }
    }

    /// The duration at `key`, or `default` when absent (or invalid, in
    /// which case an error is recorded and the default never used).
    fn duration(&mut self, table: &Table<'_, '_>, key: &str, default: Duration, zero: Zero) -> Duration {
        let Some(value) = table.get(key) else {
            return default;
        };
        let example = duration_example(default);
        match value.get_ref() {
            DeValue::String(text) => match duration::parse(text, zero) {
                Ok(d) => d,
                Err(invalid) => {
                    self.error(&value.span(), table.key_path(key), invalid.message, invalid.hint);
                    default
                }
            },
            DeValue::Integer(number) => {
                self.type_error(
                    value,
                    table.key_path(key),
                    "a duration string",
                    format!(
                        "give the unit and quote it, for example: {key} = \"{number}s\" for {number} seconds"
                    ),
                );
                default
            }
            _ => {
                self.type_error(
                    value,
                    table.key_path(key),
                    "a duration string",
                    format!("for example: {key} = \"{example}\""),
                );
                default
            }
        }
    }

    /// The size at `key` in bytes, with where it was written; `None` when
    /// absent or invalid (an error is recorded then). `example` is a size
    /// as it would be written, such as `"64KiB"`.
    fn size(&mut self, table: &Table<'_, '_>, key: &str, example: &str) -> Option<(u64, Range<usize>)> {
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::String(text) => match size::parse(text) {
                Ok(bytes) => Some((bytes, value.span())),
                Err(invalid) => {
                    self.error(&value.span(), table.key_path(key), invalid.message, invalid.hint);
                    None
                }
            },
            DeValue::Integer(number) => match u64::from_str_radix(number.as_str(), number.radix()) {
                Ok(bytes) => Some((bytes, value.span())),
                Err(_) if number.as_str().starts_with('-') => {
                    self.error(
                        &value.span(),
                        table.key_path(key),
                        format!("{number} is negative; a size cannot be"),
                        format!("for example: {key} = \"{example}\""),
                    );
                    None
                }
                Err(_) => {
                    self.error(
                        &value.span(),
                        table.key_path(key),
                        format!("{number} is too large"),
                        format!("for example: {key} = \"{example}\""),
                    );
                    None
                }
            },
            _ => {
                self.type_error(
                    value,
                    table.key_path(key),
                    "a size",
                    format!(
                        "write a number of bytes or a size with a unit, for example: {key} = \"{example}\""
                    ),
                );
                None
            }
        }
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

    /// `[server]`, and its listen addresses with where each was configured
    /// (to tell a plain-HTTP listener that takes the same address).
    fn server(&mut self, table: &Table<'_, '_>) -> (ServerConfig, Vec<(SocketAddr, String)>) {
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
        let server = ServerConfig {
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
        };
        (server, labels)
    }

    /// `listen`: one address or a list of them, each with its key and
    /// where it was written. `None` when absent.
    fn listen(&mut self, table: &Table<'_, '_>, ports: ListenPorts) -> Option<Vec<Listened>> {
        let public = ports.public;
        let example = format!("listen = [\"0.0.0.0:{public}\", \"[::]:{public}\"]");
        let value = table.get("listen")?;
        let key = table.key_path("listen");
        let mut entries: Vec<(String, &Spanned<DeValue<'_>>)> = Vec::new();
        match value.get_ref() {
            DeValue::String(_) => entries.push((key.clone(), value)),
            DeValue::Array(items) => {
                if items.is_empty() {
                    self.error(
                        &value.span(),
                        key,
                        "no address to listen on",
                        format!("give at least one, for example: {example}"),
                    );
                    return None;
                }
                for (index, item) in items.iter().enumerate() {
                    entries.push((format!("{key}[{index}]"), item));
                }
            }
            DeValue::Integer(port) => {
                self.type_error(
                    value,
                    key,
                    "an address string or a list of them",
                    format!("give an IP address with the port, for example: listen = \"0.0.0.0:{port}\""),
                );
                return None;
            }
            _ => {
                self.type_error(
                    value,
                    key,
                    "an address string or a list of them",
                    format!("for example: {example}"),
                );
                return None;
            }
        }
        let mut addresses: Vec<Listened> = Vec::new();
        for (path, item) in entries {
            let DeValue::String(text) = item.get_ref() else {
                self.type_error(
                    item,
                    path,
                    "an address string",
                    format!("write each address in double quotes, for example: \"0.0.0.0:{public}\""),
                );
                continue;
            };
            match parse_listen(text, ports) {
                Ok(address) => {
                    if let Some(first) = addresses.iter().find(|l| l.address == address) {
                        let message = format!("{address} is listed twice (also as {})", first.key);
                        self.error(&item.span(), path, message, "remove one of them");
                    } else {
                        addresses.push(Listened {
                            address,
                            key: path,
                            span: item.span(),
                        });
                    }
                }
                Err(invalid) => self.error(&item.span(), path, invalid.message, invalid.hint),
            }
        }
        Some(addresses)
    }

    /// `[http]`, and its listen addresses with where each was configured.
    /// `tls_listeners` are the TLS addresses with where each was
    /// configured: a plain listener may not take one of them.
    fn http(
        &mut self,
        table: &Table<'_, '_>,
        tls_listeners: &[(SocketAddr, String)],
    ) -> (HttpConfig, Vec<(SocketAddr, String)>) {
        self.check_keys(table, &HTTP_SCHEMA);
        let mut labels = Vec::new();
        let listen = match self.listen(table, HTTP_PORTS) {
            Some(entries) => {
                for entry in &entries {
                    if let Some(message) = clash(
                        &entry.address.to_string(),
                        entry.address,
                        tls_listeners,
                        "TLS listener",
                    ) {
                        self.error(
                            &entry.span,
                            entry.key.clone(),
                            message,
                            "an address serves either TLS or plain HTTP: give [http] its own port, usually 80, for example: listen = [\"0.0.0.0:80\", \"[::]:80\"]",
                        );
                    }
                }
                labels = entries.iter().map(|l| (l.address, l.key.clone())).collect();
                entries.into_iter().map(|l| l.address).collect()
            }
            None => {
                if table.get("listen").is_none() {
                    self.missing(
                        &table.span,
                        table.key_path("listen"),
                        "[http] has no `listen`: plain HTTP needs an address to listen on",
                        "add the addresses, for example: listen = [\"0.0.0.0:80\", \"[::]:80\"]; or remove [http] to serve TLS only",
                    );
                }
                Vec::new()
            }
        };
        let acme_webroot = self.webroot(table);
        let redirect_to_https = self.boolean(table, "redirect_to_https", true);
        let http = HttpConfig {
            listen,
            acme_webroot,
            redirect_to_https,
        };
        (http, labels)
    }

    /// `[admin]`: one address, `127.0.0.1:9901` unless written.
    /// `tls_listeners` and `plain_listeners` are the addresses of the other
    /// listeners with where each was configured: the admin listener may not
    /// take one of them.
    fn admin(
        &mut self,
        table: &Table<'_, '_>,
        tls_listeners: &[(SocketAddr, String)],
        plain_listeners: &[(SocketAddr, String)],
    ) -> AdminConfig {
        const EXAMPLE: &str = "listen = \"127.0.0.1:9901\"";
        self.check_keys(table, &ADMIN_SCHEMA);
        let key = table.key_path("listen");
        let fallback = AdminConfig {
            listen: DEFAULT_ADMIN_LISTEN,
        };
        let (listen, span, name) = match table.get("listen") {
            None => (
                DEFAULT_ADMIN_LISTEN,
                table.span.clone(),
                format!("{DEFAULT_ADMIN_LISTEN} (the default admin.listen)"),
            ),
            Some(value) => {
                match value.get_ref() {
                    DeValue::String(text) => match parse_listen(text, ADMIN_PORTS) {
                        Ok(address) => (address, value.span(), address.to_string()),
                        Err(invalid) => {
                            self.error(&value.span(), key, invalid.message, invalid.hint);
                            return fallback;
                        }
                    },
                    DeValue::Array(_) => {
                        self.type_error(
                            value,
                            key,
                            "an address string",
                            format!("the admin listener takes one address, for example: {EXAMPLE}"),
                        );
                        return fallback;
                    }
                    DeValue::Integer(port) => {
                        self.type_error(
                        value,
                        key,
                        "an address string",
                        format!("give an IP address with the port, for example: listen = \"127.0.0.1:{port}\""),
                    );
                        return fallback;
                    }
                    _ => {
                        self.type_error(value, key, "an address string", format!("for example: {EXAMPLE}"));
                        return fallback;
                    }
                }
            }
        };
        let taken = clash(&name, listen, tls_listeners, "TLS listener")
            .or_else(|| clash(&name, listen, plain_listeners, "plain-HTTP listener"));
        if let Some(message) = taken {
            let other = if listen.port() == DEFAULT_ADMIN_LISTEN.port() {
                9902
            } else {
                DEFAULT_ADMIN_LISTEN.port()
            };
            self.error(
                &span,
                key,
                message,
                format!("the admin listener needs an address of its own: give [admin] another port, for example: listen = \"127.0.0.1:{other}\""),
            );
        }
        AdminConfig { listen }
    }

    /// `acme_webroot`: the directory given to certbot's `--webroot -w`,
    /// resolved against the configuration file's directory.
    fn webroot(&mut self, table: &Table<'_, '_>) -> Option<PathBuf> {
        let (path, span) =
            self.file_path(table, "acme_webroot", "\"/var/www/certbot\"", "/var/www/certbot")?;
        // The challenge directory itself, or `.well-known`, is a frequent
        // mistake: the files would be looked for one or two levels too deep.
        let written = match table.get("acme_webroot").map(|value| value.get_ref()) {
            Some(DeValue::String(text)) => text.trim(),
            _ => "",
        };
        if let Some(parent) = webroot_parent(written) {
            self.error(
                &span,
                table.key_path("acme_webroot"),
                format!(
                    "`{written}` is inside the webroot: portcullis adds /.well-known/acme-challenge/ itself"
                ),
                format!("write acme_webroot = \"{parent}\", the directory given to certbot --webroot -w"),
            );
            return None;
        }
        Some(path)
    }

    fn tls(&mut self, table: &Table<'_, '_>) -> TlsConfig {
        self.check_keys(table, &TLS_SCHEMA);
        let mut certificates = Vec::new();
        if let Some(pair) = self.certificate(table, false) {
            certificates.push(pair);
        }
        if let Some(entries) = self.array_of_tables(table, "certificate", "[[tls.certificate]]") {
            for entry in entries {
                self.check_keys(&entry, &CERTIFICATE_SCHEMA);
                if let Some(pair) = self.certificate(&entry, true) {
                    certificates.push(pair);
                }
            }
        }
        let min_version = self.min_version(table);
        let bootstrap = self.bootstrap(table);
        let watch = self.boolean(table, "watch", true);
        let poll_interval = self.poll_interval(table);
        let hsts = self.hsts(table);
        let cipher_suites = self
            .cipher_suites(table, min_version)
            .unwrap_or_else(tls_policy::default_cipher_suites);
        let groups = self
            .groups(table, min_version)
            .unwrap_or_else(tls_policy::default_groups);
        let session_resumption = self.boolean(table, "session_resumption", true);
        let client_auth = self.client_auth(table);
        TlsConfig {
            certificates,
            min_version,
            bootstrap,
            watch,
            poll_interval,
            hsts,
            cipher_suites,
            groups,
            session_resumption,
            client_auth,
        }
    }

    /// `hsts`: a Strict-Transport-Security value, checked for the one
    /// directive browsers require (`max-age=<seconds>`) and for characters
    /// a header cannot carry.
    fn hsts(&mut self, table: &Table<'_, '_>) -> Option<String> {
        const EXAMPLE: &str = "\"max-age=63072000; includeSubDomains\"";
        let (text, span) = self.string(table, "hsts", EXAMPLE)?;
        let text = text.trim();
        let max_age = text.split(';').map(str::trim).find_map(|d| {
            let (name, value) = d.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("max-age")
                .then(|| value.trim().trim_matches('"'))
        });
        let valid_max_age = max_age.is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
        if !valid_max_age || http::HeaderValue::from_str(text).is_err() {
            self.error(
                &span,
                table.key_path("hsts"),
                format!("{text:?} is not a Strict-Transport-Security value: it needs max-age=<seconds>"),
                format!("for example: hsts = {EXAMPLE} (two years), or leave hsts out to send none"),
            );
            return None;
        }
        Some(text.to_owned())
    }

    /// `bootstrap`: `"self-signed"` or absent. Only meaningful with a
    /// configured certificate, whose files it stands in for.
    fn bootstrap(&mut self, table: &Table<'_, '_>) -> Bootstrap {
        const VALID: &str = "valid values: \"self-signed\" (serve a temporary self-signed certificate until the configured files exist); leave bootstrap out to require the files at start";
        let Some(value) = table.get("bootstrap") else {
            return Bootstrap::Off;
        };
        let key = table.key_path("bootstrap");
        let configured = self.env_certificate
            || ["cert", "key", "certificate"]
                .iter()
                .any(|k| table.get(k).is_some());
        if !configured {
            self.missing(
                &value.span(),
                key.clone(),
                "`bootstrap` is set but no certificate is configured: there is nothing to bootstrap",
                "configure the certificate to wait for with cert and key (or [[tls.certificate]]), or remove bootstrap: with no certificate configured, portcullis serves a self-signed one anyway",
            );
        }
        let text = match value.get_ref() {
            DeValue::String(text) => text.trim(),
            DeValue::Boolean(_) => {
                self.type_error(
                    value,
                    key,
                    "a string",
                    "write bootstrap = \"self-signed\", or leave it out to require the certificate files at start"
                        .to_string(),
                );
                return Bootstrap::Off;
            }
            _ => {
                self.type_error(value, key, "a string", VALID.to_string());
                return Bootstrap::Off;
            }
        };
        if text == "self-signed" {
            return Bootstrap::SelfSigned;
        }
        let spelled = text.to_ascii_lowercase().replace(['_', ' '], "-");
        if matches!(spelled.as_str(), "self-signed" | "selfsigned") {
            self.error(
                &value.span(),
                key,
                format!("`{text}` is not how the mode is written"),
                "write bootstrap = \"self-signed\"",
            );
        } else {
            self.error(
                &value.span(),
                key,
                format!("`{text}` is not a bootstrap mode"),
                VALID,
            );
        }
        Bootstrap::Off
    }

    /// `poll_interval`: `None` for `"0s"` (no polling).
    fn poll_interval(&mut self, table: &Table<'_, '_>) -> Option<Duration> {
        let interval = self.duration(table, "poll_interval", DEFAULT_POLL_INTERVAL, Zero::Allowed);
        if interval.is_zero() {
            return None;
        }
        if interval < MIN_POLL_INTERVAL {
            if let Some(value) = table.get("poll_interval") {
                let text = match value.get_ref() {
                    DeValue::String(text) => text.trim(),
                    _ => "",
                };
                self.error(
                    &value.span(),
                    table.key_path("poll_interval"),
                    format!("`{text}` is too short: every poll reads and parses the certificate files"),
                    "give at least \"1s\" (certificates change every few weeks), or \"0s\" to turn polling off",
                );
            }
        }
        Some(interval)
    }

    /// The `cert`/`key` pair of `table`, with `names` when the table is a
    /// `[[tls.certificate]]` entry (`entry`), where the pair is required.
    fn certificate(&mut self, table: &Table<'_, '_>, entry: bool) -> Option<CertificateSource> {
        const CERT_EXAMPLE: &str = "\"/etc/letsencrypt/live/example.com/fullchain.pem\"";
        const KEY_EXAMPLE: &str = "\"/etc/letsencrypt/live/example.com/privkey.pem\"";
        match (table.get("cert"), table.get("key")) {
            (Some(cert), None) => self.missing(
                &cert.span(),
                table.key_path("cert"),
                "`cert` is set but `key` is not: a certificate needs its private key",
                format!("add the key next to it, for example: key = {KEY_EXAMPLE}"),
            ),
            (None, Some(key)) => self.missing(
                &key.span(),
                table.key_path("key"),
                "`key` is set but `cert` is not: a private key needs its certificate",
                format!("add the certificate chain next to it, for example: cert = {CERT_EXAMPLE}"),
            ),
            (None, None) if entry => self.missing(
                &table.span,
                table.path.clone(),
                "this certificate has neither `cert` nor `key`",
                format!("add both, for example:\ncert = {CERT_EXAMPLE}\nkey = {KEY_EXAMPLE}"),
            ),
            // Self-signed mode when not an entry; both present otherwise.
            _ => {}
        }
        const FULL: &str = "/home/user/certs/fullchain.pem";
        let cert = self.file_path(table, "cert", CERT_EXAMPLE, FULL);
        let key = self.file_path(table, "key", KEY_EXAMPLE, FULL);
        let names = if entry { self.names(table) } else { Vec::new() };
        let ((cert, cert_span), (key, key_span)) = (cert?, key?);
        Some(CertificateSource {
            cert,
            key,
            names,
            cert_origin: self.origin(&cert_span),
            key_origin: self.origin(&key_span),
            config_key: table.path.clone(),
        })
    }

    /// A file or directory path, resolved against the configuration
    /// file's directory; `None` when absent or invalid. `example` is a TOML
    /// value, `full_example` a path to show instead of one with `~`.
    fn file_path(
        &mut self,
        table: &Table<'_, '_>,
        key: &str,
        example: &str,
        full_example: &str,
    ) -> Option<(PathBuf, Range<usize>)> {
        let (text, span) = self.string(table, key, example)?;
        if text.trim().is_empty() {
            self.error(
                &span,
                table.key_path(key),
                "the path is empty",
                format!("for example: {key} = {example}"),
            );
            return None;
        }
        if text.starts_with('~') {
            self.error(
                &span,
                table.key_path(key),
                format!("`{text}` starts with `~`, which is not expanded"),
                format!("write the full path, such as {full_example}"),
            );
            return None;
        }
        Some((self.base_dir.join(text), span))
    }

    fn names(&mut self, table: &Table<'_, '_>) -> Vec<String> {
        const EXAMPLE: &str = "names = [\"example.com\", \"www.example.com\"]";
        let Some(value) = table.get("names") else {
            return Vec::new();
        };
        let key = table.key_path("names");
        let DeValue::Array(items) = value.get_ref() else {
            self.type_error(value, key, "a list of names", format!("for example: {EXAMPLE}"));
            return Vec::new();
        };
        let mut names = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let path = format!("{key}[{index}]");
            let DeValue::String(text) = item.get_ref() else {
                self.type_error(item, path, "a name string", format!("for example: {EXAMPLE}"));
                continue;
            };
            match check_host(text, true) {
                Ok(name) => names.push(name),
                Err(invalid) => self.error(&item.span(), path, invalid.message, invalid.hint),
            }
        }
        names
    }

    fn min_version(&mut self, table: &Table<'_, '_>) -> TlsVersion {
        const VALID: &str = "valid values: \"1.2\" (TLS 1.2 and 1.3) or \"1.3\" (TLS 1.3 only)";
        let Some(value) = table.get("min_version") else {
            return TlsVersion::V1_2;
        };
        let key = table.key_path("min_version");
        let text = match value.get_ref() {
            DeValue::String(text) => text.trim(),
            DeValue::Float(number) => {
                self.type_error(
                    value,
                    key,
                    "a string",
                    format!("quote it: min_version = \"{number}\"; {VALID}"),
                );
                return TlsVersion::V1_2;
            }
            _ => {
                self.type_error(value, key, "a string", VALID.to_string());
                return TlsVersion::V1_2;
            }
        };
        match text {
            "1.2" => TlsVersion::V1_2,
            "1.3" => TlsVersion::V1_3,
            _ => {
                let bare = text
                    .to_ascii_lowercase()
                    .trim_start_matches("tlsv")
                    .trim_start_matches("tls")
                    .trim()
                    .to_string();
                let message = match bare.as_str() {
                    "1.2" | "1.3" => format!("`{text}` is not how versions are written here"),
                    "1" | "1.0" | "1.1" => {
                        format!("`{text}` is not supported: portcullis speaks TLS 1.2 and 1.3 only")
                    }
                    _ => format!("`{text}` is not a TLS version"),
                };
                let hint = if matches!(bare.as_str(), "1.2" | "1.3") {
                    format!("write min_version = \"{bare}\"")
                } else {
                    VALID.to_string()
                };
                self.error(&value.span(), key, message, hint);
                TlsVersion::V1_2
            }
        }
    }

    fn routes(&mut self, top: &Table<'_, '_>) -> Vec<RouteConfig> {
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
            let (route, identity) = self.route(&table);
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
    fn route(&mut self, table: &Table<'_, '_>) -> (Option<RouteConfig>, Option<RouteIdentity>) {
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

        let path = match self.string(table, "path", "\"/ws\"") {
            Some((text, span)) => match check_path(text) {
                Ok(()) => Some((text.to_string(), span)),
                Err(invalid) => {
                    self.error(&span, table.key_path("path"), invalid.message, invalid.hint);
                    None
                }
            },
            None => {
                if table.get("path").is_none() {
                    self.missing(
                        &table.span,
                        table.key_path("path"),
                        "this route has no `path`",
                        "add path = \"/\" to match every request, or a prefix such as path = \"/api\"",
                    );
                }
                None
            }
        };

        let upstream = match self.string(table, "upstream", "\"http://127.0.0.1:8080\"") {
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
        let max_body = self.max_body(table);
        let upstream_tls = self.upstream_tls(table, upstream.as_ref());
        let require_client_cert = self.boolean(table, "require_client_cert", false);
        let websocket = self.boolean(table, "websocket", true);
        let path_normalization = self.path_normalization(table);

        let identity = match (&host, &path) {
            (Some(host), Some((path, path_span))) => Some(RouteIdentity {
                host: host.clone(),
                path: path.clone(),
                path_span: path_span.clone(),
            }),
            _ => None,
        };
        let route = match (host, path, upstream) {
            (Some(host), Some((path, _)), Some(upstream)) => Some(RouteConfig {
                host,
                path,
                upstream,
                read_timeout,
                connect_timeout,
                tunnel_idle_timeout,
                max_body,
                upstream_tls,
                require_client_cert,
                websocket,
                path_normalization,
                origin: self.origin(&table.span),
            }),
            _ => None,
        };
        (route, identity)
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

    fn log(&mut self, table: &Table<'_, '_>) -> LogConfig {
        self.check_keys(table, &LOG_SCHEMA);
        let access_log = self.boolean(table, "access_log", true);
        let level = match self.string(table, "level", "\"info\"") {
            Some((text, span)) => match check_level(text) {
                Ok(()) => text.trim().to_string(),
                Err(invalid) => {
                    self.error(&span, table.key_path("level"), invalid.message, invalid.hint);
                    DEFAULT_LOG_LEVEL.to_string()
                }
            },
            None => DEFAULT_LOG_LEVEL.to_string(),
        };
        let format = self.log_format(table);
        LogConfig {
            access_log,
            level,
            format,
        }
    }

    /// `format`: `"text"` (the default) or `"json"`.
    fn log_format(&mut self, table: &Table<'_, '_>) -> LogFormat {
        const VALID: &str = "valid values: \"text\" (one line per request, like nginx's combined format) or \"json\" (one JSON object per line)";
        let Some(value) = table.get("format") else {
            return LogFormat::Text;
        };
        let key = table.key_path("format");
        let DeValue::String(text) = value.get_ref() else {
            self.type_error(value, key, "a string", VALID.to_string());
            return LogFormat::Text;
        };
        let text = text.trim();
        match text {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => {
                let lower = text.to_ascii_lowercase();
                if matches!(lower.as_str(), "text" | "json") {
                    self.error(
                        &value.span(),
                        key,
                        format!("`{text}` is not how the format is written"),
                        format!("write format = \"{lower}\""),
                    );
                } else {
                    self.error(&value.span(), key, format!("`{text}` is not a log format"), VALID);
                }
                LogFormat::Text
            }
        }
    }
}

/// A default duration as an operator would write it: "24h", "75s".
fn duration_example(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds >= 3600 && seconds % 3600 == 0 {
        format!("{}h", seconds / 3600)
    } else {
        format!("{seconds}s")
    }
}

fn default_server() -> ServerConfig {
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
    }
}

/// "a string", "an integer"...: the type of a value, for messages.
fn describe(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}

/// What to do about a TOML syntax error; the parser's message already
/// says what it expected, this says what people usually meant.
fn syntax_hint(message: &str, on_header: bool) -> String {
    let hint = if message.starts_with("missing comma between array elements")
        || (message.starts_with("unclosed array") && !message.starts_with("unclosed array table"))
    {
        "separate list items with commas and close the list with `]`; if the next line is a setting or a header, the list above it is missing its `]`"
    } else if on_header {
        "a table header is a name in brackets on a line of its own: [server], [tls], [http], [admin], [log], or [[route]] and [[tls.certificate]] for each entry of a list"
    } else if message.starts_with("string values must be quoted") {
        "put text in double quotes, for example: upstream = \"http://127.0.0.1:8080\""
    } else if message.contains("string") {
        "close the string with a `\"` on the same line; write a `\"` inside a string as \\\""
    } else if message.starts_with("duplicate key") {
        "each key may appear only once in a table, and each [table] only once in the file; remove or merge the repeated one"
    } else if message.contains("key with no value") || message.contains("missing assignment") {
        "write settings as key = value, one per line"
    } else if message.contains("inline table") {
        "an inline table is { key = \"value\", other = 1 } on a single line"
    } else {
        "settings are written key = value, one per line, with text in double quotes; # starts a comment"
    };
    hint.to_string()
}

enum Suggestion {
    /// A name from another program (mostly nginx) for a key that exists.
    Alias(&'static str),
    /// A known key that is spelled nearly the same.
    Close(&'static str),
}

fn suggest(unknown: &str, schema: &Schema) -> Option<Suggestion> {
    let lower = unknown.to_ascii_lowercase().replace('-', "_");
    if let Some((_, known)) = schema.aliases.iter().find(|(alias, _)| *alias == lower) {
        return Some(Suggestion::Alias(known));
    }
    let best = schema
        .keys
        .iter()
        .map(|known| (edit_distance(&lower, known), *known))
        .min_by_key(|(distance, _)| *distance)?;
    let (distance, known) = best;
    // Close enough when at most a third of the characters differ: catches
    // typos and separators without proposing unrelated keys.
    if distance * 3 <= lower.chars().count().max(known.len()) {
        return Some(Suggestion::Close(known));
    }
    // A truncated or extended name, such as `handshake` or `max_conn`.
    let prefix = schema
        .keys
        .iter()
        .find(|known| lower.len() >= 4 && (known.starts_with(&lower) || lower.starts_with(*known)));
    prefix.map(|known| Suggestion::Close(known))
}

/// Levenshtein distance, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// One listen address as written: the address, its dotted key and where.
struct Listened {
    address: SocketAddr,
    key: String,
    span: Range<usize>,
}

/// The ports shown in the examples of listen messages: the usual public
/// port of the listener, and the one for "this machine only".
#[derive(Debug, Clone, Copy)]
struct ListenPorts {
    public: u16,
    local: u16,
}

const TLS_PORTS: ListenPorts = ListenPorts {
    public: 443,
    local: 8443,
};

const HTTP_PORTS: ListenPorts = ListenPorts {
    public: 80,
    local: 80,
};

const ADMIN_PORTS: ListenPorts = ListenPorts {
    public: 9901,
    local: 9901,
};

/// Why `address` (written `name`) cannot be bound beside `listeners`, each
/// with where it was configured, which are `what` ("TLS listener");
/// `None` when it can.
fn clash(name: &str, address: SocketAddr, listeners: &[(SocketAddr, String)], what: &str) -> Option<String> {
    let (other, other_key) = listeners.iter().find(|(other, _)| same_socket(address, *other))?;
    Some(if *other == address {
        format!("{name} is also a {what} ({other_key})")
    } else {
        format!(
            "{name} overlaps the {what} {other} ({other_key}): both take port {} on that address",
            other.port()
        )
    })
}

/// Whether binding `a` and `b` would take the same socket: the same port
/// (other than 0, where the system picks a free one) and family, and the
/// same address or one of them the wildcard. IPv6 sockets are bound
/// v6-only, so `0.0.0.0:80` and `[::]:80` do not clash.
fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// The directory to write as `acme_webroot` when `written` names
/// `.well-known` or `.well-known/acme-challenge` inside it.
fn webroot_parent(written: &str) -> Option<&str> {
    let trimmed = written.trim_end_matches('/');
    for suffix in [".well-known/acme-challenge", ".well-known"] {
        let Some(rest) = trimmed.strip_suffix(suffix) else {
            continue;
        };
        if rest.is_empty() {
            return Some(".");
        }
        if let Some(parent) = rest.strip_suffix('/') {
            return Some(if parent.is_empty() { "/" } else { parent });
        }
    }
    None
}

/// A listen address: an IP literal and a port. Port 0 is accepted (the
/// system picks a free port), which tests rely on. `ports` are the ports
/// the hints show.
fn parse_listen(raw: &str, ports: ListenPorts) -> Result<SocketAddr, Invalid> {
    let ListenPorts { public, local } = ports;
    let any_hint = format!("write an IP address and a port: \"0.0.0.0:{public}\" for every IPv4 address, \"[::]:{public}\" for every IPv6 address, \"127.0.0.1:{local}\" for this machine only");
    let text = raw.trim();
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    if text.is_empty() {
        return Err(Invalid::new("the address is empty", any_hint));
    }
    if let Some((scheme, rest)) = text.split_once("://") {
        return Err(Invalid::new(
            format!("`{text}` has a scheme (`{scheme}://`); listen addresses do not"),
            format!("write just the address and port, such as \"{rest}\""),
        ));
    }
    if text.chars().all(|c| c.is_ascii_digit()) {
        return Err(Invalid::new(
            format!("`{text}` has a port but no IP address"),
            format!("write \"0.0.0.0:{text}\" to listen on every IPv4 address, \"[::]:{text}\" for IPv6, or \"127.0.0.1:{text}\" for this machine only"),
        ));
    }
    if let Some(port) = text
        .strip_prefix(':')
        .filter(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(Invalid::new(
            format!("`{text}` has a port but no IP address"),
            format!("write \"0.0.0.0:{port}\" to listen on every IPv4 address, \"[::]:{port}\" for IPv6, or \"127.0.0.1:{port}\" for this machine only"),
        ));
    }
    // Checked before "no port": `::1:443` is itself a valid IPv6 address,
    // but a port after an unbracketed address is the likelier intent.
    if !text.starts_with('[') && text.matches(':').count() > 1 {
        if let Some((ip, port)) = text.rsplit_once(':') {
            let port_is_number = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
            if port_is_number && ip.parse::<Ipv6Addr>().is_ok() {
                return Err(Invalid::new(
                    format!("`{text}` is an IPv6 address without brackets"),
                    format!(
                        "put the address in brackets: \"[{ip}]:{port}\" (or \"[{text}]:{local}\" if {port} is part of the address)"
                    ),
                ));
            }
        }
    }
    if let Ok(ip) = text
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        let suggestion = SocketAddr::new(ip, local);
        return Err(Invalid::new(
            format!("`{text}` has no port"),
            format!("add one, for example \"{suggestion}\""),
        ));
    }
    if let Some((host, port)) = text.rsplit_once(':') {
        let host_is_ip = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok();
        if !host_is_ip {
            let ip = if host.eq_ignore_ascii_case("localhost") {
                "127.0.0.1"
            } else {
                "0.0.0.0"
            };
            return Err(Invalid::new(
                format!("`{host}` is not an IP address; listen addresses are IP literals, not names"),
                format!("write \"{ip}:{port}\" (\"0.0.0.0:{port}\" listens on every IPv4 address, \"127.0.0.1:{port}\" on this machine only)"),
            ));
        }
        return Err(Invalid::new(
            format!("`{port}` is not a port number"),
            format!("give a port from 1 to 65535, such as \"{host}:{local}\""),
        ));
    }
    Err(Invalid::new(
        format!("`{text}` is not an IP address and port"),
        any_hint,
    ))
}

/// What the environment overrides, read before the file is checked.
#[derive(Debug, Default)]
struct EnvOverrides {
    /// `PORTCULLIS_LISTEN`'s valid addresses, when it is set.
    listen: Option<Vec<SocketAddr>>,
    /// The pair of `PORTCULLIS_TLS_CERT` and `PORTCULLIS_TLS_KEY`, when
    /// both are set and valid.
    pair: Option<CertificateSource>,
    /// Whether either TLS variable is set.
    certificate_set: bool,
    /// What is wrong with the variables, each at its variable's origin.
    errors: Vec<ConfigError>,
}

impl EnvOverrides {
    fn read(env: &dyn Fn(&str) -> Option<String>) -> Self {
        let mut overrides = EnvOverrides::default();
        if let Some(value) = env(ENV_LISTEN) {
            overrides.listen = Some(env_listen(&value, &mut overrides.errors));
        }
        let cert = env(ENV_TLS_CERT);
        let key = env(ENV_TLS_KEY);
        overrides.certificate_set = cert.is_some() || key.is_some();
        // Decided: the two come together. Half a pair from the environment
        // and half from the file would put a key beside a certificate it
        // may never have been issued with; a deployment that moves one
        // file moves the other.
        let lone = |set: &str, unset: &str, what: &str| {
            ConfigError::new(
                Origin::environment(set),
                "",
                format!("set without {unset}: {what}"),
                format!(
                    "set {unset} too (a value from the configuration file is never paired with one from the environment), or unset {set}"
                ),
            )
        };
        match (&cert, &key) {
            (Some(_), None) => overrides.errors.push(lone(
                ENV_TLS_CERT,
                ENV_TLS_KEY,
                "a certificate needs its private key",
            )),
            (None, Some(_)) => overrides.errors.push(lone(
                ENV_TLS_KEY,
                ENV_TLS_CERT,
                "a private key needs its certificate",
            )),
            _ => {}
        }
        const CERT_FULL: &str = "/etc/letsencrypt/live/example.com/fullchain.pem";
        const KEY_FULL: &str = "/etc/letsencrypt/live/example.com/privkey.pem";
        let cert = cert
            .and_then(|value| env_path(ENV_TLS_CERT, "tls.cert", &value, CERT_FULL, &mut overrides.errors));
        let key =
            key.and_then(|value| env_path(ENV_TLS_KEY, "tls.key", &value, KEY_FULL, &mut overrides.errors));
        if let (Some(cert), Some(key)) = (cert, key) {
            overrides.pair = Some(CertificateSource {
                cert,
                key,
                names: Vec::new(),
                cert_origin: Origin::environment(ENV_TLS_CERT),
                key_origin: Origin::environment(ENV_TLS_KEY),
                config_key: "tls".to_string(),
            });
        }
        overrides
    }
}

/// `PORTCULLIS_LISTEN`: addresses separated by commas, checked like
/// `server.listen`. Empty entries (a trailing comma) are ignored, as TOML
/// ignores a trailing comma in a list. Returns the valid addresses.
fn env_listen(value: &str, errors: &mut Vec<ConfigError>) -> Vec<SocketAddr> {
    let origin = Origin::environment(ENV_LISTEN);
    let items: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .collect();
    if items.is_empty() {
        errors.push(ConfigError::new(
            origin,
            "server.listen",
            "no address to listen on",
            format!("give at least one, separated by commas, for example: {ENV_LISTEN}=0.0.0.0:443,[::]:443"),
        ));
        return Vec::new();
    }
    let mut addresses: Vec<(SocketAddr, String)> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let key = if items.len() == 1 {
            "server.listen".to_string()
        } else {
            format!("server.listen[{index}]")
        };
        match parse_listen(item, TLS_PORTS) {
            Ok(address) => {
                if let Some((_, first)) = addresses.iter().find(|(known, _)| *known == address) {
                    errors.push(ConfigError::new(
                        origin.clone(),
                        key,
                        format!("{address} is listed twice (also as {first})"),
                        "remove one of them",
                    ));
                } else {
                    addresses.push((address, key));
                }
            }
            Err(invalid) => errors.push(ConfigError::new(
                origin.clone(),
                key,
                invalid.message,
                invalid.hint,
            )),
        }
    }
    addresses.into_iter().map(|(address, _)| address).collect()
}

/// A certificate or key path from the variable `name`, checked like the
/// file's (`key` is the setting it replaces), and resolved against the
/// current directory when relative. `None` when invalid.
fn env_path(
    name: &str,
    key: &str,
    value: &str,
    full_example: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<PathBuf> {
    let mut error = |message: String, hint: String| {
        errors.push(ConfigError::new(Origin::environment(name), key, message, hint));
    };
    if value.trim().is_empty() {
        error(
            "the path is empty".to_string(),
            format!("for example: {name}={full_example}"),
        );
        return None;
    }
    if value.starts_with('~') {
        error(
            format!("`{value}` starts with `~`, which is not expanded"),
            format!("write the full path, such as {full_example}"),
        );
        return None;
    }
    let path = Path::new(value);
    if path.is_absolute() {
        return Some(path.to_path_buf());
    }
    match std::env::current_dir() {
        Ok(dir) => Some(dir.join(path)),
        Err(e) => {
            error(
                format!(
                    "`{value}` is relative, and the current directory it is relative to cannot be read: {e}"
                ),
                format!("write the full path, such as {full_example}"),
            );
            None
        }
    }
}

/// A route `path`: a prefix of the request path.
fn check_path(path: &str) -> Result<(), Invalid> {
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
/// wildcards (`*.example.com`); route hosts are matched exactly.
fn check_host(raw: &str, is_certificate_name: bool) -> Result<String, Invalid> {
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
    let name = match text.strip_prefix("*.") {
        Some(rest) if is_certificate_name => rest,
        Some(_) => {
            return Err(Invalid::new(
                format!("`{text}` is a wildcard; routes match one host exactly"),
                "write one [[route]] per host, or remove `host` to match any host",
            ))
        }
        None => text,
    };
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

/// A `level` in the syntax of tracing's filters (`info`,
/// `warn,portcullis=debug`). A bare word must be a level: tracing would take
/// any other word for a target name, so a typo such as `infoo` would
/// silently turn logging off; a target is written `target=level`.
fn check_level(raw: &str) -> Result<(), Invalid> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    const HINT: &str = "use one of trace, debug, info, warn, error, off, optionally with per-target levels such as \"info,portcullis=debug\"";
    let text = raw.trim();
    if text.is_empty() {
        return Err(Invalid::new("the level is empty", HINT));
    }
    for directive in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        // Span and field filters (`target[span{field=1}]=debug`) are passed
        // through for tracing to judge.
        if directive.contains('[') {
            continue;
        }
        let level = match directive.rsplit_once('=') {
            Some((_, level)) => level.trim(),
            None => directive,
        };
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            let closest = LEVELS
                .iter()
                .min_by_key(|known| edit_distance(&level.to_ascii_lowercase(), known))
                .filter(|known| edit_distance(&level.to_ascii_lowercase(), known) <= 2);
            let hint = match closest {
                Some(known) => format!("did you mean `{known}`? ({HINT})"),
                None => HINT.to_string(),
            };
            return Err(Invalid::new(format!("`{level}` is not a log level"), hint));
        }
    }
    Ok(())
}

/// An upstream address, `http://host[:port][/]` or `https://...` (port 80
/// or 443 by default). Each rule has its own message so that the operator
/// knows which part to change.
fn parse_upstream(raw: &str) -> Result<Upstream, Invalid> {
    const EXAMPLE: &str = "http://127.0.0.1:8080";
    let text = raw.trim();
    if text.is_empty() {
        return Err(Invalid::new(
            "the upstream is empty",
            format!("write the address of the application, for example: upstream = \"{EXAMPLE}\""),
        ));
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(Invalid::new(
            format!("`{text}` has no scheme"),
            format!(
                "write upstream = \"{}\"",
                upstream_address(Scheme::Http, text.trim_start_matches('/'))
            ),
        ));
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        ws @ ("ws" | "wss") => {
            let (what, instead) = if ws == "ws" {
                ("WebSocket upstreams are plain HTTP", Scheme::Http)
            } else {
                ("WebSocket upstreams over TLS are HTTPS", Scheme::Https)
            };
            return Err(Invalid::new(
                format!("`{scheme}://` is not an upstream scheme: {what}"),
                format!(
                    "write upstream = \"{}\"; portcullis forwards the WebSocket upgrade",
                    upstream_address(instead, rest)
                ),
            ));
        }
        _ => {
            return Err(Invalid::new(
                format!("unsupported scheme `{scheme}://`"),
                format!("upstreams use http:// or https://, for example: upstream = \"{EXAMPLE}\""),
            ))
        }
    };

    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);

    if authority.contains('@') {
        // The user info may hold a password: it is not repeated in the message.
        return Err(Invalid::new(
            "the upstream contains user info (`...@`), which portcullis does not send",
            format!(
                "remove everything up to the `@`: upstream = \"{}\"",
                upstream_address(scheme, rest)
            ),
        ));
    }

    let default_port = match scheme {
        Scheme::Http => 80,
        Scheme::Https => 443,
    };
    let (host, port) = split_host_port(authority, default_port)?;

    let clean = upstream_address(scheme, rest);
    let query_start = tail.find(['?', '#']).unwrap_or(tail.len());
    let (path, after_path) = tail.split_at(query_start);
    if !path.is_empty() && path != "/" {
        return Err(Invalid::new(
            format!("the upstream has a path (`{path}`); only an address is allowed"),
            format!(
                "write upstream = \"{clean}\" and put the path in the route's `path`: portcullis forwards the request path unchanged"
            ),
        ));
    }
    if let Some(query) = after_path.strip_prefix('?') {
        let query = query.split('#').next().unwrap_or(query);
        return Err(Invalid::new(
            format!("the upstream has a query (`?{query}`)"),
            format!("write upstream = \"{clean}\": portcullis forwards each request's own query unchanged"),
        ));
    }
    if let Some(fragment) = after_path.strip_prefix('#') {
        return Err(Invalid::new(
            format!("the upstream has a fragment (`#{fragment}`)"),
            format!("write upstream = \"{clean}\": fragments are never sent to a server"),
        ));
    }
    Ok(Upstream { scheme, host, port })
}

/// `scheme://` and the host and port of `rest` (what follows a scheme's
/// `://`), without user info, path, query or fragment: the upstream to
/// propose when the one written breaks a rule.
fn upstream_address(scheme: Scheme, rest: &str) -> String {
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let without_user = authority.rsplit('@').next().unwrap_or(authority);
    format!("{}://{without_user}", scheme.as_str())
}

/// The host and port of an upstream authority; the port defaults to
/// `default_port`.
fn split_host_port(authority: &str, default_port: u16) -> Result<(String, u16), Invalid> {
    const HOST_HINT: &str = "write upstream = \"http://127.0.0.1:8080\"";
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((inner, after)) = bracketed.split_once(']') else {
            return Err(Invalid::new(
                format!("`[{bracketed}` has no closing `]`"),
                "write an IPv6 address as http://[::1]:8080",
            ));
        };
        if inner.parse::<Ipv6Addr>().is_err() {
            return Err(Invalid::new(
                format!("`{inner}` is not an IPv6 address"),
                "write an IPv6 address as http://[::1]:8080",
            ));
        }
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => {
                    return Err(Invalid::new(
                        format!("unexpected `{after}` after the IPv6 address"),
                        format!("write http://[{inner}]:8080"),
                    ))
                }
            },
        };
        (inner.to_ascii_lowercase(), port)
    } else {
        if authority.matches(':').count() > 1 {
            return Err(Invalid::new(
                format!("`{authority}` looks like an IPv6 address without brackets"),
                "put an IPv6 address in brackets: http://[::1]:8080",
            ));
        }
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err(Invalid::new("the upstream has no host", HOST_HINT));
        }
        if let Some(bad) = host
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
        {
            return Err(Invalid::new(
                format!("the upstream host `{host}` contains `{bad}`"),
                "use a name or an IP address: letters, digits, `-` and `.`",
            ));
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => default_port,
        Some("") => {
            return Err(Invalid::new(
                "the upstream has an empty port after `:`",
                format!(
                "write the port after the colon, such as :8080, or drop the colon for port {default_port}"
            ),
            ))
        }
        Some(digits) => match digits.parse::<u16>() {
            Ok(port) if port > 0 && digits.bytes().all(|b| b.is_ascii_digit()) => port,
            _ => {
                return Err(Invalid::new(
                    format!("`{digits}` is not a port number"),
                    "give a port from 1 to 65535, such as :8080",
                ))
            }
        },
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(text: &str) -> Upstream {
        match parse_upstream(text) {
            Ok(u) => u,
            Err(e) => panic!("{text}: {e:?}"),
        }
    }

    fn upstream_error(text: &str) -> Invalid {
        match parse_upstream(text) {
            Ok(u) => panic!("{text} parsed as {u:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn upstreams_that_are_accepted() {
        let u = upstream(" http://127.0.0.1:9222 ");
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 9222));
        let u = upstream("HTTP://App.Internal/");
        assert_eq!((u.host.as_str(), u.port), ("app.internal", 80));
        let u = upstream("http://[::1]:8080");
        assert_eq!((u.host.as_str(), u.port), ("::1", 8080));
        assert_eq!(u.to_string(), "http://[::1]:8080");
        let u = upstream("  HTTPS://Api.Internal  ");
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port),
            (Scheme::Https, "api.internal", 443)
        );
        assert_eq!(u.to_string(), "https://api.internal:443");
        let u = upstream("https://[::1]:8443/");
        assert_eq!((u.scheme, u.host.as_str(), u.port), (Scheme::Https, "::1", 8443));
    }

    #[test]
    fn upstream_rules() {
        assert!(upstream_error("127.0.0.1:8080").message.contains("no scheme"));
        assert!(upstream_error("http://:8080").message.contains("no host"));
        assert!(upstream_error("http://h:").message.contains("empty port"));
        assert!(upstream_error("http://h:0").message.contains("not a port"));
        assert!(upstream_error("http://h:+80").message.contains("not a port"));
        assert!(upstream_error("http://h:65536").message.contains("not a port"));
        assert!(upstream_error("http://::1:80").message.contains("brackets"));
        assert!(upstream_error("http://[::g]:80").message.contains("not an IPv6"));
        assert!(upstream_error("http://[::1").message.contains("closing"));
        assert!(upstream_error("http://a b").message.contains("contains ` `"));
        let e = upstream_error("http://u:secret@h:1");
        assert!(!e.message.contains("secret") && !e.hint.contains("secret"));
        assert!(upstream_error("ftp://h").message.contains("unsupported scheme"));
        assert!(upstream_error("ftp://h").hint.contains("http:// or https://"));
        assert!(upstream_error("ws://h").hint.contains("\"http://h\""));
        assert!(upstream_error("wss://h").hint.contains("\"https://h\""));
    }

    #[test]
    fn https_upstreams_follow_the_same_rules() {
        // Every hint keeps the scheme that was written.
        let e = upstream_error("https://h:8443/api");
        assert!(e.message.contains("has a path"), "{}", e.message);
        assert!(e.hint.contains("\"https://h:8443\""), "{}", e.hint);
        let e = upstream_error("https://h?x=1");
        assert!(
            e.message.contains("query") && e.hint.contains("\"https://h\""),
            "{e:?}"
        );
        let e = upstream_error("https://h#top");
        assert!(
            e.message.contains("fragment") && e.hint.contains("\"https://h\""),
            "{e:?}"
        );
        let e = upstream_error("https://user:secret@h:8443");
        assert!(e.hint.contains("\"https://h:8443\""), "{}", e.hint);
        assert!(!e.message.contains("secret") && !e.hint.contains("secret"));
        assert!(upstream_error("https://:8443").message.contains("no host"));
        let e = upstream_error("https://h:");
        assert!(e.hint.contains("port 443"), "{}", e.hint);
        assert!(upstream_error("https://h:0").message.contains("not a port"));
        assert!(upstream_error("https://::1:443").message.contains("brackets"));
    }

    #[test]
    fn listen_diagnostics() {
        assert!(parse_listen("[::]:443", TLS_PORTS).is_ok());
        assert!(parse_listen("127.0.0.1:0", TLS_PORTS).is_ok());
        assert!(parse_listen("443", TLS_PORTS)
            .unwrap_err()
            .hint
            .contains("\"0.0.0.0:443\""));
        assert!(parse_listen(":443", TLS_PORTS)
            .unwrap_err()
            .message
            .contains("no IP address"));
        assert!(parse_listen("127.0.0.1", TLS_PORTS)
            .unwrap_err()
            .message
            .contains("no port"));
        assert!(parse_listen("::1:443", TLS_PORTS)
            .unwrap_err()
            .hint
            .contains("[::1]:443"));
        assert!(parse_listen("localhost:8443", TLS_PORTS)
            .unwrap_err()
            .hint
            .contains("127.0.0.1:8443"));
        assert!(parse_listen("1.2.3.4:http", TLS_PORTS)
            .unwrap_err()
            .message
            .contains("not a port"));
        assert!(parse_listen("https://0.0.0.0:443", TLS_PORTS)
            .unwrap_err()
            .hint
            .contains("\"0.0.0.0:443\""));
    }

    #[test]
    fn listen_hints_use_the_listener_port() {
        let e = parse_listen("0.0.0.0", HTTP_PORTS).unwrap_err();
        assert_eq!(e.hint, "add one, for example \"0.0.0.0:80\"");
        let e = parse_listen("", HTTP_PORTS).unwrap_err();
        assert!(e.hint.contains("\"[::]:80\""), "{}", e.hint);
        assert!(!e.hint.contains("443"), "{}", e.hint);
    }

    #[test]
    fn sockets_that_clash() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(same_socket(a("0.0.0.0:80"), a("0.0.0.0:80")));
        assert!(same_socket(a("127.0.0.1:80"), a("0.0.0.0:80")));
        assert!(same_socket(a("[::]:80"), a("[::1]:80")));
        assert!(!same_socket(a("0.0.0.0:80"), a("[::]:80")));
        assert!(!same_socket(a("127.0.0.1:80"), a("127.0.0.2:80")));
        assert!(!same_socket(a("127.0.0.1:0"), a("127.0.0.1:0")));
        assert!(!same_socket(a("0.0.0.0:80"), a("0.0.0.0:443")));
    }

    #[test]
    fn webroot_parents() {
        assert_eq!(webroot_parent("/var/www/certbot"), None);
        assert_eq!(
            webroot_parent("/var/www/certbot/.well-known/acme-challenge/"),
            Some("/var/www/certbot")
        );
        assert_eq!(webroot_parent("/var/www/.well-known"), Some("/var/www"));
        assert_eq!(webroot_parent("/.well-known"), Some("/"));
        assert_eq!(webroot_parent(".well-known/acme-challenge"), Some("."));
        assert_eq!(webroot_parent("/srv/my.well-known"), None);
    }

    #[test]
    fn hosts_and_names() {
        assert_eq!(check_host("Example.COM", false).unwrap(), "example.com");
        assert_eq!(check_host("::1", false).unwrap(), "[::1]");
        assert!(check_host("example.com:443", false).is_err());
        assert!(check_host("*.example.com", false).is_err());
        assert_eq!(check_host("*.Example.com", true).unwrap(), "*.example.com");
        assert!(check_host("https://example.com/", false)
            .unwrap_err()
            .hint
            .contains("\"example.com\""));
        assert!(check_host("a..b", true).is_err());
    }

    #[test]
    fn levels() {
        assert!(check_level("info").is_ok());
        assert!(check_level("WARN,portcullis=debug").is_ok());
        assert!(check_level("portcullis[conn{id=1}]=trace").is_ok());
        let e = check_level("infoo").unwrap_err();
        assert!(e.hint.contains("did you mean `info`?"), "{}", e.hint);
        assert!(check_level("portcullis").is_err());
    }

    #[test]
    fn suggestions() {
        let close = |name: &str| match suggest(name, &ROUTE_SCHEMA) {
            Some(Suggestion::Close(k)) | Some(Suggestion::Alias(k)) => Some(k),
            None => None,
        };
        assert_eq!(close("upsteam"), Some("upstream"));
        assert_eq!(close("Path"), Some("path"));
        assert_eq!(close("connect-timeout"), Some("connect_timeout"));
        assert_eq!(close("proxy_pass"), Some("upstream"));
        assert_eq!(close("tunnel_idle"), Some("tunnel_idle_timeout"));
        assert_eq!(close("banana"), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
