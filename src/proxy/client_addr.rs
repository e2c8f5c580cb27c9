//! The client address of a request: the connection's peer (or the address
//! its PROXY protocol header named), unless that peer is one of
//! `trusted_proxies`, in which case it is the rightmost untrusted entry of
//! `real_ip_header`, as nginx's `real_ip_recursive on` reads it. An
//! untrusted peer's headers are never looked at.
//!
//! Computed once per request, early in `proxy::handle`; everything that
//! names the client (access log, `X-Real-IP`, the `X-Forwarded-For` entry
//! this hop appends, `{client_ip}`, a pool's `hash_key = "client_ip"`)
//! reads it with [`ClientAddr::of`].

use std::net::{IpAddr, SocketAddr};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::Extensions;

use super::headers::{X_FORWARDED_FOR, X_REAL_IP};
use super::ConnInfo;
use crate::config::{IpNet, RealIpHeader, ServerConfig};

/// Who the client is, for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddr {
    pub ip: IpAddr,
    /// The client's port; 0 when a header named the address without one.
    pub port: u16,
    /// `ip` rendered as a header value.
    pub value: HeaderValue,
}

impl ClientAddr {
    /// The client at socket address `addr`.
    pub fn from_socket(addr: SocketAddr) -> Self {
        let ip = addr.ip().to_canonical();
        ClientAddr {
            ip,
            port: addr.port(),
            value: render(ip),
        }
    }

    /// The client of the request whose extensions are `ext`, on `conn`:
    /// the address a trusted proxy named, else the connection's.
    pub fn of<'a>(ext: &'a Extensions, conn: &'a ConnInfo) -> &'a ClientAddr {
        ext.get::<ClientAddr>().unwrap_or(&conn.client)
    }
}

/// An IP address renders as ASCII digits, dots, colons and hex letters,
/// all valid in a header value.
fn render(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&ip.to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// `trusted_proxies` and `real_ip_header`, ready for requests.
#[derive(Debug, Default)]
pub struct RealIp {
    trusted: Vec<IpNet>,
    header: RealIpHeader,
}

impl RealIp {
    pub fn new(server: &ServerConfig) -> Self {
        RealIp {
            trusted: server.trusted_proxies.clone(),
            header: server.real_ip_header,
        }
    }

    /// Whether `ip` is one of `trusted_proxies`.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(ip))
    }

    /// The client a trusted peer names in `headers`; `None` when the peer
    /// `peer` is not trusted or named nobody, which leaves the
    /// connection's address.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> Option<ClientAddr> {
        if self.trusted.is_empty() || !self.trusts(peer) {
            return None;
        }
        let (ip, port) = match self.header {
            RealIpHeader::XForwardedFor => {
                self.rightmost_untrusted(list(headers, &X_FORWARDED_FOR).map(parse_entry))
            }
            RealIpHeader::Forwarded => self.rightmost_untrusted(list(headers, &FORWARDED).map(forwarded_for)),
            RealIpHeader::XRealIp => {
                // One value, one address: more than one line is ambiguous
                // and believed in none of its readings.
                let mut values = headers.get_all(&X_REAL_IP).iter();
                match (values.next(), values.next()) {
                    (Some(v), None) => parse_entry(v.to_str().ok()?),
                    _ => None,
                }
            }
        }?;
        let ip = ip.to_canonical();
        Some(ClientAddr {
            ip,
            port,
            value: render(ip),
        })
    }

    /// Walks `entries` from the right: every trusted one is a proxy, and
    /// the first untrusted one is the client. An entry that is not an
    /// address stops the walk at the last good one (as nginx does); a
    /// list of trusted addresses alone names its leftmost.
    fn rightmost_untrusted<I>(&self, entries: I) -> Option<(IpAddr, u16)>
    where
        I: DoubleEndedIterator<Item = Option<(IpAddr, u16)>>,
    {
        let mut found = None;
        for entry in entries.rev() {
            let Some((ip, port)) = entry else { break };
            found = Some((ip, port));
            if !self.trusts(ip) {
                break;
            }
        }
        found
    }
}

/// Every comma-separated element of every `name` line, in order.
fn list<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl DoubleEndedIterator<Item = &'a str> {
    let elements: Vec<&'a str> = headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("\u{0}").split(','))
        .map(str::trim)
        .collect();
    elements.into_iter()
}

/// An address as `X-Forwarded-For` and `X-Real-IP` write it: `1.2.3.4`,
/// `2001:db8::1`, `1.2.3.4:5678` or `[2001:db8::1]:5678`.
fn parse_entry(text: &str) -> Option<(IpAddr, u16)> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some((ip, 0));
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let ip: IpAddr = ip.parse().ok()?;
        return match after {
            "" => Some((ip, 0)),
            port => Some((ip, port.strip_prefix(':')?.parse().ok()?)),
        };
    }
    let addr: SocketAddr = text.parse().ok()?;
    Some((addr.ip(), addr.port()))
}

/// The `for=` parameter of one RFC 7239 element, such as
/// `for=192.0.2.60;proto=http;by=203.0.113.43` or `for="[2001:db8::1]:80"`.
/// An obfuscated identifier (`_hidden`, `unknown`) is no address.
fn forwarded_for(element: &str) -> Option<(IpAddr, u16)> {
    let value = element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim().eq_ignore_ascii_case("for").then_some(value.trim())
    })?;
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    parse_entry(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real_ip(trusted: &[&str], header: RealIpHeader) -> RealIp {
        RealIp {
            trusted: trusted.iter().map(|t| IpNet::parse(t).unwrap()).collect(),
            header,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rightmost_untrusted_of_x_forwarded_for() {
        let r = real_ip(&["10.0.0.0/8"], RealIpHeader::XForwardedFor);
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 1.2.3.4"),
            ("x-forwarded-for", "10.0.0.7"),
        ]);
        assert_eq!(r.resolve(ip("10.0.0.1"), &h).unwrap().ip, ip("1.2.3.4"));
        // An untrusted peer is never believed.
        assert_eq!(r.resolve(ip("192.168.0.1"), &h), None);
        // All trusted: the leftmost.
        let h = headers(&[("x-forwarded-for", "10.1.1.1, 10.2.2.2")]);
        assert_eq!(r.resolve(ip("10.0.0.1"), &h).unwrap().ip, ip("10.1.1.1"));
        // Garbage stops the walk at the last good entry.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, garbage, 10.2.2.2")]);
        assert_eq!(r.resolve(ip("10.0.0.1"), &h).unwrap().ip, ip("10.2.2.2"));
        let h = headers(&[("x-forwarded-for", "garbage")]);
        assert_eq!(r.resolve(ip("10.0.0.1"), &h), None);
        assert_eq!(r.resolve(ip("10.0.0.1"), &HeaderMap::new()), None);
        let h = headers(&[("x-forwarded-for", "[2001:db8::1]:443")]);
        let c = r.resolve(ip("::ffff:10.0.0.1"), &h).unwrap();
        assert_eq!((c.ip, c.port), (ip("2001:db8::1"), 443));
    }

    #[test]
    fn forwarded_and_x_real_ip() {
        let r = real_ip(&["10.0.0.0/8"], RealIpHeader::Forwarded);
        let h = headers(&[(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8::7]:4711\";proto=https, For=10.9.9.9;by=10.0.0.1",
        )]);
        assert_eq!(r.resolve(ip("10.0.0.1"), &h).unwrap().ip, ip("2001:db8::7"));
        let h = headers(&[("forwarded", "for=_hidden")]);
        assert_eq!(r.resolve(ip("10.0.0.1"), &h), None);
        let r = real_ip(&["10.0.0.0/8"], RealIpHeader::XRealIp);
        let h = headers(&[("x-real-ip", "1.2.3.4")]);
        assert_eq!(r.resolve(ip("10.0.0.1"), &h).unwrap().ip, ip("1.2.3.4"));
        let h = headers(&[("x-real-ip", "1.2.3.4"), ("x-real-ip", "5.6.7.8")]);
        assert_eq!(r.resolve(ip("10.0.0.1"), &h), None);
    }
}
