//! Routes that answer by themselves: `redirect` with its placeholders and
//! status, `respond`, and `methods` with its 405; each beside a route that
//! forwards, to show the answer goes only where it is configured.

mod support;

use http::{Method, Request, StatusCode};
use support::*;

fn request(method: Method, target: &str, host: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(target)
        .header("host", host)
        .body(empty())
        .unwrap()
}

#[tokio::test]
async fn redirect_respond_and_methods_answer_without_the_upstream() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let url = origin.url();
    let routes = [
        "[[route]]\npath = \"/old\"\nredirect = \"https://new.example{path}{query}\"\nstatus = 308\n"
            .to_string(),
        "[[route]]\npath_exact = \"/moved\"\nredirect = \"/elsewhere?from={host}\"\n".to_string(),
        "[[route]]\npath = \"/.git\"\nrespond = { status = 404, body = \"nothing here\\n\" }\n".to_string(),
        route("/api", &url, "methods = [\"GET\", \"POST\"]"),
        route("/", &url, ""),
    ]
    .concat();
    let proxy = ProxyHandle::start(&site.config(&routes), site.dir.path()).await;

    let (status, headers, body) = fetch(
        proxy.addr,
        &site.ca,
        request(Method::POST, "/old/a%2Fb?x=1", "localhost"),
    )
    .await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(headers["location"], "https://new.example/old/a%2Fb?x=1");
    assert_eq!(body, "");

    let (status, headers, _) = fetch(
        proxy.addr,
        &site.ca,
        request(Method::GET, "/moved", "Localhost:8443"),
    )
    .await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(headers["location"], "/elsewhere?from=Localhost");

    let (status, headers, body) = fetch(
        proxy.addr,
        &site.ca,
        request(Method::GET, "/.git/config", "localhost"),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::NOT_FOUND, "nothing here\n"));
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");

    // Over HTTP/2 too.
    let mut h2 = h2(proxy.addr, &site.ca).await;
    let resp = h2.send_request(get("/.git/HEAD")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    let (status, headers, _) = fetch(
        proxy.addr,
        &site.ca,
        request(Method::DELETE, "/api/x", "localhost"),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "GET, POST, HEAD");
    assert_eq!(origin.count(), 0, "an answer reached the upstream");

    // The methods it takes, HEAD with GET, are forwarded.
    for method in [Method::GET, Method::HEAD, Method::POST] {
        let (status, _, _) = fetch(
            proxy.addr,
            &site.ca,
            request(method.clone(), "/api/x", "localhost"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{method}");
    }
    // Routes without those keys forward everything.
    let (status, _, body) = fetch(
        proxy.addr,
        &site.ca,
        request(Method::DELETE, "/oldx", "localhost"),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello from /oldx"));
    assert_eq!(origin.count(), 4);
    proxy.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_routes_own_answers_count_as_the_routes() {
    let site = Site::new();
    let routes = [
        "[[route]]\npath = \"/old\"\nredirect = \"/new\"\n".to_string(),
        "[[route]]\npath = \"/teapot\"\nrespond = { status = 418 }\nmethods = [\"GET\"]\n".to_string(),
    ]
    .concat();
    let proxy = support::admin::AdminProxy::start(&site.config(&routes), site.dir.path()).await;
    for (method, path) in [
        (Method::GET, "/old"),
        (Method::GET, "/teapot"),
        (Method::PUT, "/teapot"),
    ] {
        fetch(proxy.tls, &site.ca, request(method, path, "localhost")).await;
    }
    proxy
        .wait_for_metric("portcullis_requests_total{route=\"/old\",status=\"3xx\"}", 1.0)
        .await;
    proxy
        .wait_for_metric("portcullis_requests_total{route=\"/teapot\",status=\"4xx\"}", 2.0)
        .await;
    proxy.stop().await;
}
