//! PROXY protocol to the upstream (`send_proxy_protocol`) read by a real
//! origin that parses the header before serving HTTP, and the RFC 7239
//! `Forwarded` element (`forwarded = true`).

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use support::from::{fetch_from, request, start};
use support::{full, route, tls_config, Origin, ProxyHandle, Site};

/// An HTTP origin behind which every connection starts with a PROXY
/// header; it records each header as read (v1 line, or v2 source).
struct ProxiedOrigin {
    addr: SocketAddr,
    headers: Arc<Mutex<Vec<String>>>,
}

impl ProxiedOrigin {
    async fn start() -> ProxiedOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let headers = Arc::new(Mutex::new(Vec::new()));
        let seen = headers.clone();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut first = [0u8; 1];
                    tcp.read_exact(&mut first).await.unwrap();
                    let header = if first[0] == b'P' {
                        let mut line = vec![b'P'];
                        while !line.ends_with(b"\r\n") {
                            line.push(tcp.read_u8().await.unwrap());
                        }
                        String::from_utf8(line).unwrap().trim_end().to_string()
                    } else {
                        let mut head = [0u8; 15];
                        tcp.read_exact(&mut head).await.unwrap();
                        assert_eq!(&head[..11], b"\n\r\n\0\r\nQUIT\n");
                        let len = usize::from(u16::from_be_bytes([head[13], head[14]]));
                        let mut body = vec![0u8; len];
                        tcp.read_exact(&mut body).await.unwrap();
                        assert_eq!((head[11], head[12]), (0x21, 0x11), "PROXY, TCP over IPv4");
                        let ip = std::net::Ipv4Addr::new(body[0], body[1], body[2], body[3]);
                        format!("v2 {ip}:{}", u16::from_be_bytes([body[8], body[9]]))
                    };
                    seen.lock().unwrap().push(header);
                    let service = hyper::service::service_fn(|_req: Request<Incoming>| async {
                        Ok::<_, Infallible>(Response::new(full("behind proxy protocol")))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        ProxiedOrigin { addr, headers }
    }

    fn headers(&self) -> Vec<String> {
        self.headers.lock().unwrap().clone()
    }
}

async fn proxy_to(site: &Site, origin: &ProxiedOrigin, version: &str) -> ProxyHandle {
    let config = tls_config(
        "trusted_proxies = [\"127.0.0.2\"]",
        &route(
            "/",
            &format!("http://{}", origin.addr),
            &format!("send_proxy_protocol = \"{version}\""),
        ),
    );
    ProxyHandle::start(&config, site.dir.path()).await
}

#[tokio::test]
async fn v2_names_the_client_to_the_upstream_on_every_connection() {
    let site = Site::new();
    let origin = ProxiedOrigin::start().await;
    let proxy = proxy_to(&site, &origin, "v2").await;
    let (status, _, body) = fetch_from("127.0.0.3", proxy.addr, &site.ca, request("/a", &[])).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "behind proxy protocol"));
    let first = origin.headers();
    assert_eq!(first.len(), 1);
    assert!(first[0].starts_with("v2 127.0.0.3:"), "{first:?}");
    // The real client behind a trusted proxy, on a connection of its own.
    let (status, _, _) = fetch_from(
        "127.0.0.2",
        proxy.addr,
        &site.ca,
        request("/b", &[("x-forwarded-for", "203.0.113.9")]),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        origin.headers(),
        vec![first[0].clone(), "v2 203.0.113.9:0".to_string()]
    );
}

#[tokio::test]
async fn v1_is_the_text_line() {
    let site = Site::new();
    let origin = ProxiedOrigin::start().await;
    let proxy = proxy_to(&site, &origin, "v1").await;
    let (status, _, _) = fetch_from("127.0.0.3", proxy.addr, &site.ca, request("/a", &[])).await;
    assert_eq!(status, 200);
    let line = &origin.headers()[0];
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(
        &fields[..4],
        &["PROXY", "TCP4", "127.0.0.3", "127.0.0.1"],
        "{line}"
    );
    assert_eq!(fields[5], proxy.addr.port().to_string(), "{line}");
}

#[tokio::test]
async fn forwarded_adds_an_rfc_7239_element() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let config = tls_config("", &route("/", &origin.url(), "forwarded = true"));
    let proxy = ProxyHandle::start(&config, site.dir.path()).await;
    fetch_from(
        "127.0.0.3",
        proxy.addr,
        &site.ca,
        request("/f", &[("forwarded", "for=192.0.2.1")]),
    )
    .await;
    let parts = origin.last_seen();
    assert_eq!(
        parts.headers["forwarded"],
        "for=192.0.2.1, for=127.0.0.3;host=\"localhost\";proto=https"
    );
    // Off by default.
    let proxy = start(&site, "", &origin).await;
    fetch_from("127.0.0.3", proxy.addr, &site.ca, request("/g", &[])).await;
    assert!(origin.last_seen().headers.get("forwarded").is_none());
}
