//! Header rules at a real origin and a real client: `[headers]` and route
//! rules with placeholders over HTTP/1.1 and HTTP/2, `remove`, `add`,
//! `upstream_host`, `forwarded_for`, response rules on upstream answers
//! and on the proxy's own 404 and 502, `inherit` and `when`; each shown
//! where it applies and where it must not.

mod support;

use http::{Request, StatusCode};
use support::*;

/// An address nothing listens on: every connection to it is refused.
fn closed_port() -> String {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", socket.local_addr().unwrap())
}

const RULES: &str = r#"
[headers]
request.set = { "X-Forwarded-Port" = "{server_port}" }
response.set = { "X-Content-Type-Options" = "nosniff" }
"#;

#[tokio::test]
async fn request_rules_resolve_placeholders_over_http1_and_http2() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let url = origin.url();
    let ruled = route(
        "/app",
        &url,
        r#"request.set = { "X-Forwarded-Ssl" = "on", "X-Scheme" = "{scheme}", "X-Client" = "{client_ip} {client_port}", "X-Target" = "{path}{query}", "X-Host" = "{host}", "X-Tls" = "{tls_version} {sni}", "X-Id" = "[{request_id}]", "Accept-Encoding" = "gzip", "X-Literal" = "{{path}}" }
request.add = { "X-Trace" = "proxy" }
request.remove = ["Proxy"]"#,
    );
    let toml = format!(
        "{RULES}\n{}",
        site.config(&[ruled, route("/", &url, "")].concat())
    );
    let proxy = ProxyHandle::start(&toml, site.dir.path()).await;
    let port = proxy.addr.port().to_string();

    let req = Request::get("/app/./x%2Fy?q=1")
        .header("host", "LocalHost:8443")
        .header("proxy", "http://evil.example")
        .header("x-trace", "client")
        .header("x-request-id", "abc")
        .header("accept-encoding", "br")
        .body(empty())
        .unwrap();
    let (status, _, _) = fetch(proxy.addr, &site.ca, req).await;
    assert_eq!(status, StatusCode::OK);
    let seen = origin.last_seen().headers;
    assert_eq!(seen["x-forwarded-port"], port.as_str());
    assert_eq!(seen["x-forwarded-ssl"], "on");
    assert_eq!(seen["x-scheme"], "https");
    let client = seen["x-client"].to_str().unwrap().to_string();
    let (ip, client_port) = client.split_once(' ').unwrap();
    assert_eq!(ip, "127.0.0.1");
    assert!(client_port.parse::<u16>().unwrap() > 0, "{client}");
    assert_eq!(seen["x-target"], "/app/x%2Fy?q=1");
    assert_eq!(seen["x-host"], "LocalHost");
    assert_eq!(seen["x-tls"], "TLSv1_3 localhost");
    // An untrusted client's X-Request-Id is replaced; the rule sees the
    // one the request is forwarded with.
    let id = seen["x-request-id"].to_str().unwrap();
    assert_ne!(id, "abc");
    assert_eq!(seen["x-id"], format!("[{id}]").as_str());
    assert_eq!(seen["x-literal"], "{path}");
    let encodings: Vec<_> = seen.get_all("accept-encoding").iter().collect();
    assert_eq!(encodings, ["gzip"], "set replaces");
    let traces: Vec<_> = seen.get_all("x-trace").iter().collect();
    assert_eq!(traces, ["client", "proxy"], "add appends");
    assert!(!seen.contains_key("proxy"), "remove deletes");
    // The Host is still the client's.
    assert_eq!(seen["host"], "LocalHost:8443");

    // Over HTTP/2: the same values, and the ID the proxy generated.
    let mut h2 = h2(proxy.addr, &site.ca).await;
    let resp = h2.send_request(get("/app/h2")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let seen = origin.last_seen().headers;
    assert_eq!(seen["x-target"], "/app/h2");
    assert_eq!(seen["x-host"], "localhost");
    let id = seen["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 32, "{id}");
    assert_eq!(seen["x-id"], format!("[{id}]").as_str());
    assert_eq!(seen["x-forwarded-port"], port.as_str());

    // Another route gets [headers] but not the route's rules.
    let req = Request::get("/other")
        .header("host", "localhost")
        .header("proxy", "kept")
        .body(empty())
        .unwrap();
    fetch(proxy.addr, &site.ca, req).await;
    let seen = origin.last_seen().headers;
    assert_eq!(seen["x-forwarded-port"], port.as_str());
    assert!(!seen.contains_key("x-forwarded-ssl"));
    assert_eq!(seen["proxy"], "kept");
    proxy.shutdown().await.unwrap();
}

#[tokio::test]
async fn upstream_host_and_forwarded_for_replace() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let url = origin.url();
    let routes = [
        route(
            "/own",
            &url,
            "upstream_host = \"upstream\"\nforwarded_for = \"replace\"",
        ),
        route("/named", &url, "upstream_host = \"app.internal:8080\""),
        route("/", &url, ""),
    ]
    .concat();
    let proxy = ProxyHandle::start(&site.config(&routes), site.dir.path()).await;
    let send = |path: &'static str| {
        let req = Request::get(path)
            .header("host", "localhost")
            .header("x-forwarded-for", "6.6.6.6")
            .body(empty())
            .unwrap();
        fetch(proxy.addr, &site.ca, req)
    };
    send("/own").await;
    let seen = origin.last_seen().headers;
    assert_eq!(seen["host"], origin.addr.to_string().as_str());
    assert_eq!(seen["x-forwarded-host"], "localhost");
    assert_eq!(
        seen["x-forwarded-for"], "127.0.0.1",
        "the forged entry is dropped"
    );
    send("/named").await;
    let seen = origin.last_seen().headers;
    assert_eq!(seen["host"], "app.internal:8080");
    assert_eq!(
        seen["x-forwarded-for"], "6.6.6.6, 127.0.0.1",
        "append stays the default"
    );
    send("/else").await;
    assert_eq!(origin.last_seen().headers["host"], "localhost");
    proxy.shutdown().await.unwrap();
}

#[tokio::test]
async fn response_rules_apply_to_every_answer_with_inherit_and_when() {
    let site = Site::new();
    let origin = Origin::start(|_req| async {
        http::Response::builder()
            .header("server", "gunicorn")
            .header("x-powered-by", "php")
            .body(full("ok"))
            .unwrap()
    })
    .await;
    let url = origin.url();
    let routes = [
        route(
            "/app",
            &url,
            r#"response.add = { "Cache-Control" = "public", "X-Seen-Path" = "{path}" }
response.remove = ["Server", "X-Powered-By"]"#,
        ),
        route(
            "/alone",
            &url,
            "response.inherit = false\nresponse.set = { \"X-Alone\" = \"1\" }",
        ),
        route(
            "/ok-only",
            &closed_port(),
            "response.when = \"success\"\nresponse.set = { \"X-Ok\" = \"1\" }",
        ),
        route("/down", &closed_port(), ""),
        "[[route]]\npath = \"/gone\"\nrespond = { status = 410 }\nresponse.set = { \"X-Gone\" = \"yes\" }\n"
            .to_string(),
    ]
    .concat();
    let toml = format!("{RULES}\n{}", site.config(&routes));
    let proxy = ProxyHandle::start(&toml, site.dir.path()).await;
    let at = |path: &'static str| fetch(proxy.addr, &site.ca, get(path));

    let (status, h, _) = at("/app/x").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["cache-control"], "public");
    assert_eq!(h["x-seen-path"], "/app/x");
    assert!(!h.contains_key("server") && !h.contains_key("x-powered-by"));

    let (_, h, _) = at("/alone").await;
    assert_eq!(h["x-alone"], "1");
    assert!(!h.contains_key("x-content-type-options"), "inherit = false");
    assert_eq!(h["server"], "gunicorn", "not removed where no rule says so");

    // The proxy's own 502 and 404 carry the [headers] rules.
    let (status, h, _) = at("/down").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(h["x-content-type-options"], "nosniff");
    let (status, h, _) = at("/ok-only").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(!h.contains_key("x-ok"), "when = \"success\" skips a 502");
    assert_eq!(h["x-content-type-options"], "nosniff");

    let mut h1 = h1(proxy.addr, &site.ca).await;
    let resp = h1
        .send_request(
            Request::get("/")
                .header("host", "nowhere.example")
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");

    let (status, h, _) = at("/gone").await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(h["x-gone"], "yes");
    assert_eq!(h["x-content-type-options"], "nosniff");
    proxy.shutdown().await.unwrap();
}

#[tokio::test]
async fn client_certificate_and_tls_placeholders_over_http2() {
    let site = Site::new();
    let clients = TestCa::named("portcullis test clients CA");
    std::fs::write(site.path("clients-ca.pem"), &clients.pem).unwrap();
    let origin = Origin::hello().await;
    let ruled = route(
        "/",
        &origin.url(),
        r#"request.set = { "X-Subject" = "{client_cert_subject}", "X-Sha" = "{client_cert_sha256}", "X-Cipher" = "{tls_cipher}" }"#,
    );
    let mut toml = site.config(&ruled);
    toml.push_str("\n[tls.client_auth]\nca = \"clients-ca.pem\"\nmode = \"optional\"\n");
    let proxy = ProxyHandle::start(&toml, site.dir.path()).await;
    let cert = clients.issue_client("operator");
    let config = site.ca.mtls_client(Some(&cert), &[b"h2"], None);
    let req = Request::get("https://localhost/x").body(empty()).unwrap();
    let (status, _) = support::mtls::send(proxy.addr, config, req).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let seen = origin.last_seen().headers;
    assert_eq!(seen["x-subject"], "CN=operator,O=portcullis tests");
    assert_eq!(seen["x-sha"], cert.sha256().as_str());
    assert!(
        seen["x-cipher"].to_str().unwrap().starts_with("TLS13_"),
        "{:?}",
        seen["x-cipher"]
    );
    // Without a certificate the values are empty, so the headers are not
    // sent (as nginx's proxy_set_header), and a client cannot supply them.
    let config = site.ca.mtls_client(None, &[b"h2"], None);
    let req = Request::get("https://localhost/x")
        .header("x-subject", "CN=admin")
        .body(empty())
        .unwrap();
    support::mtls::send(proxy.addr, config, req).await.unwrap();
    let seen = origin.last_seen().headers;
    assert!(!seen.contains_key("x-subject"), "{:?}", seen.get("x-subject"));
    assert!(!seen.contains_key("x-sha"));
    assert!(seen.contains_key("x-cipher"));
    proxy.shutdown().await.unwrap();
}
