//! Which upgrades cross the proxy. A WebSocket handshake does, on routes
//! that allow it; `h2c` and every other token are removed and the request
//! is served as plain HTTP/1.1, so no client ever gets a raw HTTP/2
//! channel to the application past routing, `require_client_cert` and the
//! identity headers. An upstream's 101 is tunnelled only when it accepts
//! the client's WebSocket key.
//!
//! The h2c upstream is real: hyper answers `Upgrade: h2c` with 101 and
//! serves HTTP/2 on the upgraded connection, as hypercorn and some Go and
//! Java servers do.

mod support;

use std::convert::Infallible;

use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioExecutor;
use support::admin::AdminProxy;
use support::raw::Raw;
use support::*;

/// What a client sends to ask for h2c, as in RFC 7540 section 3.2.
const H2C_UPGRADE: &str = "GET /h2c HTTP/1.1\r\nHost: localhost\r\nUpgrade: h2c\r\n\
     HTTP2-Settings: AAMAAABkAAQAAP__\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n";

/// A valid WebSocket handshake for `path` (the key of RFC 6455 section 1.3).
fn websocket_handshake(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// An origin that accepts `Upgrade: h2c` with a 101 and then speaks HTTP/2
/// on the connection; anything else is answered `plain HTTP/1.1`.
async fn h2c_origin() -> Origin {
    Origin::start(|mut req: Request<Incoming>| async move {
        let h2c = req
            .headers()
            .get(header::UPGRADE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"h2c"));
        if !h2c {
            return Response::new(full("plain HTTP/1.1"));
        }
        let upgraded = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(io) = upgraded.await {
                let service = hyper::service::service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(full("HTTP/2 straight to the application")))
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(io, service)
                    .await;
            }
        });
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "h2c")
            .body(empty())
            .unwrap()
    })
    .await
}

#[tokio::test]
async fn an_h2c_upgrade_is_served_as_plain_http11_and_never_switches() {
    let site = Site::new();
    let origin = h2c_origin().await;
    let proxy = AdminProxy::start(&site.config(&route("/", &origin.url(), "")), site.dir.path()).await;

    let mut raw = Raw::connect(proxy.tls, &site.ca).await;
    raw.send(H2C_UPGRADE.as_bytes()).await;
    let resp = raw.read_response().await.expect("no response to the h2c upgrade");
    assert_eq!(resp.status, 200, "{}", resp.head_text());
    assert_eq!(resp.text(), "plain HTTP/1.1");

    let seen = origin.last_seen();
    assert_eq!(seen.uri.path(), "/h2c");
    assert!(seen.headers.get(header::UPGRADE).is_none(), "{:?}", seen.headers);
    assert!(seen.headers.get("http2-settings").is_none(), "{:?}", seen.headers);

    // The connection is still HTTP/1.1 with the proxy, not a tunnel.
    raw.get("/after").await;
    let resp = raw
        .read_response()
        .await
        .expect("no response after the h2c attempt");
    assert_eq!(resp.status, 200);
    assert_eq!(origin.last_seen().uri.path(), "/after");
    assert_eq!(proxy.metric("portcullis_upgrades_removed_total").await, Some(1.0));
    proxy.stop().await;
}

#[tokio::test]
async fn other_upgrade_tokens_are_removed_and_the_request_goes_on() {
    let site = Site::new();
    let origin = h2c_origin().await;
    let proxy = ProxyHandle::start(&site.config(&route("/", &origin.url(), "")), site.dir.path()).await;
    for token in ["foo", "websocket, h2c", "TLS/1.2", "h2c, websocket"] {
        let mut raw = Raw::connect(proxy.addr, &site.ca).await;
        raw.send(
            format!(
                "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: {token}\r\nConnection: upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
        let resp = raw.read_response().await.expect("no response");
        assert_eq!(resp.status, 200, "Upgrade: {token}: {}", resp.head_text());
        let seen = origin.last_seen();
        assert!(seen.headers.get(header::UPGRADE).is_none(), "Upgrade: {token}");
        assert!(seen.headers.get(header::CONNECTION).is_none(), "Upgrade: {token}");
    }
    proxy.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_route_with_websocket_false_answers_400_and_the_upstream_sees_nothing() {
    let site = Site::new();
    let ws = WsOrigin::start().await;
    let plain = Origin::hello().await;
    let routes = format!(
        "{}{}",
        route("/", &plain.url(), "websocket = false"),
        route("/ws", &ws.url(), "")
    );
    let proxy = AdminProxy::start(&site.config(&routes), site.dir.path()).await;

    let mut raw = Raw::connect(proxy.tls, &site.ca).await;
    raw.send(websocket_handshake("/").as_bytes()).await;
    let resp = raw.read_response().await.expect("no answer to the handshake");
    assert_eq!(resp.status, 400, "{}", resp.head_text());
    assert!(resp.text().contains("WebSocket"), "{}", resp.text());
    assert_eq!(plain.count(), 0, "the upstream saw the refused handshake");
    assert_eq!(
        proxy
            .metric("portcullis_requests_refused_total{reason=\"websocket_off\"}")
            .await,
        Some(1.0)
    );

    // The route that allows them still tunnels a real WebSocket.
    let mut client = ws_connect(proxy.tls, &site.ca, "/ws").await;
    use futures_util::{SinkExt, StreamExt};
    client.send("still here".into()).await.unwrap();
    let echoed = within(std::time::Duration::from_secs(10), "the echo", client.next()).await;
    assert_eq!(echoed.unwrap().unwrap().into_text().unwrap(), "still here");
    proxy.stop().await;
}

#[tokio::test]
async fn malformed_websocket_handshakes_are_400_before_the_upstream() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let proxy = ProxyHandle::start(&site.config(&route("/", &origin.url(), "")), site.dir.path()).await;
    let good = websocket_handshake("/");
    let cases = [
        good.replace("GET", "POST"),
        good.replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"),
        good.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
        good.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="),
    ];
    for case in &cases {
        let mut raw = Raw::connect(proxy.addr, &site.ca).await;
        raw.send(case.as_bytes()).await;
        let resp = raw.read_response().await.expect("no answer");
        assert_eq!(resp.status, 400, "{case}");
        assert_eq!(resp.values("sec-websocket-version"), [b"13"], "{case}");
    }
    assert_eq!(origin.count(), 0, "the upstream saw a malformed handshake");
    proxy.shutdown().await.unwrap();
}

/// An upstream that answers every request with a 101 carrying `headers`.
async fn switching_origin(headers: &'static [(&'static str, &'static str)]) -> Origin {
    Origin::start(move |_req: Request<Incoming>| async move {
        let mut resp = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
        for (name, value) in headers {
            resp = resp.header(*name, HeaderValue::from_static(value));
        }
        resp.body(empty()).unwrap()
    })
    .await
}

#[tokio::test]
async fn a_101_that_does_not_accept_the_websocket_key_is_a_502() {
    let forged: [&'static [(&'static str, &'static str)]; 4] = [
        // The key of another handshake.
        &[
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-accept", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        ],
        // No accept at all.
        &[("connection", "upgrade"), ("upgrade", "websocket")],
        // A switch to something else, with the right accept.
        &[
            ("connection", "upgrade"),
            ("upgrade", "h2c"),
            ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ],
        // Two accepts.
        &[
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ],
    ];
    let site = Site::new();
    for headers in forged {
        let origin = switching_origin(headers).await;
        let proxy = AdminProxy::start(&site.config(&route("/", &origin.url(), "")), site.dir.path()).await;
        let mut raw = Raw::connect(proxy.tls, &site.ca).await;
        raw.send(websocket_handshake("/").as_bytes()).await;
        let resp = raw.read_response().await.expect("no answer to the handshake");
        assert_eq!(resp.status, 502, "{headers:?}: {}", resp.head_text());
        assert_eq!(
            proxy
                .metric("portcullis_requests_refused_total{reason=\"upstream_101_refused\"}")
                .await,
            Some(1.0),
            "{headers:?}"
        );
        proxy.stop().await;
    }

    // The right answer is tunnelled.
    let origin = switching_origin(&[
        ("connection", "upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
    ])
    .await;
    let proxy = ProxyHandle::start(&site.config(&route("/", &origin.url(), "")), site.dir.path()).await;
    let mut raw = Raw::connect(proxy.addr, &site.ca).await;
    raw.send(websocket_handshake("/").as_bytes()).await;
    let (head, _) = raw.read_head().await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    proxy.shutdown().await.unwrap();
}
