//! Listen addresses, shared by `[server]`, `[http]`, `[admin]` and
//! `PORTCULLIS_LISTEN`: an IP literal and a port, each mistake explained
//! with the ports of the listener in question, and the addresses two
//! listeners may not both take.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::ops::Range;

use toml::de::DeValue;
use toml::Spanned;

use super::checker::{Checker, Table};
use crate::config::error::Invalid;

/// One listen address as written: the address, its dotted key and where.
pub(super) struct Listened {
    pub(super) address: SocketAddr,
    pub(super) key: String,
    pub(super) span: Range<usize>,
}

/// The ports shown in the examples of listen messages: the usual public
/// port of the listener, and the one for "this machine only".
#[derive(Debug, Clone, Copy)]
pub(super) struct ListenPorts {
    public: u16,
    local: u16,
}

pub(super) const TLS_PORTS: ListenPorts = ListenPorts {
    public: 443,
    local: 8443,
};

pub(super) const HTTP_PORTS: ListenPorts = ListenPorts {
    public: 80,
    local: 80,
};

pub(super) const STREAM_PORTS: ListenPorts = ListenPorts {
    public: 4222,
    local: 4222,
};

pub(super) const ADMIN_PORTS: ListenPorts = ListenPorts {
    public: 9901,
    local: 9901,
};

impl Checker<'_> {
    /// `listen`: one address or a list of them, each with its key and
    /// where it was written. `None` when absent.
    pub(super) fn listen(&mut self, table: &Table<'_, '_>, ports: ListenPorts) -> Option<Vec<Listened>> {
        let public = ports.public;
        let example = format!("listen = [\"0.0.0.0:{public}\", \"[::]:{public}\"]");
        let value = table.get("listen")?;
        let key = table.key_path("listen");
        let mut entries: Vec<(String, &Spanned<DeValue<'_>>)> = Vec::new();
        match value.get_ref() {
            DeValue::String(_) => entries.push((key.clone(), value)),
            DeValue::Array(items) => {
                if items.is_empty() {
                    self.error(
                        &value.span(),
                        key,
                        "no address to listen on",
                        format!("give at least one, for example: {example}"),
                    );
                    return None;
                }
                for (index, item) in items.iter().enumerate() {
                    entries.push((format!("{key}[{index}]"), item));
                }
            }
            DeValue::Integer(port) => {
                self.type_error(
                    value,
                    key,
                    "an address string or a list of them",
                    format!("give an IP address with the port, for example: listen = \"0.0.0.0:{port}\""),
                );
                return None;
            }
            _ => {
                self.type_error(
                    value,
                    key,
                    "an address string or a list of them",
                    format!("for example: {example}"),
                );
                return None;
            }
        }
        let mut addresses: Vec<Listened> = Vec::new();
        for (path, item) in entries {
            let DeValue::String(text) = item.get_ref() else {
                self.type_error(
                    item,
                    path,
                    "an address string",
                    format!("write each address in double quotes, for example: \"0.0.0.0:{public}\""),
                );
                continue;
            };
            match parse_listen(text, ports) {
                Ok(address) => {
                    if let Some(first) = addresses.iter().find(|l| l.address == address) {
                        let message = format!("{address} is listed twice (also as {})", first.key);
                        self.error(&item.span(), path, message, "remove one of them");
                    } else {
                        addresses.push(Listened {
                            address,
                            key: path,
                            span: item.span(),
                        });
                    }
                }
                Err(invalid) => self.error(&item.span(), path, invalid.message, invalid.hint),
            }
        }
        Some(addresses)
    }
}

/// Why `address` (written `name`) cannot be bound beside `listeners`, each
/// with where it was configured, which are `what` ("TLS listener");
/// `None` when it can.
pub(super) fn clash(
    name: &str,
    address: SocketAddr,
    listeners: &[(SocketAddr, String)],
    what: &str,
) -> Option<String> {
    let (other, other_key) = listeners.iter().find(|(other, _)| same_socket(address, *other))?;
    Some(if *other == address {
        format!("{name} is also a {what} ({other_key})")
    } else {
        format!(
            "{name} overlaps the {what} {other} ({other_key}): both take port {} on that address",
            other.port()
        )
    })
}

/// Whether binding `a` and `b` would take the same socket: the same port
/// (other than 0, where the system picks a free one) and family, and the
/// same address or one of them the wildcard. IPv6 sockets are bound
/// v6-only, so `0.0.0.0:80` and `[::]:80` do not clash.
fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// A listen address: an IP literal and a port. Port 0 is accepted (the
/// system picks a free port), which tests rely on. `ports` are the ports
/// the hints show.
pub(super) fn parse_listen(raw: &str, ports: ListenPorts) -> Result<SocketAddr, Invalid> {
    let ListenPorts { public, local } = ports;
    let any_hint = format!("write an IP address and a port: \"0.0.0.0:{public}\" for every IPv4 address, \"[::]:{public}\" for every IPv6 address, \"127.0.0.1:{local}\" for this machine only");
    let text = raw.trim();
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    if text.is_empty() {
        return Err(Invalid::new("the address is empty", any_hint));
    }
    if let Some((scheme, rest)) = text.split_once("://") {
        return Err(Invalid::new(
            format!("`{text}` has a scheme (`{scheme}://`); listen addresses do not"),
            format!("write just the address and port, such as \"{rest}\""),
        ));
    }
    if text.chars().all(|c| c.is_ascii_digit()) {
        return Err(Invalid::new(
            format!("`{text}` has a port but no IP address"),
            format!("write \"0.0.0.0:{text}\" to listen on every IPv4 address, \"[::]:{text}\" for IPv6, or \"127.0.0.1:{text}\" for this machine only"),
        ));
    }
    if let Some(port) = text
        .strip_prefix(':')
        .filter(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(Invalid::new(
            format!("`{text}` has a port but no IP address"),
            format!("write \"0.0.0.0:{port}\" to listen on every IPv4 address, \"[::]:{port}\" for IPv6, or \"127.0.0.1:{port}\" for this machine only"),
        ));
    }
    // Checked before "no port": `::1:443` is itself a valid IPv6 address,
    // but a port after an unbracketed address is the likelier intent.
    if !text.starts_with('[') && text.matches(':').count() > 1 {
        if let Some((ip, port)) = text.rsplit_once(':') {
            let port_is_number = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
            if port_is_number && ip.parse::<Ipv6Addr>().is_ok() {
                return Err(Invalid::new(
                    format!("`{text}` is an IPv6 address without brackets"),
                    format!(
                        "put the address in brackets: \"[{ip}]:{port}\" (or \"[{text}]:{local}\" if {port} is part of the address)"
                    ),
                ));
            }
        }
    }
    if let Ok(ip) = text
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        let suggestion = SocketAddr::new(ip, local);
        return Err(Invalid::new(
            format!("`{text}` has no port"),
            format!("add one, for example \"{suggestion}\""),
        ));
    }
    if let Some((host, port)) = text.rsplit_once(':') {
        let host_is_ip = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok();
        if !host_is_ip {
            let ip = if host.eq_ignore_ascii_case("localhost") {
                "127.0.0.1"
            } else {
                "0.0.0.0"
            };
            return Err(Invalid::new(
                format!("`{host}` is not an IP address; listen addresses are IP literals, not names"),
                format!("write \"{ip}:{port}\" (\"0.0.0.0:{port}\" listens on every IPv4 address, \"127.0.0.1:{port}\" on this machine only)"),
            ));
        }
        return Err(Invalid::new(
            format!("`{port}` is not a port number"),
            format!("give a port from 1 to 65535, such as \"{host}:{local}\""),
        ));
    }
    Err(Invalid::new(
        format!("`{text}` is not an IP address and port"),
        any_hint,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_diagnostics() {
        assert!(parse_listen("[::]:443", TLS_PORTS).is_ok());
        assert!(parse_listen("127.0.0.1:0", TLS_PORTS).is_ok());
        assert!(parse_listen("443", TLS_PORTS)
            .unwrap_err()
            .hint
            .contains("\"0.0.0.0:443\""));
        assert!(parse_listen(":443", TLS_PORTS)
            .unwrap_err()
            .message
            .contains("no IP address"));
        assert!(parse_listen("127.0.0.1", TLS_PORTS)
            .unwrap_err()
            .message
            .contains("no port"));
        assert!(parse_listen("::1:443", TLS_PORTS)
            .unwrap_err()
            .hint
            .contains("[::1]:443"));
        assert!(parse_listen("localhost:8443", TLS_PORTS)
            .unwrap_err()
            .hint
            .contains("127.0.0.1:8443"));
        assert!(parse_listen("1.2.3.4:http", TLS_PORTS)
            .unwrap_err()
            .message
            .contains("not a port"));
        assert!(parse_listen("https://0.0.0.0:443", TLS_PORTS)
            .unwrap_err()
            .hint
            .contains("\"0.0.0.0:443\""));
    }

    #[test]
    fn listen_hints_use_the_listener_port() {
        let e = parse_listen("0.0.0.0", HTTP_PORTS).unwrap_err();
        assert_eq!(e.hint, "add one, for example \"0.0.0.0:80\"");
        let e = parse_listen("", HTTP_PORTS).unwrap_err();
        assert!(e.hint.contains("\"[::]:80\""), "{}", e.hint);
        assert!(!e.hint.contains("443"), "{}", e.hint);
    }

    #[test]
    fn sockets_that_clash() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(same_socket(a("0.0.0.0:80"), a("0.0.0.0:80")));
        assert!(same_socket(a("127.0.0.1:80"), a("0.0.0.0:80")));
        assert!(same_socket(a("[::]:80"), a("[::1]:80")));
        assert!(!same_socket(a("0.0.0.0:80"), a("[::]:80")));
        assert!(!same_socket(a("127.0.0.1:80"), a("127.0.0.2:80")));
        assert!(!same_socket(a("127.0.0.1:0"), a("127.0.0.1:0")));
        assert!(!same_socket(a("0.0.0.0:80"), a("0.0.0.0:443")));
    }
}
