//! Terminating and plain streams: large transfers both ways arrive intact,
//! a close in either direction is passed on while the other direction
//! goes on, the PROXY header reaches the upstream with the client's
//! address, ALPN and client certificates are the stream's own, and the
//! stream is seen in `/connections` and `/metrics`.

mod support;

use std::net::SocketAddr;

use support::streams::{echo, noise, sha256, tcp, StreamProxy, Upstream, HANG};
use support::{tls_connect, within, Site};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The site's certificate for the listeners, and one stream.
fn config(name: &str, tls: &str, upstream: &str, extra: &str) -> String {
    format!(
        "[tls]\ncert = \"fullchain.pem\"\nkey = \"privkey.pem\"\n\n\
         [[stream]]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\ntls = \"{tls}\"\nupstream = \"{upstream}\"\n{extra}\n"
    )
}

/// Sends `len` bytes through `io` while reading what comes back; both
/// sides' SHA-256 must match.
async fn echo_through<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(io: S, len: usize) {
    let data = noise(len, len as u64);
    let want = sha256(&data);
    let (mut read, mut write) = tokio::io::split(io);
    let writer = tokio::spawn(async move {
        write.write_all(&data).await.unwrap();
        write.flush().await.unwrap();
        write
    });
    let mut got = vec![0u8; len];
    within(HANG * 6, "the echo of every byte", read.read_exact(&mut got))
        .await
        .unwrap();
    let _write = writer.await.unwrap();
    assert_eq!(sha256(&got), want, "the echo differs");
}

#[tokio::test]
async fn terminate_echoes_megabytes_both_ways() {
    let site = Site::new();
    let upstream = echo().await;
    let proxy = StreamProxy::start(&config("t", "terminate", &tcp(upstream), ""), site.dir.path()).await;
    let tls = tls_connect(proxy.addr("t"), &site.ca, &[]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), None, "no ALPN unless configured");
    echo_through(tls, 4 << 20).await;
    proxy
        .wait_metric(
            "portcullis_stream_bytes_total{stream=\"t\",direction=\"to_upstream\"}",
            (4 << 20) as f64,
        )
        .await;
    proxy
        .wait_metric(
            "portcullis_stream_bytes_total{stream=\"t\",direction=\"to_client\"}",
            (4 << 20) as f64,
        )
        .await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn plain_echoes_megabytes_both_ways() {
    let site = Site::new();
    let upstream = echo().await;
    let proxy = StreamProxy::start(&config("p", "none", &tcp(upstream), ""), site.dir.path()).await;
    let tcp = TcpStream::connect(proxy.addr("p")).await.unwrap();
    echo_through(tcp, 4 << 20).await;
    proxy.shutdown().await;
}

/// The client closes its sending side; the upstream reads to the end,
/// answers, and closes; the client reads the answer to the end.
async fn client_closes_first<S: AsyncRead + AsyncWrite + Unpin>(mut client: S, upstream: &mut Upstream) {
    client.write_all(b"question").await.unwrap();
    client.shutdown().await.unwrap();
    let mut at_upstream = upstream.next().await;
    let mut asked = Vec::new();
    within(
        HANG,
        "the client's close at the upstream",
        at_upstream.read_to_end(&mut asked),
    )
    .await
    .unwrap();
    assert_eq!(asked, b"question");
    at_upstream.write_all(b"answer").await.unwrap();
    at_upstream.shutdown().await.unwrap();
    let mut answer = Vec::new();
    within(HANG, "the answer and the close", client.read_to_end(&mut answer))
        .await
        .unwrap();
    assert_eq!(answer, b"answer");
}

/// The upstream closes its sending side first; the client reads to the
/// end, then still sends, and the upstream gets it.
async fn upstream_closes_first<S: AsyncRead + AsyncWrite + Unpin>(mut client: S, upstream: &mut Upstream) {
    client.write_all(b"hello").await.unwrap();
    let mut at_upstream = upstream.next().await;
    let mut hello = [0u8; 5];
    within(HANG, "the hello", at_upstream.read_exact(&mut hello))
        .await
        .unwrap();
    at_upstream.write_all(b"bye").await.unwrap();
    at_upstream.shutdown().await.unwrap();
    let mut bye = Vec::new();
    within(HANG, "the upstream's close", client.read_to_end(&mut bye))
        .await
        .unwrap();
    assert_eq!(bye, b"bye");
    client.write_all(b"late words").await.unwrap();
    client.shutdown().await.unwrap();
    let mut late = Vec::new();
    within(
        HANG,
        "the client's late words",
        at_upstream.read_to_end(&mut late),
    )
    .await
    .unwrap();
    assert_eq!(late, b"late words");
}

#[tokio::test]
async fn a_close_is_passed_on_in_each_direction() {
    let site = Site::new();
    let mut upstream = Upstream::start().await;
    let text = format!(
        "{}{}",
        config("t", "terminate", &tcp(upstream.addr), ""),
        config("p", "none", &tcp(upstream.addr), "")
            .split_once("\n\n")
            .unwrap()
            .1
    );
    let proxy = StreamProxy::start(&text, site.dir.path()).await;
    let tls = || tls_connect(proxy.addr("t"), &site.ca, &[]);
    let plain = || TcpStream::connect(proxy.addr("p"));
    client_closes_first(tls().await, &mut upstream).await;
    upstream_closes_first(tls().await, &mut upstream).await;
    client_closes_first(plain().await.unwrap(), &mut upstream).await;
    upstream_closes_first(plain().await.unwrap(), &mut upstream).await;
    proxy.shutdown().await;
}

/// The fixed part of a PROXY v2 header for TCP over IPv4.
const V2_TCP4: &[u8] = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c";

#[tokio::test]
async fn the_proxy_header_carries_the_clients_address_and_a_forged_one_stays_data() {
    let site = Site::new();
    let mut upstream = Upstream::start().await;
    let proxy = StreamProxy::start(
        &config("v2", "none", &tcp(upstream.addr), "proxy_protocol = \"v2\""),
        site.dir.path(),
    )
    .await;
    let stream_addr = proxy.addr("v2");
    let mut client = TcpStream::connect(stream_addr).await.unwrap();
    let client_addr = client.local_addr().unwrap();
    // A header the client forges, claiming another address.
    let forged = [V2_TCP4, &[10, 9, 8, 7, 10, 0, 0, 1, 0, 1, 0, 2]].concat();
    client.write_all(&forged).await.unwrap();
    let mut at_upstream = upstream.next().await;
    let mut header = [0u8; 28];
    within(HANG, "the PROXY header", at_upstream.read_exact(&mut header))
        .await
        .unwrap();
    assert_eq!(&header[..16], V2_TCP4);
    let addr = |ip: &[u8], port: &[u8]| {
        SocketAddr::from((
            [ip[0], ip[1], ip[2], ip[3]],
            u16::from_be_bytes([port[0], port[1]]),
        ))
    };
    assert_eq!(addr(&header[16..20], &header[24..26]), client_addr, "source");
    assert_eq!(addr(&header[20..24], &header[26..28]), stream_addr, "destination");
    let mut data = vec![0u8; forged.len()];
    within(HANG, "the client's bytes", at_upstream.read_exact(&mut data))
        .await
        .unwrap();
    assert_eq!(
        data, forged,
        "the forged header arrives as data, after the real one"
    );
    drop((client, at_upstream));
    proxy.shutdown().await;
}

#[tokio::test]
async fn version_1_of_the_header_on_a_terminating_stream() {
    let site = Site::new();
    let mut upstream = Upstream::start().await;
    let proxy = StreamProxy::start(
        &config("v1", "terminate", &tcp(upstream.addr), "proxy_protocol = \"v1\""),
        site.dir.path(),
    )
    .await;
    let mut tls = tls_connect(proxy.addr("v1"), &site.ca, &[]).await;
    let client_port = tls.get_ref().0.local_addr().unwrap().port();
    tls.write_all(b"x").await.unwrap();
    let mut at_upstream = upstream.next().await;
    let want = format!(
        "PROXY TCP4 127.0.0.1 127.0.0.1 {client_port} {}\r\nx",
        proxy.addr("v1").port()
    );
    let mut got = vec![0u8; want.len()];
    within(HANG, "the v1 header", at_upstream.read_exact(&mut got))
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&got), want);
    drop((tls, at_upstream));
    proxy.shutdown().await;
}

#[tokio::test]
async fn alpn_client_certificates_and_what_admin_shows_are_the_streams() {
    let site = Site::new();
    let upstream = echo().await;
    let clients = support::TestCa::named("stream clients");
    std::fs::write(site.path("clients.pem"), &clients.pem).unwrap();
    let alice = clients.issue_client("alice");
    let extra = "alpn = [\"nats\", \"x-other\"]\n[stream.client_auth]\nca = \"clients.pem\"\n";
    let proxy = StreamProxy::start(&config("m", "terminate", &tcp(upstream), extra), site.dir.path()).await;
    let addr = proxy.addr("m");

    // Without a certificate: refused at the handshake, and counted.
    let anonymous = site.ca.mtls_client(None, &[b"nats"], None);
    let tcp_conn = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let refused = async {
        let mut tls = tokio_rustls::TlsConnector::from(anonymous)
            .connect(name, tcp_conn)
            .await?;
        // With TLS 1.3 the refusal arrives after the client's handshake.
        let mut byte = [0u8; 1];
        tls.read(&mut byte).await
    };
    assert!(!matches!(within(HANG, "the refusal", refused).await, Ok(1)));
    proxy
        .wait_metric(
            "portcullis_stream_refused_total{stream=\"m\",reason=\"client_cert\"}",
            1.0,
        )
        .await;

    // With alice's: the stream's ALPN, the echo, and the facts in /connections.
    let config = site.ca.mtls_client(Some(&alice), &[b"nats"], None);
    let tcp_conn = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = within(
        HANG,
        "alice's handshake",
        tokio_rustls::TlsConnector::from(config).connect(name, tcp_conn),
    )
    .await
    .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"nats"[..]));
    tls.write_all(b"hi").await.unwrap();
    let mut hi = [0u8; 2];
    within(HANG, "the echo", tls.read_exact(&mut hi)).await.unwrap();
    let connections = proxy.connections().await;
    let entry = connections["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["stream"]["name"] == "m")
        .unwrap_or_else(|| panic!("no stream in {connections:#}"))
        .clone();
    assert_eq!(entry["stream"]["tls"], "terminate", "{entry:#}");
    assert_eq!(entry["stream"]["upstream"], tcp(upstream), "{entry:#}");
    assert_eq!(entry["sni"], "localhost", "{entry:#}");
    assert_eq!(entry["alpn"], "nats", "{entry:#}");
    assert!(
        entry["tls_version"].as_str().unwrap().starts_with("TLSv1"),
        "{entry:#}"
    );
    assert!(
        entry["client_subject"].as_str().unwrap().contains("CN=alice"),
        "{entry:#}"
    );
    proxy
        .wait_metric("portcullis_stream_connections_active{stream=\"m\"}", 1.0)
        .await;
    drop(tls);
    proxy
        .wait_metric("portcullis_stream_connections_active{stream=\"m\"}", 0.0)
        .await;
    assert_eq!(
        proxy
            .metric("portcullis_stream_connections_total{stream=\"m\"}")
            .await,
        2.0
    );
    proxy.shutdown().await;
}
