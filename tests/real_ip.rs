//! The real client address behind trusted proxies: what the origin sees
//! in X-Real-IP and X-Forwarded-For, and what the access log names, for a
//! trusted peer (127.0.0.2) and an untrusted one (127.0.0.3) sending the
//! same headers.

mod support;

use http::Request;
use support::from::{fetch_from, start};
use support::process::ProxyProcess;
use support::{empty, route, tls_config, Origin, ProxyHandle, Site};

fn seen(origin: &Origin, name: &str) -> String {
    let parts = origin.last_seen();
    let values: Vec<&str> = parts
        .headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    values.join(" | ")
}

/// Sends GET /who with `headers` from `source`; the status.
async fn ask(source: &str, proxy: &ProxyHandle, site: &Site, headers: &[(&str, &str)]) -> http::StatusCode {
    fetch_from(
        source,
        proxy.addr,
        &site.ca,
        support::from::request("/who", headers),
    )
    .await
    .0
}

#[tokio::test]
async fn a_trusted_chain_names_its_rightmost_untrusted_entry_not_the_spoofed_leftmost() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let proxy = start(
        &site,
        "trusted_proxies = [\"127.0.0.2\", \"10.0.0.0/8\"]",
        &origin,
    )
    .await;
    // The client forged 6.6.6.6; the load balancer (127.0.0.2) appended
    // the address it saw, 203.0.113.9, after an inner trusted hop.
    let xff = "6.6.6.6, 203.0.113.9, 10.1.1.1";
    let status = ask("127.0.0.2", &proxy, &site, &[("x-forwarded-for", xff)]).await;
    assert_eq!(status, 200);
    assert_eq!(seen(&origin, "x-real-ip"), "203.0.113.9");
    // As nginx's $proxy_add_x_forwarded_for with realip: the list as
    // received, then the client address.
    assert_eq!(seen(&origin, "x-forwarded-for"), format!("{xff}, 203.0.113.9"));
}

#[tokio::test]
async fn an_untrusted_peers_header_is_ignored() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let proxy = start(&site, "trusted_proxies = [\"127.0.0.2\"]", &origin).await;
    let status = ask(
        "127.0.0.3",
        &proxy,
        &site,
        &[("x-forwarded-for", "6.6.6.6"), ("x-real-ip", "6.6.6.6")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(seen(&origin, "x-real-ip"), "127.0.0.3");
    assert_eq!(seen(&origin, "x-forwarded-for"), "6.6.6.6, 127.0.0.3");
}

#[tokio::test]
async fn without_trusted_proxies_nobody_is_believed() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let proxy = start(&site, "", &origin).await;
    ask("127.0.0.2", &proxy, &site, &[("x-forwarded-for", "6.6.6.6")]).await;
    assert_eq!(seen(&origin, "x-real-ip"), "127.0.0.2");
}

#[tokio::test]
async fn forwarded_and_x_real_ip_headers() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let proxy = start(
        &site,
        "trusted_proxies = [\"127.0.0.0/8\"]\nreal_ip_header = \"forwarded\"",
        &origin,
    )
    .await;
    ask(
        "127.0.0.2",
        &proxy,
        &site,
        &[
            (
                "forwarded",
                "for=6.6.6.6, for=\"[2001:db8::9]:4711\";proto=https, for=127.0.0.5",
            ),
            ("x-forwarded-for", "7.7.7.7"),
        ],
    )
    .await;
    assert_eq!(seen(&origin, "x-real-ip"), "2001:db8::9");

    let proxy = start(
        &site,
        "trusted_proxies = [\"127.0.0.0/8\"]\nreal_ip_header = \"x-real-ip\"",
        &origin,
    )
    .await;
    ask(
        "127.0.0.2",
        &proxy,
        &site,
        &[("x-real-ip", "198.51.100.4"), ("x-forwarded-for", "7.7.7.7")],
    )
    .await;
    assert_eq!(seen(&origin, "x-real-ip"), "198.51.100.4");
    // Garbage from a trusted peer names nobody: the peer stays the client.
    ask("127.0.0.2", &proxy, &site, &[("x-real-ip", "not-an-address")]).await;
    assert_eq!(seen(&origin, "x-real-ip"), "127.0.0.2");
}

#[tokio::test]
async fn the_access_log_names_the_real_client() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let config = tls_config(
        "trusted_proxies = [\"127.0.0.2\"]",
        &route("/", &origin.url(), ""),
    );
    let (proxy, addr) = ProxyProcess::start(site.dir.path(), &config).await;
    let req = Request::get("https://localhost/logged-trusted")
        .header("host", "localhost")
        .header("x-forwarded-for", "6.6.6.6, 203.0.113.77")
        .body(empty())
        .unwrap();
    fetch_from("127.0.0.2", addr, &site.ca, req).await;
    let line = proxy.line_with("\"GET /logged-trusted\"").await;
    assert!(line.contains("203.0.113.77 \"GET /logged-trusted\""), "{line}");

    let req = Request::get("https://localhost/logged-untrusted")
        .header("host", "localhost")
        .header("x-forwarded-for", "203.0.113.77")
        .body(empty())
        .unwrap();
    fetch_from("127.0.0.3", addr, &site.ca, req).await;
    let line = proxy.line_with("\"GET /logged-untrusted\"").await;
    assert!(line.contains("127.0.0.3 \"GET /logged-untrusted\""), "{line}");
}

#[tokio::test]
async fn header_rules_and_forwarded_for_replace_see_the_real_client() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let config = tls_config(
        "trusted_proxies = [\"127.0.0.2\"]",
        &route(
            "/",
            &origin.url(),
            "forwarded_for = \"replace\"\nrequest.set = { \"X-Client\" = \"{client_ip}\" }",
        ),
    );
    let proxy = ProxyHandle::start(&config, site.dir.path()).await;
    let xff = [("x-forwarded-for", "6.6.6.6, 203.0.113.9")];
    assert_eq!(ask("127.0.0.2", &proxy, &site, &xff).await, 200);
    assert_eq!(seen(&origin, "x-client"), "203.0.113.9");
    assert_eq!(seen(&origin, "x-forwarded-for"), "203.0.113.9");
    // The same headers from an untrusted peer name the peer.
    assert_eq!(ask("127.0.0.3", &proxy, &site, &xff).await, 200);
    assert_eq!(seen(&origin, "x-client"), "127.0.0.3");
    assert_eq!(seen(&origin, "x-forwarded-for"), "127.0.0.3");
}
