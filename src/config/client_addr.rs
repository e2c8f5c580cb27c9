//! The configuration types of the client address: the trusted proxies'
//! networks, the header that names the client behind them, and whether a
//! listener reads a PROXY protocol header first.

use std::fmt;
use std::net::IpAddr;

use super::error::Invalid;

/// An IP network: an address and a prefix length, written `10.0.0.0/8`,
/// `2001:db8::/32`, or a bare address for one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `text`. An address with bits set past the prefix is refused:
    /// `10.0.0.1/8` is more often a typo for a host than a network.
    pub(crate) fn parse(text: &str) -> Result<IpNet, Invalid> {
        let text = text.trim();
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| {
                Invalid::new(
                    format!("`{text}` is not an IP address or network"),
                    "write an address or a network in CIDR form, for example \"10.0.0.0/8\", \"192.168.1.10\" or \"2001:db8::/32\"",
                )
            })?;
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => {
                    return Err(Invalid::new(
                        format!("`/{p}` is not a prefix length for {addr}"),
                        format!(
                            "give a prefix length from 0 to {max}, for example \"{}\"",
                            example(addr)
                        ),
                    ))
                }
            },
        };
        let net = IpNet { addr, prefix };
        let network = net.network();
        if network != addr {
            return Err(Invalid::new(
                format!("`{text}` has bits set past its /{prefix} prefix"),
                format!("write the network's first address: \"{network}/{prefix}\", or the host alone: \"{addr}\""),
            ));
        }
        Ok(net)
    }

    /// Whether `ip` is in this network. An IPv4-mapped IPv6 address
    /// (`::ffff:10.0.0.1`, what a dual-stack socket reports) is its IPv4
    /// address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask(u128::from(u32::from(net)) << 96, self.prefix)
                    == mask(u128::from(u32::from(ip)) << 96, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask(u128::from(net), self.prefix) == mask(u128::from(ip), self.prefix)
            }
            _ => false,
        }
    }

    /// The address with the bits past the prefix cleared.
    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let bits = mask(u128::from(u32::from(a)) << 96, self.prefix) >> 96;
                IpAddr::V4(u32::try_from(bits).unwrap_or(0).into())
            }
            IpAddr::V6(a) => IpAddr::V6(mask(u128::from(a), self.prefix).into()),
        }
    }
}

/// `value` with only its first `prefix` bits kept.
fn mask(value: u128, prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p if p >= 128 => value,
        p => value & (u128::MAX << (128 - u32::from(p))),
    }
}

fn example(addr: IpAddr) -> &'static str {
    if addr.is_ipv4() {
        "10.0.0.0/8"
    } else {
        "2001:db8::/32"
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `[server] real_ip_header`: where a trusted proxy names the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RealIpHeader {
    /// `X-Forwarded-For`, a list with the client leftmost (the default).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded`, its `for=` parameters.
    Forwarded,
    /// `X-Real-IP`, one address.
    XRealIp,
}

/// `proxy_protocol` of `[server]` and `[http]`: whether a connection
/// starts with a PROXY protocol header (v1 or v2) naming the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProxyProtocolIn {
    /// No header is read (the default).
    #[default]
    Off,
    /// A trusted peer may send one; an untrusted peer's bytes are never
    /// read as one.
    Optional,
    /// Every connection must come from a trusted peer and start with one.
    Required,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let net = IpNet::parse("10.0.0.0/8").unwrap();
        assert!(net.contains("10.255.1.2".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        let v6 = IpNet::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::5".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        let host = IpNet::parse("127.0.0.2").unwrap();
        assert!(host.contains("127.0.0.2".parse().unwrap()));
        assert!(!host.contains("127.0.0.3".parse().unwrap()));
        assert!(IpNet::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(IpNet::parse("::/0").unwrap().contains("::1".parse().unwrap()));
    }

    #[test]
    fn refusals() {
        assert!(IpNet::parse("10.0.0.1/8")
            .unwrap_err()
            .hint
            .contains("10.0.0.0/8"));
        assert!(IpNet::parse("10.0.0.0/33").is_err());
        assert!(IpNet::parse("10.0.0/8").is_err());
        assert!(IpNet::parse("example.com").is_err());
        assert!(IpNet::parse("10.0.0.0/x").is_err());
    }
}
