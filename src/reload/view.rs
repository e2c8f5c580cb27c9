//! The configuration in service as the admin listener's `GET /config`
//! shows it: its generation, when it was loaded, the file's path and
//! SHA-256, and the file's text.
//!
//! The text is the file's as read when it was loaded (the file may have
//! changed since; the digest says whether it has). Paths are shown, key
//! material never: PEM blocks, and the value of any key named like a
//! secret (`password`, `secret`, `token`), are replaced by `<redacted>`.
//! The environment's overrides (`PORTCULLIS_LISTEN`, `PORTCULLIS_TLS_CERT`,
//! `PORTCULLIS_TLS_KEY`) are listed by their effect: the addresses and
//! certificate paths in service.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

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
            text: redact(&config.text),
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
    /// The file, secrets redacted.
    text: String,
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

/// `text` with PEM blocks and the values of secret-named keys replaced.
fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_pem = false;
    for line in text.lines() {
        if in_pem {
            in_pem = !line.contains("-----END");
            continue;
        }
        if let Some(at) = line.find("-----BEGIN") {
            out.push_str(&line[..at]);
            out.push_str("<redacted>\n");
            in_pem = !line[at..].contains("-----END");
            continue;
        }
        let secret = line.split_once('=').filter(|(key, _)| {
            let key = key.trim().to_ascii_lowercase();
            !key.starts_with('#') && ["password", "secret", "token"].iter().any(|s| key.contains(s))
        });
        match secret {
            Some((key, _)) => {
                out.push_str(key);
                out.push_str("= \"<redacted>\"\n");
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_material_and_secrets_are_redacted() {
        let text = "[tls]\ncert = \"/etc/cert.pem\"\ninline = \"\"\"\n-----BEGIN PRIVATE KEY-----\nabc\n\
                    -----END PRIVATE KEY-----\n\"\"\"\n[auth]\napi_token = \"hunter2\"\npassword=\"x\"\n\
                    [[route]]\npath = \"/\"\nupstream = \"http://a:1\"\n";
        let out = redact(text);
        assert!(out.contains("/etc/cert.pem"));
        assert!(!out.contains("BEGIN") && !out.contains("abc"), "{out}");
        assert!(!out.contains("hunter2") && !out.contains("\"x\""), "{out}");
        assert!(out.contains("api_token = \"<redacted>\""), "{out}");
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
