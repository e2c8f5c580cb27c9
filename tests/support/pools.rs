//! For the pool tests: origins that answer with their own name and can be
//! told to fail, stall or stop, a configuration with one `[[upstream]]`,
//! and a tally of which origin answered.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{empty, full, Body, TestCa};

/// What a named origin does with the requests it gets.
#[derive(Default)]
pub struct Behaviour {
    /// `/healthz` answers 503 while set.
    pub unhealthy: AtomicBool,
    /// Requests to `/slow` wait for `release` while set.
    pub stall: AtomicBool,
    pub release: Notify,
    /// Requests waiting in `/slow` now.
    pub waiting: AtomicUsize,
}

/// An HTTP/1.1 origin that answers `from <name>` and can be stopped for
/// good (listener and every connection closed).
pub struct NamedOrigin {
    pub addr: SocketAddr,
    pub name: &'static str,
    /// Requests answered, `/healthz` not counted.
    pub served: Arc<AtomicUsize>,
    /// `/healthz` requests received.
    pub checks: Arc<AtomicUsize>,
    pub behaviour: Arc<Behaviour>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl NamedOrigin {
    pub async fn start(name: &'static str) -> NamedOrigin {
        Self::start_on("127.0.0.1:0", name).await
    }

    pub async fn start_on(addr: &str, name: &'static str) -> NamedOrigin {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("cannot bind {addr}: {e}"));
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        let checks = Arc::new(AtomicUsize::new(0));
        let behaviour = Arc::new(Behaviour::default());
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let (served2, checks2, behaviour2, stop2, tasks2) = (
            served.clone(),
            checks.clone(),
            behaviour.clone(),
            stop.clone(),
            tasks.clone(),
        );
        tasks.spawn(async move {
            loop {
                let tcp = tokio::select! {
                    () = stop2.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((tcp, _)) => tcp,
                        Err(_) => return,
                    },
                };
                let (served, checks, behaviour, stop) =
                    (served2.clone(), checks2.clone(), behaviour2.clone(), stop2.clone());
                tasks2.spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (served, checks, behaviour) = (served.clone(), checks.clone(), behaviour.clone());
                        async move { Ok::<_, Infallible>(answer(name, req, &served, &checks, &behaviour).await) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .with_upgrades();
                    tokio::select! {
                        _ = conn => {}
                        () = stop.cancelled() => {}
                    }
                });
            }
        });
        NamedOrigin {
            addr,
            name,
            served,
            checks,
            behaviour,
            stop,
            tasks,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }

    /// Closes the listener and every connection, and waits until they are.
    pub async fn stop(&self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

async fn answer(
    name: &'static str,
    req: Request<Incoming>,
    served: &AtomicUsize,
    checks: &AtomicUsize,
    behaviour: &Behaviour,
) -> Response<Body> {
    if req.uri().path() == "/healthz" {
        checks.fetch_add(1, Ordering::SeqCst);
        let status = if behaviour.unhealthy.load(Ordering::SeqCst) {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        let mut r = Response::new(empty());
        *r.status_mut() = status;
        return r;
    }
    served.fetch_add(1, Ordering::SeqCst);
    if req.uri().path() == "/slow" && behaviour.stall.load(Ordering::SeqCst) {
        let released = behaviour.release.notified();
        behaviour.waiting.fetch_add(1, Ordering::SeqCst);
        released.await;
        behaviour.waiting.fetch_sub(1, Ordering::SeqCst);
    }
    // Read the body whole, so a POST is answered after it arrived.
    let _ = req.into_body().collect().await;
    Response::new(full(format!("from {name}")))
}

/// One `[[upstream]]` named `app` over `servers` (TOML list items), with
/// `extra` keys, and a route `/` on it.
pub fn pool_config(servers: &[String], extra: &str) -> String {
    let list = servers.join(", ");
    format!(
        "[[route]]\npath = \"/\"\nupstream = \"app\"\n\n[[upstream]]\nname = \"app\"\nservers = [{list}]\n{extra}\n"
    )
}

/// `"http://..."` quoted, for `pool_config`.
pub fn quoted(url: &str) -> String {
    format!("\"{url}\"")
}

/// Sends `n` GETs of `path` over one HTTP/1.1 connection and counts the
/// answers by body (`from a`: 3, ...); a failed status counts as its code.
pub async fn tally(addr: SocketAddr, ca: &TestCa, path: &str, n: usize) -> HashMap<String, usize> {
    let mut send = super::h1(addr, ca).await;
    let mut seen = HashMap::new();
    for _ in 0..n {
        send.ready().await.unwrap();
        let resp = send.send_request(super::get(path)).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let key = if status == StatusCode::OK {
            String::from_utf8_lossy(&body).into_owned()
        } else {
            status.as_u16().to_string()
        };
        *seen.entry(key).or_insert(0) += 1;
    }
    seen
}

/// The answer to one GET of `path` on a fresh connection: status and body.
pub async fn one(addr: SocketAddr, ca: &TestCa, path: &str) -> (u16, String) {
    let (status, _, body) = super::fetch(addr, ca, super::get(path)).await;
    (status.as_u16(), body)
}

/// An origin on `addr` that answers `from <name>`, and a WebSocket
/// handshake with a first message `from <name>`, then echoes.
pub async fn ws_named(addr: &str, name: &'static str) -> SocketAddr {
    use futures_util::{SinkExt, StreamExt};
    use http::header;
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::tungstenite::Message;

    let listener = TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| panic!("cannot bind {addr}: {e}"));
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |mut req: Request<Incoming>| async move {
                    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
                        return Ok::<_, Infallible>(Response::new(full(format!("from {name}"))));
                    };
                    let upgrade = hyper::upgrade::on(&mut req);
                    tokio::spawn(async move {
                        let Ok(upgraded) = upgrade.await else { return };
                        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                            TokioIo::new(upgraded),
                            Role::Server,
                            None,
                        )
                        .await;
                        let _ = ws.send(Message::text(format!("from {name}"))).await;
                        while let Some(Ok(message)) = ws.next().await {
                            if message.is_text() && ws.send(message).await.is_err() {
                                return;
                            }
                        }
                    });
                    let resp = Response::builder()
                        .status(StatusCode::SWITCHING_PROTOCOLS)
                        .header(header::UPGRADE, "websocket")
                        .header(header::CONNECTION, "upgrade")
                        .header(header::SEC_WEBSOCKET_ACCEPT, derive_accept_key(key.as_bytes()))
                        .body(empty())
                        .unwrap();
                    Ok(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}
