//! Origins that serve TLS themselves, for `https://` upstreams: a real
//! tokio-rustls acceptor on 127.0.0.1:0 with the certificate a test gives
//! it, in front of a hyper HTTP/1.1 server or a tokio-tungstenite echo.
//! Each completed handshake is recorded with the name (SNI) and protocol
//! (ALPN) the proxy asked for.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

use super::{full, Body};

/// What the proxy asked for in one TLS handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    pub sni: Option<String>,
    pub alpn: Option<Vec<u8>>,
}

pub struct HttpsOrigin {
    pub addr: SocketAddr,
    /// Completed handshakes, in order.
    pub handshakes: Arc<Mutex<Vec<Handshake>>>,
    /// HTTP requests served (always 0 for the WebSocket echo).
    pub requests: Arc<AtomicUsize>,
}

impl HttpsOrigin {
    /// Answers every request with `hello from <uri>`, the header
    /// `x-origin: tls`, and the request's `x-test` header echoed as
    /// `x-test-echo`.
    pub async fn hello(chain_pem: &str, key_pem: &str) -> HttpsOrigin {
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let origin = HttpsOrigin::serve(chain_pem, key_pem, move |tls| {
            let counter = counter.clone();
            async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let mut resp = Response::new(full(format!("hello from {}", req.uri())));
                    resp.headers_mut().insert("x-origin", "tls".parse().unwrap());
                    if let Some(value) = req.headers().get("x-test") {
                        resp.headers_mut().insert("x-test-echo", value.clone());
                    }
                    async move { Ok::<Response<Body>, Infallible>(resp) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            }
        })
        .await;
        HttpsOrigin { requests, ..origin }
    }

    /// Answers every request with its own body, streamed back as it comes.
    pub async fn echo(chain_pem: &str, key_pem: &str) -> HttpsOrigin {
        use http_body_util::BodyExt;
        HttpsOrigin::serve(chain_pem, key_pem, |tls| async move {
            let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let body: Body = req.into_body().map_err(Into::into).boxed();
                Ok::<Response<Body>, Infallible>(Response::new(body))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        })
        .await
    }

    /// A WebSocket echo server behind TLS.
    pub async fn websocket_echo(chain_pem: &str, key_pem: &str) -> HttpsOrigin {
        use tokio_tungstenite::tungstenite::Message;
        HttpsOrigin::serve(chain_pem, key_pem, |tls| async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                return;
            };
            while let Some(Ok(msg)) = ws.next().await {
                if matches!(msg, Message::Text(_) | Message::Binary(_)) && ws.send(msg).await.is_err() {
                    return;
                }
            }
        })
        .await
    }

    /// Accepts TLS connections with the given certificate chain and key and
    /// hands each completed one to `serve`.
    async fn serve<F, Fut>(chain_pem: &str, key_pem: &str, serve: F) -> HttpsOrigin
    where
        F: Fn(TlsStream<TcpStream>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handshakes = Arc::new(Mutex::new(Vec::new()));
        let seen = handshakes.clone();
        let serve = Arc::new(serve);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, seen, serve) = (acceptor.clone(), seen.clone(), serve.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let conn = tls.get_ref().1;
                    seen.lock().unwrap().push(Handshake {
                        sni: conn.server_name().map(str::to_owned),
                        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
                    });
                    serve(tls).await;
                });
            }
        });
        HttpsOrigin {
            addr,
            handshakes,
            requests: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// How many TLS connections completed a handshake.
    pub fn connections(&self) -> usize {
        self.handshakes.lock().unwrap().len()
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// A self-signed certificate for `names`, issued by no CA: (PEM, key PEM).
pub fn self_signed(names: &[&str]) -> (String, String) {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(names)
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}
