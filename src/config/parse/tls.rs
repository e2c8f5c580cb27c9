//! `[tls]` and its `[[tls.certificate]]` entries: the certificate and key
//! paths, the names, the minimum version, bootstrap, watching and polling,
//! HSTS. The cipher suites and groups are checked in `tls_policy`, client
//! certificates in `client_auth`.

use std::time::Duration;

use toml::de::DeValue;

use super::checker::{Checker, Schema, Table};
use super::route::check_host;
use super::tls_policy;
use crate::config::duration::Zero;
use crate::config::{Bootstrap, CertificateSource, TlsConfig, TlsVersion};

pub(super) const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(60);
/// Shorter poll intervals would re-read and parse the certificate files
/// many times a second for nothing: renewals happen every few weeks.
const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);

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
        "ocsp_stapling",
        "client_auth",
        // server_answers.rs
        "unknown_sni",
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
        ("ssl_stapling", "ocsp_stapling"),
        ("stapling", "ocsp_stapling"),
        ("ocsp", "ocsp_stapling"),
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
        ("ssl_reject_handshake", "unknown_sni"),
        ("reject_unknown_sni", "unknown_sni"),
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

impl Checker<'_> {
    pub(super) fn tls(&mut self, table: &Table<'_, '_>) -> TlsConfig {
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
        let ocsp_stapling = self.boolean(table, "ocsp_stapling", false);
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
            ocsp_stapling,
            client_auth,
            unknown_sni: self.unknown_sni(table),
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
}
