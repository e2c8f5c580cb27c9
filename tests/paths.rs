//! Paths are routed, and forwarded, as the application will read them:
//! dot-segments removed, unreserved escapes decoded, repeated slashes
//! merged. So `/x/../admin` cannot reach an `/admin` that requires a client
//! certificate by way of the `/` route, a path that climbs above the root
//! is a 400, and `path_normalization = "off"` forwards the bytes as sent
//! while routing still uses the normalised path.

mod support;

use http::{Request, StatusCode};
use support::admin::AdminProxy;
use support::mtls::{send, ClientCert};
use support::raw::Raw;
use support::*;

const H1: &[&[u8]] = &[b"http/1.1"];

/// The ways of writing `/admin/echo` that a raw-path router sends to `/`.
const BYPASSES: [&str; 9] = [
    "/x/../admin/echo",
    "/x/%2e%2e/admin/echo",
    "/x/.%2E/admin/echo",
    "/x/%2E%2e/admin/echo",
    "//admin/echo",
    "/./admin/echo",
    "/admin/./echo",
    "/%61dmin/echo",
    "/x/y/../../admin//echo",
];

/// `/` open to everybody; `/admin` needs a client certificate (mode
/// optional, so a client without one still gets TLS and then a 403).
struct Guarded {
    site: Site,
    clients: TestCa,
    origin: Origin,
    proxy: AdminProxy,
}

impl Guarded {
    async fn start(admin_extra: &str) -> Guarded {
        let site = Site::new();
        let clients = TestCa::named("portcullis test clients CA");
        std::fs::write(site.path("clients-ca.pem"), &clients.pem).unwrap();
        let origin = Origin::hello().await;
        let url = origin.url();
        let mut toml = tls_config(
            "",
            &format!(
                "{}{}",
                route("/", &url, ""),
                route(
                    "/admin",
                    &url,
                    &format!("require_client_cert = true\n{admin_extra}")
                )
            ),
        );
        toml.push_str("\n[tls.client_auth]\nca = \"clients-ca.pem\"\nmode = \"optional\"\n");
        let proxy = AdminProxy::start(&toml, site.dir.path()).await;
        Guarded {
            site,
            clients,
            origin,
            proxy,
        }
    }

    /// Sends `path` exactly as written, with or without a client
    /// certificate, and returns the status.
    async fn status(&self, path: &str, cert: Option<&ClientCert>) -> StatusCode {
        let config = self.site.ca.mtls_client(cert, H1, None);
        let req = Request::get(path)
            .header("host", "localhost")
            .body(empty())
            .unwrap();
        match send(self.proxy.tls, config, req).await {
            Ok((status, _)) => status,
            Err(e) => panic!("{path}: {e}"),
        }
    }
}

#[tokio::test]
async fn dot_segments_and_escapes_cannot_bypass_a_client_certificate_route() {
    let g = Guarded::start("").await;
    let cert = g.clients.issue_client("operator");
    for path in BYPASSES {
        let before = g.origin.count();
        assert_eq!(
            g.status(path, None).await,
            StatusCode::FORBIDDEN,
            "{path} without a certificate"
        );
        assert_eq!(
            g.origin.count(),
            before,
            "{path} reached the upstream without a certificate"
        );

        assert_eq!(
            g.status(path, Some(&cert)).await,
            StatusCode::OK,
            "{path} with a certificate"
        );
        // The application is told what the proxy routed on.
        assert_eq!(g.origin.last_seen().uri.path(), "/admin/echo", "{path}");
    }
    g.proxy.stop().await;
}

#[tokio::test]
async fn a_path_that_climbs_above_the_root_is_400_and_never_forwarded() {
    let g = Guarded::start("").await;
    for path in [
        "/../admin/echo",
        "/x/../../admin",
        "/%2e%2e/etc/passwd",
        "/a/%2E%2E/%2e%2e/b",
    ] {
        assert_eq!(g.status(path, None).await, StatusCode::BAD_REQUEST, "{path}");
    }
    // A `%` that escapes nothing is refused too: it could be read two ways.
    let mut raw = Raw::connect(g.proxy.tls, &g.site.ca).await;
    raw.get("/a%zz/b").await;
    assert_eq!(raw.read_response().await.expect("no answer").status, 400);
    assert_eq!(g.origin.count(), 0);
    assert_eq!(
        g.proxy
            .metric("portcullis_requests_refused_total{reason=\"path_climbs\"}")
            .await,
        Some(4.0)
    );
    assert_eq!(
        g.proxy
            .metric("portcullis_requests_refused_total{reason=\"path_escape\"}")
            .await,
        Some(1.0)
    );
    g.proxy.stop().await;
}

#[tokio::test]
async fn encoded_slashes_backslashes_and_nul_stay_encoded_and_split_nothing() {
    let g = Guarded::start("").await;
    for (sent, forwarded) in [
        ("/x/..%2Fadmin/echo", "/x/..%2Fadmin/echo"),
        ("/x/%2e%2e%2Fadmin/echo", "/x/..%2Fadmin/echo"),
        ("/x/..%5Cadmin", "/x/..%5Cadmin"),
        ("/x%00/../y", "/y"),
    ] {
        // One segment each: the open `/` route, not `/admin`.
        assert_eq!(g.status(sent, None).await, StatusCode::OK, "{sent}");
        assert_eq!(g.origin.last_seen().uri.path(), forwarded, "{sent}");
    }
    g.proxy.stop().await;
}

#[tokio::test]
async fn the_query_is_kept_as_sent() {
    let g = Guarded::start("").await;
    assert_eq!(
        g.status("/a/../b?next=/../x&y=%2e%2e", None).await,
        StatusCode::OK
    );
    let seen = g.origin.last_seen();
    assert_eq!(seen.uri.path(), "/b");
    assert_eq!(seen.uri.query(), Some("next=/../x&y=%2e%2e"));
    g.proxy.stop().await;
}

#[tokio::test]
async fn path_normalization_off_forwards_the_raw_path_and_still_routes_normalised() {
    let g = Guarded::start("path_normalization = \"off\"").await;
    let cert = g.clients.issue_client("operator");
    // Routing still uses the normalised path: no bypass.
    assert_eq!(g.status("/x/../admin/echo", None).await, StatusCode::FORBIDDEN);
    // The application gets the bytes the client signed.
    assert_eq!(
        g.status("/x/../admin//echo?sig=1", Some(&cert)).await,
        StatusCode::OK
    );
    let seen = g.origin.last_seen();
    assert_eq!(seen.uri.path(), "/x/../admin//echo");
    assert_eq!(seen.uri.query(), Some("sig=1"));
    // The `/` route normalises as usual.
    assert_eq!(g.status("/a/./b", None).await, StatusCode::OK);
    assert_eq!(g.origin.last_seen().uri.path(), "/a/b");
    g.proxy.stop().await;
}

#[tokio::test]
async fn http2_requests_are_normalised_the_same_way() {
    let g = Guarded::start("").await;
    let config = g.site.ca.mtls_client(None, &[b"h2"], None);
    let req = Request::get("https://localhost/x/%2e%2e/admin/echo")
        .body(empty())
        .unwrap();
    let (status, _) = send(g.proxy.tls, config, req)
        .await
        .expect("HTTP/2 request failed");
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(g.origin.count(), 0);
    g.proxy.stop().await;
}
