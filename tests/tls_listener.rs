//! The TLS listener as clients see it: ALPN h2 and http/1.1, TLS 1.2 and
//! 1.3, `min_version = "1.3"` refusing TLS 1.2, and the single handshake
//! deadline cutting off a client that never finishes its handshake.

mod support;

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn client(
    ca: &TestCa,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

async fn handshake(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

async fn start(site: &Site, extra_tls: &str, extra_server: &str) -> ProxyHandle {
    let origin = Origin::hello().await;
    let toml = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n{extra_server}\n[tls]\ncert = \"fullchain.pem\"\nkey = \"privkey.pem\"\n{extra_tls}\n\
         [[route]]\npath = \"/\"\nupstream = \"{}\"\n",
        origin.url()
    );
    // The origin must outlive the test's requests; leaking it is fine here.
    std::mem::forget(origin);
    ProxyHandle::start(&toml, site.dir.path()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_offers_h2_and_http11() {
    let site = Site::new();
    let proxy = start(&site, "", "").await;
    let both = handshake(
        proxy.addr,
        client(&site.ca, rustls::ALL_VERSIONS, &[b"h2", b"http/1.1"]),
    )
    .await
    .unwrap();
    assert_eq!(both.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let h1 = handshake(proxy.addr, client(&site.ca, rustls::ALL_VERSIONS, &[b"http/1.1"]))
        .await
        .unwrap();
    assert_eq!(h1.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    // A client without ALPN still gets HTTP/1.1 service.
    let none = handshake(proxy.addr, client(&site.ca, rustls::ALL_VERSIONS, &[]))
        .await
        .unwrap();
    assert_eq!(none.get_ref().1.alpn_protocol(), None);
    let (status, _, body) = fetch(proxy.addr, &site.ca, get("/x")).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "hello from /x"));
    proxy.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_and_tls13_by_default() {
    let site = Site::new();
    let proxy = start(&site, "", "").await;
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let tls = handshake(proxy.addr, client(&site.ca, &[version], &[b"http/1.1"]))
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.protocol_version(), Some(version.version));
    }
    proxy.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_version_13_refuses_tls12() {
    let site = Site::new();
    let proxy = start(&site, "min_version = \"1.3\"", "").await;
    let refused = handshake(
        proxy.addr,
        client(&site.ca, &[&rustls::version::TLS12], &[b"http/1.1"]),
    )
    .await;
    assert!(refused.is_err(), "a TLS 1.2 client was accepted");
    let tls = handshake(
        proxy.addr,
        client(&site.ca, &[&rustls::version::TLS13], &[b"http/1.1"]),
    )
    .await
    .unwrap();
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    proxy.shutdown().await.unwrap();
}

/// A client that connects and never completes its handshake is cut off by
/// the deadline, bytes trickling in or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_deadline_closes_stalled_clients() {
    let site = Site::new();
    let proxy = start(&site, "", "handshake_timeout = \"300ms\"").await;

    let mut silent = TcpStream::connect(proxy.addr).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf))
        .await
        .expect("the silent client was never cut off");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");

    // A client sending a valid ClientHello prefix one byte at a time.
    let mut slow = TcpStream::connect(proxy.addr).await.unwrap();
    let hello = [0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];
    let trickle = async {
        for (i, b) in hello.iter().cycle().take(200).enumerate() {
            if slow.write_all(&[*b]).await.is_err() {
                return i;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        200
    };
    let written = tokio::time::timeout(Duration::from_secs(20), trickle)
        .await
        .expect("still writing");
    assert!(written < 200, "the proxy accepted bytes for {written} writes");
    proxy.shutdown().await.unwrap();
}

/// Several `[[tls.certificate]]` entries: SNI picks the exact name, then a
/// wildcard, then the first certificate; a client without SNI gets the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_selects_among_several_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new();
    let first = ca.issue(&["a.example", "127.0.0.1"]);
    let second = ca.issue(&["b.example"]);
    let wild = ca.issue(&["*.c.example"]);
    for (name, issued) in [("a", &first), ("b", &second), ("c", &wild)] {
        std::fs::write(d.join(format!("{name}.crt")), &issued.chain_pem).unwrap();
        std::fs::write(d.join(format!("{name}.key")), &issued.key_pem).unwrap();
    }
    let origin = Origin::hello().await;
    let toml = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n\
         [[tls.certificate]]\ncert = \"a.crt\"\nkey = \"a.key\"\n\
         [[tls.certificate]]\ncert = \"b.crt\"\nkey = \"b.key\"\n\
         [[tls.certificate]]\ncert = \"c.crt\"\nkey = \"c.key\"\n\
         [[route]]\npath = \"/\"\nupstream = \"{}\"\n",
        origin.url()
    );
    let proxy = ProxyHandle::start(&toml, d).await;
    let config = client(&ca, rustls::ALL_VERSIONS, &[b"http/1.1"]);
    let leaf = |name: &'static str| {
        let config = config.clone();
        async move {
            let tcp = TcpStream::connect(proxy.addr).await.unwrap();
            let server_name = ServerName::try_from(name).unwrap();
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(server_name, tcp)
                .await
                .unwrap();
            tls.get_ref().1.peer_certificates().unwrap()[0].clone()
        }
    };
    assert_eq!(leaf("a.example").await, first.leaf_der);
    assert_eq!(leaf("B.EXAMPLE").await, second.leaf_der);
    assert_eq!(leaf("x.c.example").await, wild.leaf_der);
    // An IP address is never sent as SNI: the client gets the first certificate.
    assert_eq!(leaf("127.0.0.1").await, first.leaf_der);
    proxy.shutdown().await.unwrap();
}

/// `[tls] hsts` adds Strict-Transport-Security to responses over TLS,
/// unless the application sent its own; without it, none is added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_is_added_when_configured() {
    let site = Site::new();
    let origin = Origin::start(|req: http::Request<hyper::body::Incoming>| async move {
        let mut resp = http::Response::new(full("x"));
        if req.uri().path() == "/own" {
            resp.headers_mut()
                .insert("strict-transport-security", "max-age=5".parse().unwrap());
        }
        resp
    })
    .await;
    let routes = route("/", &origin.url(), "");
    let with = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[tls]\ncert = \"fullchain.pem\"\nkey = \"privkey.pem\"\n\
         hsts = \"max-age=63072000; includeSubDomains\"\n{routes}"
    );
    let proxy = ProxyHandle::start(&with, site.dir.path()).await;
    let (_, headers, _) = fetch(proxy.addr, &site.ca, get("/")).await;
    assert_eq!(
        headers["strict-transport-security"],
        "max-age=63072000; includeSubDomains"
    );
    let (_, headers, _) = fetch(proxy.addr, &site.ca, get("/own")).await;
    assert_eq!(
        headers["strict-transport-security"], "max-age=5",
        "the application's own value must win"
    );
    proxy.shutdown().await.unwrap();

    let proxy = ProxyHandle::start(&site.config(&routes), site.dir.path()).await;
    let (_, headers, _) = fetch(proxy.addr, &site.ca, get("/")).await;
    assert!(!headers.contains_key("strict-transport-security"), "{headers:?}");
    proxy.shutdown().await.unwrap();
}
