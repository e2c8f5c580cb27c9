//! `forwarded = true` on a route: an RFC 7239 `Forwarded` element for
//! this hop (`for`, `host`, `proto`), appended to the list earlier
//! proxies wrote, as `X-Forwarded-For` is.

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};

static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Appends `for=<client>;host="<host>";proto=<proto>`.
pub(crate) fn add(headers: &mut HeaderMap, client: IpAddr, host: Option<&HeaderValue>, proto: &HeaderValue) {
    let mut element = Vec::with_capacity(96);
    // An IPv6 address is a quoted, bracketed string (section 6).
    match client {
        IpAddr::V4(ip) => element.extend_from_slice(format!("for={ip}").as_bytes()),
        IpAddr::V6(ip) => element.extend_from_slice(format!("for=\"[{ip}]\"").as_bytes()),
    }
    if let Some(host) = host {
        // A host with a port holds `:`, which a token cannot: quoted. A
        // valid Host holds no `"` or `\` to escape.
        element.extend_from_slice(b";host=\"");
        element.extend_from_slice(host.as_bytes());
        element.push(b'"');
    }
    element.extend_from_slice(b";proto=");
    element.extend_from_slice(proto.as_bytes());
    let mut joined: Vec<u8> = Vec::new();
    for v in headers.get_all(&FORWARDED) {
        joined.extend_from_slice(v.as_bytes());
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(&element);
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(FORWARDED.clone(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_one_element() {
        let mut h = HeaderMap::new();
        h.append(&FORWARDED, HeaderValue::from_static("for=192.0.2.1"));
        let host = HeaderValue::from_static("example.com:8443");
        add(
            &mut h,
            "2001:db8::1".parse().unwrap(),
            Some(&host),
            &HeaderValue::from_static("https"),
        );
        assert_eq!(
            h[&FORWARDED],
            "for=192.0.2.1, for=\"[2001:db8::1]\";host=\"example.com:8443\";proto=https"
        );
        let mut h = HeaderMap::new();
        add(
            &mut h,
            "10.0.0.1".parse().unwrap(),
            None,
            &HeaderValue::from_static("http"),
        );
        assert_eq!(h[&FORWARDED], "for=10.0.0.1;proto=http");
    }
}
