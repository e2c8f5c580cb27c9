//! ALPN decides the HTTP version of a TLS connection: after `h2` only
//! HTTP/2 is served (anything but the connection preface is a connection
//! error, GOAWAY with PROTOCOL_ERROR), after `http/1.1` only HTTP/1.1, and
//! only a client that offered no ALPN is served by what its first bytes
//! look like. `header_read_timeout` still bounds the first bytes.
//!
//! The refusals are read as raw bytes: a client library would not send
//! the other protocol, and would hide what the proxy wrote back.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest any single exchange may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(10);

const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An empty SETTINGS frame: what a client sends right after the preface.
const SETTINGS: &[u8; 9] = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00";

const FRAME_SETTINGS: u8 = 0x4;
const FRAME_GOAWAY: u8 = 0x7;
const PROTOCOL_ERROR: u32 = 0x1;

/// The proxy, with `server_keys` in its `[server]` table, and the origin
/// its one catch-all route leads to.
struct Setup {
    site: Site,
    origin: Origin,
    proxy: ProxyHandle,
}

async fn start(server_keys: &str) -> Setup {
    let site = Site::new();
    let origin = Origin::hello().await;
    let toml = tls_config(
        &format!("shutdown_grace = \"2s\"\n{server_keys}"),
        &route("/", &origin.url(), ""),
    );
    let proxy = ProxyHandle::start(&toml, site.dir.path()).await;
    Setup { site, origin, proxy }
}

/// The version, status and whole body of an answer.
async fn answer(resp: Result<Response<Incoming>, hyper::Error>) -> (Version, StatusCode, Bytes) {
    let resp = resp.unwrap();
    let (version, status) = (resp.version(), resp.status());
    let body = within(HANG, "the body", resp.into_body().collect())
        .await
        .unwrap();
    (version, status, body.to_bytes())
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// A TLS connection on which the proxy chose `alpn`.
async fn negotiated(proxy: &ProxyHandle, ca: &TestCa, alpn: &[u8]) -> Tls {
    let tls = tls_connect(proxy.addr, ca, &[alpn]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn), "ALPN");
    tls
}

/// Writes `bytes`, then reads what comes back until the proxy closes, or
/// until `enough` says the bytes so far decide the test (an answer in the
/// wrong protocol comes with a connection kept open, so waiting for the
/// close would only turn a clear failure into a hang).
async fn reply(tls: &mut Tls, bytes: &[u8], enough: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    // A proxy that refuses early may close before it has read everything:
    // that shows in what is read back, not here.
    let _ = tls.write_all(bytes).await;
    let _ = tls.flush().await;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !enough(&got) {
        match within(HANG, "the proxy to answer or close", tls.read(&mut buf)).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

/// One HTTP/2 frame as read off the wire.
#[derive(Debug)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

/// Splits `bytes` into whole HTTP/2 frames; panics on anything else.
fn frames(mut bytes: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        assert!(bytes.len() >= 9, "a partial frame header: {bytes:?}");
        let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        assert!(bytes.len() >= 9 + len, "a partial frame: {bytes:?}");
        frames.push(Frame {
            kind: bytes[3],
            flags: bytes[4],
            stream: u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff,
            payload: bytes[9..9 + len].to_vec(),
        });
        bytes = &bytes[9 + len..];
    }
    frames
}

fn word(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// Sends `sent` on a connection that negotiated h2 and checks the refusal:
/// never an HTTP/1.1 answer; the proxy's own SETTINGS may come first (the
/// server preface), then a GOAWAY with PROTOCOL_ERROR for no stream, then
/// the close. A close with nothing written is also a refusal.
async fn refused_after_h2(sent: &[u8]) {
    let Setup { site, origin, proxy } = start("").await;
    let what = String::from_utf8_lossy(sent);
    let mut tls = negotiated(&proxy, &site.ca, b"h2").await;
    let got = reply(&mut tls, sent, |got| got.starts_with(b"HTTP/")).await;
    assert!(
        !got.starts_with(b"HTTP/1.1"),
        "{what:?} after h2 was answered over HTTP/1.1: {:?}",
        String::from_utf8_lossy(&got)
    );
    let frames = frames(&got);
    if let Some((goaway, before)) = frames.split_last() {
        for frame in before {
            assert_eq!(frame.kind, FRAME_SETTINGS, "{what:?}: unexpected {frame:?}");
        }
        assert_eq!(goaway.kind, FRAME_GOAWAY, "{what:?}: the last frame {goaway:?}");
        assert_eq!((goaway.flags, goaway.stream), (0, 0), "{goaway:?}");
        assert!(goaway.payload.len() >= 8, "{goaway:?}");
        assert_eq!(word(&goaway.payload[..4]), 0, "last stream id");
        assert_eq!(word(&goaway.payload[4..8]), PROTOCOL_ERROR, "error code");
    }
    assert_eq!(origin.count(), 0, "a refused request reached the origin");
    proxy.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_h2_an_http11_request_is_refused_with_goaway() {
    refused_after_h2(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
}

/// RFC 9113 section 3.4: an invalid connection preface is a connection
/// error of type PROTOCOL_ERROR, not an HTTP/1.1 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_h2_an_invalid_preface_is_refused_with_goaway() {
    refused_after_h2(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n").await;
}

/// After `http/1.1`, the HTTP/2 preface and SETTINGS get no HTTP/2: no
/// SETTINGS frame comes back, only an HTTP/1.1 error or the close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_http11_the_h2_preface_gets_no_http2() {
    let Setup { site, origin, proxy } = start("").await;
    let mut tls = negotiated(&proxy, &site.ca, b"http/1.1").await;
    let sent = [&PREFACE[..], &SETTINGS[..]].concat();
    // Nine bytes tell an HTTP/1.1 status line from an HTTP/2 frame header.
    let got = reply(&mut tls, &sent, |got| got.len() >= 9).await;
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 "),
        "the HTTP/2 preface after http/1.1 was answered with {got:?}"
    );
    assert_eq!(origin.count(), 0);
    proxy.shutdown().await.unwrap();
}

/// A client that offered no ALPN is served by its first bytes, both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_alpn_the_first_bytes_decide() {
    let Setup { site, proxy, .. } = start("").await;
    let tls = tls_connect(proxy.addr, &site.ca, &[]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), None);
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("https://localhost/two").body(empty()).unwrap();
    let got = answer(within(HANG, "an HTTP/2 answer", send.send_request(req)).await).await;
    assert_eq!(got, (Version::HTTP_2, StatusCode::OK, "hello from /two".into()));

    let tls = tls_connect(proxy.addr, &site.ca, &[]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), None);
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let got = answer(within(HANG, "an HTTP/1.1 answer", send.send_request(get("/one"))).await).await;
    assert_eq!(got, (Version::HTTP_11, StatusCode::OK, "hello from /one".into()));
    proxy.shutdown().await.unwrap();
}

/// Each negotiated protocol still serves its own clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiated_h2_and_http11_serve_their_own_clients() {
    let Setup { site, origin, proxy } = start("").await;
    let mut send = h2(proxy.addr, &site.ca).await;
    let req = Request::get("https://localhost/two").body(empty()).unwrap();
    let got = answer(within(HANG, "an HTTP/2 answer", send.send_request(req)).await).await;
    assert_eq!(got, (Version::HTTP_2, StatusCode::OK, "hello from /two".into()));

    let mut send = h1(proxy.addr, &site.ca).await;
    let got = answer(within(HANG, "an HTTP/1.1 answer", send.send_request(get("/one"))).await).await;
    assert_eq!(got, (Version::HTTP_11, StatusCode::OK, "hello from /one".into()));
    assert_eq!(origin.count(), 2);
    proxy.shutdown().await.unwrap();
}

/// A client that negotiates h2 and then sends nothing is closed, without a
/// byte, once `header_read_timeout` has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_after_h2_is_closed_by_header_read_timeout() {
    let Setup { site, proxy, .. } = start("header_read_timeout = \"1s\"").await;
    let mut tls = negotiated(&proxy, &site.ca, b"h2").await;
    // `reply` with nothing to send: reads until the close.
    let got = reply(&mut tls, b"", |_| false).await;
    assert!(got.is_empty(), "a silent client was sent {got:?}");
    proxy.shutdown().await.unwrap();
}

#[tokio::test]
async fn refusals_are_counted_by_the_alpn_they_broke() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let toml = tls_config("", &route("/", &origin.url(), ""));
    let proxy = support::admin::AdminProxy::start(&toml, site.dir.path()).await;
    let mut tls = tls_connect(proxy.tls, &site.ca, &[b"h2"]).await;
    reply(&mut tls, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", |_| false).await;
    let mut tls = tls_connect(proxy.tls, &site.ca, &[b"http/1.1"]).await;
    reply(&mut tls, PREFACE, |_| false).await;
    assert_eq!(
        proxy
            .metric("portcullis_connections_rejected_total{reason=\"alpn_h2\"}")
            .await,
        Some(1.0)
    );
    assert_eq!(
        proxy
            .metric("portcullis_connections_rejected_total{reason=\"alpn_http1\"}")
            .await,
        Some(1.0)
    );
    assert_eq!(origin.count(), 0);
    proxy.stop().await;
}
