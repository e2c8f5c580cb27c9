//! The client address keys of `[server]` and `[http]`: `trusted_proxies`,
//! `real_ip_header` and `proxy_protocol`.

use toml::de::DeValue;

use super::checker::{Checker, Table};
use crate::config::{IpNet, ProxyProtocolIn, RealIpHeader};

impl Checker<'_> {
    /// `trusted_proxies`: a list of networks or addresses.
    pub(super) fn trusted_proxies(&mut self, table: &Table<'_, '_>) -> Vec<IpNet> {
        const EXAMPLE: &str = "trusted_proxies = [\"10.0.0.0/8\", \"2001:db8::/32\"]";
        let Some(items) = self.list(table, "trusted_proxies", "a list of networks", EXAMPLE) else {
            return Vec::new();
        };
        let key = table.key_path("trusted_proxies");
        let mut nets = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let path = format!("{key}[{index}]");
            let DeValue::String(text) = item.get_ref() else {
                self.type_error(item, path, "a network string", format!("for example: {EXAMPLE}"));
                continue;
            };
            match IpNet::parse(text) {
                Ok(net) => nets.push(net),
                Err(invalid) => self.error(&item.span(), path, invalid.message, invalid.hint),
            }
        }
        nets
    }

    /// `real_ip_header`: `x-forwarded-for` (the default), `forwarded` or
    /// `x-real-ip`, in any case.
    pub(super) fn real_ip_header(&mut self, table: &Table<'_, '_>) -> RealIpHeader {
        const VALID: &str =
            "valid values: \"x-forwarded-for\" (the default), \"forwarded\" (RFC 7239) or \"x-real-ip\"";
        let Some((text, span)) = self.string(table, "real_ip_header", "\"x-forwarded-for\"") else {
            return RealIpHeader::default();
        };
        match text.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => RealIpHeader::XForwardedFor,
            "forwarded" => RealIpHeader::Forwarded,
            "x-real-ip" => RealIpHeader::XRealIp,
            "proxy_protocol" => {
                self.error(
                    &span,
                    table.key_path("real_ip_header"),
                    "`proxy_protocol` is not a header",
                    "write proxy_protocol = \"required\" (or \"optional\") in [server] or [http] to read the PROXY protocol",
                );
                RealIpHeader::default()
            }
            _ => {
                self.error(
                    &span,
                    table.key_path("real_ip_header"),
                    format!("`{text}` is not a header the client address is read from"),
                    VALID,
                );
                RealIpHeader::default()
            }
        }
    }

    /// `proxy_protocol` of `[server]` or `[http]`: `off` (the default),
    /// `optional` or `required`; `true` and `false` are answered with what
    /// to write.
    /// Any mode but `off` needs `trusted` (the server's `trusted_proxies`)
    /// to name someone: nobody else is read.
    pub(super) fn proxy_protocol_in(&mut self, table: &Table<'_, '_>, trusted: &[IpNet]) -> ProxyProtocolIn {
        const VALID: &str = "valid values: \"off\" (the default), \"optional\" (a trusted peer may send a PROXY header) or \"required\" (every connection starts with one, from trusted_proxies)";
        let Some(value) = table.get("proxy_protocol") else {
            return ProxyProtocolIn::Off;
        };
        let key = table.key_path("proxy_protocol");
        let text = match value.get_ref() {
            DeValue::String(text) => text.trim().to_ascii_lowercase(),
            DeValue::Boolean(b) => {
                let write = if *b { "required" } else { "off" };
                self.type_error(
                    value,
                    key,
                    "a string",
                    format!("write proxy_protocol = \"{write}\"; {VALID}"),
                );
                return ProxyProtocolIn::Off;
            }
            _ => {
                self.type_error(value, key, "a string", VALID.to_string());
                return ProxyProtocolIn::Off;
            }
        };
        let mode = match text.as_str() {
            "off" => ProxyProtocolIn::Off,
            "optional" => ProxyProtocolIn::Optional,
            "required" | "on" => ProxyProtocolIn::Required,
            "v1" | "v2" => {
                self.error(
                    &value.span(),
                    key.clone(),
                    format!("`{text}` is a version: both v1 and v2 are read"),
                    format!("write proxy_protocol = \"required\" or \"optional\"; {VALID}"),
                );
                return ProxyProtocolIn::Off;
            }
            _ => {
                self.error(
                    &value.span(),
                    key.clone(),
                    format!("`{text}` is not a proxy_protocol mode"),
                    VALID,
                );
                return ProxyProtocolIn::Off;
            }
        };
        if mode != ProxyProtocolIn::Off && trusted.is_empty() {
            self.error(
                &value.span(),
                key,
                "the PROXY protocol is read only from trusted_proxies, and none is set",
                "add the load balancers' addresses to [server], for example: trusted_proxies = [\"10.0.0.0/8\"] (nginx: set_real_ip_from)",
            );
            return ProxyProtocolIn::Off;
        }
        mode
    }
}
