//! Route matching and path rewrites at a real origin: exact beats regex
//! beats prefix, `prefix_wins`, one-label wildcard hosts, per-port routes,
//! `strip_prefix` and `rewrite_prefix` keeping the bytes after the prefix,
//! a regex `rewrite`, the 301 to a route's trailing slash, and a regex that
//! looks catastrophic answered all the same.

mod support;

use std::net::SocketAddr;

use http::{Request, StatusCode};
use hyper::body::Incoming;
use support::*;

/// An origin that answers `<tag> <target>`, so the test sees which route
/// took a request and what target it forwarded.
async fn tagged(tag: &'static str) -> Origin {
    Origin::start(move |req: Request<Incoming>| async move {
        http::Response::new(full(format!("{tag} {}", req.uri())))
    })
    .await
}

/// `GET path` with `Host: host` on a fresh HTTP/1.1 connection: status,
/// headers and body.
async fn at(proxy: SocketAddr, site: &Site, host: &str, path: &str) -> (StatusCode, http::HeaderMap, String) {
    let req = Request::get(path).header("host", host).body(empty()).unwrap();
    fetch(proxy, &site.ca, req).await
}

#[tokio::test]
async fn exact_beats_regex_beats_prefix_and_prefix_wins_beats_regex() {
    let site = Site::new();
    let (exact, regex, prefix, wins, root) = (
        tagged("exact").await,
        tagged("regex").await,
        tagged("prefix").await,
        tagged("wins").await,
        tagged("root").await,
    );
    let routes = [
        route("/", &root.url(), ""),
        format!(
            "[[route]]\npath_exact = \"/static/app.js\"\nupstream = \"{}\"\n",
            exact.url()
        ),
        format!(
            "[[route]]\npath_regex = \"(?i)\\\\.js$\"\nupstream = \"{}\"\n",
            regex.url()
        ),
        route("/static", &prefix.url(), ""),
        route("/assets", &wins.url(), "prefix_wins = true"),
    ]
    .concat();
    let proxy = ProxyHandle::start(&site.config(&routes), site.dir.path()).await;
    for (path, want) in [
        ("/static/app.js", "exact /static/app.js"),
        ("/static/other.js", "regex /static/other.js"),
        ("/static/OTHER.JS", "regex /static/OTHER.JS"),
        ("/static/app.css", "prefix /static/app.css"),
        // The exact route matches one path only.
        ("/static/app.js/x", "prefix /static/app.js/x"),
        ("/assets/app.js", "wins /assets/app.js"),
        ("/elsewhere.js", "regex /elsewhere.js"),
        ("/elsewhere.css", "root /elsewhere.css"),
    ] {
        let (status, _, body) = at(proxy.addr, &site, "localhost", path).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, want), "{path}");
    }
    proxy.shutdown().await.unwrap();
}

#[tokio::test]
async fn strip_and_rewrite_prefix_keep_the_encoded_bytes_after_the_prefix() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let url = origin.url();
    let routes = [
        route("/gitea/", &url, "strip_prefix = true"),
        route("/app", &url, "rewrite_prefix = \"/api/\""),
        route("/raw", &url, "strip_prefix = true\npath_normalization = \"off\""),
        route("/", &url, ""),
    ]
    .concat();
    let proxy = ProxyHandle::start(&site.config(&routes), site.dir.path()).await;
    for (sent, forwarded) in [
        ("/gitea/a%2Fb%20c?q=%2F1", "/a%2Fb%20c?q=%2F1"),
        ("/gitea/", "/"),
        ("/app", "/api/"),
        ("/app/x%3By/", "/api/x%3By/"),
        // Normalised first: the unreserved escape decoded, the dot-segment gone.
        ("/gitea/%41/./b", "/A/b"),
        // Without normalisation, the bytes the client wrote.
        ("/raw//x/%41", "//x/%41"),
        // Not applied where the route does not rewrite.
        ("/other/a%2Fb", "/other/a%2Fb"),
        ("/giteax/y", "/giteax/y"),
    ] {
        let (status, _, body) = at(proxy.addr, &site, "localhost", sent).await;
        assert_eq!(status, StatusCode::OK, "{sent}");
        assert_eq!(body, format!("hello from {forwarded}"), "{sent}");
    }
    proxy.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_prefix_without_its_trailing_slash_is_redirected_to_it() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let url = origin.url();
    let routes = [
        route("/gitea/", &url, "strip_prefix = true"),
        route("/", &url, ""),
    ]
    .concat();
    let proxy = ProxyHandle::start(&site.config(&routes), site.dir.path()).await;
    let (status, headers, _) = at(proxy.addr, &site, "localhost", "/gitea?next=%2Fx").await;
    assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(headers["location"], "/gitea/?next=%2Fx");
    assert_eq!(origin.count(), 0, "the redirect was forwarded");
    // Only the bare prefix: a longer name is another path.
    let (status, _, body) = at(proxy.addr, &site, "localhost", "/giteax").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello from /giteax"));
    // Over HTTP/2 as well.
    let mut h2 = h2(proxy.addr, &site.ca).await;
    let resp = h2.send_request(get("/gitea")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(resp.headers()["location"], "/gitea/");
    proxy.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_regex_route_rewrites_with_its_captures_and_a_catastrophic_pattern_answers() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let url = origin.url();
    let routes = [
        format!(
            "[[route]]\npath_regex = \"^/static/[0-9a-f]{{8}}/(.*)$\"\nrewrite = \"/static/$1\"\nupstream = \"{url}\"\n"
        ),
        format!("[[route]]\npath_regex = \"^/(a+)+$\"\nupstream = \"{url}\"\n"),
        route("/", &url, ""),
    ]
    .concat();
    let proxy = ProxyHandle::start(&site.config(&routes), site.dir.path()).await;
    let (status, _, body) = at(proxy.addr, &site, "localhost", "/static/0123abcd/css/a.css?v=2").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "hello from /static/css/a.css?v=2")
    );
    // Not a hash: no rewrite.
    let (_, _, body) = at(proxy.addr, &site, "localhost", "/static/nothex12/a.css").await;
    assert_eq!(body, "hello from /static/nothex12/a.css");
    // A backtracking engine would take longer than the age of the universe
    // on this path; the regex crate reads it once.
    let long = format!("/{}b", "a".repeat(20_000));
    let (status, _, body) = within(
        std::time::Duration::from_secs(30),
        "the catastrophic-looking regex",
        at(proxy.addr, &site, "localhost", &long),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, format!("hello from {long}"));
    proxy.shutdown().await.unwrap();
}

#[tokio::test]
async fn wildcard_hosts_cover_one_label_and_fall_through_to_hostless_routes() {
    let site = Site::new();
    let (wild, exact, any) = (tagged("wild").await, tagged("exact").await, tagged("any").await);
    let routes = [
        format!(
            "[[route]]\nhost = \"*.example.test\"\npath = \"/\"\nupstream = \"{}\"\n",
            wild.url()
        ),
        format!(
            "[[route]]\nhost = \"api.example.test\"\npath = \"/v1\"\nupstream = \"{}\"\n",
            exact.url()
        ),
        route("/", &any.url(), ""),
    ]
    .concat();
    let proxy = ProxyHandle::start(&site.config(&routes), site.dir.path()).await;
    for (host, path, want) in [
        ("App.Example.test", "/x", "wild /x"),
        ("api.example.test", "/v1/x", "exact /v1/x"),
        // The exact host has no route for this path: the wildcard takes it.
        ("api.example.test", "/x", "wild /x"),
        ("a.b.example.test", "/x", "any /x"),
        ("example.test", "/x", "any /x"),
    ] {
        let req = Request::get(path).header("host", host).body(empty()).unwrap();
        let (status, _, body) = fetch(proxy.addr, &site.ca, req).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, want), "{host}{path}");
    }
    proxy.shutdown().await.unwrap();
}

/// A port free right now on 127.0.0.1, for a listener the test must name
/// in a route before the proxy binds it.
fn free_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_route_bound_to_a_port_answers_only_there() {
    let site = Site::new();
    let (console, api) = (tagged("console").await, tagged("api").await);
    let console_port = free_port();
    let toml = format!(
        "[server]\nlisten = [\"127.0.0.1:0\", \"127.0.0.1:{console_port}\"]\n\n\
         [tls]\ncert = \"fullchain.pem\"\nkey = \"privkey.pem\"\n\n{}{}",
        route("/", &console.url(), &format!("ports = [{console_port}]")),
        route("/", &api.url(), ""),
    );
    let config =
        portcullis::config::from_str(&toml, &site.path("proxy.toml")).unwrap_or_else(|e| panic!("{e}"));
    let proxy = portcullis::Proxy::bind(config).unwrap_or_else(|e| panic!("{e}"));
    let addrs = proxy.local_addrs();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(proxy.run(async move {
        let _ = stopped.await;
    }));
    let console_addr = *addrs.iter().find(|a| a.port() == console_port).unwrap();
    let api_addr = *addrs.iter().find(|a| a.port() != console_port).unwrap();
    let (_, _, body) = at(console_addr, &site, "localhost", "/x").await;
    assert_eq!(body, "console /x");
    let (_, _, body) = at(api_addr, &site, "localhost", "/x").await;
    assert_eq!(body, "api /x");
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
