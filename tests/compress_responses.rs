//! Compression of whole responses through the proxy, over real TLS with
//! HTTP/1.1 and HTTP/2: every encoding decodes to the origin's bytes,
//! Accept-Encoding's weights are obeyed, and each response that must go as
//! it is does.

mod support;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use support::compress::{decode, encodings, page};
use support::*;

/// A proxy with `[compression]` (and `global` keys in it) in front of the
/// compression origin, its route with `route_keys`.
async fn start(global: &str, route_keys: &str) -> (Site, Origin, ProxyHandle) {
    let site = Site::new();
    let origin = compress::origin().await;
    let routes = format!("{global}\n\n{}", route("/", &origin.url(), route_keys));
    let proxy = ProxyHandle::start(&site.config(&routes), site.dir.path()).await;
    (site, origin, proxy)
}

const ON: &str = "[compression]";

/// One request; the status, headers and raw body bytes.
async fn ask(
    addr: std::net::SocketAddr,
    ca: &TestCa,
    http2: bool,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Bytes) {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("https://localhost{path}"));
    if !http2 {
        req = req.header("host", "localhost");
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(empty()).unwrap();
    let resp = if http2 {
        h2(addr, ca).await.send_request(req).await.unwrap()
    } else {
        h1(addr, ca).await.send_request(req).await.unwrap()
    };
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, body)
}

async fn get_with(
    addr: std::net::SocketAddr,
    ca: &TestCa,
    path: &str,
    accept: &str,
) -> (StatusCode, HeaderMap, Bytes) {
    ask(addr, ca, false, Method::GET, path, &[("accept-encoding", accept)]).await
}

fn encoding(headers: &HeaderMap) -> Option<&str> {
    headers.get("content-encoding").map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn every_encoding_decodes_to_the_origins_bytes_over_http1_and_http2() {
    let (site, _origin, proxy) = start(ON, "").await;
    for http2 in [false, true] {
        for enc in encodings() {
            for path in ["/json", "/stream"] {
                let (status, headers, body) = ask(
                    proxy.addr,
                    &site.ca,
                    http2,
                    Method::GET,
                    path,
                    &[("accept-encoding", enc)],
                )
                .await;
                let what = format!("{enc} {path} http2={http2}");
                assert_eq!(status, 200, "{what}");
                assert_eq!(encoding(&headers), Some(enc), "{what}");
                assert!(headers.get("content-length").is_none(), "{what}: {headers:?}");
                assert_eq!(headers["vary"], "Accept-Encoding", "{what}");
                assert!(body.len() < page().len() / 3, "{what}: {} bytes", body.len());
                assert_eq!(decode(enc, &body), page(), "{what}");
            }
        }
    }
}

#[tokio::test]
async fn weights_choose_the_encoding_and_zero_refuses() {
    let (site, _origin, proxy) = start(ON, "").await;
    // What each Accept-Encoding gets: with all three encoders built, and
    // with gzip alone (the default build).
    let cases = [
        ("gzip, deflate, br, zstd", Some("zstd"), Some("gzip")),
        ("gzip, br", Some("br"), Some("gzip")),
        ("gzip;q=1.0, br;q=0.5, zstd;q=0.2", Some("gzip"), Some("gzip")),
        ("br;q=0, gzip", Some("gzip"), Some("gzip")),
        ("br, zstd", Some("zstd"), None),
        ("*", Some("zstd"), Some("gzip")),
        ("*;q=0.5, zstd;q=0", Some("br"), Some("gzip")),
        ("gzip;q=0", None, None),
        ("*;q=0", None, None),
        ("identity", None, None),
        ("identity;q=0", None, None),
        ("deflate", None, None),
    ];
    let all = cfg!(all(feature = "brotli", feature = "zstd"));
    let gzip_only = !cfg!(any(feature = "brotli", feature = "zstd"));
    if !all && !gzip_only {
        return;
    }
    for (accept, with_all, with_gzip) in cases {
        let want = if all { with_all } else { with_gzip };
        let (status, headers, body) = get_with(proxy.addr, &site.ca, "/json", accept).await;
        assert_eq!(status, 200, "{accept}");
        assert_eq!(encoding(&headers), want, "{accept}");
        let plain = match want {
            Some(enc) => Bytes::from(decode(enc, &body)),
            None => body,
        };
        assert_eq!(plain, page(), "{accept}");
    }
    // No Accept-Encoding at all: as it is, still marked as varying.
    let (_, headers, body) = ask(proxy.addr, &site.ca, false, Method::GET, "/json", &[]).await;
    assert_eq!(encoding(&headers), None);
    assert_eq!(headers["vary"], "Accept-Encoding");
    assert_eq!(body, page());
}

#[tokio::test]
async fn what_must_go_as_it_is_goes_as_it_is() {
    let (site, _origin, proxy) = start(ON, "").await;
    let addr = proxy.addr;
    let all = "zstd, br, gzip";
    for path in [
        "/small",
        "/png",
        "/encoded",
        "/no-transform",
        "/partial",
        "/empty",
        "/not-modified",
    ] {
        let (_, headers, body) = get_with(addr, &site.ca, path, all).await;
        let expected = match path {
            "/encoded" => Some("gzip"),
            _ => None,
        };
        assert_eq!(encoding(&headers), expected, "{path}");
        if path == "/png" || path == "/no-transform" || path == "/encoded" {
            assert_eq!(body, page(), "{path}");
            assert_eq!(headers["content-length"], page().len().to_string(), "{path}");
        }
    }
    // HEAD: the head of the uncompressed answer, its length kept.
    let (_, headers, body) = ask(
        addr,
        &site.ca,
        false,
        Method::HEAD,
        "/json",
        &[("accept-encoding", all)],
    )
    .await;
    assert_eq!(encoding(&headers), None);
    assert_eq!(headers["content-length"], page().len().to_string());
    assert!(body.is_empty());
    // A Range request, even one the origin answers whole.
    let (_, headers, body) = ask(
        addr,
        &site.ca,
        true,
        Method::GET,
        "/json",
        &[("accept-encoding", all), ("range", "bytes=0-99")],
    )
    .await;
    assert_eq!(encoding(&headers), None);
    assert_eq!(body, page());
}

#[tokio::test]
async fn vary_is_merged_and_a_strong_etag_weakened() {
    let (site, _origin, proxy) = start(ON, "").await;
    let (_, headers, body) = get_with(proxy.addr, &site.ca, "/etag", "gzip").await;
    assert_eq!(encoding(&headers), Some("gzip"));
    assert_eq!(headers.get_all("vary").iter().count(), 1);
    assert_eq!(headers["vary"], "Origin, Accept-Encoding");
    assert_eq!(headers["etag"], "W/\"v1\"");
    assert!(headers.get("accept-ranges").is_none(), "{headers:?}");
    assert_eq!(decode("gzip", &body), page());
    // Sent as it is, the ETag stays strong.
    let (_, headers, _) = get_with(proxy.addr, &site.ca, "/etag", "identity").await;
    assert_eq!(headers["etag"], "\"v1\"");
    assert_eq!(headers["vary"], "Origin, Accept-Encoding");
}

#[tokio::test]
async fn off_unless_asked_and_a_route_may_turn_it_off_or_change_it() {
    // No [compression], no route key: nothing changes, not even Vary.
    let (site, _origin, proxy) = start("", "").await;
    let (_, headers, body) = get_with(proxy.addr, &site.ca, "/json", "gzip").await;
    assert_eq!(encoding(&headers), None);
    assert!(headers.get("vary").is_none());
    assert_eq!(body, page());

    // A route that asks for it without [compression].
    let (site, _origin, proxy) = start("", "compression = true").await;
    let (_, headers, _) = get_with(proxy.addr, &site.ca, "/json", "gzip").await;
    assert_eq!(encoding(&headers), Some("gzip"));

    // [compression] on, the route off.
    let (site, _origin, proxy) = start(ON, "compression = false").await;
    let (_, headers, _) = get_with(proxy.addr, &site.ca, "/json", "gzip").await;
    assert_eq!(encoding(&headers), None);
    assert!(headers.get("vary").is_none());

    // The route's own types and encodings over [compression]'s.
    let (site, _origin, proxy) = start(
        "[compression]\nencodings = [\"gzip\"]",
        "compression = { types = [\"image/png\"] }",
    )
    .await;
    let (_, headers, body) = get_with(proxy.addr, &site.ca, "/png", "br, gzip").await;
    assert_eq!(encoding(&headers), Some("gzip"));
    assert_eq!(decode("gzip", &body), page());
    let (_, headers, _) = get_with(proxy.addr, &site.ca, "/json", "gzip").await;
    assert_eq!(encoding(&headers), None);
}

#[tokio::test]
async fn the_proxys_own_answers_are_compressed_too() {
    let site = Site::new();
    // Nothing listens on port 1: a 502 from the proxy itself.
    let routes = route(
        "/",
        "http://127.0.0.1:1",
        "compression = { min_length = 0, types = [\"text/plain\"] }",
    );
    let proxy = ProxyHandle::start(&site.config(&routes), site.dir.path()).await;
    let (status, headers, body) = get_with(proxy.addr, &site.ca, "/", "gzip").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(encoding(&headers), Some("gzip"));
    let text = String::from_utf8(decode("gzip", &body)).unwrap();
    assert!(text.starts_with("502 bad gateway"), "{text}");
}

#[tokio::test]
async fn hostile_accept_encoding_gets_an_answer_never_a_panic() {
    let (site, _origin, proxy) = start(ON, "").await;
    let huge = format!("{}gzip;q=0.5", "x;q=1, ".repeat(6_000));
    let hostile = [
        huge.as_str(),
        "gzip;q=1e9",
        "gzip;q=-0",
        "gzip;q=0.5.5",
        "gzip;q=1;q=0",
        ";;;;,,,,====",
        "gzip;q=\"1\"",
        "br;;;;q=0.9;q",
        "\tgzip\t;\tq=0.3\t",
    ];
    for accept in hostile {
        let (status, headers, body) = get_with(proxy.addr, &site.ca, "/json", accept).await;
        assert_eq!(status, 200, "{accept:.40}");
        let plain = match encoding(&headers) {
            Some(enc) => Bytes::from(decode(enc, &body)),
            None => body,
        };
        assert_eq!(plain, page(), "{accept:.40}");
    }
    // Each Accept-Encoding line counts.
    let (_, headers, _) = ask(
        proxy.addr,
        &site.ca,
        true,
        Method::GET,
        "/json",
        &[("accept-encoding", "br;q=0"), ("accept-encoding", "br, gzip")],
    )
    .await;
    assert_eq!(encoding(&headers), Some("gzip"));
}

#[tokio::test]
async fn a_websocket_tunnel_is_never_touched() {
    let site = Site::new();
    let ws = WsOrigin::start().await;
    let cfg = site.config(&format!(
        "{ON}\ntypes = [\"*/*\"]\nmin_length = 0\n\n{}",
        route("/ws", &ws.url(), "")
    ));
    let proxy = ProxyHandle::start(&cfg, site.dir.path()).await;
    let mut client = ws_connect(proxy.addr, &site.ca, "/ws").await;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    client
        .send(Message::text("hello through a compressing proxy"))
        .await
        .unwrap();
    let echoed = within(std::time::Duration::from_secs(10), "the echo", client.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(echoed, Message::text("hello through a compressing proxy"));
}
