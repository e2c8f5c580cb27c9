//! Upstream keep-alive as the application sees it: the connections a burst
//! of clients opened are cut back to the route's `keepalive` once it is
//! over, `keepalive = 0` closes every connection after its exchange, and a
//! short `keepalive_timeout` closes idle connections once it passes. The
//! origin counts the TCP connections it holds open, and
//! `portcullis_upstream_idle_connections` must say the same.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use support::admin::AdminProxy;
use support::*;
use tokio::net::TcpListener;
use tokio::sync::Barrier;

const IDLE: &str = "portcullis_upstream_idle_connections{route=\"/\"}";

/// An HTTP/1.1 origin on 127.0.0.1:0 that counts the connections it
/// accepted and those still open (a connection closes at the origin when
/// the proxy closes its end).
struct CountingOrigin {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
}

/// Takes one off `open` when the connection's task ends, however it ends.
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl CountingOrigin {
    /// Every request is answered `ok`; with a `gate`, only once as many
    /// requests as the gate holds are in at once, so that each had to
    /// come on a connection of its own.
    async fn start(gate: Option<Arc<Barrier>>) -> CountingOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let (accepted2, open2) = (accepted.clone(), open.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                accepted2.fetch_add(1, Ordering::SeqCst);
                open2.fetch_add(1, Ordering::SeqCst);
                let guard = OpenGuard(open2.clone());
                let gate = gate.clone();
                tokio::spawn(async move {
                    let _guard = guard;
                    let service = hyper::service::service_fn(move |_req: http::Request<Incoming>| {
                        let gate = gate.clone();
                        async move {
                            if let Some(gate) = gate {
                                gate.wait().await;
                            }
                            Ok::<_, Infallible>(http::Response::new(full("ok")))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        CountingOrigin { addr, accepted, open }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// GET `/` through the proxy on a connection of its own; the body read to
/// its end.
async fn get_ok(proxy: SocketAddr, ca: &TestCa) {
    let (status, _, body) = fetch(proxy, ca, get("/")).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "ok"));
}

const LIMIT: Duration = Duration::from_secs(10);

/// A counting origin (with `gate`), and the proxy in front of it with one
/// route `/` that has the keys `route_keys`.
async fn start(gate: Option<Arc<Barrier>>, route_keys: &str) -> (Site, CountingOrigin, AdminProxy) {
    let site = Site::new();
    let origin = CountingOrigin::start(gate).await;
    let toml = site.config(&route("/", &origin.url(), route_keys));
    let proxy = AdminProxy::start(&toml, site.dir.path()).await;
    (site, origin, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_leaves_at_most_keepalive_idle_connections() {
    const BURST: usize = 12;
    const KEEPALIVE: usize = 3;
    let (site, origin, proxy) = start(
        Some(Arc::new(Barrier::new(BURST))),
        &format!("keepalive = {KEEPALIVE}"),
    )
    .await;

    let clients = (0..BURST).map(|_| get_ok(proxy.tls, &site.ca));
    within(LIMIT, "the burst of requests", join_all(clients)).await;
    // The origin held every request until all of them were in.
    assert_eq!(origin.accepted(), BURST);

    wait_until(LIMIT, "the origin to hold only `keepalive` connections", || {
        origin.open() == KEEPALIVE
    })
    .await;
    proxy.wait_for_metric(IDLE, KEEPALIVE as f64).await;
    assert_eq!(origin.open(), KEEPALIVE);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_connections_carry_the_next_requests() {
    let (site, origin, proxy) = start(None, "keepalive = 1").await;

    for _ in 0..3 {
        within(LIMIT, "a request", get_ok(proxy.tls, &site.ca)).await;
        // Given back once its response was read to the end, which may be
        // just after the client saw that end.
        proxy.wait_for_metric(IDLE, 1.0).await;
    }
    assert_eq!(origin.accepted(), 1);
    assert_eq!(origin.open(), 1);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_zero_closes_after_every_exchange() {
    let (site, origin, proxy) = start(None, "keepalive = 0").await;

    for n in 1..=3 {
        within(LIMIT, "a request", get_ok(proxy.tls, &site.ca)).await;
        wait_until(LIMIT, "the origin to see the connection closed", || {
            origin.open() == 0
        })
        .await;
        assert_eq!(origin.accepted(), n);
        assert_eq!(proxy.metric(IDLE).await, Some(0.0));
    }
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_close_after_keepalive_timeout() {
    let (site, origin, proxy) = start(None, "keepalive_timeout = \"1s\"").await;

    within(LIMIT, "a request", get_ok(proxy.tls, &site.ca)).await;
    assert_eq!(origin.accepted(), 1);
    wait_until(LIMIT, "the idle connection to be closed", || origin.open() == 0).await;
    proxy.wait_for_metric(IDLE, 0.0).await;

    // The route still works, on a new connection.
    within(LIMIT, "a request", get_ok(proxy.tls, &site.ca)).await;
    assert_eq!(origin.accepted(), 2);
    proxy.stop().await;
}
