//! The configuration in service as the admin listener's `GET /config`
//! shows it: its generation, when it was loaded, the file's path and
//! SHA-256, and its settings as JSON.
//!
//! The settings are the file's, as read when they were loaded (the file
//! may have changed since; the digest says whether it has). Paths are
//! shown, key material never: a value that holds PEM text, and any key
//! named like a secret (`password`, `secret`, `token`), is replaced by
//! `"<redacted>"`. The environment's overrides (`PORTCULLIS_LISTEN`,
//! `PORTCULLIS_TLS_CERT`, `PORTCULLIS_TLS_KEY`) are listed by their
//! effect: the addresses and certificate paths in service.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

use crate::config::Config;

/// The configuration in service.
#[derive(Debug)]
pub(crate) struct Status {
    pub(crate) generation: u64,
    pub(crate) config: Arc<Config>,
    pub(crate) loaded_at: SystemTime,
    /// The addresses the HTTP listeners are bound to (port 0 resolved).
    pub(crate) bound: Vec<std::net::SocketAddr>,
}

impl Status {
    pub(crate) fn new(config: Arc<Config>, generation: u64, bound: Vec<std::net::SocketAddr>) -> Status {
        Status {
            generation,
            config,
            loaded_at: SystemTime::now(),
            bound,
        }
    }

    /// `GET /config`, as pretty JSON.
    pub(crate) fn to_json(&self) -> String {
        let config = &self.config;
        let settings = toml::from_str::<toml::Table>(&config.text)
            .ok()
            .and_then(|t| serde_json::to_value(t).ok())
            .map(redact)
            .unwrap_or(Value::Null);
        let view = View {
            generation: self.generation,
            loaded_at: humantime::format_rfc3339_seconds(self.loaded_at).to_string(),
            file: config.source.as_ref().map(|p| p.display().to_string()),
            sha256: sha256_hex(config.text.as_bytes()),
            listen: config.server.listen.iter().map(ToString::to_string).collect(),
            bound: self.bound.iter().map(ToString::to_string).collect(),
            certificates: config
                .tls
                .certificates
                .iter()
                .map(|c| Pair {
                    cert: c.cert.display().to_string(),
                    key: c.key.display().to_string(),
                })
                .collect(),
            settings,
        };
        let mut json = serde_json::to_string_pretty(&view).unwrap_or_else(|_| "{}".to_owned());
        json.push('\n');
        json
    }
}

#[derive(Serialize)]
struct View {
    generation: u64,
    loaded_at: String,
    file: Option<String>,
    /// Of the text the settings were read from.
    sha256: String,
    /// The TLS addresses configured, overrides included.
    listen: Vec<String>,
    /// Every HTTP listener's bound address, TLS then plain.
    bound: Vec<String>,
    certificates: Vec<Pair>,
    settings: Value,
}

#[derive(Serialize)]
struct Pair {
    cert: String,
    key: String,
}

/// The lowercase hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// `value` with key material and secrets replaced.
fn redact(value: Value) -> Value {
    match value {
        Value::String(s) if s.contains("-----BEGIN") => Value::String("<redacted>".to_owned()),
        Value::Array(items) => Value::Array(items.into_iter().map(redact).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, v)| {
                    let lower = key.to_ascii_lowercase();
                    let secret = ["password", "secret", "token"].iter().any(|s| lower.contains(s));
                    let v = if secret && !v.is_boolean() {
                        Value::String("<redacted>".to_owned())
                    } else {
                        redact(v)
                    };
                    (key, v)
                })
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_material_and_secrets_are_redacted() {
        let value = serde_json::json!({
            "tls": { "cert": "/etc/cert.pem", "inline": "-----BEGIN PRIVATE KEY-----\nabc" },
            "auth": { "api_token": "hunter2", "password": "x" },
            "routes": [{ "path": "/", "upstream": "http://a:1" }],
        });
        let out = redact(value).to_string();
        assert!(out.contains("/etc/cert.pem"));
        assert!(!out.contains("BEGIN"), "{out}");
        assert!(!out.contains("hunter2"), "{out}");
        assert!(out.contains("http://a:1"));
    }

    #[test]
    fn digest() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
