//! The integration-test harness: a test CA made with rcgen, real origin
//! servers (HTTP and WebSocket echo) on 127.0.0.1:0, the proxy started
//! in-process from a TOML text, and real TLS clients (HTTP/1.1, HTTP/2,
//! WebSocket) that trust the test CA. Nothing is mocked.

#![allow(dead_code)]
// tungstenite's handshake callback returns its own large error type.
#![allow(clippy::result_large_err)]

pub mod admin;
pub mod certs;
pub mod compress;
pub mod from;
pub mod hosts;
pub mod https_origin;
pub mod live;
pub mod mtls;
pub mod nofile;
pub mod pools;
pub mod process;
pub mod raw;
pub mod streams;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

pub type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into()).map_err(|e| match e {}).boxed()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// Awaits `fut`, panicking with `what` if it takes longer than `limit`.
pub async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {limit:?} waiting for {what}"))
}

/// Polls `cond` until it holds or `timeout` passes; panics with `what` on timeout.
pub async fn wait_until<F: FnMut() -> bool>(timeout: Duration, what: &str, mut cond: F) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------- certificates

/// A certificate authority for one test, and the server certificates it issues.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pub pem: String,
    pub der: CertificateDer<'static>,
}

pub struct Issued {
    /// Leaf then CA, as certbot's fullchain.pem.
    pub chain_pem: String,
    /// The leaf alone, as certbot's cert.pem.
    pub leaf_pem: String,
    pub key_pem: String,
    pub leaf_der: CertificateDer<'static>,
}

impl TestCa {
    pub fn new() -> Self {
        TestCa::named("portcullis test CA")
    }

    /// A CA whose subject is `CN=<name>`.
    pub fn named(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let pem = issuer.pem();
        let der = issuer.der().clone();
        TestCa { issuer, pem, der }
    }

    /// An intermediate CA whose subject is `CN=<name>`, issued by this one:
    /// what it issues comes with it alone as the chain (leaf, intermediate).
    pub fn intermediate(&self, name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::signed_by(params, KeyPair::generate().unwrap(), &self.issuer).unwrap();
        let pem = issuer.pem();
        let der = issuer.der().clone();
        TestCa { issuer, pem, der }
    }

    pub fn issue(&self, names: &[&str]) -> Issued {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().cloned().unwrap_or_default());
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Issued {
            chain_pem: format!("{}{}", cert.pem(), self.pem),
            leaf_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            leaf_der: cert.der().clone(),
        }
    }

    /// A client configuration that trusts this CA only.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// A temporary directory with the CA-issued certificate for localhost and
/// 127.0.0.1 written as fullchain.pem and privkey.pem.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub ca: TestCa,
}

impl Site {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new();
        let issued = ca.issue(&["localhost", "127.0.0.1"]);
        std::fs::write(dir.path().join("fullchain.pem"), &issued.chain_pem).unwrap();
        std::fs::write(dir.path().join("privkey.pem"), &issued.key_pem).unwrap();
        Site { dir, ca }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A configuration with TLS from this site and the given routes
    /// (`[[route]]` tables as TOML text), listening on 127.0.0.1:0.
    pub fn config(&self, routes: &str) -> String {
        tls_config("shutdown_grace = \"10s\"", routes)
    }
}

/// A configuration listening on 127.0.0.1:0 with the certificate files a
/// `Site` writes, `server_keys` in its `[server]` table, and `routes`.
pub fn tls_config(server_keys: &str, routes: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n{server_keys}\n\n\
         [tls]\ncert = \"fullchain.pem\"\nkey = \"privkey.pem\"\n\n{routes}"
    )
}

/// One `[[route]]` table, with `extra` keys.
pub fn route(path: &str, upstream: &str, extra: &str) -> String {
    format!("[[route]]\npath = \"{path}\"\nupstream = \"{upstream}\"\n{extra}\n")
}

// ---------------------------------------------------------------- the proxy

pub struct ProxyHandle {
    pub addr: SocketAddr,
    /// Asks for a certificate reload and counts its outcomes.
    pub reload: portcullis::tls::reload::ReloadHandle,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), portcullis::Error>>,
}

impl ProxyHandle {
    /// Starts the proxy from `toml`, as if read from `dir/proxy.toml`.
    pub async fn start(toml: &str, dir: &Path) -> ProxyHandle {
        let config =
            portcullis::config::from_str(toml, &dir.join("proxy.toml")).unwrap_or_else(|e| panic!("{e}"));
        let proxy = portcullis::Proxy::bind(config).unwrap_or_else(|e| panic!("{e}"));
        let addr = proxy.local_addrs()[0];
        let reload = proxy.reload_handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(proxy.run(async move {
            let _ = stopped.await;
        }));
        ProxyHandle {
            addr,
            reload,
            stop: Some(stop),
            task,
        }
    }

    /// Signals shutdown, as SIGTERM does, without waiting for the drain.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Signals shutdown and waits for the proxy to return.
    pub async fn shutdown(mut self) -> Result<(), portcullis::Error> {
        self.begin_shutdown();
        self.task.await.unwrap()
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// How many reload candidates were refused so far.
    pub fn rejected(&self) -> u64 {
        self.reload
            .stats
            .rejected
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------- origins

type Handler =
    Arc<dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync>;

/// A real HTTP/1.1 server on 127.0.0.1:0 that records the head of every
/// request it receives.
pub struct Origin {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<http::request::Parts>>>,
    /// Number of TCP connections accepted, to prove pooling.
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl Origin {
    pub async fn start<F, Fut>(handler: F) -> Origin
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |req| Box::pin(handler(req)));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (seen2, conns2) = (seen.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                conns2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let handler = handler.clone();
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (parts, body) = req.into_parts();
                        seen.lock().unwrap().push(parts.clone());
                        let fut = handler(Request::from_parts(parts, body));
                        async move { Ok::<_, Infallible>(fut.await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Origin {
            addr,
            seen,
            connections,
        }
    }

    /// An origin that answers every request with `hello from <path>`.
    pub async fn hello() -> Origin {
        Origin::start(|req: Request<Incoming>| async move {
            Response::new(full(format!("hello from {}", req.uri())))
        })
        .await
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn last_seen(&self) -> http::request::Parts {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the origin saw no request")
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// A WebSocket echo server on 127.0.0.1:0 (tokio-tungstenite). It accepts
/// the first offered subprotocol and records each handshake's headers.
pub struct WsOrigin {
    pub addr: SocketAddr,
    pub handshakes: Arc<Mutex<Vec<http::HeaderMap>>>,
    /// Close frames received from clients: (code, reason).
    pub closes: Arc<Mutex<Vec<(u16, String)>>>,
}

impl WsOrigin {
    pub async fn start() -> WsOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handshakes = Arc::new(Mutex::new(Vec::new()));
        let closes = Arc::new(Mutex::new(Vec::new()));
        let (h2, c2) = (handshakes.clone(), closes.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (handshakes, closes) = (h2.clone(), c2.clone());
                tokio::spawn(async move {
                    use tokio_tungstenite::tungstenite::handshake::server::{
                        Request as WsReq, Response as WsResp,
                    };
                    use tokio_tungstenite::tungstenite::Message;
                    let callback = |req: &WsReq, mut resp: WsResp| {
                        handshakes.lock().unwrap().push(req.headers().clone());
                        if let Some(first) = req
                            .headers()
                            .get("sec-websocket-protocol")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.split(',').next())
                        {
                            resp.headers_mut()
                                .insert("sec-websocket-protocol", first.trim().parse().unwrap());
                        }
                        Ok(resp)
                    };
                    let Ok(mut ws) =
                        tokio_tungstenite::accept_hdr_async_with_config(tcp, callback, Some(big_messages()))
                            .await
                    else {
                        return;
                    };
                    while let Some(Ok(msg)) = ws.next().await {
                        match msg {
                            Message::Text(_) | Message::Binary(_) => {
                                let sent = ws.send(msg).await;
                                if sent.is_err() {
                                    return;
                                }
                            }
                            Message::Close(frame) => {
                                let (code, reason) = frame
                                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                                    .unwrap_or((1005, String::new()));
                                closes.lock().unwrap().push((code, reason));
                                // tungstenite answers the close itself.
                            }
                            _ => {}
                        }
                    }
                });
            }
        });
        WsOrigin {
            addr,
            handshakes,
            closes,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The server end of a WebSocket at a `ScriptedWsOrigin`.
pub type WsServer = WebSocketStream<TcpStream>;

/// A WebSocket origin whose behaviour on each connection is a script given
/// by the test (tokio-tungstenite server on 127.0.0.1:0).
pub struct ScriptedWsOrigin {
    pub addr: SocketAddr,
}

impl ScriptedWsOrigin {
    pub async fn start<F, Fut>(script: F) -> ScriptedWsOrigin
    where
        F: Fn(WsServer) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let script = Arc::new(script);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let script = script.clone();
                tokio::spawn(async move {
                    if let Ok(ws) =
                        tokio_tungstenite::accept_async_with_config(tcp, Some(big_messages())).await
                    {
                        script(ws).await;
                    }
                });
            }
        });
        ScriptedWsOrigin { addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// An echo origin that reports on the returned channel when a connection's
/// stream ends (end of stream or error).
pub async fn end_watching_origin() -> (ScriptedWsOrigin, mpsc::UnboundedReceiver<()>) {
    use tokio_tungstenite::tungstenite::Message;
    let (tx, rx) = mpsc::unbounded_channel();
    let origin = ScriptedWsOrigin::start(move |mut ws: WsServer| {
        let tx = tx.clone();
        async move {
            loop {
                match ws.next().await {
                    Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                        if ws.send(m).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                }
            }
            let _ = tx.send(());
        }
    })
    .await;
    (origin, rx)
}

pub fn big_messages() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20))
}

// ---------------------------------------------------------------- clients

pub async fn tls_connect(addr: SocketAddr, ca: &TestCa, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(ca.client_config(alpn));
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// An HTTP/1.1 client connection through TLS.
pub async fn h1(addr: SocketAddr, ca: &TestCa) -> hyper::client::conn::http1::SendRequest<Body> {
    let tls = tls_connect(addr, ca, &[b"http/1.1"]).await;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn.with_upgrades());
    send
}

/// An HTTP/2 client connection through TLS (negotiated by ALPN).
pub async fn h2(addr: SocketAddr, ca: &TestCa) -> hyper::client::conn::http2::SendRequest<Body> {
    let tls = tls_connect(addr, ca, &[b"h2"]).await;
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        Some(&b"h2"[..]),
        "the proxy did not negotiate h2"
    );
    let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

pub fn get(path: &str) -> Request<Body> {
    Request::get(format!("https://localhost{path}"))
        .header("host", "localhost")
        .body(empty())
        .unwrap()
}

/// Sends one request on a fresh HTTP/1.1 connection and returns the status
/// and the whole body as text.
pub async fn fetch(
    addr: SocketAddr,
    ca: &TestCa,
    req: Request<Body>,
) -> (http::StatusCode, http::HeaderMap, String) {
    let mut send = h1(addr, ca).await;
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// A WebSocket client through TLS to `path`.
pub async fn ws_connect(addr: SocketAddr, ca: &TestCa, path: &str) -> WebSocketStream<TlsStream<TcpStream>> {
    let tls = tls_connect(addr, ca, &[b"http/1.1"]).await;
    let (ws, resp) = tokio_tungstenite::client_async_with_config(
        format!("wss://localhost{path}"),
        tls,
        Some(big_messages()),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 101);
    ws
}
