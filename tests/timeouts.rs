//! Timeouts against slow clients: `client_body_timeout` (a client that
//! stops sending its body), `send_timeout` (a client that stops reading),
//! and `keepalive = false` (one request per connection). Outcomes are
//! asserted, never durations.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::process::ProxyProcess;
use support::{route, tls_config, tls_connect, wait_until, within, Origin, Site};

/// An origin that reads the whole request body before answering.
async fn reading_origin() -> Origin {
    Origin::start(|req: Request<Incoming>| async move {
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().len())
            .unwrap_or(0);
        Response::new(support::full(format!("read {body}")))
    })
    .await
}

const BIG: usize = 32 << 20;

/// An origin that answers with BIG bytes, streamed in 64 KiB pieces.
async fn big_origin() -> Origin {
    Origin::start(|_req: Request<Incoming>| async move {
        let piece = Bytes::from(vec![b'x'; 64 << 10]);
        let frames = futures_util::stream::iter(
            (0..BIG / piece.len())
                .map(move |_| Ok::<_, std::io::Error>(http_body::Frame::data(piece.clone()))),
        );
        let body = http_body_util::StreamBody::new(frames)
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            .boxed();
        Response::new(body)
    })
    .await
}

/// Reads until the end of the stream or an error; what was read.
async fn read_to_end<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_body_that_stops_coming_is_answered_408_and_logged() {
    let site = Site::new();
    let origin = reading_origin().await;
    let config = tls_config("client_body_timeout = \"1s\"", &route("/", &origin.url(), ""));
    let (proxy, addr) = ProxyProcess::start(site.dir.path(), &config).await;
    let mut tls = tls_connect(addr, &site.ca, &[b"http/1.1"]).await;
    tls.write_all(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    let answer = within(
        Duration::from_secs(15),
        "an answer to the stalled body",
        read_to_end(&mut tls),
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    let line = proxy.line_with("\"POST /upload\"").await;
    assert!(line.contains("\"POST /upload\" 408 "), "{line}");

    // A body that comes whole is not touched.
    let mut tls = tls_connect(addr, &site.ca, &[b"http/1.1"]).await;
    tls.write_all(b"POST /whole HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789")
        .await
        .unwrap();
    let answer = within(Duration::from_secs(15), "an answer", read_to_end(&mut tls)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("read 10"),
        "{text}"
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_after_send_timeout() {
    let site = Site::new();
    let origin = big_origin().await;
    let config = tls_config("send_timeout = \"1s\"", &route("/", &origin.url(), ""));
    let (proxy, addr) = ProxyProcess::start(site.dir.path(), &config).await;
    let mut tls = tls_connect(addr, &site.ca, &[b"http/1.1"]).await;
    tls.write_all(b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    tls.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    // The client reads nothing more: the proxy gives up on it, and its
    // access line is written then, with what was sent.
    let line = proxy.line_with("\"GET /big\"").await;
    assert!(line.contains("\"GET /big\" 200 "), "{line}");
    let rest = within(Duration::from_secs(30), "the rest", read_to_end(&mut tls)).await;
    assert!(rest.len() < BIG, "the whole body came: {} bytes", rest.len());
}

#[tokio::test]
async fn keepalive_off_serves_one_request_per_connection() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let config = tls_config("keepalive = false", &route("/", &origin.url(), ""));
    let proxy = support::ProxyHandle::start(&config, site.dir.path()).await;
    let mut tls = tls_connect(proxy.addr, &site.ca, &[b"http/1.1"]).await;
    tls.write_all(
        b"GET /one HTTP/1.1\r\nHost: localhost\r\n\r\nGET /two HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await
    .unwrap();
    let answer = within(
        Duration::from_secs(15),
        "the connection to close",
        read_to_end(&mut tls),
    )
    .await;
    let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(text.contains("connection: close"), "{text}");
    assert!(text.contains("hello from /one"), "{text}");
    assert!(!text.contains("hello from /two"), "{text}");
    wait_until(Duration::from_secs(5), "the origin's request", || {
        origin.count() == 1
    })
    .await;
}
