//! `[http]`: the plain-HTTP listener's addresses, which may not be TLS
//! ones, the ACME webroot and the redirect to https.

use std::net::SocketAddr;
use std::path::PathBuf;

use toml::de::DeValue;

use super::checker::{Checker, Schema, Table};
use super::listen::{clash, HTTP_PORTS};
use crate::config::{HttpConfig, IpNet};

const HTTP_SCHEMA: Schema = Schema {
    keys: &[
        "listen",
        "acme_webroot",
        "redirect_to_https",
        "proxy_protocol",
        "unknown_host",
    ],
    aliases: &[
        ("root", "acme_webroot"),
        ("webroot", "acme_webroot"),
        ("acme_root", "acme_webroot"),
        ("acme_challenge_dir", "acme_webroot"),
        ("return", "redirect_to_https"),
        ("redirect", "redirect_to_https"),
        ("https_redirect", "redirect_to_https"),
        ("force_https", "redirect_to_https"),
        ("accept_proxy_protocol", "proxy_protocol"),
        ("return_444", "unknown_host"),
        ("default_server", "unknown_host"),
    ],
};

impl Checker<'_> {
    /// `[http]`, and its listen addresses with where each was configured.
    /// `tls_listeners` are the TLS addresses with where each was
    /// configured: a plain listener may not take one of them.
    pub(super) fn http(
        &mut self,
        table: &Table<'_, '_>,
        tls_listeners: &[(SocketAddr, String)],
        trusted: &[IpNet],
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
            proxy_protocol: self.proxy_protocol_in(table, trusted),
            unknown_host: self.unknown_host(table),
        };
        (http, labels)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
