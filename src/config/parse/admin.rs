//! `[admin]`: the admin listener's one address, `127.0.0.1:9901` unless
//! written, which no other listener may take.

use std::net::{IpAddr, SocketAddr};

use toml::de::DeValue;

use super::checker::{Checker, Schema, Table};
use super::listen::{clash, parse_listen, ADMIN_PORTS};
use crate::config::AdminConfig;

const DEFAULT_ADMIN_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9901);

const ADMIN_SCHEMA: Schema = Schema {
    keys: &["listen"],
    aliases: &[("address", "listen"), ("bind", "listen"), ("addr", "listen")],
};

impl Checker<'_> {
    /// `[admin]`: one address, `127.0.0.1:9901` unless written.
    /// `tls_listeners` and `plain_listeners` are the addresses of the other
    /// listeners with where each was configured: the admin listener may not
    /// take one of them.
    pub(super) fn admin(
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
}
