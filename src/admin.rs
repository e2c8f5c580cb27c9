//! The admin listener (`[admin] listen`, off by default, loopback by
//! default): `/healthz` (the process is alive), `/readyz` (the listeners
//! accept and every configured certificate is loaded), `/metrics`
//! (Prometheus text) and `/connections` (JSON, one entry per live client
//! connection), `/upstreams` (JSON, one entry per `[[upstream]]` pool
//! with its servers' state), `/config` (JSON: the configuration in
//! service, its generation and digest; see `reload::view`), and
//! `POST /reload` (reload the configuration file; 200 with what changed,
//! or 422 with the errors that refused it) and `POST /upgrade` (start the
//! binary again with the listening sockets; 200 once the new process
//! serves, 422 with why not). It never proxies anything.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::connections::{ConnRegistry, StreamFacts};
use crate::metrics::Metrics;
use crate::tls::reload::ReloadStats;

/// What the admin pages read.
#[derive(Debug)]
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    pub connections: Arc<ConnRegistry>,
    pub reloads: Arc<ReloadStats>,
    /// Set once the listeners accept connections.
    pub serving: AtomicBool,
    /// The `[[upstream]]` pools, for `/upstreams`.
    pub(crate) pools: crate::proxy::upstream::metrics::Pools,
    /// Asks for a reload, for `POST /reload`.
    pub(crate) reload: crate::reload::Handle,
    /// The configuration in service, for `/config`.
    pub(crate) status: Arc<arc_swap::ArcSwap<crate::reload::view::Status>>,
}

/// Serves the admin pages on `listener` until `stop` fires.
pub async fn serve(listener: std::net::TcpListener, state: Arc<AdminState>, stop: CancellationToken) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("the admin listener cannot be used: {e}");
            return;
        }
    };
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let state = state.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move {
                    if req.method() == Method::POST {
                        match req.uri().path() {
                            "/reload" => return Ok::<_, Infallible>(reload(&state, false).await),
                            "/upgrade" => return Ok::<_, Infallible>(reload(&state, true).await),
                            _ => {}
                        }
                    }
                    Ok::<_, Infallible>(answer(&state, &req))
                }
            });
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = stop.cancelled() => {
                    // The answer being written goes out whole (the 200 of
                    // the POST /upgrade that stopped this listener among
                    // them); then the connection closes.
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), conn.as_mut()).await;
                }
            }
        });
    }
}

fn answer(state: &AdminState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n".to_owned());
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".to_owned()),
        "/readyz" => readiness(state),
        "/metrics" => {
            let mut r = text(StatusCode::OK, state.metrics.encode());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        "/connections" => connections(state),
        "/config" => {
            let mut r = text(StatusCode::OK, state.status.load().to_json());
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        "/reload" | "/upgrade" => {
            let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n".to_owned());
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            r
        }
        "/upstreams" => {
            let groups = state.pools.load();
            let views: Vec<_> = groups.iter().map(|g| g.view()).collect();
            let mut body = serde_json::to_string_pretty(&views).unwrap_or_else(|_| "[]".to_owned());
            body.push('\n');
            let mut r = text(StatusCode::OK, body);
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /healthz, /readyz, /metrics, /connections, /upstreams, /config or POST /reload\n"
                .to_owned(),
        ),
    }
}

/// `POST /reload` (or `/upgrade`): the outcome as text, 200 when applied
/// and 422 (with the errors, at file:line:key) when refused.
async fn reload(state: &AdminState, upgrade: bool) -> Response<Full<Bytes>> {
    let outcome = if upgrade {
        state.reload.upgrade("POST /upgrade").await
    } else {
        state.reload.reload("POST /reload").await
    };
    match outcome {
        crate::reload::Outcome::Upgraded { pid } => text(
            StatusCode::OK,
            format!("upgraded: process {pid} serves now; this one finishes its requests and tunnels\n"),
        ),
        crate::reload::Outcome::Applied { generation, changes } => text(
            StatusCode::OK,
            format!("reloaded: generation {generation}: {changes}\n"),
        ),
        crate::reload::Outcome::Refused { errors } if upgrade => text(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("upgrade failed; this process goes on serving:\n{errors}\n"),
        ),
        crate::reload::Outcome::Refused { errors } => text(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("reload refused; the running configuration stays:\n{errors}\n"),
        ),
    }
}

fn readiness(state: &AdminState) -> Response<Full<Bytes>> {
    let mut reasons = Vec::new();
    if !state.serving.load(Ordering::Relaxed) {
        reasons.push("the listeners do not accept connections yet".to_owned());
    }
    let waiting = state.reloads.bootstrapping.load(Ordering::Relaxed);
    if waiting > 0 {
        reasons.push(format!(
            "{waiting} configured certificate(s) not loaded yet: a temporary self-signed certificate stands in"
        ));
    }
    if reasons.is_empty() {
        text(StatusCode::OK, "ready\n".to_owned())
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", reasons.join("; ")),
        )
    }
}

#[derive(Serialize)]
struct ConnectionView<'a> {
    id: u64,
    peer: String,
    sni: Option<&'a str>,
    alpn: Option<&'a str>,
    tls_version: Option<&'a str>,
    cipher: Option<&'a str>,
    client_subject: Option<&'a str>,
    started: String,
    age_seconds: f64,
    bytes_in: u64,
    bytes_out: u64,
    tunnel: bool,
    /// What a stream's connection was joined to.
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<&'a StreamFacts>,
}

#[derive(Serialize)]
struct ConnectionsView<'a> {
    count: usize,
    connections: Vec<ConnectionView<'a>>,
}

fn connections(state: &AdminState) -> Response<Full<Bytes>> {
    let conns = state.connections.snapshot();
    let view = ConnectionsView {
        count: conns.len(),
        connections: conns
            .iter()
            .map(|c| {
                let tls = c.tls.get();
                ConnectionView {
                    id: c.id,
                    peer: c.peer.to_string(),
                    sni: tls.and_then(|t| t.sni.as_deref()),
                    alpn: tls.and_then(|t| t.alpn.as_deref()),
                    tls_version: tls.map(|t| t.version.as_str()),
                    cipher: tls.map(|t| t.cipher.as_str()),
                    client_subject: tls.and_then(|t| t.client_subject.as_deref()),
                    started: humantime::format_rfc3339_seconds(c.started_at).to_string(),
                    age_seconds: c.started.elapsed().as_secs_f64(),
                    bytes_in: c.bytes_in.load(Ordering::Relaxed),
                    bytes_out: c.bytes_out.load(Ordering::Relaxed),
                    tunnel: c.tunnels.load(Ordering::Relaxed) > 0,
                    stream: c.stream.get(),
                }
            })
            .collect(),
    };
    match serde_json::to_string_pretty(&view) {
        Ok(json) => {
            let mut r = text(StatusCode::OK, json + "\n");
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode: {e}\n")),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
