//! Request IDs: generated for every request, kept from a trusted peer
//! (127.0.0.2), replaced from an untrusted one (127.0.0.3), sent upstream,
//! logged, echoed with `echo_request_id`; W3C `traceparent` passed, or
//! started with `trace_context`.

mod support;

use http::Request;
use support::from::{fetch_from, request, start};
use support::process::ProxyProcess;
use support::{empty, route, tls_config, Origin, ProxyHandle, Site};

const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn seen(origin: &Origin, name: &str) -> Option<String> {
    let parts = origin.last_seen();
    parts.headers.get(name).map(|v| v.to_str().unwrap().to_string())
}

fn is_generated(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::test]
async fn ids_are_generated_kept_from_trusted_peers_and_replaced_from_others() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let proxy = start(
        &site,
        "trusted_proxies = [\"127.0.0.2\"]\necho_request_id = true",
        &origin,
    )
    .await;

    let (_, headers, _) = fetch_from("127.0.0.3", proxy.addr, &site.ca, request("/a", &[])).await;
    let generated = seen(&origin, "x-request-id").unwrap();
    assert!(is_generated(&generated), "{generated}");
    assert_eq!(headers["x-request-id"], generated.as_str());

    let (_, headers, _) = fetch_from("127.0.0.3", proxy.addr, &site.ca, request("/b", &[])).await;
    assert_ne!(
        headers["x-request-id"],
        generated.as_str(),
        "each request its own"
    );

    let (_, headers, _) = fetch_from(
        "127.0.0.2",
        proxy.addr,
        &site.ca,
        request("/c", &[("x-request-id", "lb-7f3a")]),
    )
    .await;
    assert_eq!(seen(&origin, "x-request-id").as_deref(), Some("lb-7f3a"));
    assert_eq!(headers["x-request-id"], "lb-7f3a");

    let (_, headers, _) = fetch_from(
        "127.0.0.3",
        proxy.addr,
        &site.ca,
        request("/d", &[("x-request-id", "forged")]),
    )
    .await;
    let replaced = seen(&origin, "x-request-id").unwrap();
    assert!(is_generated(&replaced), "{replaced}");
    assert_eq!(headers["x-request-id"], replaced.as_str());
    // A proxy-made answer carries it too.
    let req = Request::get("https://localhost/x")
        .header("host", "elsewhere.invalid")
        .body(empty())
        .unwrap();
    let config = tls_config(
        "echo_request_id = true",
        &support::route("/only", &origin.url(), "host = \"localhost\""),
    );
    let proxy404 = ProxyHandle::start(&config, site.dir.path()).await;
    let (status, headers, _) = fetch_from("127.0.0.3", proxy404.addr, &site.ca, req).await;
    assert_eq!(status, 404);
    assert!(is_generated(headers["x-request-id"].to_str().unwrap()));
}

#[tokio::test]
async fn not_echoed_by_default() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let proxy = start(&site, "", &origin).await;
    let (_, headers, _) = fetch_from("127.0.0.3", proxy.addr, &site.ca, request("/a", &[])).await;
    assert!(is_generated(&seen(&origin, "x-request-id").unwrap()));
    assert!(!headers.contains_key("x-request-id"));
    // Without trace_context nothing is started, and what comes passes.
    assert_eq!(seen(&origin, "traceparent"), None);
    fetch_from(
        "127.0.0.3",
        proxy.addr,
        &site.ca,
        request("/t", &[("traceparent", "garbage")]),
    )
    .await;
    assert_eq!(seen(&origin, "traceparent").as_deref(), Some("garbage"));
}

#[tokio::test]
async fn trace_context_passes_a_valid_traceparent_and_starts_one_otherwise() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let proxy = start(&site, "trace_context = true", &origin).await;
    fetch_from(
        "127.0.0.3",
        proxy.addr,
        &site.ca,
        request("/p", &[("traceparent", TRACE)]),
    )
    .await;
    assert_eq!(seen(&origin, "traceparent").as_deref(), Some(TRACE));

    for sent in [
        None,
        Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
    ] {
        let headers: Vec<(&str, &str)> = sent.iter().map(|t| ("traceparent", *t)).collect();
        fetch_from("127.0.0.3", proxy.addr, &site.ca, request("/s", &headers)).await;
        let started = seen(&origin, "traceparent").unwrap();
        let id = seen(&origin, "x-request-id").unwrap();
        let parts: Vec<&str> = started.split('-').collect();
        assert_eq!(parts.len(), 4, "{started}");
        assert_eq!(
            (parts[0], parts[1], parts[3]),
            ("00", id.as_str(), "01"),
            "{started}"
        );
        assert_eq!(parts[2].len(), 16, "{started}");
    }
}

#[tokio::test]
async fn the_access_log_carries_the_id() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let config = tls_config(
        "trusted_proxies = [\"127.0.0.2\"]",
        &route("/", &origin.url(), ""),
    );
    let (proxy, addr) = ProxyProcess::start(site.dir.path(), &config).await;
    fetch_from(
        "127.0.0.2",
        addr,
        &site.ca,
        request("/logged-id", &[("x-request-id", "lb-42")]),
    )
    .await;
    let line = proxy.line_with("\"GET /logged-id\"").await;
    assert!(line.ends_with(" request_id=lb-42"), "{line}");
    fetch_from(
        "127.0.0.3",
        addr,
        &site.ca,
        request("/logged-forged", &[("x-request-id", "lb-42")]),
    )
    .await;
    let line = proxy.line_with("\"GET /logged-forged\"").await;
    let id = line.rsplit("request_id=").next().unwrap();
    assert!(is_generated(id), "{line}");
}
