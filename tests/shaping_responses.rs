//! The upstream's URLs and cookies in responses made the client's:
//! `Location` and `Refresh` with the prefix mapped back (on with
//! `strip_prefix`), `http://` for the client's host made `https://`,
//! `cookie_path` and `cookie_flags`; and each left alone where it must be.

mod support;

use std::sync::{Arc, OnceLock};

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use support::*;

/// An origin whose answers name its own address, which it learns once
/// bound: `.../to-self` redirects to itself, `.../to-http` to
/// `http://localhost`, anything else elsewhere; every answer sets two cookies and a Refresh.
async fn redirecting_origin() -> Origin {
    let own: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    let own2 = own.clone();
    let origin = Origin::start(move |req: Request<Incoming>| {
        let own = own2.get().cloned().unwrap_or_default();
        async move {
            let path = req.uri().path();
            let location = if path.ends_with("/to-self") {
                format!("{own}/login?next=/x")
            } else if path.ends_with("/to-http") {
                "http://localhost/x".to_string()
            } else {
                "https://sso.example/login".to_string()
            };
            Response::builder()
                .status(StatusCode::FOUND)
                .header("location", location)
                .header("refresh", "0; url=/dashboard")
                .header("set-cookie", "session_id=abc; Path=/; SameSite=None")
                .header("set-cookie", "other=1; Path=/sub")
                .body(empty())
                .unwrap()
        }
    })
    .await;
    own.set(origin.url()).unwrap();
    origin
}

#[tokio::test]
async fn locations_refreshes_and_cookies_are_the_clients() {
    let site = Site::new();
    let origin = redirecting_origin().await;
    let url = origin.url();
    let routes = [
        route(
            "/gitea/",
            &url,
            "strip_prefix = true\ncookie_path = true\ncookie_flags = { session_id = \"secure; samesite=lax\" }",
        ),
        route("/fixed", &url, "redirect_rewrite = true"),
        route("/", &url, ""),
    ]
    .concat();
    let proxy = ProxyHandle::start(&site.config(&routes), site.dir.path()).await;

    let (status, h, _) = fetch(proxy.addr, &site.ca, get("/gitea/to-self")).await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(h["location"], "https://localhost/gitea/login?next=/x");
    assert_eq!(h["refresh"], "0; url=/gitea/dashboard");
    let cookies: Vec<_> = h.get_all("set-cookie").iter().collect();
    assert_eq!(
        cookies,
        [
            "session_id=abc; Path=/gitea/; secure; samesite=lax",
            "other=1; Path=/gitea/sub"
        ]
    );
    // A URL of another site is left as it is.
    let (_, h, _) = fetch(proxy.addr, &site.ca, get("/gitea/to-sso")).await;
    assert_eq!(h["location"], "https://sso.example/login");

    // Without a prefix rewrite, only where asked: http:// for the client's
    // host becomes what the client used.
    let (_, h, _) = fetch(proxy.addr, &site.ca, get("/fixed/to-http")).await;
    assert_eq!(h["location"], "https://localhost/x");
    let (_, h, _) = fetch(proxy.addr, &site.ca, get("/to-self")).await;
    assert_eq!(h["location"], format!("{url}/login?next=/x").as_str());
    assert_eq!(h["refresh"], "0; url=/dashboard");
    let cookies: Vec<_> = h.get_all("set-cookie").iter().collect();
    assert_eq!(
        cookies,
        ["session_id=abc; Path=/; SameSite=None", "other=1; Path=/sub"]
    );
    proxy.shutdown().await.unwrap();
}
