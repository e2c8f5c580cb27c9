//! `[tls.client_auth]` (client certificates, mutual TLS) and the routes'
//! `require_client_cert`, checked like the rest of the file.
//!
//! The CA bundle named by `ca` is resolved like `cert` and `key` but not
//! read here: the TLS loader reads it, at start and for `portcullis check`,
//! and reports a bad file at the origin recorded here.

use std::ops::Range;

use toml::de::DeValue;
use toml::Spanned;

use super::checker::{Checker, Schema, Table};
use crate::config::{ClientAuthConfig, ClientAuthMode};

const CLIENT_AUTH_SCHEMA: Schema = Schema {
    keys: &["ca", "mode", "pinned_sha256"],
    aliases: &[
        ("ssl_client_certificate", "ca"),
        ("client_ca", "ca"),
        ("ca_file", "ca"),
        ("cafile", "ca"),
        ("ssl_verify_client", "mode"),
        ("verify_client", "mode"),
        ("verify", "mode"),
        ("pins", "pinned_sha256"),
        ("pinned", "pinned_sha256"),
        ("fingerprints", "pinned_sha256"),
        ("pin_sha256", "pinned_sha256"),
    ],
};

const CA_EXAMPLE: &str = "\"/etc/portcullis/clients-ca.pem\"";
const CA_FULL: &str = "/etc/portcullis/clients-ca.pem";
const MODES: &str = "valid values: \"required\" (a handshake without a valid client certificate fails) or \"optional\" (clients without one connect too, and routes with require_client_cert answer them 403)";
const PIN_HINT: &str = "write the leaf certificate's SHA-256 fingerprint as `openssl x509 -in client.pem -noout -fingerprint -sha256` prints it (64 hex digits, colons allowed), for example: pinned_sha256 = [\"5E:9A:...:C1\"]";

impl Checker<'_> {
    /// `[tls.client_auth]` in `tls`; `None` when absent or unusable.
    pub(super) fn client_auth(&mut self, tls: &Table<'_, '_>) -> Option<ClientAuthConfig> {
        self.client_auth_in(tls, "[tls.client_auth]")
    }

    /// The `client_auth` table of `parent`, written `header`
    /// (`[stream.client_auth]` takes the same keys as `[tls.client_auth]`).
    pub(super) fn client_auth_in(
        &mut self,
        parent: &Table<'_, '_>,
        header: &'static str,
    ) -> Option<ClientAuthConfig> {
        let table = self.table(parent, "client_auth", header)?;
        self.check_keys(&table, &CLIENT_AUTH_SCHEMA);
        if table.get("ca").is_none() {
            self.missing(
                &table.span,
                table.key_path("ca"),
                format!("{header} has no `ca`: client certificates are verified against it"),
                format!("add the PEM file of the CA that issues the client certificates, for example: ca = {CA_EXAMPLE}"),
            );
        }
        let ca = self.file_path(&table, "ca", CA_EXAMPLE, CA_FULL);
        let mode = self.client_auth_mode(&table);
        let pinned_sha256 = self.pinned_sha256(&table);
        let (ca, span) = ca?;
        Some(ClientAuthConfig {
            ca,
            ca_origin: self.origin(&span),
            mode,
            pinned_sha256,
        })
    }

    /// `mode`: "required" (the default) or "optional".
    fn client_auth_mode(&mut self, table: &Table<'_, '_>) -> ClientAuthMode {
        let Some(value) = table.get("mode") else {
            return ClientAuthMode::Required;
        };
        let key = table.key_path("mode");
        let text = match value.get_ref() {
            DeValue::String(text) => text.trim(),
            DeValue::Boolean(true) => {
                self.type_error(value, key, "a string", "write mode = \"required\"".to_string());
                return ClientAuthMode::Required;
            }
            _ => {
                self.type_error(value, key, "a string", MODES.to_string());
                return ClientAuthMode::Required;
            }
        };
        match text {
            "required" => return ClientAuthMode::Required,
            "optional" => return ClientAuthMode::Optional,
            _ => {}
        }
        let lower = text.to_ascii_lowercase();
        let (message, hint) = match lower.as_str() {
            "required" | "optional" => (
                format!("`{text}` is not how the mode is written"),
                format!("write mode = \"{lower}\""),
            ),
            "on" | "require" | "mandatory" | "yes" | "true" => (
                format!("`{text}` is not a mode"),
                "write mode = \"required\"".to_string(),
            ),
            "off" | "none" | "no" | "false" => (
                format!("`{text}` is not a mode"),
                "remove [tls.client_auth] to ask for no client certificate".to_string(),
            ),
            "optional_no_ca" => (
                "`optional_no_ca` is not supported: a certificate a client presents is always verified against `ca`".to_string(),
                "write mode = \"optional\"".to_string(),
            ),
            _ => (format!("`{text}` is not a client authentication mode"), MODES.to_string()),
        };
        self.error(&value.span(), key, message, hint);
        ClientAuthMode::Required
    }

    /// `pinned_sha256`: fingerprints of the accepted leaf certificates.
    fn pinned_sha256(&mut self, table: &Table<'_, '_>) -> Vec<[u8; 32]> {
        let Some(value) = table.get("pinned_sha256") else {
            return Vec::new();
        };
        let key = table.key_path("pinned_sha256");
        let DeValue::Array(items) = value.get_ref() else {
            self.type_error(value, key, "a list of fingerprints", PIN_HINT.to_string());
            return Vec::new();
        };
        let mut pins: Vec<([u8; 32], String)> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let path = format!("{key}[{index}]");
            let DeValue::String(text) = item.get_ref() else {
                self.type_error(item, path, "a fingerprint string", PIN_HINT.to_string());
                continue;
            };
            match parse_fingerprint(text) {
                Ok(pin) => match pins.iter().find(|(known, _)| *known == pin) {
                    Some((_, first)) => {
                        let message = format!("this fingerprint is listed twice (also as {first})");
                        self.error(&item.span(), path, message, "remove one of them");
                    }
                    None => pins.push((pin, path)),
                },
                Err((message, hint)) => self.error(&item.span(), path, message, hint),
            }
        }
        pins.into_iter().map(|(pin, _)| pin).collect()
    }

    /// Reports every route with `require_client_cert = true` when no
    /// `[tls.client_auth]` is written: no client would ever have a verified
    /// certificate, so the route would answer every request 403.
    pub(super) fn client_cert_routes(&mut self, top: &Table<'_, '_>) {
        let configured = match top.get("tls").map(Spanned::get_ref) {
            Some(DeValue::Table(tls)) => tls.get("client_auth").is_some(),
            _ => false,
        };
        if configured {
            return;
        }
        let Some(DeValue::Array(routes)) = top.get("route").map(Spanned::get_ref) else {
            return;
        };
        let demanding: Vec<(usize, Range<usize>)> = routes
            .iter()
            .enumerate()
            .filter_map(|(index, route)| match route.get_ref() {
                DeValue::Table(entries) => entries
                    .get("require_client_cert")
                    .filter(|value| matches!(value.get_ref(), DeValue::Boolean(true)))
                    .map(|value| (index, value.span())),
                _ => None,
            })
            .collect();
        for (index, span) in demanding {
            self.missing(
                &span,
                format!("route[{index}].require_client_cert"),
                "this route requires a client certificate, but none is ever asked for: [tls.client_auth] is not configured",
                format!(
                    "add the CA that issues the client certificates, for example:\n[tls.client_auth]\nca = {CA_EXAMPLE}\nmode = \"optional\"   # routes without require_client_cert stay open to every client\nor remove require_client_cert from this route"
                ),
            );
        }
    }
}

/// A SHA-256 fingerprint as 64 hex digits, in either case, with or
/// without colons between the bytes. Errors are (message, hint).
fn parse_fingerprint(raw: &str) -> Result<[u8; 32], (String, String)> {
    let text = raw.trim();
    if let Some((label, rest)) = text.split_once('=') {
        return Err((
            format!("`{text}` has a label (`{label}=`) before the fingerprint"),
            format!("write only the fingerprint: \"{}\"", rest.trim()),
        ));
    }
    let digits: Vec<u8> = text.bytes().filter(|&b| b != b':').collect();
    if let Some(bad) = text.chars().find(|c| *c != ':' && !c.is_ascii_hexdigit()) {
        return Err((
            format!("`{text}` contains `{bad}`, which is not a hex digit"),
            PIN_HINT.to_string(),
        ));
    }
    if digits.len() != 64 {
        let what = match digits.len() {
            40 => " (a SHA-1 fingerprint has 40: use -sha256)",
            32 => " (an MD5 fingerprint has 32: use -sha256)",
            _ => "",
        };
        return Err((
            format!(
                "`{text}` has {} hex digits; a SHA-256 fingerprint has 64{what}",
                digits.len()
            ),
            PIN_HINT.to_string(),
        ));
    }
    // Every digit was checked above, so each converts.
    let value = |digit: u8| char::from(digit).to_digit(16).map_or(0, |v| v as u8);
    let mut pin = [0u8; 32];
    for (byte, pair) in pin.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = value(pair[0]) << 4 | value(pair[1]);
    }
    Ok(pin)
}

#[cfg(test)]
mod tests {
    use super::parse_fingerprint;

    #[test]
    fn fingerprints() {
        let plain = "5e9a".repeat(16);
        let pin = parse_fingerprint(&plain).unwrap();
        assert_eq!(pin[0], 0x5e);
        assert_eq!(pin[31], 0x9a);
        let colons = pin
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(parse_fingerprint(&colons).unwrap(), pin);
        assert!(parse_fingerprint(&format!("sha256 Fingerprint={colons}"))
            .unwrap_err()
            .1
            .contains(&colons));
        assert!(parse_fingerprint(&"ab".repeat(20))
            .unwrap_err()
            .0
            .contains("SHA-1"));
        assert!(parse_fingerprint(&"zz".repeat(32)).unwrap_err().0.contains("`z`"));
        assert!(parse_fingerprint("").unwrap_err().0.contains("0 hex digits"));
    }
}
