//! The PROXY protocol in front of the listeners: v1 and v2 headers from a
//! trusted balancer (127.0.0.2) name the client the origin and the limits
//! see; an untrusted peer (127.0.0.3) is closed, or never read; a header
//! split across segments is read whole; garbage closes the connection.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use http::Request;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::from::{send, start, tcp_from};
use support::{empty, route, tls_config, within, Origin, ProxyHandle, Site};

const V1: &[u8] = b"PROXY TCP4 203.0.113.9 127.0.0.1 51234 443\r\n";

/// A v2 header naming `client` (IPv4) to 127.0.0.1:443.
fn v2(client: [u8; 4], port: u16) -> Vec<u8> {
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    out.extend_from_slice(&[0x21, 0x11, 0, 12]);
    out.extend_from_slice(&client);
    out.extend_from_slice(&[127, 0, 0, 1]);
    out.extend_from_slice(&port.to_be_bytes());
    out.extend_from_slice(&443u16.to_be_bytes());
    out
}

const REQUIRED: &str = "trusted_proxies = [\"127.0.0.2\"]\nproxy_protocol = \"required\"";

/// A site, an origin, and the proxy in front of it with `server_keys`.
async fn setup(server_keys: &str) -> (Site, Origin, ProxyHandle) {
    let site = Site::new();
    let origin = Origin::hello().await;
    let proxy = start(&site, server_keys, &origin).await;
    (site, origin, proxy)
}

/// A TCP connection from `source` that has sent `header`, in `pieces`
/// writes (each its own segment: no delay is on).
async fn with_header(source: &str, addr: SocketAddr, header: &[u8], pieces: usize) -> TcpStream {
    let mut tcp = tcp_from(source, addr).await;
    tcp.set_nodelay(true).unwrap();
    let size = header.len().div_ceil(pieces.max(1)).max(1);
    for chunk in header.chunks(size) {
        tcp.write_all(chunk).await.unwrap();
        tcp.flush().await.unwrap();
    }
    tcp
}

/// GET /who over TLS on `tcp`; the status.
async fn get_over_tls(tcp: TcpStream, site: &Site) -> http::StatusCode {
    let connector = tokio_rustls::TlsConnector::from(site.ca.client_config(&[b"http/1.1"]));
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let req = Request::get("https://localhost/who")
        .header("host", "localhost")
        .body(empty())
        .unwrap();
    send(tls, req).await.0
}

/// Whether the proxy closes `tcp` (end of stream or reset) within 10 s,
/// after `then` is written.
async fn closed(mut tcp: TcpStream, then: &[u8]) -> bool {
    let _ = tcp.write_all(then).await;
    let mut buf = [0u8; 64];
    within(Duration::from_secs(10), "the proxy to close", async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                // A TLS alert is an answer; the close comes after it.
                Ok(_) => continue,
            }
        }
    })
    .await
}

fn real_ip(origin: &Origin) -> String {
    let parts = origin.last_seen();
    parts.headers["x-real-ip"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn v1_and_v2_from_a_trusted_balancer_name_the_client() {
    let (site, origin, proxy) = setup(REQUIRED).await;

    let tcp = with_header("127.0.0.2", proxy.addr, V1, 1).await;
    assert_eq!(get_over_tls(tcp, &site).await, 200);
    assert_eq!(real_ip(&origin), "203.0.113.9");

    let tcp = with_header("127.0.0.2", proxy.addr, &v2([198, 51, 100, 7], 4000), 1).await;
    assert_eq!(get_over_tls(tcp, &site).await, 200);
    assert_eq!(real_ip(&origin), "198.51.100.7");
}

#[tokio::test]
async fn a_header_split_across_segments_is_read_whole() {
    let site = Site::new();
    let origin = Origin::hello().await;
    for mode in ["required", "optional"] {
        let keys = format!("trusted_proxies = [\"127.0.0.2\"]\nproxy_protocol = \"{mode}\"");
        let proxy = start(&site, &keys, &origin).await;
        let tcp = with_header("127.0.0.2", proxy.addr, V1, 7).await;
        assert_eq!(get_over_tls(tcp, &site).await, 200);
        assert_eq!(real_ip(&origin), "203.0.113.9", "{mode}");
        let tcp = with_header("127.0.0.2", proxy.addr, &v2([192, 0, 2, 5], 1), 5).await;
        assert_eq!(get_over_tls(tcp, &site).await, 200);
        assert_eq!(real_ip(&origin), "192.0.2.5", "{mode}");
    }
}

#[tokio::test]
async fn an_untrusted_peer_is_closed_when_required_and_never_read_when_optional() {
    let (site, origin, proxy) = setup(REQUIRED).await;
    let tcp = with_header("127.0.0.3", proxy.addr, V1, 1).await;
    assert!(closed(tcp, b"").await);
    assert_eq!(origin.count(), 0);

    let proxy = start(
        &site,
        "trusted_proxies = [\"127.0.0.2\"]\nproxy_protocol = \"optional\"",
        &origin,
    )
    .await;
    // Its header is not read as one: TLS gets "PROXY ..." and fails.
    let tcp = with_header("127.0.0.3", proxy.addr, V1, 1).await;
    assert!(closed(tcp, b"").await);
    assert_eq!(origin.count(), 0);
    // Without one it is served, as itself.
    let tcp = tcp_from("127.0.0.3", proxy.addr).await;
    assert_eq!(get_over_tls(tcp, &site).await, 200);
    assert_eq!(real_ip(&origin), "127.0.0.3");
    // A trusted peer may leave it out too.
    let tcp = tcp_from("127.0.0.2", proxy.addr).await;
    assert_eq!(get_over_tls(tcp, &site).await, 200);
    assert_eq!(real_ip(&origin), "127.0.0.2");
}

#[tokio::test]
async fn garbage_closes_the_connection() {
    let (site, origin, proxy) = setup(REQUIRED).await;
    for garbage in [
        &b"PROXY TCP4 999.1.1.1 127.0.0.1 1 2\r\n"[..],
        b"PROXY TCP4 1.2.3.4 127.0.0.1 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x31\x11\0\0",
        b"\x16\x03\x01\x00\x05hello",
    ] {
        let tcp = with_header("127.0.0.2", proxy.addr, garbage, 1).await;
        assert!(closed(tcp, b"").await, "{}", String::from_utf8_lossy(garbage));
    }
    // A header that never ends is closed by the handshake deadline.
    let proxy = start(
        &site,
        "trusted_proxies = [\"127.0.0.2\"]\nproxy_protocol = \"required\"\nhandshake_timeout = \"1s\"",
        &origin,
    )
    .await;
    let tcp = with_header("127.0.0.2", proxy.addr, b"PROXY TCP4 1.2", 1).await;
    assert!(closed(tcp, b"").await);
    assert_eq!(origin.count(), 0);
}

#[tokio::test]
async fn the_connection_limit_is_keyed_on_the_proxied_client() {
    let (site, origin, proxy) =
        setup("trusted_proxies = [\"127.0.0.2\"]\nproxy_protocol = \"required\"\nmax_connections_per_ip = 1")
            .await;
    // One connection open for 203.0.113.9, through the balancer.
    let connector = tokio_rustls::TlsConnector::from(site.ca.client_config(&[b"http/1.1"]));
    let first = with_header("127.0.0.2", proxy.addr, V1, 1).await;
    let _held = connector
        .connect(ServerName::try_from("localhost").unwrap(), first)
        .await
        .unwrap();
    // A second for the same client is refused...
    let second = with_header("127.0.0.2", proxy.addr, V1, 1).await;
    assert!(closed(second, b"").await);
    // ...while another client behind the same balancer is served.
    let other = with_header("127.0.0.2", proxy.addr, &v2([198, 51, 100, 8], 9), 1).await;
    assert_eq!(get_over_tls(other, &site).await, 200);
    assert_eq!(real_ip(&origin), "198.51.100.8");
}

#[tokio::test]
async fn the_plain_listener_reads_it_too() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let toml =
        format!(
        "{}\n[http]\nlisten = [\"127.0.0.1:0\"]\nredirect_to_https = false\nproxy_protocol = \"required\"\n",
        tls_config("trusted_proxies = [\"127.0.0.2\"]", &route("/", &origin.url(), ""))
    );
    let (plain, _stop) = support::from::start_plain(&toml, &site).await;
    let tcp = with_header("127.0.0.2", plain, V1, 3).await;
    let req = Request::get("/who")
        .header("host", "localhost")
        .body(empty())
        .unwrap();
    assert_eq!(send(tcp, req).await.0, 200);
    assert_eq!(real_ip(&origin), "203.0.113.9");
    // A request line is not a header.
    let tcp = tcp_from("127.0.0.2", plain).await;
    assert!(closed(tcp, b"GET /who HTTP/1.1\r\nhost: localhost\r\n\r\n").await);
}

#[tokio::test]
async fn connections_lists_the_proxied_client() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let config = tls_config(REQUIRED, &route("/", &origin.url(), ""));
    let proxy = support::admin::AdminProxy::start(&config, site.dir.path()).await;
    let connector = tokio_rustls::TlsConnector::from(site.ca.client_config(&[b"http/1.1"]));
    let tcp = with_header("127.0.0.2", proxy.tls, V1, 1).await;
    let _held = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let mut page = String::new();
    for _ in 0..200 {
        page = proxy.get("/connections").await.1;
        if page.contains("203.0.113.9:51234") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(page.contains("203.0.113.9:51234"), "{page}");
    assert!(!page.contains("127.0.0.2"), "{page}");
}
