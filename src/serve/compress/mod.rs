//! Response compression: whether a response may be compressed, the
//! encoding the client and the configuration agree on, and the response
//! rewritten for it (`Content-Encoding`, `Vary`, a weakened `ETag`, no
//! `Content-Length`) around a body that compresses as it streams.
//!
//! Never compressed: a response to HEAD or to a Range request, 1xx
//! (a WebSocket's 101 included), 204, 206 and 304, one with
//! `Content-Encoding` already, `Cache-Control: no-transform`, a type not
//! listed, or a body of known length under `min_length` (or empty).

mod body;
mod encoder;
mod negotiate;

use http::header::{
    HeaderMap, HeaderValue, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, ETAG, RANGE, VARY,
};
use http::{Method, Request, Response, StatusCode};
use http_body::Body as _;

use std::sync::Arc;

use crate::config::{Compression, Config, RouteConfig};
use crate::proxy::body::ProxyBody;
use negotiate::Accepted;

static ACCEPT_ENCODING_VALUE: HeaderValue = HeaderValue::from_static("Accept-Encoding");

/// The service's compression settings, built once.
#[derive(Debug)]
pub(crate) struct Settings {
    /// `[compression]`: for answers given before a route was chosen.
    global: Option<Arc<Compression>>,
    /// Whether any route or `[compression]` compresses: when none does, no
    /// request is even looked at.
    any: bool,
}

impl Settings {
    pub(crate) fn new(config: &Config) -> Settings {
        Settings {
            global: config.compression.clone(),
            any: config.compression.is_some() || config.routes.iter().any(|r| r.compression.is_some()),
        }
    }

    /// What a request asks of compression, if anything may be compressed.
    pub(crate) fn ask<B>(&self, req: &Request<B>) -> Option<Asked> {
        self.any.then(|| Asked::of(req))
    }

    /// `response` as it leaves: compressed as the route that answered it
    /// (`route`'s `compression`), or `[compression]` without one, allows.
    pub(crate) fn outgoing(
        &self,
        response: Response<ProxyBody>,
        asked: Option<&Asked>,
        route: Option<&RouteConfig>,
    ) -> Response<ProxyBody> {
        let policy = match route {
            Some(route) => route.compression.as_ref(),
            None => self.global.as_ref(),
        };
        match (asked, policy) {
            (Some(asked), Some(policy)) => apply(response, asked, policy),
            _ => response,
        }
    }
}

/// What compression needs of a request, taken before it is forwarded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Asked {
    accepted: Accepted,
    /// HEAD, or a Range request: the answer is sent as it is.
    as_is: bool,
}

impl Asked {
    pub(crate) fn of<B>(req: &Request<B>) -> Asked {
        let accepted = Accepted::of(req.headers());
        let as_is = req.method() == Method::HEAD || req.headers().contains_key(RANGE);
        Asked { accepted, as_is }
    }
}

/// `response` compressed as `policy` and the client agree, or as it is.
fn apply(mut response: Response<ProxyBody>, asked: &Asked, policy: &Compression) -> Response<ProxyBody> {
    if !compressible(&response, policy) {
        return response;
    }
    // The answer depends on Accept-Encoding from here on, whether or not
    // this client gets it compressed: a cache must know.
    add_vary(response.headers_mut());
    if asked.as_is || !asked.accepted.any_named() {
        return response;
    }
    let Some(encoding) = asked.accepted.choose(&policy.encodings) else {
        return response;
    };
    let encoder = match encoder::Encoder::new(encoding, policy.level) {
        Ok(encoder) => encoder,
        Err(error) => {
            tracing::debug!(%error, encoding = encoding.token(), "encoder could not start; sending the body as it is");
            return response;
        }
    };
    let headers = response.headers_mut();
    headers.insert(CONTENT_ENCODING, HeaderValue::from_static(encoding.token()));
    headers.remove(CONTENT_LENGTH);
    headers.remove(ACCEPT_RANGES);
    weaken_etag(headers);
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, body.wrap(|inner| body::Compressed::new(inner, encoder)))
}

/// Whether `policy` allows compressing this response at all.
fn compressible(response: &Response<ProxyBody>, policy: &Compression) -> bool {
    let status = response.status();
    if status.is_informational()
        || matches!(
            status,
            StatusCode::NO_CONTENT | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED
        )
    {
        return false;
    }
    let headers = response.headers();
    if headers.contains_key(CONTENT_ENCODING) || headers.contains_key(CONTENT_RANGE) || no_transform(headers)
    {
        return false;
    }
    let known = response.body().size_hint().exact().or_else(|| {
        headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    });
    if known.is_some_and(|n| n == 0 || n < policy.min_length) {
        return false;
    }
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| type_listed(v, &policy.types))
}

/// `Cache-Control: no-transform`, in any of its lines.
fn no_transform(headers: &HeaderMap) -> bool {
    headers
        .get_all(CACHE_CONTROL)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|d| d.trim_ascii().eq_ignore_ascii_case(b"no-transform"))
}

/// Whether the media type of `content_type` (parameters aside) is one of
/// `types` (lower case: exact, `top/*`, or `*/*`).
fn type_listed(content_type: &str, types: &[String]) -> bool {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    types.iter().any(|pattern| match pattern.strip_suffix('*') {
        Some("*/") => true,
        Some(top) => {
            media.len() > top.len()
                && media.is_char_boundary(top.len())
                && media[..top.len()].eq_ignore_ascii_case(top)
        }
        None => media.eq_ignore_ascii_case(pattern),
    })
}

/// `Vary: Accept-Encoding`, merged into the `Vary` lines there are as one.
fn add_vary(headers: &mut HeaderMap) {
    let mut merged = Vec::new();
    for value in headers.get_all(VARY) {
        for name in value.as_bytes().split(|&b| b == b',') {
            let name = name.trim_ascii();
            if name == b"*" || name.eq_ignore_ascii_case(b"accept-encoding") {
                return;
            }
            if !name.is_empty() {
                merged.extend_from_slice(name);
                merged.extend_from_slice(b", ");
            }
        }
    }
    if merged.is_empty() {
        headers.insert(VARY, ACCEPT_ENCODING_VALUE.clone());
        return;
    }
    merged.extend_from_slice(b"Accept-Encoding");
    // Made of bytes of valid values and commas: valid too.
    if let Ok(value) = HeaderValue::from_bytes(&merged) {
        headers.insert(VARY, value);
    }
}

/// A strong `ETag` (`"x"`) made weak (`W/"x"`): the compressed bytes are
/// not the ones it was computed for, but the content is the same.
fn weaken_etag(headers: &mut HeaderMap) {
    let Some(etag) = headers.get(ETAG) else {
        return;
    };
    if !etag.as_bytes().starts_with(b"\"") {
        return;
    }
    let mut weak = Vec::with_capacity(etag.len() + 2);
    weak.extend_from_slice(b"W/");
    weak.extend_from_slice(etag.as_bytes());
    if let Ok(value) = HeaderValue::from_bytes(&weak) {
        headers.insert(ETAG, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_match_exactly_or_by_top_level() {
        let types: Vec<String> = crate::config::DEFAULT_TYPES
            .iter()
            .map(|t| t.to_string())
            .collect();
        assert!(type_listed("text/html; charset=utf-8", &types));
        assert!(type_listed("TEXT/CSS", &types));
        assert!(type_listed("application/json", &types));
        assert!(!type_listed("application/json-seq", &types));
        assert!(!type_listed("text/", &types));
        assert!(!type_listed("image/png", &types));
        assert!(!type_listed("", &types));
        assert!(type_listed("image/png", &["*/*".to_string()]));
    }

    #[test]
    fn vary_is_merged_once() {
        let mut headers = HeaderMap::new();
        add_vary(&mut headers);
        assert_eq!(headers[VARY], "Accept-Encoding");
        let mut headers = HeaderMap::new();
        headers.append(VARY, HeaderValue::from_static("Origin"));
        headers.append(VARY, HeaderValue::from_static("Cookie, "));
        add_vary(&mut headers);
        assert_eq!(headers.get_all(VARY).iter().count(), 1);
        assert_eq!(headers[VARY], "Origin, Cookie, Accept-Encoding");
        let mut headers = HeaderMap::new();
        headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
        add_vary(&mut headers);
        assert_eq!(headers[VARY], "accept-encoding");
    }

    #[test]
    fn only_strong_etags_are_weakened() {
        let mut headers = HeaderMap::new();
        headers.insert(ETAG, HeaderValue::from_static("\"abc\""));
        weaken_etag(&mut headers);
        assert_eq!(headers[ETAG], "W/\"abc\"");
        weaken_etag(&mut headers);
        assert_eq!(headers[ETAG], "W/\"abc\"");
    }
}
