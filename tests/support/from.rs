//! Clients that connect from a chosen loopback address (127.0.0.2,
//! 127.0.0.3, ...), so that one test can be a trusted proxy and an
//! untrusted client at once.

use std::net::SocketAddr;

use http::Request;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

use super::{Body, TestCa};

/// A TCP connection to `addr` from `source` (an IPv4 loopback address).
pub async fn tcp_from(source: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

/// A TLS connection (HTTP/1.1 by ALPN) to `addr` from `source`.
pub async fn tls_from(source: &str, addr: SocketAddr, ca: &TestCa) -> TlsStream<TcpStream> {
    let tcp = tcp_from(source, addr).await;
    let connector = tokio_rustls::TlsConnector::from(ca.client_config(&[b"http/1.1"]));
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// Sends `req` over HTTP/1.1 through TLS from `source`; the status, the
/// response headers and the body as text.
pub async fn fetch_from(
    source: &str,
    addr: SocketAddr,
    ca: &TestCa,
    req: Request<Body>,
) -> (http::StatusCode, http::HeaderMap, String) {
    let tls = tls_from(source, addr, ca).await;
    send(tls, req).await
}

/// Sends `req` over HTTP/1.1 on an established stream.
pub async fn send<S>(stream: S, req: Request<Body>) -> (http::StatusCode, http::HeaderMap, String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use http_body_util::BodyExt;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// GET `path` for localhost with `headers`.
pub fn request(path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut req = Request::get(format!("https://localhost{path}")).header("host", "localhost");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(super::empty()).unwrap()
}

/// The proxy for `site` with `server_keys` in `[server]` and one route
/// to `origin`.
pub async fn start(site: &super::Site, server_keys: &str, origin: &super::Origin) -> super::ProxyHandle {
    let config = super::tls_config(server_keys, &super::route("/", &origin.url(), ""));
    super::ProxyHandle::start(&config, site.dir.path()).await
}

/// Starts the proxy from `toml` for `site`, and returns its first plain
/// listener's address; it runs until the returned sender is dropped.
pub async fn start_plain(toml: &str, site: &super::Site) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let config =
        portcullis::config::from_str(toml, &site.path("proxy.toml")).unwrap_or_else(|e| panic!("{e}"));
    let proxy = portcullis::Proxy::bind(config).unwrap_or_else(|e| panic!("{e}"));
    let plain = proxy.plain_addrs()[0];
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(proxy.run(async move {
        let _ = stopped.await;
    }));
    (plain, stop)
}
