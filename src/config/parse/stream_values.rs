//! The values of a `[[stream]]`'s single keys: `tls`, `proxy_protocol`,
//! `alpn`, `protocol`, and its `[[stream.route]]` tables (`sni`, exact or
//! `*.` and one label, and `upstream`), each mistake answered with what to
//! write, nginx's spellings included.

use std::collections::HashMap;
use std::net::IpAddr;

use toml::de::DeValue;

use super::checker::{Checker, Schema, Table};
use super::route::check_host;
use super::stream::Kind;
use crate::config::error::Invalid;
use crate::config::{ProxyProtocol, SniRoute, StreamProtocol};

const KINDS: &str = "valid values: \"terminate\" (portcullis shakes hands with the [tls] certificates), \"passthrough\" (the ClientHello's SNI picks the upstream, which shakes hands itself) or \"none\" (plain TCP)";

const STREAM_ROUTE_SCHEMA: Schema = Schema {
    keys: &["sni", "upstream"],
    aliases: &[
        ("server_name", "sni"),
        ("host", "sni"),
        ("hostname", "sni"),
        ("name", "sni"),
        ("ssl_preread_server_name", "sni"),
        ("proxy_pass", "upstream"),
        ("backend", "upstream"),
    ],
};

impl Checker<'_> {
    /// `tls`, required: a stream that silently defaulted to plain TCP
    /// would send in clear what its author meant to protect.
    pub(super) fn stream_kind(&mut self, table: &Table<'_, '_>) -> Option<Kind> {
        let key = table.key_path("tls");
        let Some(value) = table.get("tls") else {
            self.missing(
                &table.span,
                key,
                "this stream has no `tls`",
                format!(
                    "say what it does with TLS: tls = \"terminate\", \"passthrough\" or \"none\"; {KINDS}"
                ),
            );
            return None;
        };
        let text = match value.get_ref() {
            DeValue::String(text) => text.trim(),
            DeValue::Boolean(on) => {
                let word = if *on { "terminate" } else { "none" };
                self.type_error(value, key, "a string", format!("write tls = \"{word}\""));
                return None;
            }
            _ => {
                self.type_error(value, key, "a string", KINDS.to_string());
                return None;
            }
        };
        match text {
            "terminate" => return Some(Kind::Terminate),
            "passthrough" => return Some(Kind::Passthrough),
            "none" => return Some(Kind::Plain),
            _ => {}
        }
        let lower = text.to_ascii_lowercase();
        let instead = match lower.as_str() {
            "terminate" | "passthrough" | "none" => lower.as_str(),
            "ssl" | "on" | "tls" | "true" | "yes" | "offload" => "terminate",
            "ssl_preread" | "preread" | "sni" | "pass" | "pass-through" | "pass_through" | "tcp+sni" => {
                "passthrough"
            }
            "off" | "plain" | "tcp" | "false" | "no" | "" => "none",
            _ => {
                self.error(&value.span(), key, format!("`{text}` is not a TLS mode"), KINDS);
                return None;
            }
        };
        self.error(
            &value.span(),
            key,
            format!("`{text}` is not how the mode is written"),
            format!("write tls = \"{instead}\""),
        );
        None
    }

    /// `proxy_protocol`: "v1" or "v2"; absent is none.
    pub(super) fn proxy_protocol(&mut self, table: &Table<'_, '_>) -> Option<ProxyProtocol> {
        self.proxy_protocol_version(table, "proxy_protocol")
    }

    /// A PROXY protocol version to send at `name`: "v1" or "v2"; absent is
    /// none.
    pub(super) fn proxy_protocol_version(
        &mut self,
        table: &Table<'_, '_>,
        name: &str,
    ) -> Option<ProxyProtocol> {
        let value = table.get(name)?;
        let key = table.key_path(name);
        let general = format!("write {name} = \"v2\" (the binary header) or \"v1\" (the text one nginx's `proxy_protocol on` sends); leave it out to send none");
        let text = match value.get_ref() {
            DeValue::String(text) => text.trim(),
            DeValue::Integer(number) if matches!(number.as_str(), "1" | "2") => {
                let hint = format!("write {name} = \"v{}\"", number.as_str());
                self.type_error(value, key, "a string", hint);
                return None;
            }
            DeValue::Boolean(false) => {
                let hint = format!("leave {name} out to send no header");
                self.type_error(value, key, "\"v1\" or \"v2\"", hint);
                return None;
            }
            _ => {
                self.type_error(value, key, "\"v1\" or \"v2\"", general);
                return None;
            }
        };
        match text {
            "v1" => return Some(ProxyProtocol::V1),
            "v2" => return Some(ProxyProtocol::V2),
            _ => {}
        }
        let hint = match text.to_ascii_lowercase().as_str() {
            "v1" | "1" => format!("write {name} = \"v1\""),
            "v2" | "2" => format!("write {name} = \"v2\""),
            "on" => format!("nginx's `proxy_protocol on` sends version 1: write {name} = \"v1\", or \"v2\" if the upstream takes it"),
            _ => general,
        };
        let message = format!("`{text}` is not a PROXY protocol version");
        self.error(&value.span(), key, message, hint);
        None
    }

    /// `alpn`: the protocol names offered, each once, 1 to 255 bytes.
    pub(super) fn alpn(&mut self, table: &Table<'_, '_>) -> Vec<Vec<u8>> {
        let Some(items) = self.list(table, "alpn", "a list of protocol names", "alpn = [\"mqtt\"]") else {
            return Vec::new();
        };
        let key = table.key_path("alpn");
        let mut protocols: Vec<Vec<u8>> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let path = format!("{key}[{index}]");
            let DeValue::String(name) = item.get_ref() else {
                self.type_error(
                    item,
                    path,
                    "a protocol name",
                    "write each name in double quotes, for example: \"mqtt\"".to_string(),
                );
                continue;
            };
            let bytes = name.as_bytes().to_vec();
            if bytes.is_empty() || bytes.len() > 255 {
                self.error(
                    &item.span(),
                    path,
                    "an ALPN protocol name has 1 to 255 bytes",
                    "for example: \"mqtt\"",
                );
            } else if protocols.contains(&bytes) {
                self.error(
                    &item.span(),
                    path,
                    format!("`{name}` is listed twice"),
                    "remove one of them",
                );
            } else {
                protocols.push(bytes);
            }
        }
        protocols
    }

    /// `protocol`: "nats"; absent is none.
    pub(super) fn stream_protocol(&mut self, table: &Table<'_, '_>) -> Option<StreamProtocol> {
        let (text, span) = self.string(table, "protocol", "\"nats\"")?;
        match text.trim().to_ascii_lowercase().as_str() {
            "nats" if text.trim() == "nats" => Some(StreamProtocol::Nats),
            "nats" => {
                self.error(
                    &span,
                    table.key_path("protocol"),
                    format!("`{text}` is not how the protocol is written"),
                    "write protocol = \"nats\"",
                );
                None
            }
            "tcp" | "tls" | "none" | "" => {
                self.error(
                    &span,
                    table.key_path("protocol"),
                    format!("`{text}` is not a protocol adapter"),
                    "leave protocol out: a stream forwards any protocol's bytes as they are",
                );
                None
            }
            _ => {
                self.error(
                    &span,
                    table.key_path("protocol"),
                    format!("`{text}` is not a protocol portcullis adapts"),
                    "the one protocol adapter is \"nats\"; leave protocol out to forward bytes as they are",
                );
                None
            }
        }
    }

    /// `[[stream.route]]`, each with a valid `sni` no other has and an
    /// `upstream`.
    pub(super) fn sni_routes(&mut self, table: &Table<'_, '_>) -> Vec<SniRoute> {
        let Some(tables) = self.array_of_tables(table, "route", "[[stream.route]]") else {
            return Vec::new();
        };
        let mut routes = Vec::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        for route in tables {
            self.check_keys(&route, &STREAM_ROUTE_SCHEMA);
            let sni = match self.string(&route, "sni", "\"mqtt.example.com\"") {
                Some((text, span)) => match check_sni(text) {
                    Ok(sni) => match seen.get(&sni) {
                        Some(first) => {
                            let message = format!("{first} already routes `{sni}`");
                            self.error(
                                &span,
                                route.key_path("sni"),
                                message,
                                "remove one of the two routes",
                            );
                            None
                        }
                        None => {
                            seen.insert(sni.clone(), route.path.clone());
                            Some(sni)
                        }
                    },
                    Err(invalid) => {
                        self.error(&span, route.key_path("sni"), invalid.message, invalid.hint);
                        None
                    }
                },
                None => {
                    if route.get("sni").is_none() {
                        self.missing(
                            &route.span,
                            route.key_path("sni"),
                            "this route has no `sni`",
                            "add the name clients ask for, for example: sni = \"mqtt.example.com\" (or \"*.example.com\" for any one label in front); connections without a name go to the stream's `default`",
                        );
                    }
                    None
                }
            };
            let upstream = self.tcp_upstream(&route, "upstream");
            if upstream.is_none() && route.get("upstream").is_none() {
                self.missing(
                    &route.span,
                    route.key_path("upstream"),
                    "this route has no `upstream`",
                    "add where its connections go, for example: upstream = \"tcp://broker:8883\"",
                );
            }
            if let (Some(sni), Some(upstream)) = (sni, upstream) {
                routes.push(SniRoute { sni, upstream });
            }
        }
        routes
    }
}

/// A route's `sni`: a DNS name, or `*.` and one, in lower case without a
/// trailing dot. Never an IP address, which RFC 6066 keeps out of SNI.
fn check_sni(raw: &str) -> Result<String, Invalid> {
    let text = raw.trim();
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<IpAddr>().is_ok() {
        return Err(Invalid::new(
            format!("`{text}` is an IP address, and a ClientHello never names one in SNI"),
            "route by the name clients connect with; connections that send no name go to the stream's `default`",
        ));
    }
    if let Some((name, port)) = text.rsplit_once(':') {
        if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Invalid::new(
                format!("`{text}` contains a port; SNI holds only the name"),
                format!("write sni = \"{name}\""),
            ));
        }
    }
    let name = check_host(text.strip_suffix('.').unwrap_or(text), true)?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::check_sni;

    #[test]
    fn sni_names() {
        assert_eq!(check_sni("MQTT.Example.com.").unwrap(), "mqtt.example.com");
        assert_eq!(
            check_sni("*.Internal.example.com").unwrap(),
            "*.internal.example.com"
        );
        assert!(check_sni("10.0.0.1").unwrap_err().message.contains("IP address"));
        assert!(check_sni("[::1]").unwrap_err().message.contains("IP address"));
        assert_eq!(
            check_sni("a.example:8883").unwrap_err().hint,
            "write sni = \"a.example\""
        );
        assert!(check_sni("a.*.example").is_err());
        assert!(check_sni("*").is_err());
        assert!(check_sni("").is_err());
    }
}
