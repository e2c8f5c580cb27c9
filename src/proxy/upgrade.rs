//! Which protocol switches cross the proxy: a WebSocket handshake
//! (RFC 6455 section 4) and nothing else.
//!
//! Any other `Upgrade` token, `h2c` above all, would hand the client a
//! channel to the application that no later request of it passes through:
//! no routing, no `require_client_cert`, no identity headers, no access
//! log. Such a token is removed, with `HTTP2-Settings`, and the request goes
//! on as an ordinary one, which is what nginx does on a location that does
//! not forward `$http_upgrade`. A WebSocket handshake is forwarded only
//! when it is well formed, and the upstream's 101 is tunnelled only when it
//! accepts exactly that handshake.

use aws_lc_rs::digest;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Version;

static HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");
/// RFC 6455 section 1.3: appended to the client's key before hashing.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// What a request head asks for, as far as switching protocols goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Asked {
    /// No upgrade: an ordinary request.
    Nothing,
    /// An upgrade other than a WebSocket handshake, removed: the request
    /// goes on as an ordinary one.
    Removed,
    /// A well-formed WebSocket handshake, and the `Sec-WebSocket-Accept`
    /// its 101 must carry.
    WebSocket(Accept),
    /// `Upgrade: websocket` that is not a valid handshake: the reason.
    BadWebSocket(&'static str),
}

/// The `Sec-WebSocket-Accept` value that answers one client key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept(HeaderValue);

/// Decides what `headers` ask for and, for anything but a WebSocket
/// handshake, removes `Upgrade` and `HTTP2-Settings` from them. Connection
/// tokens naming the removed headers go with the rest of `Connection` when
/// hop-by-hop headers are removed. `get` says whether the method is GET.
pub fn classify(get: bool, version: Version, headers: &mut HeaderMap) -> Asked {
    if !headers.contains_key(header::UPGRADE) {
        // `HTTP2-Settings` means nothing without an upgrade to h2c, and is
        // never meant for the application.
        headers.remove(&HTTP2_SETTINGS);
        return Asked::Nothing;
    }
    let mut values = headers.get_all(header::UPGRADE).iter();
    let one_websocket = match (values.next(), values.next()) {
        (Some(v), None) => v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"websocket"),
        _ => false,
    };
    if one_websocket && version == Version::HTTP_11 && connection_upgrade(headers) {
        return websocket(get, headers);
    }
    headers.remove(header::UPGRADE);
    headers.remove(&HTTP2_SETTINGS);
    Asked::Removed
}

/// True when `Connection` holds the `upgrade` token.
fn connection_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
}

/// The rest of a WebSocket handshake (RFC 6455 section 4.1): GET, one
/// `Sec-WebSocket-Key` of 16 base64-encoded bytes, version 13.
fn websocket(get: bool, headers: &HeaderMap) -> Asked {
    if !get {
        return Asked::BadWebSocket("a WebSocket handshake must be a GET");
    }
    let mut versions = headers.get_all(header::SEC_WEBSOCKET_VERSION).iter();
    match (versions.next(), versions.next()) {
        (Some(v), None) if v.as_bytes().trim_ascii() == b"13" => {}
        _ => return Asked::BadWebSocket("Sec-WebSocket-Version must be 13"),
    }
    let mut keys = headers.get_all(header::SEC_WEBSOCKET_KEY).iter();
    let key = match (keys.next(), keys.next()) {
        (Some(key), None) => key.as_bytes().trim_ascii(),
        _ => return Asked::BadWebSocket("a WebSocket handshake needs one Sec-WebSocket-Key"),
    };
    if !STANDARD.decode(key).is_ok_and(|raw| raw.len() == 16) {
        return Asked::BadWebSocket("Sec-WebSocket-Key is not 16 bytes in base64");
    }
    Asked::WebSocket(Accept::for_key(key))
}

impl Accept {
    /// base64(SHA-1(key + GUID)), RFC 6455 section 4.2.2.
    fn for_key(key: &[u8]) -> Accept {
        let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
        ctx.update(key);
        ctx.update(ACCEPT_GUID);
        let encoded = STANDARD.encode(ctx.finish().as_ref());
        // Base64 is ASCII letters, digits, `+`, `/` and `=`: always a
        // valid header value.
        Accept(HeaderValue::from_str(&encoded).unwrap_or_else(|_| HeaderValue::from_static("")))
    }

    /// Why the upstream's 101 does not accept this handshake, or `Ok`
    /// when it does: `Upgrade: websocket` and the expected
    /// `Sec-WebSocket-Accept`, each exactly once.
    pub fn check(&self, response: &HeaderMap) -> Result<(), &'static str> {
        let mut upgrades = response.get_all(header::UPGRADE).iter();
        match (upgrades.next(), upgrades.next()) {
            (Some(v), None) if v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"websocket") => {}
            _ => return Err("the 101 does not switch to websocket"),
        }
        let mut accepts = response.get_all(header::SEC_WEBSOCKET_ACCEPT).iter();
        match (accepts.next(), accepts.next()) {
            (Some(v), None) if v.as_bytes().trim_ascii() == self.0.as_bytes() => Ok(()),
            (None, _) => Err("the 101 has no Sec-WebSocket-Accept"),
            _ => Err("the 101's Sec-WebSocket-Accept does not answer the client's key"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        h
    }

    const HANDSHAKE: [(&str, &str); 4] = [
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
    ];

    #[test]
    fn the_rfc_example_key_is_accepted_as_rfc_6455_says() {
        let mut h = head(&HANDSHAKE);
        let Asked::WebSocket(accept) = classify(true, Version::HTTP_11, &mut h) else {
            panic!("a valid handshake was not recognised");
        };
        assert_eq!(accept.0, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let good = head(&[
            ("upgrade", "WebSocket"),
            ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ]);
        assert_eq!(accept.check(&good), Ok(()));
        let wrong = head(&[
            ("upgrade", "websocket"),
            ("sec-websocket-accept", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        ]);
        assert!(accept.check(&wrong).is_err());
        let h2c = head(&[
            ("upgrade", "h2c"),
            ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ]);
        assert!(accept.check(&h2c).is_err());
        assert!(accept.check(&head(&[("upgrade", "websocket")])).is_err());
    }

    #[test]
    fn other_tokens_are_removed_with_http2_settings() {
        for token in ["h2c", "foo", "websocket, h2c", "h2c, websocket", "TLS/1.0"] {
            let mut h = head(&[
                ("upgrade", token),
                ("connection", "Upgrade, HTTP2-Settings"),
                ("http2-settings", "AAMAAABkAAQAAP__"),
            ]);
            assert_eq!(
                classify(true, Version::HTTP_11, &mut h),
                Asked::Removed,
                "{token}"
            );
            assert!(!h.contains_key(header::UPGRADE), "{token}");
            assert!(!h.contains_key("http2-settings"), "{token}");
        }
    }

    #[test]
    fn malformed_websocket_handshakes_are_named() {
        let mut h = head(&HANDSHAKE);
        assert!(matches!(
            classify(false, Version::HTTP_11, &mut h),
            Asked::BadWebSocket(_)
        ));
        for (drop, replace) in [
            ("sec-websocket-version", Some("8")),
            ("sec-websocket-version", None),
            ("sec-websocket-key", None),
            ("sec-websocket-key", Some("c2hvcnQ=")),
            ("sec-websocket-key", Some("not base64 at all!!!!!!!")),
        ] {
            let mut h = head(&HANDSHAKE);
            h.remove(drop);
            if let Some(value) = replace {
                h.insert(HeaderName::from_static(drop), HeaderValue::from_static(value));
            }
            assert!(
                matches!(classify(true, Version::HTTP_11, &mut h), Asked::BadWebSocket(_)),
                "{drop}: {replace:?}"
            );
        }
    }

    #[test]
    fn without_connection_upgrade_nothing_is_asked() {
        let mut h = head(&HANDSHAKE);
        h.remove(header::CONNECTION);
        assert_eq!(classify(true, Version::HTTP_11, &mut h), Asked::Removed);
        assert!(!h.contains_key(header::UPGRADE));
    }
}
