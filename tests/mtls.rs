//! Client certificates (mutual TLS), with real handshakes: `required` mode
//! refuses a client without a valid certificate at the handshake and
//! forwards the verified identity; `optional` mode lets every client in
//! and answers 403 on routes with `require_client_cert`; pinned
//! fingerprints narrow the accepted certificates; the identity headers a
//! client writes itself never reach the upstream; and the configuration
//! errors of `[tls.client_auth]` stop the binary with exit code 2.

mod support;

use std::path::Path;
use std::process::Output;

use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use rustls::version::{TLS12, TLS13};
use rustls::AlertDescription;
use support::admin::AdminProxy;
use support::mtls::{send, ClientCert, Outcome};
use support::{empty, route, tls_config, Body, Origin, Site, TestCa};

const H1: &[&[u8]] = &[b"http/1.1"];
const H2: &[&[u8]] = &[b"h2"];

/// A site whose server certificate comes from `site.ca`, a second CA for
/// client certificates written to `clients-ca.pem` beside it, and an
/// origin that records what it receives.
struct Mtls {
    site: Site,
    clients: TestCa,
    origin: Origin,
}

impl Mtls {
    async fn new() -> Mtls {
        let site = Site::new();
        let clients = TestCa::named("portcullis test clients CA");
        std::fs::write(site.path("clients-ca.pem"), &clients.pem).unwrap();
        Mtls {
            site,
            clients,
            origin: Origin::hello().await,
        }
    }

    /// The proxy with `[tls.client_auth]` holding `client_auth` (no such
    /// table when `None`), `/` open to all and `/api` requiring a client
    /// certificate when `client_auth` is given. `extra` is added at the end.
    async fn start(&self, client_auth: Option<&str>, extra: &str) -> AdminProxy {
        let url = self.origin.url();
        let api = if client_auth.is_some() {
            "require_client_cert = true"
        } else {
            ""
        };
        let mut toml = tls_config(
            "",
            &format!("{}{}", route("/", &url, ""), route("/api", &url, api)),
        );
        if let Some(table) = client_auth {
            toml.push_str(&format!(
                "\n[tls.client_auth]\nca = \"clients-ca.pem\"\n{table}\n"
            ));
        }
        toml.push_str(extra);
        AdminProxy::start(&toml, self.site.dir.path()).await
    }

    fn client(&self, cert: Option<&ClientCert>, alpn: &[&[u8]]) -> std::sync::Arc<rustls::ClientConfig> {
        self.site.ca.mtls_client(cert, alpn, None)
    }
}

fn get(path: &str) -> Request<Body> {
    support::get(path)
}

/// A GET carrying `headers`, each name possibly several times.
fn get_with(path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut req = Request::get(format!("https://localhost{path}"))
        .header("host", "localhost")
        .body(empty())
        .unwrap();
    for (name, value) in headers {
        req.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    req
}

/// Asserts that `outcome` failed on the TLS alert `alert` from the proxy.
/// The alert is matched by name: HTTP/2 passes on the text of the error
/// that ended the connection, not the error itself.
fn assert_refused(outcome: Outcome, alert: AlertDescription) {
    match outcome {
        Ok((status, body)) => panic!("the request went through: {status} {body:?}"),
        Err(e) => {
            let chain = format!("{e:?}");
            let name = format!("{alert:?}");
            assert!(chain.contains(&name), "not refused with {name}: {chain}");
        }
    }
}

fn ok(outcome: Outcome) -> String {
    match outcome {
        Ok((StatusCode::OK, body)) => body,
        Ok((status, body)) => panic!("{status}: {body}"),
        Err(e) => panic!("the request failed: {e}"),
    }
}

/// Every value of `name`, as text.
fn values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// Asserts that the origin's last request carries the identity of `cert`.
fn assert_identity(origin: &Origin, cert: &ClientCert, cn: &str) {
    let seen = origin.last_seen().headers;
    assert_eq!(
        values(&seen, "x-client-cert-subject"),
        [format!("CN={cn},O=portcullis tests")]
    );
    assert_eq!(values(&seen, "x-client-cert-sha256"), [cert.sha256()]);
    assert_eq!(values(&seen, "x-client-cert-verify"), ["SUCCESS"]);
}

const REJECTED: &str = "portcullis_tls_client_cert_rejected_total";

// ------------------------------------------------------------ required mode

#[tokio::test]
async fn required_mode_refuses_a_client_without_a_certificate() {
    let m = Mtls::new().await;
    let proxy = m.start(Some(""), "").await;
    // TLS 1.3: the server's alert arrives when the client reads, after its
    // side of the handshake. TLS 1.2: the handshake itself fails.
    for alpn in [H1, H2] {
        let outcome = send(proxy.tls, m.client(None, alpn), get("/")).await;
        assert_refused(outcome, AlertDescription::CertificateRequired);
    }
    let tls12 = m.site.ca.mtls_client(None, H1, Some(&TLS12));
    let outcome = send(proxy.tls, tls12, get("/")).await;
    assert!(
        outcome.as_ref().is_err_and(|e| e.is::<std::io::Error>()),
        "the TLS 1.2 handshake did not fail: {outcome:?}"
    );
    assert_refused(outcome, AlertDescription::CertificateRequired);
    assert_eq!(
        m.origin.count(),
        0,
        "a request without a certificate reached the origin"
    );
    proxy
        .wait_for_metric(&format!("{REJECTED}{{reason=\"missing\"}}"), 3.0)
        .await;
    proxy.stop().await;
}

#[tokio::test]
async fn required_mode_forwards_the_verified_identity() {
    let m = Mtls::new().await;
    let proxy = m.start(Some("mode = \"required\""), "").await;
    let alice = m.clients.issue_client("alice");
    for alpn in [H1, H2] {
        let body = ok(send(proxy.tls, m.client(Some(&alice), alpn), get("/page")).await);
        assert_eq!(body, "hello from /page");
        assert_identity(&m.origin, &alice, "alice");
    }
    let tls12 = m.site.ca.mtls_client(Some(&alice), H1, Some(&TLS12));
    ok(send(proxy.tls, tls12, get("/api")).await);
    assert_identity(&m.origin, &alice, "alice");
    proxy.stop().await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_in_both_modes() {
    let stranger = TestCa::named("another CA").issue_client("mallory");
    // A CA that copies the name of the configured one, so that its
    // certificates name the right issuer, signed with the wrong key.
    let forger = TestCa::named("portcullis test clients CA").issue_client("alice");
    for mode in ["required", "optional"] {
        let m = Mtls::new().await;
        let proxy = m.start(Some(&format!("mode = \"{mode}\"")), "").await;
        for (version, alpn) in [(&TLS13, H1), (&TLS13, H2), (&TLS12, H1)] {
            let config = m.site.ca.mtls_client(Some(&stranger), alpn, Some(version));
            assert_refused(
                send(proxy.tls, config, get("/")).await,
                AlertDescription::UnknownCA,
            );
        }
        let config = m.site.ca.mtls_client(Some(&forger), H1, None);
        assert_refused(
            send(proxy.tls, config, get("/")).await,
            AlertDescription::DecryptError,
        );
        assert_eq!(
            m.origin.count(),
            0,
            "{mode}: a stranger's request reached the origin"
        );
        proxy
            .wait_for_metric(&format!("{REJECTED}{{reason=\"invalid\"}}"), 4.0)
            .await;
        proxy.stop().await;
    }
}

#[tokio::test]
async fn a_certificate_for_servers_only_is_refused() {
    let m = Mtls::new().await;
    let proxy = m.start(Some(""), "").await;
    // Issued by the right CA, but for serverAuth.
    let cert = m.clients.issue_server_only("alice");
    let outcome = send(proxy.tls, m.client(Some(&cert), H1), get("/")).await;
    assert_refused(outcome, AlertDescription::UnsupportedCertificate);
    assert_eq!(m.origin.count(), 0);
    proxy.stop().await;
}

// ------------------------------------------------------------ optional mode

#[tokio::test]
async fn optional_mode_serves_everyone_and_guards_the_routes_that_require_a_certificate() {
    let m = Mtls::new().await;
    let proxy = m.start(Some("mode = \"optional\""), "").await;
    let alice = m.clients.issue_client("alice");

    for alpn in [H1, H2] {
        // Without a certificate: the open route, told there was none.
        let body = ok(send(proxy.tls, m.client(None, alpn), get("/page")).await);
        assert_eq!(body, "hello from /page");
        let seen = m.origin.last_seen().headers;
        assert_eq!(values(&seen, "x-client-cert-verify"), ["NONE"]);
        assert!(values(&seen, "x-client-cert-subject").is_empty(), "{seen:?}");
        assert!(values(&seen, "x-client-cert-sha256").is_empty(), "{seen:?}");

        // The route that requires one: 403, nothing forwarded.
        let before = m.origin.count();
        let (status, body) = send(proxy.tls, m.client(None, alpn), get("/api/users"))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains("client certificate is required"), "{body}");
        assert_eq!(m.origin.count(), before, "the 403 was forwarded");

        // With a certificate: through, with the identity.
        let body = ok(send(proxy.tls, m.client(Some(&alice), alpn), get("/api/users")).await);
        assert_eq!(body, "hello from /api/users");
        assert_identity(&m.origin, &alice, "alice");
    }
    proxy.stop().await;
}

#[tokio::test]
async fn connections_show_the_verified_subject() {
    let m = Mtls::new().await;
    let proxy = m.start(Some("mode = \"optional\""), "").await;
    let alice = m.clients.issue_client("alice");
    // Two open connections, one with a certificate and one without.
    let mut senders = Vec::new();
    for cert in [Some(&alice), None] {
        let tcp = tokio::net::TcpStream::connect(proxy.tls).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(m.client(cert, H1))
            .connect("localhost".try_into().unwrap(), tcp)
            .await
            .unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let resp = send.send_request(get("/")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.into_body().collect().await.unwrap();
        senders.push(send);
    }
    let (_, page) = proxy.get("/connections").await;
    let json: serde_json::Value = serde_json::from_str(&page).unwrap();
    let subjects: Vec<&serde_json::Value> = json["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["client_subject"])
        .collect();
    assert_eq!(
        subjects,
        [
            &serde_json::json!("CN=alice,O=portcullis tests"),
            &serde_json::Value::Null
        ],
        "{page}"
    );
    drop(senders);
    proxy.stop().await;
}

// ------------------------------------------------------------------ pinning

#[tokio::test]
async fn pinned_fingerprints_narrow_the_accepted_certificates() {
    let m = Mtls::new().await;
    let alice = m.clients.issue_client("alice");
    let bob = m.clients.issue_client("bob");
    // As openssl prints it, in upper case with colons; alice's in lower
    // case without.
    let pins = format!(
        "mode = \"optional\"\npinned_sha256 = [\"{}\"]",
        bob.openssl_fingerprint()
    );
    let proxy = m.start(Some(&pins), "").await;

    let outcome = send(proxy.tls, m.client(Some(&alice), H1), get("/")).await;
    assert_refused(outcome, AlertDescription::AccessDenied);
    assert_eq!(
        m.origin.count(),
        0,
        "an unpinned certificate's request reached the origin"
    );
    proxy
        .wait_for_metric(&format!("{REJECTED}{{reason=\"not_pinned\"}}"), 1.0)
        .await;

    ok(send(proxy.tls, m.client(Some(&bob), H2), get("/api")).await);
    assert_identity(&m.origin, &bob, "bob");
    proxy.stop().await;

    let pins = format!("pinned_sha256 = [\"{}\"]", alice.sha256());
    let proxy = m.start(Some(&pins), "").await;
    ok(send(proxy.tls, m.client(Some(&alice), H1), get("/")).await);
    assert_identity(&m.origin, &alice, "alice");
    proxy.stop().await;
}

// ------------------------------------------------------------------ spoofing

const SPOOFED: &[(&str, &str)] = &[
    ("X-Client-Cert-Subject", "CN=admin"),
    ("x-client-cert-subject", "CN=root"),
    ("X-CLIENT-CERT-SHA256", "00"),
    ("X-Client-Cert-Verify", "SUCCESS"),
    ("x-client-cert-verify", "SUCCESS"),
];

#[tokio::test]
async fn identity_headers_from_clients_never_reach_the_upstream() {
    // Without [tls.client_auth], on TLS and on the plain listener.
    let m = Mtls::new().await;
    let plain = "\n[http]\nlisten = [\"127.0.0.1:0\"]\nredirect_to_https = false\n";
    let proxy = m.start(None, plain).await;
    for alpn in [H1, H2] {
        ok(send(proxy.tls, m.client(None, alpn), get_with("/", SPOOFED)).await);
        let seen = m.origin.last_seen().headers;
        assert!(values(&seen, "x-client-cert-subject").is_empty(), "{seen:?}");
        assert!(values(&seen, "x-client-cert-sha256").is_empty(), "{seen:?}");
        assert_eq!(values(&seen, "x-client-cert-verify"), ["NONE"]);
    }
    let tcp = tokio::net::TcpStream::connect(proxy.plain[0]).await.unwrap();
    let (mut plain_client, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = get_with("/", SPOOFED);
    *req.uri_mut() = "/".parse().unwrap();
    let resp = plain_client.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let seen = m.origin.last_seen().headers;
    for name in [
        "x-client-cert-subject",
        "x-client-cert-sha256",
        "x-client-cert-verify",
    ] {
        assert!(
            values(&seen, name).is_empty(),
            "plain HTTP passed {name}: {seen:?}"
        );
    }
    assert_eq!(m.origin.count(), 3);
    proxy.stop().await;

    // With it: replaced by what the handshake verified, one value each.
    let proxy = m.start(Some("mode = \"optional\""), "").await;
    let alice = m.clients.issue_client("alice");
    for alpn in [H1, H2] {
        ok(send(proxy.tls, m.client(Some(&alice), alpn), get_with("/api", SPOOFED)).await);
        assert_identity(&m.origin, &alice, "alice");
        ok(send(proxy.tls, m.client(None, alpn), get_with("/", SPOOFED)).await);
        let seen = m.origin.last_seen().headers;
        assert!(values(&seen, "x-client-cert-subject").is_empty(), "{seen:?}");
        assert!(values(&seen, "x-client-cert-sha256").is_empty(), "{seen:?}");
        assert_eq!(values(&seen, "x-client-cert-verify"), ["NONE"]);
    }
    proxy.stop().await;
}

// ------------------------------------------------------ configuration errors

/// Runs the binary's `command` (`check` or `run`) on `text` written to
/// `dir/proxy.toml`.
fn portcullis(command: &str, dir: &Path, text: &str) -> Output {
    let path = dir.join("proxy.toml");
    std::fs::write(&path, text).unwrap();
    support::process::run_to_end(&[command], &path)
}

/// A configuration whose `[tls.client_auth]` body starts on line 9, and
/// whose route ends with `route_extra` on line 14.
fn config_text(client_auth: Option<&str>, route_extra: &str) -> String {
    let table = match client_auth {
        Some(body) => format!("[tls.client_auth]\n{body}\n"),
        None => "\n\n".to_owned(),
    };
    let table = format!(
        "{table}{}",
        "\n".repeat(3usize.saturating_sub(table.lines().count()))
    );
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n\n[tls]\ncert = \"fullchain.pem\"\nkey = \"privkey.pem\"\n\n{table}[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9\"\n{route_extra}\n"
    )
}

/// Both `check` and `run` exit 2 with every `needle` on stderr.
fn assert_config_error(dir: &Path, text: &str, needles: &[&str]) {
    for command in ["check", "run"] {
        let o = portcullis(command, dir, text);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{command}: exit code; stderr:\n{err}");
        for n in needles.iter().chain(&["help: "]) {
            assert!(err.contains(n), "{command}: stderr lacks {n:?}:\n{err}");
        }
    }
}

#[test]
fn check_accepts_client_auth_and_summarises_it() {
    let site = Site::new();
    std::fs::write(site.path("clients-ca.pem"), TestCa::new().pem).unwrap();
    let text = config_text(
        Some("ca = \"clients-ca.pem\"\nmode = \"optional\""),
        "require_client_cert = true",
    );
    let o = portcullis("check", site.dir.path(), &text);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.contains("client certificates optional, verified against"),
        "{out}"
    );
    assert!(
        out.contains("route   / -> http://127.0.0.1:9 (client certificate required)"),
        "{out}"
    );
}

#[test]
fn a_missing_ca_file_is_a_configuration_error() {
    let site = Site::new();
    let text = config_text(Some("ca = \"nope/clients-ca.pem\""), "");
    assert_config_error(
        site.dir.path(),
        &text,
        &[
            "proxy.toml:9:",
            "tls.client_auth.ca",
            "clients-ca.pem does not exist",
        ],
    );
}

#[test]
fn a_ca_file_without_a_certificate_is_a_configuration_error() {
    let site = Site::new();
    let text = config_text(Some("ca = \"clients-ca.pem\""), "");
    std::fs::write(site.path("clients-ca.pem"), "").unwrap();
    assert_config_error(
        site.dir.path(),
        &text,
        &["proxy.toml:9:", "tls.client_auth.ca", "holds no certificate"],
    );
    let key_only = TestCa::new().issue_client("alice").key_pem;
    std::fs::write(site.path("clients-ca.pem"), key_only).unwrap();
    assert_config_error(
        site.dir.path(),
        &text,
        &[
            "proxy.toml:9:",
            "tls.client_auth.ca",
            "holds a private key but no certificate",
        ],
    );
    // A client certificate is no CA.
    let leaf = TestCa::new().issue_client("alice").cert_pem;
    std::fs::write(site.path("clients-ca.pem"), leaf).unwrap();
    assert_config_error(
        site.dir.path(),
        &text,
        &[
            "proxy.toml:9:",
            "tls.client_auth.ca",
            "is not a CA certificate",
            "pinned_sha256",
        ],
    );
}

#[test]
fn a_bad_fingerprint_is_a_configuration_error() {
    let site = Site::new();
    std::fs::write(site.path("clients-ca.pem"), TestCa::new().pem).unwrap();
    let sha1 = "AB:".repeat(19) + "AB";
    let text = config_text(
        Some(&format!("ca = \"clients-ca.pem\"\npinned_sha256 = [\"{sha1}\"]")),
        "",
    );
    assert_config_error(
        site.dir.path(),
        &text,
        &[
            "proxy.toml:10:",
            "tls.client_auth.pinned_sha256[0]",
            "40 hex digits; a SHA-256 fingerprint has 64",
            "-fingerprint -sha256",
        ],
    );
}

#[test]
fn a_bad_mode_is_a_configuration_error() {
    let site = Site::new();
    std::fs::write(site.path("clients-ca.pem"), TestCa::new().pem).unwrap();
    let text = config_text(Some("ca = \"clients-ca.pem\"\nmode = \"sometimes\""), "");
    assert_config_error(
        site.dir.path(),
        &text,
        &[
            "proxy.toml:10:",
            "tls.client_auth.mode",
            "\"required\"",
            "\"optional\"",
        ],
    );
    // nginx's word gets nginx's meaning.
    let text = config_text(Some("ca = \"clients-ca.pem\"\nmode = \"on\""), "");
    assert_config_error(
        site.dir.path(),
        &text,
        &[
            "proxy.toml:10:",
            "tls.client_auth.mode",
            "write mode = \"required\"",
        ],
    );
}

#[test]
fn require_client_cert_without_client_auth_is_a_configuration_error() {
    let site = Site::new();
    let text = config_text(None, "require_client_cert = true");
    assert_config_error(
        site.dir.path(),
        &text,
        &[
            "proxy.toml:14:",
            "route[0].require_client_cert",
            "[tls.client_auth] is not configured",
            "add the CA",
        ],
    );
}

#[test]
fn nginx_names_are_translated() {
    let site = Site::new();
    std::fs::write(site.path("clients-ca.pem"), TestCa::new().pem).unwrap();
    let text = config_text(
        Some("ssl_client_certificate = \"clients-ca.pem\"\nssl_verify_client = \"on\""),
        "",
    );
    assert_config_error(
        site.dir.path(),
        &text,
        &[
            "proxy.toml:9:",
            "portcullis calls this setting `ca`",
            "proxy.toml:10:",
            "portcullis calls this setting `mode`",
        ],
    );
}

/// The example's `[tls.client_auth]` block is commented out (it names a
/// CA file); uncommented, it must load with the documented defaults.
#[test]
fn example_client_auth_block_loads_when_uncommented() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("proxy.toml.example")).unwrap();
    let block: Vec<&str> = text
        .lines()
        .skip_while(|line| *line != "# [tls.client_auth]")
        .take_while(|line| line.starts_with('#') || line.is_empty())
        .filter_map(|line| line.strip_prefix("# "))
        .filter(|line| {
            *line == "[tls.client_auth]"
                || ["ca", "mode", "pinned_sha256"]
                    .iter()
                    .any(|key| line.starts_with(&format!("{key} = ")))
        })
        .collect();
    assert_eq!(block.len(), 4, "{block:?}");
    let toml = format!(
        "{}\n[[route]]\npath = \"/api\"\nupstream = \"http://127.0.0.1:8080\"\nrequire_client_cert = true\n",
        block.join("\n")
    );
    let config = portcullis::config::from_str(&toml, Path::new("/etc/portcullis/proxy.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let auth = config.tls.client_auth.expect("[tls.client_auth] parsed");
    assert_eq!(auth.ca, Path::new("/etc/portcullis/clients-ca.pem"));
    assert_eq!(auth.mode, portcullis::config::ClientAuthMode::Required);
    assert_eq!(auth.pinned_sha256.len(), 1);
    assert!(config.routes[0].require_client_cert);
}
