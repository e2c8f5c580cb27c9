//! The environment variables that override the file: `PORTCULLIS_LISTEN`
//! for `server.listen`, `PORTCULLIS_TLS_CERT` with `PORTCULLIS_TLS_KEY`
//! for `[tls] cert` and `key`. They are read and checked before the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::listen::{parse_listen, TLS_PORTS};
use crate::config::{CertificateSource, ConfigError, Origin};

/// Replaces `server.listen`: one address or several, separated by commas.
pub(super) const ENV_LISTEN: &str = "PORTCULLIS_LISTEN";
/// Replaces `[tls] cert`; needs [`ENV_TLS_KEY`].
const ENV_TLS_CERT: &str = "PORTCULLIS_TLS_CERT";
/// Replaces `[tls] key`; needs [`ENV_TLS_CERT`].
const ENV_TLS_KEY: &str = "PORTCULLIS_TLS_KEY";

/// Looks a variable up in the process environment. A value that is not
/// UTF-8 is taken with replacement characters, so that the path it names
/// fails to load with an error that names the variable, rather than being
/// ignored.
pub(super) fn process_env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|value| value.to_string_lossy().into_owned())
}

/// What the environment overrides, read before the file is checked.
#[derive(Debug, Default)]
pub(super) struct EnvOverrides {
    /// `PORTCULLIS_LISTEN`'s valid addresses, when it is set.
    pub(super) listen: Option<Vec<SocketAddr>>,
    /// The pair of `PORTCULLIS_TLS_CERT` and `PORTCULLIS_TLS_KEY`, when
    /// both are set and valid.
    pub(super) pair: Option<CertificateSource>,
    /// Whether either TLS variable is set.
    pub(super) certificate_set: bool,
    /// What is wrong with the variables, each at its variable's origin.
    pub(super) errors: Vec<ConfigError>,
}

impl EnvOverrides {
    pub(super) fn read(env: &dyn Fn(&str) -> Option<String>) -> Self {
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
