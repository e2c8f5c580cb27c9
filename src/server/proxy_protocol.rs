//! The PROXY protocol header (v1 text, v2 binary) a trusted load balancer
//! sends before anything else on a connection, naming the client it
//! accepted (`proxy_protocol` in `[server]` and `[http]`).
//!
//! Only a peer in `trusted_proxies` is read: with `required` any other is
//! closed, and with `optional` its bytes are left alone, so a client can
//! never name itself. No byte past the header is consumed: what follows
//! (a TLS ClientHello, an HTTP request) is read by the usual path. The
//! header may arrive over several TCP segments; the caller bounds the
//! whole read with the handshake deadline.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::conn::ConnContext;
use super::limit::{IpSlot, PerIp};
use crate::config::ProxyProtocolIn;

/// The v2 signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The v1 line's start.
const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest v1 line, CRLF included (the specification's 107).
const V1_MAX: usize = 107;
/// The largest v2 address block read: the addresses and TLVs of any
/// sender fit with room to spare, and no more is held per connection.
const V2_MAX_BODY: usize = 4096;

/// Why a connection was closed instead of read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum Refused {
    #[error("PROXY protocol required but the peer is not in trusted_proxies")]
    Untrusted,
    #[error("bad PROXY protocol header: {0}")]
    Bad(&'static str),
    #[error("connection closed or failed before the PROXY protocol header ended")]
    Eof,
}

/// A connection accepted on a listener with `proxy_protocol` on: its
/// header read under `handshake_timeout`, then its place under
/// `max_connections_per_ip` taken for the client the header named (the
/// limit is the client's, not the balancer's). `None` when the connection
/// was closed instead.
pub(super) async fn arrive(
    ctx: &ConnContext,
    mut tcp: TcpStream,
    peer: SocketAddr,
    mode: ProxyProtocolIn,
    per_ip: Option<&Arc<PerIp>>,
) -> Option<(TcpStream, SocketAddr, Option<IpSlot>)> {
    let trusted = ctx.live.load().real_ip.trusts(peer.ip());
    let client = match tokio::time::timeout(ctx.handshake_timeout, read(&mut tcp, mode, trusted)).await {
        Ok(Ok(named)) => named.unwrap_or(peer),
        Ok(Err(refused)) => {
            tracing::debug!(%peer, error = %refused, "connection closed");
            return None;
        }
        Err(_) => {
            tracing::debug!(%peer, timeout = ?ctx.handshake_timeout, "connection closed: no PROXY protocol header in time");
            return None;
        }
    };
    let slot = match per_ip {
        None => None,
        Some(per_ip) => match per_ip.acquire(client.ip()) {
            Some(slot) => Some(slot),
            None => {
                super::refuse(tcp, client, ctx);
                return None;
            }
        },
    };
    Some((tcp, client, slot))
}

/// Reads the PROXY header of `tcp`, a connection from `peer`, as `mode`
/// and `trusted` allow: the client it names, or `None` to keep `peer`
/// (mode off, an untrusted peer under `optional`, no header under
/// `optional`, a `LOCAL` or `UNKNOWN` header).
pub(crate) async fn read(
    tcp: &mut TcpStream,
    mode: ProxyProtocolIn,
    trusted: bool,
) -> Result<Option<SocketAddr>, Refused> {
    match mode {
        ProxyProtocolIn::Off => return Ok(None),
        ProxyProtocolIn::Required if !trusted => return Err(Refused::Untrusted),
        ProxyProtocolIn::Optional if !trusted => return Ok(None),
        ProxyProtocolIn::Optional => {
            if !begins_with_header(tcp).await? {
                return Ok(None);
            }
        }
        ProxyProtocolIn::Required => {}
    }
    let mut start = [0u8; 8];
    tcp.read_exact(&mut start).await.map_err(|_| Refused::Eof)?;
    if start == V2_SIGNATURE[..8] {
        read_v2(tcp, start).await
    } else if start.starts_with(V1_PREFIX) {
        read_v1(tcp, start).await
    } else {
        Err(Refused::Bad("no PROXY signature"))
    }
}

/// Whether the first bytes the peer sent (peeked, not consumed) are a
/// PROXY header's. A prefix of a signature that stops short waits for
/// more: `P` may begin `PROXY` or `POST`.
async fn begins_with_header(tcp: &TcpStream) -> Result<bool, Refused> {
    let mut buf = [0u8; 8];
    loop {
        let n = tcp.peek(&mut buf).await.map_err(|_| Refused::Eof)?;
        if n == 0 {
            return Err(Refused::Eof);
        }
        let seen = &buf[..n];
        let v1 = V1_PREFIX.starts_with(&seen[..n.min(V1_PREFIX.len())]);
        let v2 = V2_SIGNATURE.starts_with(seen);
        if !v1 && !v2 {
            return Ok(false);
        }
        if n >= V1_PREFIX.len() && v1 || n == buf.len() {
            return Ok(true);
        }
        // The rest of a split header is on its way; a peek would return
        // the same bytes at once, so wait a moment before looking again.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn read_v1(tcp: &mut TcpStream, start: [u8; 8]) -> Result<Option<SocketAddr>, Refused> {
    let mut line = Vec::with_capacity(V1_MAX);
    line.extend_from_slice(&start);
    // One byte at a time: a read past the CRLF would take the client's
    // first bytes with it.
    while !line.ends_with(b"\r\n") {
        if line.len() >= V1_MAX {
            return Err(Refused::Bad("v1 line longer than 107 bytes"));
        }
        let byte = tcp.read_u8().await.map_err(|_| Refused::Eof)?;
        line.push(byte);
    }
    parse_v1(&line)
}

async fn read_v2(tcp: &mut TcpStream, start: [u8; 8]) -> Result<Option<SocketAddr>, Refused> {
    let mut head = [0u8; 16];
    head[..8].copy_from_slice(&start);
    tcp.read_exact(&mut head[8..]).await.map_err(|_| Refused::Eof)?;
    let len = v2_length(&head)?;
    let mut body = vec![0u8; len];
    tcp.read_exact(&mut body).await.map_err(|_| Refused::Eof)?;
    parse_v2(&head, &body)
}

/// A whole v1 line, CRLF included.
pub(crate) fn parse_v1(line: &[u8]) -> Result<Option<SocketAddr>, Refused> {
    let text = line
        .strip_suffix(b"\r\n")
        .and_then(|l| std::str::from_utf8(l).ok())
        .ok_or(Refused::Bad("v1 line not ASCII or not ended by CRLF"))?;
    let mut fields = text.split(' ');
    if fields.next() != Some("PROXY") {
        return Err(Refused::Bad("v1 line does not start with PROXY"));
    }
    let family = fields.next().ok_or(Refused::Bad("v1 line without a family"))?;
    if family == "UNKNOWN" {
        // The sender could not tell: the rest of the line is ignored.
        return Ok(None);
    }
    let v4 = match family {
        "TCP4" => true,
        "TCP6" => false,
        _ => return Err(Refused::Bad("v1 family is not TCP4, TCP6 or UNKNOWN")),
    };
    let (Some(src), Some(_dst), Some(src_port), Some(dst_port), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(Refused::Bad("v1 line is not four addresses and ports"));
    };
    let ip: IpAddr = if v4 {
        IpAddr::V4(
            src.parse()
                .map_err(|_| Refused::Bad("v1 source is not an IPv4 address"))?,
        )
    } else {
        IpAddr::V6(
            src.parse()
                .map_err(|_| Refused::Bad("v1 source is not an IPv6 address"))?,
        )
    };
    let port = v1_port(src_port)?;
    v1_port(dst_port)?;
    Ok(Some(SocketAddr::new(ip, port)))
}

/// A v1 port: decimal, no sign, no leading zero, at most 65535.
fn v1_port(text: &str) -> Result<u16, Refused> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits || (text.len() > 1 && text.starts_with('0')) {
        return Err(Refused::Bad("v1 port is not a decimal number"));
    }
    text.parse().map_err(|_| Refused::Bad("v1 port is above 65535"))
}

/// The length of the address block that follows a v2 header's first 16
/// bytes.
pub(crate) fn v2_length(head: &[u8; 16]) -> Result<usize, Refused> {
    if head[..12] != V2_SIGNATURE {
        return Err(Refused::Bad("no v2 signature"));
    }
    if head[12] >> 4 != 2 {
        return Err(Refused::Bad("v2 version is not 2"));
    }
    let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
    if len > V2_MAX_BODY {
        return Err(Refused::Bad("v2 address block too large"));
    }
    Ok(len)
}

/// A v2 header: its first 16 bytes and the block after them.
pub(crate) fn parse_v2(head: &[u8; 16], body: &[u8]) -> Result<Option<SocketAddr>, Refused> {
    match head[12] & 0x0f {
        // LOCAL: the balancer's own health check; the peer is the client.
        0 => return Ok(None),
        1 => {}
        _ => return Err(Refused::Bad("v2 command is neither LOCAL nor PROXY")),
    }
    // The transport (low nibble) must be a stream; the family says the
    // address layout.
    match head[13] {
        0x11 => {
            let b: &[u8; 12] = body
                .get(..12)
                .and_then(|b| b.try_into().ok())
                .ok_or(Refused::Bad("v2 IPv4 block too short"))?;
            let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            Ok(Some(SocketAddr::new(
                IpAddr::V4(ip),
                u16::from_be_bytes([b[8], b[9]]),
            )))
        }
        0x21 => {
            let b: &[u8; 36] = body
                .get(..36)
                .and_then(|b| b.try_into().ok())
                .ok_or(Refused::Bad("v2 IPv6 block too short"))?;
            let mut src = [0u8; 16];
            src.copy_from_slice(&b[..16]);
            let ip = Ipv6Addr::from(src);
            Ok(Some(SocketAddr::new(
                IpAddr::V6(ip).to_canonical(),
                u16::from_be_bytes([b[32], b[33]]),
            )))
        }
        // UNSPEC, or a family (Unix sockets, datagrams) with no client
        // address to use: the peer stays the client.
        0x00 | 0x31 | 0x32 | 0x12 | 0x22 => Ok(None),
        _ => Err(Refused::Bad("v2 family or transport unknown")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProxyProtocol;
    use crate::stream::proxy_header::header;
    use proptest::prelude::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn v2(bytes: &[u8]) -> Result<Option<SocketAddr>, Refused> {
        let head: [u8; 16] = bytes[..16].try_into().unwrap();
        let len = v2_length(&head)?;
        parse_v2(&head, &bytes[16..16 + len])
    }

    #[test]
    fn reads_what_the_stream_writer_writes() {
        for (client, local) in [
            ("203.0.113.9:51234", "10.0.0.1:443"),
            ("[2001:db8::9]:4711", "[::1]:443"),
        ] {
            let line = header(ProxyProtocol::V1, a(client), a(local));
            assert_eq!(parse_v1(&line), Ok(Some(a(client))));
            assert_eq!(
                v2(&header(ProxyProtocol::V2, a(client), a(local))),
                Ok(Some(a(client)))
            );
        }
    }

    #[test]
    fn v1_refusals() {
        assert_eq!(parse_v1(b"PROXY UNKNOWN\r\n"), Ok(None));
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        ] {
            assert!(parse_v1(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn v2_local_unspec_and_refusals() {
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(v2(&local), Ok(None));
        let mut short = V2_SIGNATURE.to_vec();
        short.extend_from_slice(&[0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert!(v2(&short).is_err());
        let mut version = V2_SIGNATURE.to_vec();
        version.extend_from_slice(&[0x11, 0x11, 0, 0]);
        assert!(v2(&version).is_err());
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert!(v2(&huge).is_err());
    }

    proptest! {
        #[test]
        fn any_bytes_are_an_answer_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
            let _ = parse_v1(&bytes);
            let mut framed = V2_SIGNATURE.to_vec();
            framed.extend_from_slice(&bytes);
            if framed.len() >= 16 {
                let head: [u8; 16] = framed[..16].try_into().unwrap();
                if let Ok(len) = v2_length(&head) {
                    let body = &framed[16..];
                    let _ = parse_v2(&head, &body[..len.min(body.len())]);
                }
            }
        }

        #[test]
        fn every_v1_line_of_valid_addresses_is_read_back(a1 in any::<[u8; 4]>(), p1 in any::<u16>(), a2 in any::<[u8; 16]>(), p2 in any::<u16>()) {
            let client = SocketAddr::new(IpAddr::V4(a1.into()), p1);
            let line = header(ProxyProtocol::V1, client, a("10.0.0.1:443"));
            prop_assert_eq!(parse_v1(&line), Ok(Some(client)));
            let client6 = SocketAddr::new(IpAddr::V6(a2.into()).to_canonical(), p2);
            let bytes = header(ProxyProtocol::V2, client6, a("[::1]:443"));
            prop_assert_eq!(v2(&bytes), Ok(Some(client6)));
        }
    }
}
