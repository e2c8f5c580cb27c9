//! Error pages: the proxy's own 502, 504 and 404 answered with the
//! configured pages, a route's pages over `[server]`'s, `intercept_errors`
//! on and off for an upstream's own errors, and each mistake in the
//! configuration reported at its key.

mod support;

use std::path::Path;
use std::time::Duration;

use http::StatusCode;
use support::compress::page;
use support::*;
use tokio::net::TcpListener;

const PAGE_502: &str = "<h1>We are updating the application</h1>\n";
const PAGE_504: &str = "<h1>The application is slow today</h1>\n";
const PAGE_503: &str = "{\"error\":\"maintenance\"}\n";

/// A site with the three pages written beside its configuration.
fn site() -> Site {
    let site = Site::new();
    std::fs::write(site.path("502.html"), PAGE_502).unwrap();
    std::fs::write(site.path("504.html"), PAGE_504).unwrap();
    std::fs::write(site.path("503.json"), PAGE_503).unwrap();
    std::fs::write(site.path("route-502.txt"), "route page\n").unwrap();
    site
}

/// An upstream that accepts connections and never answers.
async fn silent_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{addr}")
}

async fn start(site: &Site, server_keys: &str, routes: &str) -> ProxyHandle {
    let cfg = tls_config(server_keys, routes);
    ProxyHandle::start(&cfg, site.dir.path()).await
}

#[tokio::test]
async fn the_proxys_own_502_504_and_404_get_the_pages() {
    let site = site();
    let silent = silent_upstream().await;
    let routes = format!(
        "{}{}",
        route("/dead", "http://127.0.0.1:1", ""),
        route("/slow", &silent, "read_timeout = \"1s\"")
    );
    std::fs::write(site.path("404.html"), "<p>nothing here</p>").unwrap();
    let proxy = start(
        &site,
        "error_pages = { 502 = \"502.html\", 504 = \"504.html\", 404 = \"404.html\" }",
        &routes,
    )
    .await;
    let (status, headers, body) = fetch(proxy.addr, &site.ca, get("/dead")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["content-length"], PAGE_502.len().to_string());
    assert_eq!(body, PAGE_502);
    let (status, _, body) = within(
        Duration::from_secs(30),
        "the 504",
        fetch(proxy.addr, &site.ca, get("/slow")),
    )
    .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body, PAGE_504);
    // No route at all: [server]'s pages.
    let (status, _, body) = fetch(proxy.addr, &site.ca, get("/nowhere")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, "<p>nothing here</p>");
}

#[tokio::test]
async fn a_routes_pages_replace_the_servers() {
    let site = site();
    let routes = format!(
        "{}{}{}",
        route(
            "/own",
            "http://127.0.0.1:1",
            "error_pages = { 502 = \"route-502.txt\" }"
        ),
        route("/none", "http://127.0.0.1:1", "error_pages = {}"),
        route("/", "http://127.0.0.1:1", ""),
    );
    let proxy = start(&site, "error_pages = { 502 = \"502.html\" }", &routes).await;
    let (_, headers, body) = fetch(proxy.addr, &site.ca, get("/own")).await;
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(body, "route page\n");
    let (status, _, body) = fetch(proxy.addr, &site.ca, get("/none")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(body.starts_with("502 bad gateway"), "{body}");
    let (_, _, body) = fetch(proxy.addr, &site.ca, get("/other")).await;
    assert_eq!(body, PAGE_502);
}

#[tokio::test]
async fn intercept_errors_replaces_the_upstreams_error_and_keeps_its_status() {
    let site = site();
    let origin = compress::origin().await;
    let pages = "error_pages = { 503 = \"503.json\" }";
    let routes = format!(
        "{}{}",
        route(
            "/status/",
            &origin.url(),
            &format!("{pages}\nintercept_errors = true")
        ),
        route("/", &origin.url(), pages),
    );
    let proxy = start(&site, "", &routes).await;
    let (status, headers, body) = fetch(proxy.addr, &site.ca, get("/status/503")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body, PAGE_503);
    // A status without a page passes as the upstream sent it.
    let (status, _, body) = fetch(proxy.addr, &site.ca, get("/status/500")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body.as_bytes(), page());
    // intercept_errors off (the other route): the upstream's own 503 body.
    let (status, headers, body) = fetch(proxy.addr, &site.ca, get("/503")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the origin answers /503 with 404");
    assert_eq!(headers["content-type"], "text/html");
    assert_eq!(body.as_bytes(), page());

    // The same through [server]: intercept_errors there reaches the routes.
    let proxy = start(
        &site,
        &format!("{pages}\nintercept_errors = true"),
        &route("/", &origin.url(), ""),
    )
    .await;
    let (status, _, body) = fetch(proxy.addr, &site.ca, get("/status/503")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, PAGE_503);
    // And a route may turn it off.
    let proxy = start(
        &site,
        &format!("{pages}\nintercept_errors = true"),
        &route("/", &origin.url(), "intercept_errors = false"),
    )
    .await;
    let (status, _, body) = fetch(proxy.addr, &site.ca, get("/status/503")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body.as_bytes(), page());
}

fn config_error(dir: &Path, text: &str) -> String {
    match portcullis::config::from_str(text, &dir.join("proxy.toml")) {
        Ok(_) => panic!("expected an error in:\n{text}"),
        Err(errors) => {
            assert_eq!(errors.len(), 1, "expected exactly one error, got:\n{errors}");
            errors.0[0].to_string()
        }
    }
}

#[test]
fn mistakes_are_reported_at_their_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("502.html"), "x").unwrap();
    std::fs::write(dir.path().join("502.png"), "x").unwrap();
    let base = dir.path().display().to_string();
    let route = "[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:8080\"\n";
    let e = config_error(
        dir.path(),
        &format!("[server]\nerror_pages = {{ 502 = \"missing.html\" }}\n\n{route}"),
    );
    assert_eq!(
        e,
        format!(
            "{base}/proxy.toml:2:23: server.error_pages.502: the page `{base}/missing.html` cannot be read: no such file\n  \
             help: write the path of a readable file of at most 1 MiB (a relative path is read from the configuration file's directory)"
        )
    );
    let e = config_error(
        dir.path(),
        &format!("{route}error_pages = {{ 200 = \"502.html\" }}\n"),
    );
    assert!(
        e.starts_with(&format!(
            "{base}/proxy.toml:4:17: route[0].error_pages.200: `200` is not an error status"
        )),
        "{e}"
    );
    let e = config_error(
        dir.path(),
        &format!("{route}error_pages = {{ 502 = \"502.png\" }}\n"),
    );
    assert!(
        e.contains("has no extension a Content-Type can be told from"),
        "{e}"
    );
    assert!(
        e.contains("help: name the page .html (or .htm), .txt, .json or .xml"),
        "{e}"
    );
    let e = config_error(dir.path(), &format!("{route}error_pages = \"502.html\"\n"));
    assert!(
        e.contains("expected a table of statuses and files, found a string"),
        "{e}"
    );
    let e = config_error(
        dir.path(),
        &format!("{route}error_page = {{ 502 = \"502.html\" }}\n"),
    );
    assert!(
        e.contains("help: portcullis calls this setting `error_pages`"),
        "{e}"
    );
    let e = config_error(dir.path(), &format!("{route}proxy_intercept_errors = true\n"));
    assert!(
        e.contains("help: portcullis calls this setting `intercept_errors`"),
        "{e}"
    );
    let e = config_error(
        dir.path(),
        &format!("{route}error_pages = {{ 502 = \"{base}\" }}\n"),
    );
    assert!(e.contains("has no extension"), "{e}");
}
