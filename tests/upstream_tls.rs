//! TLS to the upstream: `https://` upstreams verified against `upstream_ca`
//! or the system trust store, `upstream_server_name`, and
//! `upstream_insecure_skip_verify`, against real TLS origins (tokio-rustls
//! with rcgen certificates) through real clients; and the configuration
//! errors of these keys as the binary reports them.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use http::{Request, StatusCode, Version};
use http_body_util::BodyExt;
use support::https_origin::{self_signed, HttpsOrigin};
use support::process::ProxyProcess;
use support::{
    empty, fetch, get, h2, route, tls_config, wait_until, within, ws_connect, Body, ProxyHandle, Site, TestCa,
};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const HANG: Duration = Duration::from_secs(10);

/// A configuration for `site` with one route `/` to `upstream` and `extra`
/// keys, which start on line 12 of the file.
fn config(upstream: &str, extra: &str) -> String {
    tls_config("shutdown_grace = \"10s\"", &route("/", upstream, extra))
}

/// A CA for upstreams, written to `upstream-ca.pem` in the site's directory.
fn upstream_ca(site: &Site) -> TestCa {
    let ca = TestCa::new();
    std::fs::write(site.path("upstream-ca.pem"), &ca.pem).unwrap();
    ca
}

/// An origin serving a certificate from `ca` for `names`.
async fn origin_from(ca: &TestCa, names: &[&str]) -> HttpsOrigin {
    let issued = ca.issue(names);
    HttpsOrigin::hello(&issued.chain_pem, &issued.key_pem).await
}

/// The proxy in process, with one route to `origin` that trusts
/// `upstream-ca.pem`, and `extra` keys.
async fn start_trusting_upstream_ca(site: &Site, origin: &HttpsOrigin, extra: &str) -> ProxyHandle {
    let keys = format!("upstream_ca = \"upstream-ca.pem\"\n{extra}");
    ProxyHandle::start(&config(&origin.url(), &keys), site.dir.path()).await
}

fn with_test_header(mut req: Request<Body>) -> Request<Body> {
    req.headers_mut().insert("x-test", "kept".parse().unwrap());
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_verified_against_upstream_ca_serves_h1_and_h2_clients() {
    let site = Site::new();
    let ca = upstream_ca(&site);
    let origin = origin_from(&ca, &["localhost", "127.0.0.1"]).await;
    let proxy = start_trusting_upstream_ca(&site, &origin, "").await;

    let (status, headers, body) = within(HANG, "an HTTP/1.1 response", async {
        fetch(proxy.addr, &site.ca, with_test_header(get("/one?q=1"))).await
    })
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello from /one?q=1"));
    assert_eq!(headers["x-origin"], "tls");
    assert_eq!(headers["x-test-echo"], "kept");

    let mut send = h2(proxy.addr, &site.ca).await;
    let req = Request::get("https://localhost/two").body(empty()).unwrap();
    let resp = within(
        HANG,
        "an HTTP/2 response",
        send.send_request(with_test_header(req)),
    )
    .await
    .unwrap();
    assert_eq!((resp.version(), resp.status()), (Version::HTTP_2, StatusCode::OK));
    assert_eq!(resp.headers()["x-origin"], "tls");
    assert_eq!(resp.headers()["x-test-echo"], "kept");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"hello from /two");

    assert_eq!(origin.requests(), 2);
    // The upstream leg is HTTP/1.1 and says so; an IP address is no SNI name.
    for handshake in origin.handshakes.lock().unwrap().iter() {
        assert_eq!(handshake.alpn.as_deref(), Some(&b"http/1.1"[..]), "{handshake:?}");
        assert_eq!(handshake.sni, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_requests_share_one_upstream_tls_connection() {
    let site = Site::new();
    let ca = upstream_ca(&site);
    let origin = origin_from(&ca, &["127.0.0.1"]).await;
    let proxy = start_trusting_upstream_ca(&site, &origin, "").await;

    let mut send = support::h1(proxy.addr, &site.ca).await;
    for i in 0..20 {
        send.ready().await.unwrap();
        let resp = within(HANG, "a response", send.send_request(get(&format!("/r{i}"))))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(String::from_utf8_lossy(&body), format!("hello from /r{i}"));
    }
    assert_eq!(origin.requests(), 20);
    let connections = origin.connections();
    assert!(
        connections <= 2,
        "20 sequential requests made {connections} TLS connections to the upstream"
    );
}

/// Bytes that never repeat with a short period, so a piece lost, doubled
/// or moved is seen.
fn patterned(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn megabytes_cross_both_tls_legs_intact_both_ways() {
    let site = Site::new();
    let ca = upstream_ca(&site);
    let issued = ca.issue(&["127.0.0.1"]);
    let origin = HttpsOrigin::echo(&issued.chain_pem, &issued.key_pem).await;
    let proxy = start_trusting_upstream_ca(&site, &origin, "").await;

    // Lengths that end mid-record and mid-slice, over HTTP/1.1 and HTTP/2.
    for len in [3 * 1024 * 1024 + 7, 16 * 1024 + 1] {
        let sent = patterned(len);
        let mut send = support::h1(proxy.addr, &site.ca).await;
        let req = Request::post("https://localhost/echo")
            .header("host", "localhost")
            .body(support::full(sent.clone()))
            .unwrap();
        let echo = send.send_request(req);
        assert_echoed(
            Version::HTTP_11,
            within(HANG, "an HTTP/1.1 echo", echo).await,
            &sent,
        )
        .await;

        let mut send = h2(proxy.addr, &site.ca).await;
        let req = Request::post("https://localhost/echo")
            .body(support::full(sent.clone()))
            .unwrap();
        let echo = send.send_request(req);
        assert_echoed(Version::HTTP_2, within(HANG, "an HTTP/2 echo", echo).await, &sent).await;
    }
}

/// The echo came back over `version` with exactly the bytes `sent`.
async fn assert_echoed(
    version: Version,
    resp: hyper::Result<http::Response<hyper::body::Incoming>>,
    sent: &[u8],
) {
    let resp = resp.unwrap();
    assert_eq!((resp.version(), resp.status()), (version, StatusCode::OK));
    let got = within(HANG, "the echo body", resp.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    assert!(
        got[..] == sent[..],
        "{version:?}: sent {} bytes, got {} back, not the same",
        sent.len(),
        got.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_from_a_ca_not_in_upstream_ca_is_a_502() {
    let site = Site::new();
    let _trusted = upstream_ca(&site);
    // Another CA with the same name as the trusted one: only its key differs.
    let stranger = TestCa::new();
    let origin = origin_from(&stranger, &["localhost", "127.0.0.1"]).await;
    let proxy = start_trusting_upstream_ca(&site, &origin, "").await;

    assert_refused(&proxy, &site, &origin).await;
}

/// A request through `proxy` is a 502, and `origin` served nothing: no
/// handshake completed, so no request reached it.
async fn assert_refused(proxy: &ProxyHandle, site: &Site, origin: &HttpsOrigin) {
    let (status, _, body) = within(HANG, "the 502", fetch(proxy.addr, &site.ca, get("/secret"))).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(!body.contains("hello"), "{body}");
    assert_eq!(origin.requests(), 0, "a request reached an untrusted upstream");
    assert_eq!(
        origin.connections(),
        0,
        "a handshake with an untrusted upstream completed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_for_another_name_is_a_502() {
    let site = Site::new();
    let ca = upstream_ca(&site);
    let origin = origin_from(&ca, &["other.internal"]).await;
    let proxy = start_trusting_upstream_ca(&site, &origin, "").await;

    assert_refused(&proxy, &site, &origin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_tls_upstream_is_a_502_after_connect_timeout() {
    let site = Site::new();
    let _ca = upstream_ca(&site);
    // Accepts TCP connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            open.push(tcp);
        }
    });
    let keys = "upstream_ca = \"upstream-ca.pem\"\nconnect_timeout = \"300ms\"\nread_timeout = \"60s\"";
    let proxy = ProxyHandle::start(&config(&format!("https://{addr}"), keys), site.dir.path()).await;

    // The handshake has connect_timeout, not read_timeout, to finish.
    let (status, _, _) = within(HANG, "the 502", fetch(proxy.addr, &site.ca, get("/"))).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_server_name_is_sent_and_checked_instead_of_the_address() {
    let site = Site::new();
    let ca = upstream_ca(&site);
    let origin = origin_from(&ca, &["api.internal"]).await;
    let proxy = start_trusting_upstream_ca(&site, &origin, "upstream_server_name = \"api.internal\"").await;

    let (status, _, body) = within(HANG, "a response", fetch(proxy.addr, &site.ca, get("/x"))).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello from /x"));
    let handshakes = origin.handshakes.lock().unwrap().clone();
    assert_eq!(handshakes.len(), 1);
    assert_eq!(handshakes[0].sni.as_deref(), Some("api.internal"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo_through_an_https_upstream() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let site = Site::new();
    let ca = upstream_ca(&site);
    let issued = ca.issue(&["127.0.0.1"]);
    let origin = HttpsOrigin::websocket_echo(&issued.chain_pem, &issued.key_pem).await;
    let proxy = start_trusting_upstream_ca(&site, &origin, "").await;

    let mut ws = within(
        HANG,
        "the WebSocket handshake",
        ws_connect(proxy.addr, &site.ca, "/ws"),
    )
    .await;
    for text in ["one", "two"] {
        ws.send(Message::text(text)).await.unwrap();
        let echo = within(HANG, "the echo", ws.next()).await.unwrap().unwrap();
        assert_eq!(echo, Message::text(text));
    }
    let big = vec![7u8; 200_000];
    ws.send(Message::binary(big.clone())).await.unwrap();
    let echo = within(HANG, "the large echo", ws.next()).await.unwrap().unwrap();
    assert_eq!(echo.into_data().as_ref(), &big[..]);
    assert_eq!(origin.connections(), 1);
}

// ---------------------------------------------------------------- the binary

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("proxy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The binary with `args` on `config`, in an environment without the
/// variables that would change what the file says.
fn portcullis(args: &[&str], config: &Path, env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).arg("--config").arg(config);
    clean_env(&mut command);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn clean_env(command: &mut Command) {
    for var in [
        "PORTCULLIS_CONFIG",
        "PORTCULLIS_LISTEN",
        "PORTCULLIS_TLS_CERT",
        "PORTCULLIS_TLS_KEY",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    ] {
        command.env_remove(var);
    }
    command.env("RUST_LOG", "warn");
}

/// Both `check` and `run` refuse `config` with exit code 2, saying each of `needles`.
fn refused(config: &Path, env: &[(&str, &Path)], needles: &[&str]) {
    for command in ["check", "run"] {
        let o = portcullis(&[command], config, env);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{command}: exit code; stderr:\n{stderr}"
        );
        for needle in needles {
            assert!(
                stderr.contains(needle),
                "{command}: stderr lacks {needle:?}:\n{stderr}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_failure_is_logged_once_with_route_upstream_and_reason() {
    let site = Site::new();
    let _trusted = upstream_ca(&site);
    let (cert, key) = self_signed(&["127.0.0.1"]);
    let origin = HttpsOrigin::hello(&cert, &key).await;
    let text = config(&origin.url(), "upstream_ca = \"upstream-ca.pem\"");
    let (proxy, addr) = ProxyProcess::start(site.dir.path(), &text).await;

    let (status, _, _) = within(HANG, "the 502", fetch(addr, &site.ca, get("/"))).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    const REASON: &str = "upstream certificate not trusted: UnknownIssuer";
    let log = proxy.stderr.clone();
    wait_until(HANG, "the log line of the 502", move || {
        log.lock().unwrap().contains(REASON)
    })
    .await;
    let stderr = proxy.stderr_text();
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(REASON)).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("WARN"), "{}", lines[0]);
    assert!(lines[0].contains(&origin.url()), "{}", lines[0]);
    assert!(lines[0].contains("route=/"), "{}", lines[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_skip_verify_reaches_a_self_signed_origin_and_warns_at_every_start() {
    let site = Site::new();
    let (cert, key) = self_signed(&["somewhere.else"]);
    let origin = HttpsOrigin::hello(&cert, &key).await;
    let text = config(&origin.url(), "upstream_insecure_skip_verify = true");
    const WARNING: &str = "the upstream's certificate is NOT verified";

    for _start in 0..2 {
        let (mut proxy, addr) = ProxyProcess::start(site.dir.path(), &text).await;
        let stderr = proxy.stderr_text();
        let warning = stderr.lines().find(|l| l.contains(WARNING));
        let warning = warning.unwrap_or_else(|| panic!("no warning at start:\n{stderr}"));
        assert!(
            warning.contains("WARN") && warning.contains(&origin.url()),
            "{warning}"
        );
        let (status, _, body) = within(HANG, "a response", fetch(addr, &site.ca, get("/x"))).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "hello from /x"));
        proxy.signal("TERM");
        proxy.wait_exit("SIGTERM").await;
    }

    let o = portcullis(&["check"], &site.path("proxy.toml"), &[]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout.contains("WARNING: upstream certificate NOT verified"),
        "{stdout}"
    );
}

/// The binary serving `text` from `dir`, with `SSL_CERT_FILE` set to `store`.
async fn start_with_system_store(
    dir: &Path,
    text: &str,
    store: &Path,
) -> (ProxyProcess, std::net::SocketAddr) {
    let path = write_config(dir, text);
    let mut command = Command::new(BIN);
    command.arg("--config").arg(&path).arg("run");
    clean_env(&mut command);
    command.env("SSL_CERT_FILE", store);
    ProxyProcess::start_command(command).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_upstream_ca_the_system_trust_store_decides() {
    let site = Site::new();
    let ca = upstream_ca(&site);
    let origin = origin_from(&ca, &["127.0.0.1"]).await;
    let text = config(&origin.url(), "");

    // The system store (here the file SSL_CERT_FILE names) trusts the CA.
    let (_proxy, addr) = start_with_system_store(site.dir.path(), &text, &site.path("upstream-ca.pem")).await;
    let (status, _, body) = within(HANG, "a response", fetch(addr, &site.ca, get("/sys"))).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello from /sys"));

    // A system store without that CA: refused, not served.
    std::fs::write(site.path("other-store.pem"), TestCa::new().pem).unwrap();
    let (_proxy, addr) = start_with_system_store(site.dir.path(), &text, &site.path("other-store.pem")).await;
    let (status, _, _) = within(HANG, "the 502", fetch(addr, &site.ca, get("/sys"))).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(origin.requests(), 1);
}

#[test]
fn an_empty_system_trust_store_is_a_start_up_error() {
    let site = Site::new();
    std::fs::write(site.path("empty-store.pem"), "").unwrap();
    let config = write_config(site.dir.path(), &config("https://api.internal:8443", ""));
    refused(
        &config,
        &[("SSL_CERT_FILE", &site.path("empty-store.pem"))],
        &[
            "proxy.toml:11:",
            "route[0].upstream",
            "https://api.internal:8443",
            "set upstream_ca",
        ],
    );
}

#[test]
fn upstream_ca_problems_are_configuration_errors() {
    let site = Site::new();
    let https = "https://api.internal:8443";
    let key_only = TestCa::new().issue(&["x"]).key_pem;
    std::fs::write(site.path("key-only.pem"), key_only).unwrap();
    std::fs::write(site.path("empty.pem"), "").unwrap();
    let cases: [(&str, &str, &[&str]); 6] = [
        (
            https,
            "upstream_ca = \"missing-ca.pem\"",
            &[
                "proxy.toml:12:",
                "route[0].upstream_ca",
                "missing-ca.pem",
                "does not exist",
            ],
        ),
        (
            https,
            "upstream_ca = \"key-only.pem\"",
            &[
                "proxy.toml:12:",
                "route[0].upstream_ca",
                "key-only.pem",
                "holds no certificate",
            ],
        ),
        (
            https,
            "upstream_ca = \"empty.pem\"",
            &[
                "proxy.toml:12:",
                "route[0].upstream_ca",
                "empty.pem",
                "holds no certificate",
            ],
        ),
        (
            "http://127.0.0.1:8080",
            "upstream_ca = \"empty.pem\"",
            &[
                "proxy.toml:12:",
                "route[0].upstream_ca",
                "is for https:// upstreams",
                "help:",
            ],
        ),
        (
            https,
            "upstream_ca = \"empty.pem\"\nupstream_insecure_skip_verify = true",
            &[
                "proxy.toml:13:",
                "route[0].upstream_insecure_skip_verify",
                "help: remove",
            ],
        ),
        (
            https,
            "upstream_server_name = \"api.internal:8443\"",
            &[
                "proxy.toml:12:",
                "route[0].upstream_server_name",
                "contains a port",
                "help:",
            ],
        ),
    ];
    for (upstream, extra, needles) in cases {
        let path = write_config(site.dir.path(), &config(upstream, extra));
        refused(&path, &[], needles);
    }
}
