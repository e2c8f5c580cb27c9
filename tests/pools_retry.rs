//! Retries: a connection refused is tried on another server whatever the
//! method; a request whose body was sent, or whose response started, is
//! never sent twice; the retry budget bounds retries under a dead server.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use support::admin::AdminProxy;
use support::pools::*;
use support::*;

fn refusing() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

#[tokio::test]
async fn a_refused_connection_is_retried_on_another_server_even_for_post() {
    let a = NamedOrigin::start("a").await;
    let dead = refusing();
    let site = Site::new();
    // No passive marking: every request meets the dead server first in turn.
    let config = pool_config(
        &[quoted(&dead), quoted(&a.url())],
        "[upstream.passive]\nmax_fails = 0",
    );
    let proxy = AdminProxy::start(&site.config(&config), site.dir.path()).await;
    let mut send = h1(proxy.tls, &site.ca).await;
    for _ in 0..4 {
        let req = Request::post("https://localhost/upload")
            .header("host", "localhost")
            .body(full("payload"))
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, Bytes::from("from a"));
    }
    assert_eq!(a.served(), 4);
    let retries = proxy
        .metric(&format!(
            "portcullis_upstream_server_retries_total{{pool=\"app\",server=\"{dead}\"}}"
        ))
        .await;
    assert_eq!(retries, Some(2.0));
    proxy.stop().await;
}

/// An origin that reads the request body and never answers, counting
/// the requests it saw.
async fn hanging_up(seen: Arc<AtomicUsize>) -> Origin {
    Origin::start(move |req: Request<Incoming>| {
        let seen = seen.clone();
        async move {
            seen.fetch_add(1, Ordering::SeqCst);
            let _ = req.into_body().collect().await;
            std::future::pending::<Response<Body>>().await
        }
    })
    .await
}

#[tokio::test]
async fn a_post_whose_body_was_sent_is_never_sent_again() {
    let seen = Arc::new(AtomicUsize::new(0));
    let first = hanging_up(seen.clone()).await;
    let second = hanging_up(seen.clone()).await;
    let site = Site::new();
    let config = pool_config(
        &[quoted(&first.url()), quoted(&second.url())],
        "[upstream.passive]\nmax_fails = 0",
    )
    .replace(
        "upstream = \"app\"\n",
        "upstream = \"app\"\nread_timeout = \"300ms\"\n",
    );
    let proxy = AdminProxy::start(&site.config(&config), site.dir.path()).await;
    let req = Request::post("https://localhost/upload")
        .header("host", "localhost")
        .body(full(vec![b'x'; 100_000]))
        .unwrap();
    let (status, _, _) = fetch(proxy.tls, &site.ca, req).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(seen.load(Ordering::SeqCst), 1, "the POST reached a second server");
    proxy.stop().await;
}

#[tokio::test]
async fn a_started_response_is_never_retried() {
    let seen = Arc::new(AtomicUsize::new(0));
    let seen2 = seen.clone();
    // Promises 100 000 bytes (more than is read before the head goes out),
    // sends 5 and closes.
    let cut = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cut_url = format!("http://{}", cut.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut tcp, _)) = cut.accept().await {
            seen2.fetch_add(1, Ordering::SeqCst);
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let _ = tcp
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\nhello")
                .await;
        }
    });
    let a = NamedOrigin::start("a").await;
    let site = Site::new();
    let config = pool_config(&[quoted(&cut_url), quoted(&a.url())], "");
    let proxy = AdminProxy::start(&site.config(&config), site.dir.path()).await;
    let mut send = h1(proxy.tls, &site.ca).await;
    // The head may or may not reach the client before the cut: either
    // way the client must see the response fail, never a second answer.
    let failed = match send.send_request(get("/")).await {
        Ok(resp) => resp.into_body().collect().await.is_err(),
        Err(_) => true,
    };
    assert!(failed, "the cut response must fail at the client");
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    assert_eq!(a.served(), 0, "the started response was retried");
    proxy.stop().await;
}

#[tokio::test]
async fn the_retry_budget_holds_under_a_dead_server() {
    let [a, b] = [NamedOrigin::start("a").await, NamedOrigin::start("b").await];
    let dead = refusing();
    let site = Site::new();
    let config = pool_config(
        &[quoted(&dead), quoted(&a.url()), quoted(&b.url())],
        "retry_budget = \"10%\"\n[upstream.passive]\nmax_fails = 0",
    );
    let proxy = AdminProxy::start(&site.config(&config), site.dir.path()).await;
    let n = 150;
    let seen = tally(proxy.tls, &site.ca, "/", n).await;
    let retries = proxy
        .metric(&format!(
            "portcullis_upstream_server_retries_total{{pool=\"app\",server=\"{dead}\"}}"
        ))
        .await
        .unwrap();
    // A third of the requests meet the dead server first; the budget lets
    // a tenth of them (and the ten saved up) be retried.
    assert!(
        retries <= 0.1 * n as f64 + 10.0,
        "{retries} retries for {n} requests"
    );
    let failed = seen.get("502").copied().unwrap_or(0);
    assert!(failed > 0, "{seen:?}");
    assert_eq!(failed as f64 + retries, (n / 3) as f64, "{seen:?}");
    proxy.stop().await;
}

#[tokio::test]
async fn a_server_on_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let host = req.headers().get("host").cloned();
                    let text = format!("unix {} {:?}", req.uri(), host);
                    Ok::<_, std::convert::Infallible>(Response::new(full(text)))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let site = Site::new();
    let config = pool_config(&[format!("\"unix:{}\"", path.display())], "");
    let proxy = AdminProxy::start(&site.config(&config), site.dir.path()).await;
    let (status, body) = one(proxy.tls, &site.ca, "/x?y=1").await;
    assert_eq!(status, 200);
    assert_eq!(body, "unix /x?y=1 Some(\"localhost\")");
    proxy.stop().await;
}

/// An origin that answers the first request of each connection, keeps it
/// open, and closes it without answering when the second one comes: a
/// kept connection that died while idle, as the proxy meets it. Counts
/// the requests answered.
async fn one_per_connection() -> (String, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let answered = Arc::new(AtomicUsize::new(0));
    let answered2 = answered.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let answered = answered2.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                for round in 0..2 {
                    // Each request of these tests has its head end the data.
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tcp.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.clear();
                    if round == 1 {
                        return;
                    }
                    answered.fetch_add(1, Ordering::SeqCst);
                    let _ = tcp
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                }
            });
        }
    });
    (url, answered)
}

#[tokio::test]
async fn an_idempotent_request_on_a_dead_kept_connection_is_sent_again() {
    let (url, answered) = one_per_connection().await;
    let site = Site::new();
    let config = pool_config(&[quoted(&url)], "");
    let proxy = AdminProxy::start(&site.config(&config), site.dir.path()).await;
    let mut send = h1(proxy.tls, &site.ca).await;
    for round in 0..3 {
        let resp = send.send_request(get("/")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "request {round}");
        let _ = resp.into_body().collect().await;
    }
    assert_eq!(answered.load(Ordering::SeqCst), 3);
    // A DELETE is idempotent too; a POST is not, and is answered 502.
    let req = |method: &str| {
        Request::builder()
            .method(method)
            .uri("https://localhost/")
            .header("host", "localhost")
            .body(empty())
            .unwrap()
    };
    let resp = send.send_request(req("DELETE")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let _ = resp.into_body().collect().await;
    let resp = send.send_request(req("POST")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    proxy.stop().await;
}
