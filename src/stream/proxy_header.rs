//! The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1
//! and 2) a stream sends its upstream first, so that the upstream knows
//! the client's address: the source is the client, the destination the
//! address of the stream's listener that the client reached.
//!
//! The header is written by the proxy only, and always before any byte of
//! the client: a header a client sends itself arrives after it, as data,
//! where an upstream that reads one header does not look for another.

use std::net::{IpAddr, SocketAddr};

use crate::config::ProxyProtocol;

/// Version 2's signature: the twelve bytes every v2 header begins with.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Version 2, command PROXY.
const V2_PROXY: u8 = 0x21;
/// Address family and transport: TCP over IPv4, TCP over IPv6.
const TCP4: u8 = 0x11;
const TCP6: u8 = 0x21;

/// The header for a connection from `client` to `local`.
pub(crate) fn header(version: ProxyProtocol, client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let (client, local) = same_family(client, local);
    match version {
        ProxyProtocol::V1 => v1(client, local),
        ProxyProtocol::V2 => v2(client, local),
    }
}

/// Both addresses in one family: the listeners are bound v6-only, so the
/// two differ only if an IPv4 client reached an IPv6 listener through a
/// mapped address, and then both are written as IPv6.
fn same_family(client: SocketAddr, local: SocketAddr) -> (SocketAddr, SocketAddr) {
    let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    let (client, local) = (canonical(client), canonical(local));
    let v6 = |a: SocketAddr| match a.ip() {
        IpAddr::V4(ip) => SocketAddr::new(IpAddr::V6(ip.to_ipv6_mapped()), a.port()),
        IpAddr::V6(_) => a,
    };
    if client.is_ipv4() == local.is_ipv4() {
        (client, local)
    } else {
        (v6(client), v6(local))
    }
}

/// `PROXY TCP4 <src> <dst> <sport> <dport>\r\n`.
fn v1(client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let family = if client.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        client.ip(),
        local.ip(),
        client.port(),
        local.port()
    )
    .into_bytes()
}

/// Signature, version and command, family, length, then the addresses
/// and ports in network order; no TLVs.
fn v2(client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 36);
    out.extend_from_slice(&V2_SIGNATURE);
    out.push(V2_PROXY);
    match (client.ip(), local.ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            out.push(TCP4);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&src.octets());
            out.extend_from_slice(&dst.octets());
        }
        (src, dst) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(ip) => ip.to_ipv6_mapped().octets(),
                IpAddr::V6(ip) => ip.octets(),
            };
            out.push(TCP6);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(src));
            out.extend_from_slice(&v6(dst));
        }
    }
    out.extend_from_slice(&client.port().to_be_bytes());
    out.extend_from_slice(&local.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn version_1_is_one_line() {
        let h = header(ProxyProtocol::V1, a("192.0.2.7:51000"), a("10.0.0.1:4222"));
        assert_eq!(h, b"PROXY TCP4 192.0.2.7 10.0.0.1 51000 4222\r\n");
        let h = header(ProxyProtocol::V1, a("[2001:db8::7]:51000"), a("[::1]:4222"));
        assert_eq!(h, b"PROXY TCP6 2001:db8::7 ::1 51000 4222\r\n");
    }

    #[test]
    fn version_2_is_the_binary_layout() {
        let h = header(ProxyProtocol::V2, a("192.0.2.7:51000"), a("10.0.0.1:4222"));
        let mut want = V2_SIGNATURE.to_vec();
        want.extend_from_slice(&[0x21, 0x11, 0, 12, 192, 0, 2, 7, 10, 0, 0, 1]);
        want.extend_from_slice(&51000u16.to_be_bytes());
        want.extend_from_slice(&4222u16.to_be_bytes());
        assert_eq!(h, want);
        let h = header(ProxyProtocol::V2, a("[2001:db8::7]:1"), a("[::1]:2"));
        assert_eq!(
            (h[13], u16::from_be_bytes([h[14], h[15]]), h.len()),
            (0x21, 36, 16 + 36)
        );
        assert_eq!(
            &h[16..32],
            &"2001:db8::7".parse::<std::net::Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(&h[48..52], &[0, 1, 0, 2]);
    }

    #[test]
    fn mixed_families_are_written_as_ipv6() {
        let h = header(ProxyProtocol::V2, a("192.0.2.7:1"), a("[2001:db8::1]:2"));
        assert_eq!(h[13], 0x21);
        assert_eq!(
            &h[16..32],
            &"::ffff:192.0.2.7".parse::<std::net::Ipv6Addr>().unwrap().octets()
        );
        // A mapped address on both sides is plain IPv4.
        let h = header(
            ProxyProtocol::V1,
            a("[::ffff:192.0.2.7]:1"),
            a("[::ffff:10.0.0.1]:2"),
        );
        assert_eq!(h, b"PROXY TCP4 192.0.2.7 10.0.0.1 1 2\r\n");
    }
}
