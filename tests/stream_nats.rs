//! `protocol = "nats"` against a scripted NATS server: a default client
//! reads INFO in plaintext with `tls_required` set and every other byte
//! the server's, then shakes hands; a TLS-first client shakes hands at
//! once and gets INFO over TLS; a client that speaks plaintext first, or
//! an upstream that wants TLS itself, is closed and counted.

mod support;

use std::net::SocketAddr;

use support::streams::{closed_without_a_byte, tcp, StreamProxy, HANG};
use support::{within, Site, TestCa};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const INFO: &str =
    r#"INFO {"server_id":"NDX","version":"2.10.0","tls_required":false,"max_payload":1048576}"#;
const REWRITTEN: &str = "INFO {\"tls_available\":true,\"server_id\":\"NDX\",\"version\":\"2.10.0\",\"tls_required\":true,\"max_payload\":1048576}\r\n";

/// A NATS-like server: `info` and CRLF first, then an echo.
async fn nats(info: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = tcp.into_split();
                if write.write_all(format!("{info}\r\n").as_bytes()).await.is_err() {
                    return;
                }
                let _ = tokio::io::copy(&mut read, &mut write).await;
                let _ = write.shutdown().await;
            });
        }
    });
    addr
}

fn config(upstream: SocketAddr) -> String {
    format!(
        "[tls]\ncert = \"fullchain.pem\"\nkey = \"privkey.pem\"\n\n[[stream]]\nname = \"nats\"\nlisten = \"127.0.0.1:0\"\ntls = \"terminate\"\nprotocol = \"nats\"\nupstream = \"{}\"\n",
        tcp(upstream)
    )
}

/// One line, CRLF included, read a byte at a time so that nothing after
/// it is taken from the socket.
async fn line<R: AsyncRead + Unpin>(io: &mut R) -> String {
    let mut bytes = Vec::new();
    while !bytes.ends_with(b"\r\n") {
        let mut byte = [0u8; 1];
        let n = within(HANG, "a line", io.read(&mut byte)).await.unwrap();
        assert_eq!(
            n,
            1,
            "the line ended early: {:?}",
            String::from_utf8_lossy(&bytes)
        );
        bytes.push(byte[0]);
    }
    String::from_utf8(bytes).unwrap()
}

async fn ping<S: AsyncRead + tokio::io::AsyncWrite + Unpin>(tls: &mut S) {
    tls.write_all(b"CONNECT {}\r\nPING\r\n").await.unwrap();
    assert_eq!(line(tls).await, "CONNECT {}\r\n");
    assert_eq!(line(tls).await, "PING\r\n");
}

async fn handshake(tcp: TcpStream, ca: &TestCa) -> tokio_rustls::client::TlsStream<TcpStream> {
    let connector = tokio_rustls::TlsConnector::from(ca.client_config(&[]));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    within(HANG, "the handshake after INFO", connector.connect(name, tcp))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_default_client_reads_info_in_plaintext_then_shakes_hands() {
    let site = Site::new();
    let proxy = StreamProxy::start(&config(nats(INFO).await), site.dir.path()).await;
    let mut tcp = TcpStream::connect(proxy.addr("nats")).await.unwrap();
    assert_eq!(line(&mut tcp).await, REWRITTEN);
    let mut tls = handshake(tcp, &site.ca).await;
    ping(&mut tls).await;
    let connections = proxy.connections().await;
    assert!(
        connections["connections"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["stream"]["name"] == "nats" && c["sni"] == "localhost"),
        "{connections:#}"
    );
    drop(tls);
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_tls_first_client_gets_info_over_tls() {
    let site = Site::new();
    let proxy = StreamProxy::start(&config(nats(INFO).await), site.dir.path()).await;
    let mut tls = support::tls_connect(proxy.addr("nats"), &site.ca, &[]).await;
    assert_eq!(line(&mut tls).await, REWRITTEN);
    ping(&mut tls).await;
    drop(tls);
    proxy.shutdown().await;
}

#[tokio::test]
async fn plaintext_before_info_and_an_upstream_that_wants_tls_are_refused() {
    let site = Site::new();
    let proxy = StreamProxy::start(&config(nats(INFO).await), site.dir.path()).await;
    let mut tcp = TcpStream::connect(proxy.addr("nats")).await.unwrap();
    tcp.write_all(b"CONNECT {}\r\n").await.unwrap();
    assert!(closed_without_a_byte(&mut tcp).await);
    proxy
        .wait_metric(
            "portcullis_stream_refused_total{stream=\"nats\",reason=\"protocol\"}",
            1.0,
        )
        .await;
    proxy.shutdown().await;

    let proxy = StreamProxy::start(
        &config(nats(r#"INFO {"tls_required":true}"#).await),
        site.dir.path(),
    )
    .await;
    let mut tcp = TcpStream::connect(proxy.addr("nats")).await.unwrap();
    assert!(
        closed_without_a_byte(&mut tcp).await,
        "INFO saying TLS is never passed on"
    );
    proxy
        .wait_metric(
            "portcullis_stream_refused_total{stream=\"nats\",reason=\"protocol\"}",
            1.0,
        )
        .await;
    proxy.shutdown().await;
}
