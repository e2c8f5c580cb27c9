//! The plain-HTTP listener (`[http]`) over real sockets: ACME http-01
//! challenge files served from the webroot and everything that must not be
//! served from it, the 308 redirect to https, and routing when the redirect
//! is off. Requests are written byte for byte by a small raw HTTP/1.1
//! client, so that paths reach the proxy exactly as an attacker would send
//! them (`..`, `%2e%2e`, empty segments).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use support::{Origin, Site};

/// A token as Let's Encrypt makes them (base64url).
const TOKEN: &str = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";
/// What certbot writes in the token's file: the key authorization.
const KEY_AUTHORIZATION: &str =
    "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI";

const PREFIX: &str = "/.well-known/acme-challenge/";

/// A running proxy with a plain-HTTP listener.
struct Running {
    plain: SocketAddr,
    tls: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), portcullis::Error>>,
}

impl Running {
    /// Starts the proxy for `site` with `routes` and an `[http]` table on
    /// 127.0.0.1:0 with the extra settings `http`.
    async fn start(site: &Site, routes: &str, http: &str) -> Running {
        let toml = format!(
            "{}\n[http]\nlisten = [\"127.0.0.1:0\"]\n{http}\n",
            site.config(routes)
        );
        let config =
            portcullis::config::from_str(&toml, &site.path("proxy.toml")).unwrap_or_else(|e| panic!("{e}"));
        let proxy = portcullis::Proxy::bind(config).unwrap_or_else(|e| panic!("{e}"));
        let plain = proxy.plain_addrs()[0];
        let tls = proxy.local_addrs()[0];
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(proxy.run(async move {
            let _ = stopped.await;
        }));
        Running {
            plain,
            tls,
            stop: Some(stop),
            task,
        }
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("the proxy did not stop")
            .unwrap();
        assert!(result.is_ok(), "{result:?}");
    }
}

/// A route to an origin that answers `hello from <uri>`.
fn route_to(origin: &Origin) -> String {
    format!("[[route]]\npath = \"/\"\nupstream = \"{}\"\n", origin.url())
}

/// A route to an address nothing listens on: these tests never reach it.
const NOWHERE: &str = "[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9\"\n";

/// `webroot = "webroot"` in the site directory, with the challenge
/// directory created and TOKEN written as certbot would.
fn webroot(site: &Site) -> PathBuf {
    let root = site.path("webroot");
    let challenges = root.join(".well-known/acme-challenge");
    std::fs::create_dir_all(&challenges).unwrap();
    std::fs::write(challenges.join(TOKEN), KEY_AUTHORIZATION).unwrap();
    root
}

const WITH_WEBROOT: &str = "acme_webroot = \"webroot\"";

/// A response as read off the wire.
#[derive(Debug)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `method target` with `Host: host` (and `body`, if any) on a new
/// connection, exactly as written, and reads the response until the proxy
/// closes the connection.
async fn send(addr: SocketAddr, method: &str, target: &str, host: &str, body: &str) -> Raw {
    let mut request = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if !body.is_empty() {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    parse(&send_bytes(addr, request.as_bytes()).await, method == "HEAD")
}

/// Writes `request` exactly as given and reads until the proxy closes.
async fn send_bytes(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut bytes))
        .await
        .expect("the proxy did not answer and close")
        .unwrap();
    bytes
}

async fn get(addr: SocketAddr, target: &str) -> Raw {
    send(addr, "GET", target, "example.com", "").await
}

fn parse(bytes: &[u8], head: bool) -> Raw {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(bytes)));
    let head_text = std::str::from_utf8(&bytes[..end]).unwrap();
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_string(), value.trim().to_string())
        })
        .collect();
    let mut raw = Raw {
        status,
        headers,
        body: bytes[end + 4..].to_vec(),
    };
    if head {
        assert!(
            raw.body.is_empty(),
            "a body after a HEAD response: {:?}",
            raw.text()
        );
    } else if raw
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        raw.body = dechunk(&raw.body);
    } else if let Some(length) = raw.header("content-length") {
        assert_eq!(raw.body.len(), length.parse::<usize>().unwrap(), "body length");
    }
    raw
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = std::str::from_utf8(&data[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn challenge_dir(root: &Path) -> PathBuf {
    root.join(".well-known/acme-challenge")
}

// ---------------------------------------------------------------- challenges

#[tokio::test]
async fn get_serves_the_challenge_file() {
    let site = Site::new();
    webroot(&site);
    let proxy = Running::start(&site, NOWHERE, WITH_WEBROOT).await;

    let r = get(proxy.plain, &format!("{PREFIX}{TOKEN}")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.text(), KEY_AUTHORIZATION);
    assert_eq!(
        r.header("content-length"),
        Some(KEY_AUTHORIZATION.len().to_string().as_str())
    );
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));

    // The query is not part of the token.
    let r = get(proxy.plain, &format!("{PREFIX}{TOKEN}?x=1")).await;
    assert_eq!((r.status, r.text()), (200, KEY_AUTHORIZATION.to_string()));

    // Any Host: the CA asks for each name being validated.
    let r = send(
        proxy.plain,
        "GET",
        &format!("{PREFIX}{TOKEN}"),
        "www.example.org",
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    proxy.shutdown().await;
}

#[tokio::test]
async fn head_has_the_length_and_no_body() {
    let site = Site::new();
    webroot(&site);
    let proxy = Running::start(&site, NOWHERE, WITH_WEBROOT).await;

    let r = send(
        proxy.plain,
        "HEAD",
        &format!("{PREFIX}{TOKEN}"),
        "example.com",
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("content-length"),
        Some(KEY_AUTHORIZATION.len().to_string().as_str())
    );
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert!(r.body.is_empty());
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_missing_token_is_404() {
    let site = Site::new();
    webroot(&site);
    let proxy = Running::start(&site, NOWHERE, WITH_WEBROOT).await;
    let r = get(proxy.plain, &format!("{PREFIX}NoSuchToken_123")).await;
    assert_eq!(r.status, 404, "{r:?}");
    assert!(r.header("location").is_none());
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_missing_webroot_is_404() {
    let site = Site::new();
    // The webroot directory is configured but never created.
    let proxy = Running::start(&site, NOWHERE, WITH_WEBROOT).await;
    let r = get(proxy.plain, &format!("{PREFIX}{TOKEN}")).await;
    assert_eq!(r.status, 404, "{r:?}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn only_token_characters_and_one_segment_are_served() {
    let site = Site::new();
    let root = webroot(&site);
    let challenges = challenge_dir(&root);
    // Files that a lax check would serve.
    std::fs::write(challenges.join("a.b"), "dotted").unwrap();
    std::fs::write(challenges.join("a b"), "spaced").unwrap();
    std::fs::create_dir(challenges.join("nested")).unwrap();
    std::fs::write(challenges.join("nested/token"), "nested").unwrap();
    std::fs::write(root.join("secret"), "inside the webroot").unwrap();
    std::fs::write(site.path("secret"), "outside the webroot").unwrap();
    let proxy = Running::start(&site, NOWHERE, WITH_WEBROOT).await;

    for target in [
        format!("{PREFIX}a.b"),
        format!("{PREFIX}a%20b"),
        format!("{PREFIX}nested/token"),
        format!("{PREFIX}{TOKEN}/"),
        format!("{PREFIX}{TOKEN}/x"),
        format!("{PREFIX}.."),
        format!("{PREFIX}../../secret"),
        format!("{PREFIX}../../../secret"),
        format!("{PREFIX}%2e%2e"),
        format!("{PREFIX}%2e%2e%2f%2e%2e%2fsecret"),
        format!("{PREFIX}..%2f..%2f..%2fsecret"),
        format!("{PREFIX}%2E%2E/%2E%2E/secret"),
        format!("{PREFIX}{TOKEN}%00"),
        PREFIX.to_string(),
        PREFIX.trim_end_matches('/').to_string(),
    ] {
        let r = get(proxy.plain, &target).await;
        assert_eq!(r.status, 404, "{target}: {r:?}");
        for planted in ["dotted", "spaced", "nested", "the webroot"] {
            assert!(!r.text().contains(planted), "{target}: {r:?}");
        }
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_directory_named_like_a_token_is_404() {
    let site = Site::new();
    let root = webroot(&site);
    std::fs::create_dir(challenge_dir(&root).join("DirectoryToken")).unwrap();
    std::fs::write(challenge_dir(&root).join("DirectoryToken/index.html"), "x").unwrap();
    let proxy = Running::start(&site, NOWHERE, WITH_WEBROOT).await;
    let r = get(proxy.plain, &format!("{PREFIX}DirectoryToken")).await;
    assert_eq!(r.status, 404, "{r:?}");
    proxy.shutdown().await;
}

/// A symlink as the token file is refused wherever it points: outside the
/// webroot (the escape this guards against) and inside it too (ACME
/// clients write regular files; see src/server/acme.rs).
#[tokio::test]
async fn symlinked_challenge_files_are_404() {
    let site = Site::new();
    let root = webroot(&site);
    let challenges = challenge_dir(&root);
    std::fs::write(site.path("outside.txt"), "outside the webroot").unwrap();
    std::os::unix::fs::symlink(site.path("outside.txt"), challenges.join("escape")).unwrap();
    std::os::unix::fs::symlink("../../../outside.txt", challenges.join("relative_escape")).unwrap();
    std::os::unix::fs::symlink(challenges.join(TOKEN), challenges.join("alias")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", challenges.join("passwd")).unwrap();
    std::os::unix::fs::symlink("nowhere", challenges.join("dangling")).unwrap();
    let proxy = Running::start(&site, NOWHERE, WITH_WEBROOT).await;

    for token in ["escape", "relative_escape", "alias", "passwd", "dangling"] {
        let r = get(proxy.plain, &format!("{PREFIX}{token}")).await;
        assert_eq!(r.status, 404, "{token}: {r:?}");
        assert!(
            !r.text().contains("outside") && !r.text().contains("root:"),
            "{token}: {r:?}"
        );
    }
    // The real file next to them is served.
    let r = get(proxy.plain, &format!("{PREFIX}{TOKEN}")).await;
    assert_eq!(r.status, 200);
    proxy.shutdown().await;
}

/// Directories may be links (a webroot moved elsewhere), as long as the
/// challenge file really is inside the real webroot.
#[tokio::test]
async fn linked_directories_may_not_lead_out_of_the_webroot() {
    let site = Site::new();
    let real = webroot(&site);
    // A webroot that is itself a symlink to the real one: served.
    std::os::unix::fs::symlink(&real, site.path("linked")).unwrap();
    // A webroot whose .well-known leads outside it: refused.
    let elsewhere = site.path("elsewhere/acme-challenge");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join(TOKEN), "outside the webroot").unwrap();
    std::fs::create_dir(site.path("leaky")).unwrap();
    std::os::unix::fs::symlink(site.path("elsewhere"), site.path("leaky/.well-known")).unwrap();

    let proxy = Running::start(&site, NOWHERE, "acme_webroot = \"linked\"").await;
    let r = get(proxy.plain, &format!("{PREFIX}{TOKEN}")).await;
    assert_eq!((r.status, r.text()), (200, KEY_AUTHORIZATION.to_string()));
    proxy.shutdown().await;

    let proxy = Running::start(&site, NOWHERE, "acme_webroot = \"leaky\"").await;
    let r = get(proxy.plain, &format!("{PREFIX}{TOKEN}")).await;
    assert_eq!(r.status, 404, "{r:?}");
    assert!(!r.text().contains("outside"));
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_file_larger_than_64_kib_is_404() {
    let site = Site::new();
    let root = webroot(&site);
    std::fs::write(challenge_dir(&root).join("big"), vec![b'a'; 64 * 1024 + 1]).unwrap();
    std::fs::write(challenge_dir(&root).join("limit"), vec![b'a'; 64 * 1024]).unwrap();
    let proxy = Running::start(&site, NOWHERE, WITH_WEBROOT).await;
    let r = get(proxy.plain, &format!("{PREFIX}big")).await;
    assert_eq!(r.status, 404, "{:?}", (r.status, &r.headers));
    let r = get(proxy.plain, &format!("{PREFIX}limit")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 64 * 1024);
    proxy.shutdown().await;
}

#[tokio::test]
async fn other_methods_are_405() {
    let site = Site::new();
    webroot(&site);
    let proxy = Running::start(&site, NOWHERE, WITH_WEBROOT).await;
    for method in ["POST", "PUT", "DELETE"] {
        let r = send(
            proxy.plain,
            method,
            &format!("{PREFIX}{TOKEN}"),
            "example.com",
            "x=1",
        )
        .await;
        assert_eq!(r.status, 405, "{method}: {r:?}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method}");
    }
    // The file is untouched.
    let content = std::fs::read_to_string(challenge_dir(&site.path("webroot")).join(TOKEN)).unwrap();
    assert_eq!(content, KEY_AUTHORIZATION);
    proxy.shutdown().await;
}

// ---------------------------------------------------------------- redirects

#[tokio::test]
async fn everything_else_is_redirected_to_the_tls_port() {
    let site = Site::new();
    webroot(&site);
    let proxy = Running::start(&site, NOWHERE, WITH_WEBROOT).await;
    let port = proxy.tls.port();
    assert_ne!(port, 443);

    let r = get(proxy.plain, "/some/path?x=1&y=two").await;
    assert_eq!(r.status, 308, "{r:?}");
    assert_eq!(
        r.header("location"),
        Some(format!("https://example.com:{port}/some/path?x=1&y=two").as_str())
    );

    // 308 keeps the method: a POST is repeated as a POST.
    let r = send(proxy.plain, "POST", "/api/items?id=7", "example.com", "{\"a\":1}").await;
    assert_eq!(r.status, 308, "{r:?}");
    assert_eq!(
        r.header("location"),
        Some(format!("https://example.com:{port}/api/items?id=7").as_str())
    );

    // The port of the Host header is the plain one; it is replaced.
    let r = send(proxy.plain, "GET", "/", "example.com:8080", "").await;
    assert_eq!(
        r.header("location"),
        Some(format!("https://example.com:{port}/").as_str())
    );

    // A target sent with raw UTF-8 comes back percent-encoded: a Location
    // is an ASCII URI.
    let r = get(proxy.plain, "/café?q=é").await;
    assert_eq!(r.status, 308, "{r:?}");
    assert_eq!(
        r.header("location"),
        Some(format!("https://example.com:{port}/caf%C3%A9?q=%C3%A9").as_str())
    );

    // Near the challenge prefix is not under it.
    let r = get(proxy.plain, "/.well-known/acme-challengex/abc").await;
    assert_eq!(r.status, 308, "{r:?}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_target_or_host_no_location_can_carry_is_a_400_not_a_redirect() {
    let site = Site::new();
    let proxy = Running::start(&site, NOWHERE, "").await;
    for (method, target, host) in [
        ("OPTIONS", "*", "example.com"),
        ("GET", "/ws/a", "([::1]:8443"),
        ("GET", "/", "user@example.com"),
    ] {
        let r = send(proxy.plain, method, target, host, "").await;
        assert_eq!(r.status, 400, "{method} {target} Host: {host}: {r:?}");
        assert_eq!(r.header("location"), None, "{r:?}");
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn without_a_webroot_challenges_are_redirected_too() {
    let site = Site::new();
    webroot(&site);
    let proxy = Running::start(&site, NOWHERE, "").await;
    let r = get(proxy.plain, &format!("{PREFIX}{TOKEN}")).await;
    assert_eq!(r.status, 308, "{r:?}");
    assert_eq!(
        r.header("location"),
        Some(format!("https://example.com:{}{PREFIX}{TOKEN}", proxy.tls.port()).as_str())
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn without_the_redirect_requests_are_routed_as_http() {
    let site = Site::new();
    webroot(&site);
    let origin = Origin::hello().await;
    let proxy = Running::start(
        &site,
        &route_to(&origin),
        &format!("{WITH_WEBROOT}\nredirect_to_https = false"),
    )
    .await;

    let r = get(proxy.plain, "/page?q=1").await;
    assert_eq!(
        (r.status, r.text()),
        (200, "hello from /page?q=1".to_string()),
        "{r:?}"
    );
    let seen = origin.last_seen();
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["host"], "example.com");
    assert_eq!(origin.count(), 1);

    // Challenges still come from the webroot, never from the origin.
    let r = get(proxy.plain, &format!("{PREFIX}{TOKEN}")).await;
    assert_eq!((r.status, r.text()), (200, KEY_AUTHORIZATION.to_string()));
    let r = get(proxy.plain, &format!("{PREFIX}NoSuchToken")).await;
    assert_eq!(r.status, 404);
    assert_eq!(origin.count(), 1);
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_request_with_both_framings_is_a_400_whether_redirected_or_routed() {
    // The request smuggling check holds on the plain listener too, before
    // its redirect or a challenge file: 400, close, nothing forwarded, and
    // the request hidden in the body never answered.
    let site = Site::new();
    webroot(&site);
    let origin = Origin::hello().await;
    let both = format!(
        "POST {PREFIX}{TOKEN} HTTP/1.1\r\nHost: example.com\r\nContent-Length: 6\r\n\
         Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: example.com\r\n\r\n"
    );
    for http in [
        WITH_WEBROOT.to_owned(),
        format!("{WITH_WEBROOT}\nredirect_to_https = false"),
    ] {
        let proxy = Running::start(&site, &route_to(&origin), &http).await;
        let bytes = send_bytes(proxy.plain, both.as_bytes()).await;
        let text = String::from_utf8_lossy(&bytes);
        let r = parse(&bytes, false);
        assert_eq!(r.status, 400, "{http}: {text}");
        assert_eq!(r.header("connection"), Some("close"), "{text}");
        assert!(
            !text.contains("smuggled") && r.text() == "400 bad request\n",
            "{text}"
        );
        assert_eq!(origin.count(), 0);
        proxy.shutdown().await;
    }
}
