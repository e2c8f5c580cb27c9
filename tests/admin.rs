//! The admin listener: `/metrics` after known traffic (names and values),
//! `/connections` listing a live TLS connection with its version and
//! cipher, `/readyz` flipping when a bootstrapped certificate is replaced
//! by the real one, and `/healthz`.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use support::admin::{sample, AdminProxy};
use support::*;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_known_traffic() {
    let site = Site::new();
    let origin = Origin::start(|req: http::Request<hyper::body::Incoming>| async move {
        let status = if req.uri().path() == "/missing" { 404 } else { 200 };
        http::Response::builder()
            .status(status)
            .body(full("0123456789"))
            .unwrap()
    })
    .await;
    let ws = WsOrigin::start().await;
    let toml = site.config(&format!(
        "{}{}",
        route("/", &origin.url(), ""),
        route("/ws", &ws.url(), "")
    ));
    let admin = AdminProxy::start(&toml, site.dir.path()).await;

    for path in ["/a", "/b", "/c", "/missing"] {
        let (status, _, _) = fetch(admin.tls, &site.ca, get(path)).await;
        assert!(status == 200 || status == 404);
    }
    // A route to nowhere: an upstream connect error.
    let mut client = ws_connect(admin.tls, &site.ca, "/ws").await;
    client.send(Message::text("hi")).await.unwrap();
    assert_eq!(client.next().await.unwrap().unwrap(), Message::text("hi"));

    let (status, page) = admin.get("/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        sample(&page, "portcullis_requests_total{route=\"/\",status=\"2xx\"}"),
        Some(3.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "portcullis_requests_total{route=\"/\",status=\"4xx\"}"),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "portcullis_requests_total{route=\"/ws\",status=\"1xx\"}"),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "portcullis_request_duration_seconds_count{route=\"/\"}"),
        Some(4.0),
        "{page}"
    );
    assert_eq!(sample(&page, "portcullis_tunnels_active"), Some(1.0), "{page}");
    assert!(
        sample(&page, "portcullis_connections_active").unwrap_or(0.0) >= 1.0,
        "{page}"
    );
    assert!(
        sample(&page, "portcullis_connections_total").unwrap_or(0.0) >= 5.0,
        "{page}"
    );
    let handshakes = "portcullis_tls_handshakes_total{version=\"TLSv1_3\",cipher=\"TLS13_AES_256_GCM_SHA384\",result=\"ok\"}";
    assert!(sample(&page, handshakes).unwrap_or(0.0) >= 5.0, "{page}");
    // Five responses with 10-byte bodies, at least, went out.
    assert!(
        sample(&page, "portcullis_bytes_sent_total").unwrap_or(0.0) > 50.0,
        "{page}"
    );
    assert!(
        sample(&page, "portcullis_bytes_received_total").unwrap_or(0.0) > 0.0,
        "{page}"
    );
    assert_eq!(
        sample(&page, "portcullis_certificate_reloads_total{result=\"ok\"}"),
        Some(0.0),
        "{page}"
    );
    let not_after = page
        .lines()
        .find(|l| l.starts_with("portcullis_certificate_not_after_seconds{name=\"localhost\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no certificate expiry: {page}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(not_after > now, "{not_after} {now}");

    // The WebSocket's connection is listed as a tunnel.
    let (_, body) = admin.get("/connections").await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let tunnels = json["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["tunnel"] == true)
        .count();
    assert_eq!(tunnels, 1, "{body}");

    drop(client);
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_are_counted_by_kind() {
    let site = Site::new();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let toml = site.config(&route("/", &dead_url, ""));
    let admin = AdminProxy::start(&toml, site.dir.path()).await;
    let (status, _, _) = fetch(admin.tls, &site.ca, get("/")).await;
    assert_eq!(status, 502);
    let (_, page) = admin.get("/metrics").await;
    assert_eq!(
        sample(
            &page,
            "portcullis_upstream_errors_total{route=\"/\",kind=\"connect\"}"
        ),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "portcullis_requests_total{route=\"/\",status=\"5xx\"}"),
        Some(1.0),
        "{page}"
    );
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_lists_a_live_tls_connection() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let admin = AdminProxy::start(&site.config(&route("/", &origin.url(), "")), site.dir.path()).await;
    let mut h1 = h1(admin.tls, &site.ca).await;
    let resp = h1.send_request(get("/x")).await.unwrap();
    resp.into_body().collect().await.unwrap();

    let (status, body) = admin.get("/connections").await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let conns = json["connections"].as_array().unwrap();
    assert_eq!(json["count"].as_u64(), Some(conns.len() as u64));
    let c = conns
        .iter()
        .find(|c| c["sni"] == "localhost")
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(c["alpn"], "http/1.1", "{body}");
    assert_eq!(c["tls_version"], "TLSv1_3", "{body}");
    assert!(c["cipher"].as_str().unwrap().starts_with("TLS13_"), "{body}");
    assert!(c["peer"].as_str().unwrap().starts_with("127.0.0.1:"), "{body}");
    assert!(
        c["bytes_in"].as_u64().unwrap() > 0 && c["bytes_out"].as_u64().unwrap() > 0,
        "{body}"
    );
    assert_eq!(c["tunnel"], false, "{body}");
    assert!(c["age_seconds"].as_f64().is_some(), "{body}");
    drop(h1);
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_flips_when_the_certificate_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new();
    let origin = Origin::hello().await;
    let toml = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[tls]\ncert = \"live/x/fullchain.pem\"\nkey = \"live/x/privkey.pem\"\n\
         bootstrap = \"self-signed\"\n{}",
        route("/", &origin.url(), "")
    );
    let admin = AdminProxy::start(&toml, d).await;
    assert_eq!(admin.get("/healthz").await, (200, "ok\n".to_owned()));
    let (status, body) = admin.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("self-signed"), "{body}");

    let real = ca.issue(&["localhost"]);
    std::fs::create_dir_all(d.join("live/x")).unwrap();
    std::fs::write(d.join("live/x/privkey.pem"), &real.key_pem).unwrap();
    std::fs::write(d.join("live/x/fullchain.pem"), &real.chain_pem).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = admin.get("/readyz").await;
        if status == 200 {
            assert_eq!(body, "ready\n");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never ready: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    admin.stop().await;
}

/// The number of certificates in each served chain, beside the other
/// certificate metrics: 1 for a leaf alone, 2 for a leaf and its
/// intermediate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_length_of_each_served_chain() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = TestCa::new();
    let alone = root.issue(&["alone.test"]);
    std::fs::write(d.join("alone.pem"), &alone.leaf_pem).unwrap();
    std::fs::write(d.join("alone.key"), &alone.key_pem).unwrap();
    let intermediate = root.intermediate("portcullis test intermediate");
    let chained = intermediate.issue(&["chained.test"]);
    std::fs::write(d.join("chained.pem"), &chained.chain_pem).unwrap();
    std::fs::write(d.join("chained.key"), &chained.key_pem).unwrap();
    let origin = Origin::hello().await;
    let toml = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[tls]\ncert = \"alone.pem\"\nkey = \"alone.key\"\n\
         [[tls.certificate]]\ncert = \"chained.pem\"\nkey = \"chained.key\"\n{}",
        route("/", &origin.url(), "")
    );
    let admin = AdminProxy::start(&toml, d).await;
    let (_, page) = admin.get("/metrics").await;
    let length = |name: &str| {
        let prefix = format!("portcullis_certificate_chain_length{{name=\"{name}\",serial=\"");
        page.lines()
            .find(|l| l.starts_with(&prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    assert_eq!(length("alone.test"), Some(1.0), "{page}");
    assert_eq!(length("chained.test"), Some(2.0), "{page}");
    admin.stop().await;
}
