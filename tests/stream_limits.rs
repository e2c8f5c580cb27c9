//! A stream's limits and its end: `max_connections` refuses what is over
//! it and admits again once a connection closes; a failed TLS handshake is
//! closed and counted; a shutdown stops accepting at once, lets an open
//! stream run within the grace period, and closes what is left after it.

mod support;

use std::time::Duration;

use support::streams::{closed_without_a_byte, echo, tcp, StreamProxy, HANG};
use support::{within, Site};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn plain(name: &str, upstream: &str, extra: &str, server: &str) -> String {
    format!(
        "[server]\n{server}\n\n[[stream]]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\ntls = \"none\"\nupstream = \"{upstream}\"\n{extra}\n"
    )
}

/// Whether `tcp` echoes `word`.
async fn echoes(tcp: &mut TcpStream, word: &[u8]) -> bool {
    if tcp.write_all(word).await.is_err() {
        return false;
    }
    let mut got = vec![0u8; word.len()];
    within(HANG, "the echo", tcp.read_exact(&mut got)).await.is_ok() && got == word
}

#[tokio::test]
async fn max_connections_refuses_the_one_over_and_admits_again_after_a_close() {
    let site = Site::new();
    let upstream = echo().await;
    let proxy = StreamProxy::start(
        &plain("one", &tcp(upstream), "max_connections = 1", ""),
        site.dir.path(),
    )
    .await;
    let addr = proxy.addr("one");
    let mut first = TcpStream::connect(addr).await.unwrap();
    assert!(echoes(&mut first, b"first").await);
    let mut second = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_without_a_byte(&mut second).await,
        "the second connection is refused"
    );
    proxy
        .wait_metric(
            "portcullis_stream_refused_total{stream=\"one\",reason=\"max_connections\"}",
            1.0,
        )
        .await;
    drop(first);
    // The permit comes back once the first stream's task has ended.
    let deadline = tokio::time::Instant::now() + HANG;
    loop {
        let mut again = TcpStream::connect(addr).await.unwrap();
        if echoes(&mut again, b"again").await {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no connection admitted after the close"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_failed_handshake_is_closed_and_counted() {
    let site = Site::new();
    let upstream = echo().await;
    let config = format!(
        "[tls]\ncert = \"fullchain.pem\"\nkey = \"privkey.pem\"\n\n[[stream]]\nname = \"t\"\nlisten = \"127.0.0.1:0\"\ntls = \"terminate\"\nupstream = \"{}\"\n",
        tcp(upstream)
    );
    let proxy = StreamProxy::start(&config, site.dir.path()).await;
    let mut garbage = TcpStream::connect(proxy.addr("t")).await.unwrap();
    garbage
        .write_all(b"\x16\x03\x01\x00\x05hello, not a hello")
        .await
        .unwrap();
    let mut buf = Vec::new();
    // rustls may answer with an alert; then the connection ends.
    let _ = within(HANG, "the close", garbage.read_to_end(&mut buf)).await;
    proxy
        .wait_metric(
            "portcullis_stream_refused_total{stream=\"t\",reason=\"handshake\"}",
            1.0,
        )
        .await;
    let mut tls = support::tls_connect(proxy.addr("t"), &site.ca, &[]).await;
    tls.write_all(b"still").await.unwrap();
    let mut still = [0u8; 5];
    within(HANG, "the echo", tls.read_exact(&mut still))
        .await
        .unwrap();
    drop(tls);
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_shutdown_stops_accepting_and_lets_an_open_stream_finish() {
    let site = Site::new();
    let upstream = echo().await;
    let proxy = StreamProxy::start(
        &plain("drain", &tcp(upstream), "", "shutdown_grace = \"300s\""),
        site.dir.path(),
    )
    .await;
    let addr = proxy.addr("drain");
    let mut open = TcpStream::connect(addr).await.unwrap();
    assert!(echoes(&mut open, b"before").await);
    let mut proxy = proxy;
    proxy.begin_shutdown();
    // The listener goes away: new connections are refused.
    let deadline = tokio::time::Instant::now() + HANG;
    while TcpStream::connect(addr).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "the stream still accepts");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The open stream still works, and the proxy waits for it.
    assert!(echoes(&mut open, b"during").await);
    assert!(!proxy.is_finished());
    drop(open);
    // It ends as soon as the stream did, far within the 300 s grace.
    proxy.shutdown().await;
}

#[tokio::test]
async fn the_grace_period_ends_a_stream_still_open() {
    let site = Site::new();
    let upstream = echo().await;
    let proxy = StreamProxy::start(
        &plain("cut", &tcp(upstream), "", "shutdown_grace = \"100ms\""),
        site.dir.path(),
    )
    .await;
    let mut open = TcpStream::connect(proxy.addr("cut")).await.unwrap();
    assert!(echoes(&mut open, b"before").await);
    let mut proxy = proxy;
    proxy.begin_shutdown();
    let mut rest = Vec::new();
    // A reset or an end, with nothing more: the proxy cut the stream.
    let _ = within(HANG, "the proxy to close the stream", open.read_to_end(&mut rest)).await;
    assert!(rest.is_empty(), "{rest:?}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_quiet_stream_is_closed_at_its_idle_timeout() {
    let site = Site::new();
    let upstream = echo().await;
    let proxy = StreamProxy::start(
        &plain("quiet", &tcp(upstream), "idle_timeout = \"300ms\"", ""),
        site.dir.path(),
    )
    .await;
    let mut open = TcpStream::connect(proxy.addr("quiet")).await.unwrap();
    assert!(echoes(&mut open, b"once").await);
    let mut rest = Vec::new();
    within(HANG, "the idle stream to be closed", open.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    proxy.shutdown().await;
}
