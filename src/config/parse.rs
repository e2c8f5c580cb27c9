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
//! - an address may be a TLS listener, a plain-HTTP one, the admin
//!   listener or a stream's, never two of them;
//! - `[[stream]]` tables without any `[[route]]` are a whole
//!   configuration: no route is asked for, and no HTTPS listener is bound
//!   unless `server.listen` (or `PORTCULLIS_LISTEN`) names one;
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
//!
//! The checks of each table live in a child module of their own (`server`,
//! `tls`, `http`, `route`, `admin`, `log`, `stream`, with `listen`,
//! `upstream`, `upstream_tls`, `tls_policy`, `client_auth`,
//! `stream_values` and `tcp_upstream` for what those share or hold
//! apart); `checker` has what they all use, and `env` the overrides.

mod admin;
mod buffering;
mod checker;
mod client_auth;
mod client_timeouts;
mod compression;
mod env;
mod error_pages;
mod headers;
mod http;
mod listen;
mod log;
mod pool;
mod pool_health;
mod real_ip;
mod route;
mod route_action;
mod route_client;
mod route_shaping;
mod route_static;
mod server;
mod server_answers;
mod stream;
mod stream_values;
mod tcp_upstream;
mod tls;
mod tls_policy;
mod upstream;
mod upstream_tls;
mod upstream_urls;

use std::path::Path;

use toml::de::{DeTable, DeValue};

use self::checker::{Checker, Schema, SyntaxReport, Table};
use self::env::{process_env, EnvOverrides, ENV_LISTEN};
use self::log::DEFAULT_LOG_LEVEL;
use self::server::default_server;
use self::tls::DEFAULT_POLL_INTERVAL;
use super::{
    Bootstrap, Config, ConfigError, ConfigErrors, LogConfig, LogFormat, Origin, TlsConfig, TlsVersion,
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
        line_starts: crate::config::error::line_starts(text),
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
        text: text.into(),
        ..parsed
    })
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

const TOP_SCHEMA: Schema = Schema {
    keys: &[
        "server",
        "tls",
        "http",
        "route",
        "log",
        "admin",
        "stream",
        "upstream",
        "headers",
        "compression",
        "buffering",
    ],
    aliases: &[
        ("streams", "stream"),
        ("tcp", "stream"),
        ("routes", "route"),
        ("location", "route"),
        ("ssl", "tls"),
        ("plain_http", "http"),
        ("acme", "http"),
        ("metrics", "admin"),
        ("health", "admin"),
        ("status", "admin"),
        ("stub_status", "admin"),
        ("upstreams", "upstream"),
        ("pool", "upstream"),
        ("pools", "upstream"),
        ("gzip", "compression"),
        ("brotli", "compression"),
        ("zstd", "compression"),
        ("buffers", "buffering"),
        ("proxy_buffering", "buffering"),
    ],
};

impl Checker<'_> {
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
        // Streams alone need no route, and then no HTTPS listener either,
        // unless one is written: it would answer every request 404.
        let streams_only = top.get("route").is_none() && top.get("stream").is_some();
        let listen_written = matches!(top.get("server").map(|v| v.get_ref()),
            Some(DeValue::Table(server)) if server.get("listen").is_some());
        if streams_only && self.env_listen.is_none() && !listen_written {
            server.listen.clear();
            tls_listeners.clear();
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
                ocsp_stapling: false,
                client_auth: None,
                unknown_sni: crate::config::UnknownSni::Default,
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
            let (http, listeners) = self.http(&table, &tls_listeners, &server.trusted_proxies);
            plain_listeners = listeners;
            http
        });
        let admin = self
            .table(&top, "admin", "[admin]")
            .map(|table| self.admin(&table, &tls_listeners, &plain_listeners));
        let admin_listeners: Vec<_> = admin
            .iter()
            .map(|a| (a.listen, "admin.listen".to_string()))
            .collect();
        let streams = self.streams(
            &top,
            &[
                (&tls_listeners, "TLS listener"),
                (&plain_listeners, "plain-HTTP listener"),
                (&admin_listeners, "listener of [admin]"),
            ],
        );
        let pools = self.pools(&top);
        let compression = self.compression_defaults(&top);
        let buffering = self.buffering_defaults(&top);
        let routes = if streams_only {
            Vec::new()
        } else {
            let defaults = (compression.as_ref(), &server.error_pages, &buffering);
            self.routes(&top, &pools, defaults)
        };
        self.route_ports_listened(&top, &[&tls_listeners, &plain_listeners]);
        self.client_cert_routes(&top);
        let log = match self.table(&top, "log", "[log]") {
            Some(table) => self.log(&table),
            None => LogConfig {
                access_log: true,
                level: DEFAULT_LOG_LEVEL.to_string(),
                format: LogFormat::Text,
                access_template: None,
            },
        };
        let headers = self.header_defaults(&top);
        Config {
            source: None,
            text: "".into(),
            server,
            tls,
            routes,
            log,
            http,
            admin,
            streams,
            pools,
            headers,
            compression,
        }
    }
}
