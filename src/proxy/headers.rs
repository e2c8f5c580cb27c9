//! Header rewriting between client and upstream: hop-by-hop removal in both
//! directions, and the forwarding headers an application behind a proxy
//! expects (X-Forwarded-For/Proto/Host, X-Real-IP).
//!
//! Everything here edits a `HeaderMap` in place; it never allocates a new map.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static UPGRADE: HeaderValue = HeaderValue::from_static("upgrade");

/// Removes the headers that describe one hop and must not cross the proxy
/// (RFC 9110 section 7.6.1): `Connection` and every header it names, plus the
/// fixed list. With `keep_upgrade`, `Upgrade` survives and `Connection` is
/// rewritten to `upgrade` alone, which is what an upgrade needs on the next hop.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages carry none of these: one pass over the names, with no
    // hashing, is cheaper than a removal (a hash and a probe) for each.
    if !headers.keys().any(is_hop_by_hop) {
        if keep_upgrade {
            headers.insert(header::CONNECTION, UPGRADE.clone());
        }
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in named {
            if keep_upgrade && name == header::UPGRADE {
                continue;
            }
            headers.remove(&name);
        }
        headers.remove(header::CONNECTION);
    }
    headers.remove(&KEEP_ALIVE);
    headers.remove(header::TE);
    headers.remove(header::TRAILER);
    headers.remove(header::TRANSFER_ENCODING);
    headers.remove(&PROXY_CONNECTION);
    if keep_upgrade {
        headers.insert(header::CONNECTION, UPGRADE.clone());
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// The hop-by-hop headers of the fixed list, `Connection` and `Upgrade`.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TE
        || name == header::TRAILER
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

/// Removes request header names that contain `_` and returns how many
/// were removed. CGI, WSGI and PHP stacks fold `_` and `-` into one
/// variable name, so `X_Client_Cert_Verify` would pass there for the
/// `X-Client-Cert-Verify` this proxy sets, and `Transfer_Encoding` for the
/// framing it checked. With `keep` (`underscores_in_headers`), only the
/// names that fold onto such a header go.
pub fn drop_underscored(headers: &mut HeaderMap, keep: bool) -> usize {
    // Names are lowercase, and almost no request has one with `_`: a look
    // over the names decides without hashing anything.
    if !headers
        .keys()
        .any(|name| name.as_str().as_bytes().contains(&b'_'))
    {
        return 0;
    }
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().as_bytes().contains(&b'_') && (!keep || folds_onto_ours(name.as_str())))
        .cloned()
        .collect();
    for name in &doomed {
        headers.remove(name);
    }
    doomed.len()
}

/// True when `name` (lowercase, with `_`), read with `-` for `_`, is a
/// header this proxy sets, checks or removes.
fn folds_onto_ours(name: &str) -> bool {
    let folded = name.replace('_', "-");
    folded.starts_with("x-forwarded-")
        || folded.starts_with("x-client-cert-")
        || matches!(
            folded.as_str(),
            "x-real-ip"
                | "forwarded"
                | "host"
                | "transfer-encoding"
                | "content-length"
                | "connection"
                | "upgrade"
                | "keep-alive"
                | "proxy-connection"
                | "te"
                | "trailer"
        )
}

/// Adds the forwarding headers. `client_ip` is the peer address of the
/// client connection, already rendered once per connection; `proto` is
/// `https` or `http`.
pub fn add_forwarding(
    headers: &mut HeaderMap,
    client_ip: &HeaderValue,
    proto: &HeaderValue,
    host: Option<&HeaderValue>,
) {
    // X-Forwarded-For keeps what earlier proxies wrote and appends this hop,
    // like nginx's $proxy_add_x_forwarded_for. Several header lines are
    // folded into one list, which is what applications parse.
    let forwarded_for = match headers.get(&X_FORWARDED_FOR) {
        None => client_ip.clone(),
        Some(_) => {
            let mut joined: Vec<u8> = Vec::with_capacity(64);
            for v in headers.get_all(&X_FORWARDED_FOR) {
                joined.extend_from_slice(v.as_bytes());
                joined.extend_from_slice(b", ");
            }
            joined.extend_from_slice(client_ip.as_bytes());
            HeaderValue::from_bytes(&joined).unwrap_or_else(|_| client_ip.clone())
        }
    };
    headers.insert(X_FORWARDED_FOR.clone(), forwarded_for);
    headers.insert(X_REAL_IP.clone(), client_ip.clone());
    headers.insert(X_FORWARDED_PROTO.clone(), proto.clone());
    match host {
        Some(host) => {
            headers.insert(X_FORWARDED_HOST.clone(), host.clone());
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
}

/// True when `value` is a `host[:port]` as RFC 9110 allows in Host: a
/// registered name or IPv4 address, or an IPv6 literal in brackets, and an
/// optional numeric port. No user info, path, space or control character.
pub fn valid_host(value: &[u8]) -> bool {
    let port = if value.first() == Some(&b'[') {
        let Some(end) = value.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &value[1..end];
        if literal.is_empty()
            || !literal
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match &value[end + 1..] {
            [] => None,
            [b':', port @ ..] => Some(port),
            _ => return false,
        }
    } else {
        let (host, port) = match value.iter().rposition(|&b| b == b':') {
            Some(i) => (&value[..i], Some(&value[i + 1..])),
            None => (value, None),
        };
        if host.is_empty() || !host.iter().all(|&b| is_reg_name_byte(b)) {
            return false;
        }
        port
    };
    match port {
        None => true,
        // Same-length digit strings compare like the numbers they spell.
        Some(p) => p.len() <= 5 && p.iter().all(u8::is_ascii_digit) && (p.len() < 5 || p <= &b"65535"[..]),
    }
}

/// RFC 3986 reg-name: unreserved, percent-encoded and sub-delims, without
/// the ones that would let a value smuggle user info or a path.
fn is_reg_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'%'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
        )
}

/// Marks an HTTP/1.1 request whose head declared both Content-Length and
/// Transfer-Encoding. hyper drops the Content-Length before the proxy sees
/// the head, so the listener finds this in the bytes it read (see
/// `server::framing`) and the proxy refuses the request.
#[derive(Debug, Clone, Copy)]
pub struct BothFramings;

/// True when a request has no Transfer-Encoding, or exactly one header line
/// whose whole value is `chunked` (any case, optional whitespace).
pub fn transfer_encoding_is_plain_chunked(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(header::TRANSFER_ENCODING).iter();
    match (values.next(), values.next()) {
        (None, _) => true,
        (Some(v), None) => v.to_str().is_ok_and(|v| v.trim().eq_ignore_ascii_case("chunked")),
        (Some(_), Some(_)) => false,
    }
}

/// Why a response's framing cannot be passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadFraming {
    /// Both Content-Length and Transfer-Encoding (RFC 9112 section 6.3:
    /// "ought to be handled as an error"; nginx answers 502 too).
    Both,
    /// Content-Length values that differ or do not parse.
    Lengths,
}

impl BadFraming {
    pub fn describe(self) -> &'static str {
        match self {
            BadFraming::Both => "upstream sent both Content-Length and Transfer-Encoding",
            BadFraming::Lengths => "upstream sent conflicting Content-Length values",
        }
    }
}

/// Makes a response's framing unambiguous before it is passed on: a
/// repeated or listed Content-Length of one value becomes a single value.
/// A response whose body could be delimited two ways is refused.
pub fn normalize_response_length(headers: &mut HeaderMap) -> Result<(), BadFraming> {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        if headers.contains_key(header::CONTENT_LENGTH) {
            return Err(BadFraming::Both);
        }
        return Ok(());
    }
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    let (Some(first), second) = (values.next(), values.next()) else {
        return Ok(());
    };
    if second.is_none() && !first.as_bytes().contains(&b',') {
        return Ok(());
    }
    let mut agreed: Option<u64> = None;
    for v in headers.get_all(header::CONTENT_LENGTH) {
        let Ok(text) = v.to_str() else {
            return Err(BadFraming::Lengths);
        };
        for part in text.split(',') {
            let Ok(n) = part.trim().parse::<u64>() else {
                return Err(BadFraming::Lengths);
            };
            if agreed.is_some_and(|a| a != n) {
                return Err(BadFraming::Lengths);
            }
            agreed = Some(n);
        }
    }
    match agreed {
        Some(n) => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
            Ok(())
        }
        None => Err(BadFraming::Lengths),
    }
}

/// HTTP/2 allows the cookie header to be split into several fields; an
/// HTTP/1.1 upstream expects one (RFC 9113 section 8.2.3).
pub fn join_cookies(headers: &mut HeaderMap) {
    let mut values = headers.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (values.next(), values.next()) else {
        return;
    };
    let mut joined: Vec<u8> = first.as_bytes().to_vec();
    for v in headers.get_all(header::COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(v.as_bytes());
    }
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn connection_and_named_headers_go() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("transfer-encoding", "chunked"),
            ("proxy-connection", "keep-alive"),
            ("upgrade", "websocket"),
            ("x-kept", "yes"),
        ]);
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x-kept"], "yes");
    }

    #[test]
    fn upgrade_survives_when_upgrading() {
        let mut h = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "k"),
        ]);
        remove_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["sec-websocket-key"], "k");
    }

    #[test]
    fn underscored_names_go_unless_kept_and_spoofing_goes_always() {
        let pairs = [
            ("x_client_cert_verify", "SUCCESS"),
            ("transfer_encoding", "chunked"),
            ("x_forwarded_for", "10.0.0.1"),
            ("x_real_ip", "10.0.0.1"),
            ("my_app_token", "t"),
            ("x-normal", "n"),
        ];
        let mut h = map(&pairs);
        assert_eq!(drop_underscored(&mut h, false), 5);
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-normal"], "n");

        let mut h = map(&pairs);
        assert_eq!(drop_underscored(&mut h, true), 4);
        assert_eq!(h.len(), 2);
        assert_eq!(h["my_app_token"], "t");

        let mut h = map(&[("x-normal", "n")]);
        assert_eq!(drop_underscored(&mut h, false), 0);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn forwarded_for_is_appended() {
        let mut h = map(&[("x-forwarded-for", "10.0.0.1"), ("x-forwarded-for", "10.0.0.2")]);
        let ip = HeaderValue::from_static("192.0.2.7");
        let https = HeaderValue::from_static("https");
        add_forwarding(
            &mut h,
            &ip,
            &https,
            Some(&HeaderValue::from_static("example.com")),
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 10.0.0.2, 192.0.2.7");
        assert_eq!(h["x-real-ip"], "192.0.2.7");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "example.com");
    }

    #[test]
    fn host_values() {
        for ok in [
            "localhost",
            "example.com:443",
            "127.0.0.1:8443",
            "[::1]",
            "[::1]:443",
            "a-b.example",
            "x:",
        ] {
            assert!(valid_host(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "exa mple.com",
            "localhost:notaport",
            "user@localhost",
            "a/b",
            "[::1",
            "[zz]",
            "h:65536",
            ":80",
            "[::1]x",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn cookies_are_joined() {
        let mut h = map(&[("cookie", "a=1"), ("cookie", "b=2")]);
        join_cookies(&mut h);
        assert_eq!(h.get_all("cookie").iter().count(), 1);
        assert_eq!(h["cookie"], "a=1; b=2");
    }
}
