//! HTTP through the proxy: HTTP/1.1 and HTTP/2 clients, the headers an
//! origin sees and the ones a client sees, route matching, upstream
//! keep-alive pooling, and the local error answers (400, 404, 405, 502, 504).
//!
//! Every test runs a real origin and the proxy on 127.0.0.1:0 with real TLS.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest any single exchange may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- helpers

/// One `[[route]]` table.
fn route(path: &str, upstream: &str) -> String {
    format!("[[route]]\npath = \"{path}\"\nupstream = \"{upstream}\"\n\n")
}

/// One `[[route]]` table with extra keys (TOML lines).
fn route_with(path: &str, upstream: &str, extra: &str) -> String {
    format!("[[route]]\npath = \"{path}\"\nupstream = \"{upstream}\"\n{extra}\n\n")
}

/// The proxy with one catch-all route to `origin`.
async fn proxy_to(site: &Site, origin: &Origin) -> ProxyHandle {
    ProxyHandle::start(&site.config(&route("/", &origin.url())), site.dir.path()).await
}

/// A streaming body from a stream of chunks.
fn stream_body<S>(chunks: S) -> Body
where
    S: futures_util::Stream<Item = Bytes> + Send + Sync + 'static,
{
    BodyExt::boxed(StreamBody::new(
        chunks.map(|b| Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(b))),
    ))
}

async fn text(resp: Response<Incoming>) -> String {
    let body = tokio::time::timeout(HANG, resp.into_body().collect())
        .await
        .expect("the response body did not end")
        .expect("the response body failed")
        .to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

/// One request on a fresh HTTP/2 connection: status, headers, body text.
async fn fetch_h2(
    addr: std::net::SocketAddr,
    ca: &TestCa,
    req: Request<Body>,
) -> (StatusCode, HeaderMap, String) {
    let mut send = h2(addr, ca).await;
    let resp = tokio::time::timeout(HANG, send.send_request(req))
        .await
        .expect("no HTTP/2 response")
        .unwrap();
    assert_eq!(resp.version(), Version::HTTP_2);
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, headers, text(resp).await)
}

/// An HTTP/2 GET: the authority comes from the URI, there is no Host header.
fn get_h2(path: &str) -> Request<Body> {
    Request::get(format!("https://localhost{path}"))
        .body(empty())
        .unwrap()
}

/// A GET with an explicit Host header.
fn get_host(path: &str, host: &str) -> Request<Body> {
    Request::get(path).header("host", host).body(empty()).unwrap()
}

/// A TLS connection (ALPN http/1.1) that speaks raw bytes, for requests a
/// well-behaved client library will not send.
struct Raw {
    tls: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    pending: Vec<u8>,
}

impl Raw {
    async fn connect(addr: std::net::SocketAddr, ca: &TestCa) -> Raw {
        Raw {
            tls: tls_connect(addr, ca, &[b"http/1.1"]).await,
            pending: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.tls.write_all(bytes).await.unwrap();
        self.tls.flush().await.unwrap();
    }

    /// Reads up to the end of the next response head (the bytes after it
    /// stay for the next call), or until the proxy closes. Returns the head
    /// (or whatever came before the close) and whether the connection closed.
    async fn read_head(&mut self) -> (String, bool) {
        let mut buf = [0u8; 4096];
        tokio::time::timeout(HANG, async {
            loop {
                if let Some(end) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head: Vec<u8> = self.pending.drain(..end + 4).collect();
                    return (String::from_utf8_lossy(&head).into_owned(), false);
                }
                match self.tls.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let got = std::mem::take(&mut self.pending);
                        return (String::from_utf8_lossy(&got).into_owned(), true);
                    }
                    Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await
        .expect("the proxy neither answered nor closed the connection")
    }
}

/// Writes `bytes` on a fresh raw connection and reads the response head.
async fn raw_exchange(addr: std::net::SocketAddr, ca: &TestCa, bytes: &[u8]) -> (String, bool) {
    let mut raw = Raw::connect(addr, ca).await;
    raw.send(bytes).await;
    raw.read_head().await
}

fn header<'a>(parts: &'a http::request::Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).map(|v| v.to_str().unwrap())
}

// ---------------------------------------------------------------- clients

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_client_gets_the_origin_answer() {
    let site = Site::new();
    let origin = Origin::start(|req: Request<Incoming>| async move {
        let mut resp = Response::new(full(format!("hello from {}", req.uri())));
        resp.headers_mut().insert("x-origin", "yes".parse().unwrap());
        *resp.status_mut() = StatusCode::CREATED;
        resp
    })
    .await;
    let proxy = proxy_to(&site, &origin).await;

    let (status, headers, body) = fetch(proxy.addr, &site.ca, get("/a/b?c=d")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["x-origin"], "yes");
    assert_eq!(body, "hello from /a/b?c=d");
    let seen = origin.last_seen();
    assert_eq!(seen.version, Version::HTTP_11);
    assert_eq!(seen.uri, "/a/b?c=d");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_client_gets_the_origin_answer_and_the_origin_gets_http1() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let proxy = proxy_to(&site, &origin).await;

    let (status, _, body) = fetch_h2(proxy.addr, &site.ca, get_h2("/x?y=1")).await;
    assert_eq!(status, 200);
    assert_eq!(body, "hello from /x?y=1");
    let seen = origin.last_seen();
    assert_eq!(seen.version, Version::HTTP_11);
    assert_eq!(seen.uri, "/x?y=1", "the origin must get an origin-form target");
    assert_eq!(header(&seen, "host"), Some("localhost"));
    assert_eq!(seen.headers.get_all("host").iter().count(), 1);

    // An authority with a port arrives as the Host, port included.
    let port = proxy.addr.port();
    let req = Request::get(format!("https://localhost:{port}/p"))
        .body(empty())
        .unwrap();
    let (status, _, body) = fetch_h2(proxy.addr, &site.ca, req).await;
    assert_eq!(status, 200);
    assert_eq!(body, "hello from /p");
    let host = format!("localhost:{port}");
    assert_eq!(header(&origin.last_seen(), "host"), Some(host.as_str()));

    // A request body crosses from HTTP/2 to HTTP/1.1 whole.
    let echo = Origin::start(|req: Request<Incoming>| async move {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        Response::new(full(body))
    })
    .await;
    let proxy2 = proxy_to(&site, &echo).await;
    let req = Request::post("https://localhost/echo")
        .body(stream_body(stream::iter(vec![
            Bytes::from_static(b"one,"),
            Bytes::from_static(b"two,"),
            Bytes::from_static(b"three"),
        ])))
        .unwrap();
    let (status, _, body) = fetch_h2(proxy2.addr, &site.ca, req).await;
    assert_eq!(status, 200);
    assert_eq!(body, "one,two,three");
}

// ---------------------------------------------------------------- request headers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_reaches_the_origin_as_the_client_sent_it() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let proxy = proxy_to(&site, &origin).await;
    let with_port = format!("LocalHost:{}", proxy.addr.port());

    for host in ["localhost", with_port.as_str(), "app.example.com:8443"] {
        let (status, _, _) = fetch(proxy.addr, &site.ca, get_host("/h", host)).await;
        assert_eq!(status, 200, "Host: {host}");
        let seen = origin.last_seen();
        assert_eq!(header(&seen, "host"), Some(host));
        assert_eq!(seen.headers.get_all("host").iter().count(), 1);
        assert_eq!(header(&seen, "x-forwarded-host"), Some(host));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_are_set_and_appended() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let proxy = proxy_to(&site, &origin).await;

    // No forwarding headers from the client.
    let (status, _, _) = fetch(proxy.addr, &site.ca, get("/")).await;
    assert_eq!(status, 200);
    let seen = origin.last_seen();
    assert_eq!(header(&seen, "x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(header(&seen, "x-real-ip"), Some("127.0.0.1"));
    assert_eq!(header(&seen, "x-forwarded-proto"), Some("https"));
    assert_eq!(header(&seen, "x-forwarded-host"), Some("localhost"));

    // Spoofed or earlier values: X-Forwarded-For is appended to, the others
    // are overwritten with what this hop knows.
    let req = Request::get("/")
        .header("host", "localhost")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-for", "198.51.100.4, 192.0.2.1")
        .header("x-forwarded-proto", "http")
        .header("x-real-ip", "10.9.9.9")
        .header("x-forwarded-host", "evil.example")
        .body(empty())
        .unwrap();
    let (status, _, _) = fetch(proxy.addr, &site.ca, req).await;
    assert_eq!(status, 200);
    let seen = origin.last_seen();
    let xff: Vec<_> = seen.headers.get_all("x-forwarded-for").iter().collect();
    assert_eq!(xff, ["203.0.113.9, 198.51.100.4, 192.0.2.1, 127.0.0.1"]);
    let one = |name: &str| -> Vec<&str> {
        seen.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    };
    assert_eq!(one("x-real-ip"), ["127.0.0.1"]);
    assert_eq!(one("x-forwarded-proto"), ["https"]);
    assert_eq!(one("x-forwarded-host"), ["localhost"]);

    // The same over HTTP/2.
    let req = Request::get("https://localhost/two")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "http")
        .body(empty())
        .unwrap();
    let (status, _, _) = fetch_h2(proxy.addr, &site.ca, req).await;
    assert_eq!(status, 200);
    let seen = origin.last_seen();
    assert_eq!(header(&seen, "x-forwarded-for"), Some("203.0.113.9, 127.0.0.1"));
    assert_eq!(header(&seen, "x-real-ip"), Some("127.0.0.1"));
    assert_eq!(header(&seen, "x-forwarded-proto"), Some("https"));
    assert_eq!(header(&seen, "x-forwarded-host"), Some("localhost"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_hop_by_hop_headers_do_not_reach_the_origin() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let proxy = proxy_to(&site, &origin).await;

    let req = Request::get("/hop")
        .header("host", "localhost")
        .header("connection", "x-foo, X-Other")
        .header("x-foo", "1")
        .header("x-other", "2")
        .header("keep-alive", "timeout=5, max=100")
        .header("te", "trailers")
        .header("trailer", "x-checksum")
        .header("proxy-connection", "keep-alive")
        .header("upgrade", "h2c")
        .header("x-kept", "yes")
        .body(empty())
        .unwrap();
    let (status, _, body) = fetch(proxy.addr, &site.ca, req).await;
    assert_eq!(status, 200);
    assert_eq!(body, "hello from /hop");
    let seen = origin.last_seen();
    for gone in [
        "x-foo",
        "x-other",
        "keep-alive",
        "te",
        "trailer",
        "proxy-connection",
        "upgrade",
    ] {
        assert!(
            !seen.headers.contains_key(gone),
            "the origin got hop-by-hop header {gone}: {:?}",
            seen.headers
        );
    }
    // A Connection header may only carry the proxy's own hop options.
    for v in seen.headers.get_all("connection") {
        let v = v.to_str().unwrap().to_ascii_lowercase();
        assert!(!v.contains("x-foo") && !v.contains("x-other"), "connection: {v}");
    }
    assert_eq!(header(&seen, "x-kept"), Some("yes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_hop_by_hop_headers_do_not_reach_the_client() {
    let site = Site::new();
    let origin = Origin::start(|_req: Request<Incoming>| async move {
        let mut resp = Response::new(full("body"));
        let h = resp.headers_mut();
        h.insert("connection", "x-bar, X-Baz".parse().unwrap());
        h.insert("x-bar", "secret".parse().unwrap());
        h.insert("x-baz", "secret".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("proxy-connection", "keep-alive".parse().unwrap());
        h.insert("upgrade", "h2c".parse().unwrap());
        h.insert("x-kept", "yes".parse().unwrap());
        resp
    })
    .await;
    let proxy = proxy_to(&site, &origin).await;

    let check = |proto: &str, headers: &HeaderMap, body: &str| {
        assert_eq!(body, "body", "{proto}");
        for gone in ["x-bar", "x-baz", "keep-alive", "proxy-connection", "upgrade"] {
            assert!(
                !headers.contains_key(gone),
                "{proto}: the client got hop-by-hop header {gone}: {headers:?}"
            );
        }
        for v in headers.get_all("connection") {
            let v = v.to_str().unwrap().to_ascii_lowercase();
            assert!(
                !v.contains("x-bar") && !v.contains("x-baz"),
                "{proto}: connection: {v}"
            );
        }
        assert_eq!(headers["x-kept"], "yes", "{proto}");
    };
    let (status, headers, body) = fetch(proxy.addr, &site.ca, get("/")).await;
    assert_eq!(status, 200);
    check("HTTP/1.1", &headers, &body);
    let (status, headers, body) = fetch_h2(proxy.addr, &site.ca, get_h2("/")).await;
    assert_eq!(status, 200);
    check("HTTP/2", &headers, &body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_split_cookies_arrive_joined() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let proxy = proxy_to(&site, &origin).await;

    let req = Request::get("https://localhost/c")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .header("cookie", "c=3")
        .body(empty())
        .unwrap();
    let (status, _, _) = fetch_h2(proxy.addr, &site.ca, req).await;
    assert_eq!(status, 200);
    let seen = origin.last_seen();
    let cookies: Vec<_> = seen.headers.get_all("cookie").iter().collect();
    assert_eq!(cookies, ["a=1; b=2; c=3"]);
}

// ---------------------------------------------------------------- routes

/// Two origins that say who they are.
async fn named(name: &'static str) -> Origin {
    Origin::start(move |req: Request<Incoming>| async move {
        Response::new(full(format!("{name} {}", req.uri())))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_match_on_segment_boundaries_and_keep_the_query() {
    let site = Site::new();
    let root = named("root").await;
    let ws = named("ws").await;
    let cfg = site.config(&format!("{}{}", route("/", &root.url()), route("/ws", &ws.url())));
    let proxy = ProxyHandle::start(&cfg, site.dir.path()).await;

    // Odd but legal characters in the query (RFC 3986 query = *( pchar / "/" / "?" )),
    // and percent-encodings that must not be decoded or re-encoded.
    let odd = "/ws?x=1&y=a/b?c:d@e!$'()*+,;=&z=%2F%20%3F~._-&&";
    let cases = [
        ("/ws", "ws /ws"),
        ("/ws/", "ws /ws/"),
        ("/ws/a", "ws /ws/a"),
        ("/ws/a%20b/c", "ws /ws/a%20b/c"),
        ("/ws?x=1", "ws /ws?x=1"),
        ("/wsx", "root /wsx"),
        ("/wsx/a", "root /wsx/a"),
        ("/w", "root /w"),
        ("/", "root /"),
        ("/other?ws", "root /other?ws"),
    ];
    for (path, want) in cases {
        let (status, _, body) = fetch(proxy.addr, &site.ca, get(path)).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(body, want, "{path}");
    }
    let (status, _, body) = fetch(proxy.addr, &site.ca, get(odd)).await;
    assert_eq!(status, 200);
    assert_eq!(body, format!("ws {odd}"));
    assert_eq!(ws.last_seen().uri, odd);

    // HTTP/2 takes the same decisions.
    let (_, _, body) = fetch_h2(proxy.addr, &site.ca, get_h2("/ws/a?q=1")).await;
    assert_eq!(body, "ws /ws/a?q=1");
    let (_, _, body) = fetch_h2(proxy.addr, &site.ca, get_h2("/wsx")).await;
    assert_eq!(body, "root /wsx");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn longest_prefix_wins() {
    let site = Site::new();
    let api = named("api").await;
    let v2 = named("v2").await;
    // The shorter prefix comes first in the file: order must not matter.
    let cfg = site.config(&format!(
        "{}{}",
        route("/api", &api.url()),
        route("/api/v2", &v2.url())
    ));
    let proxy = ProxyHandle::start(&cfg, site.dir.path()).await;

    let cases = [
        ("/api", "api /api"),
        ("/api/", "api /api/"),
        ("/api/v1/x", "api /api/v1/x"),
        ("/api/v2", "v2 /api/v2"),
        ("/api/v2/", "v2 /api/v2/"),
        ("/api/v2/users?id=3", "v2 /api/v2/users?id=3"),
        ("/api/v20", "api /api/v20"),
        ("/api/v2x/y", "api /api/v2x/y"),
    ];
    for (path, want) in cases {
        let (status, _, body) = fetch(proxy.addr, &site.ca, get(path)).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(body, want, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_route_matches_only_its_host() {
    let site = Site::new();
    let example = named("example").await;
    let other = named("other").await;
    // The host-less route comes first in the file and has the longer
    // prefix; a route for the request's host still wins.
    let cfg = site.config(&format!(
        "{}[[route]]\nhost = \"example.com\"\npath = \"/\"\nupstream = \"{}\"\n\n",
        route("/", &other.url()),
        example.url()
    ));
    let proxy = ProxyHandle::start(&cfg, site.dir.path()).await;

    let cases = [
        ("example.com", "example /x"),
        ("EXAMPLE.com", "example /x"),
        ("Example.COM:8443", "example /x"),
        ("example.com:443", "example /x"),
        ("localhost", "other /x"),
        ("www.example.com", "other /x"),
        ("example.com.evil", "other /x"),
        ("notexample.com", "other /x"),
    ];
    for (host, want) in cases {
        let (status, _, body) = fetch(proxy.addr, &site.ca, get_host("/x", host)).await;
        assert_eq!(status, 200, "Host: {host}");
        assert_eq!(body, want, "Host: {host}");
    }
    // HTTP/2 carries the host in :authority.
    let req = Request::get("https://example.com:8443/x").body(empty()).unwrap();
    let (_, _, body) = fetch_h2(proxy.addr, &site.ca, req).await;
    assert_eq!(body, "example /x");
    let (_, _, body) = fetch_h2(proxy.addr, &site.ca, get_h2("/x")).await;
    assert_eq!(body, "other /x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_only_config_answers_404_for_other_hosts() {
    let site = Site::new();
    let example = named("example").await;
    let cfg = site.config(&format!(
        "[[route]]\nhost = \"example.com\"\npath = \"/\"\nupstream = \"{}\"\n\n",
        example.url()
    ));
    let proxy = ProxyHandle::start(&cfg, site.dir.path()).await;
    let (status, _, body) = fetch(proxy.addr, &site.ca, get_host("/", "example.com")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "example /"));
    let (status, _, _) = fetch(proxy.addr, &site.ca, get_host("/", "other.com")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(example.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_matching_route_is_404() {
    let site = Site::new();
    let api = named("api").await;
    let cfg = site.config(&route("/api", &api.url()));
    let proxy = ProxyHandle::start(&cfg, site.dir.path()).await;

    for path in ["/", "/apix", "/ap", "/index.html?api"] {
        let (status, headers, body) = fetch(proxy.addr, &site.ca, get(path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        assert!(!body.is_empty() && body.len() < 200, "{body:?}");
    }
    let (status, _, _) = fetch_h2(proxy.addr, &site.ca, get_h2("/nothing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(api.count(), 0, "a 404 must not reach any origin");
    // And the route itself works.
    let (status, _, body) = fetch(proxy.addr, &site.ca, get("/api/x")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "api /api/x"));
}

// ---------------------------------------------------------------- pooling

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_kept_alive_and_reused() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let proxy = proxy_to(&site, &origin).await;

    let mut send = h1(proxy.addr, &site.ca).await;
    for i in 0..20 {
        send.ready().await.unwrap();
        let resp = send.send_request(get(&format!("/r{i}"))).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(text(resp).await, format!("hello from /r{i}"));
    }
    assert_eq!(origin.count(), 20);
    let conns = origin.connections.load(Ordering::SeqCst);
    assert!(
        conns <= 2,
        "20 sequential requests used {conns} upstream connections"
    );

    // Over HTTP/2 as well, with new client connections each time: the
    // upstream pool belongs to the route, not to the client connection.
    let before = origin.connections.load(Ordering::SeqCst);
    for i in 0..10 {
        let (status, _, _) = fetch_h2(proxy.addr, &site.ca, get_h2(&format!("/s{i}"))).await;
        assert_eq!(status, 200);
    }
    let conns = origin.connections.load(Ordering::SeqCst) - before;
    assert!(
        conns <= 1,
        "10 sequential HTTP/2 requests opened {conns} more upstream connections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_reused_after_streamed_responses() {
    // Larger than the bodies the proxy reads whole: these stream through.
    const SIZE: usize = 300 * 1024;
    let site = Site::new();
    let origin =
        Origin::start(|_req: Request<Incoming>| async move { Response::new(full(vec![b'x'; SIZE])) }).await;
    let proxy = proxy_to(&site, &origin).await;

    let mut send = h1(proxy.addr, &site.ca).await;
    for i in 0..10 {
        send.ready().await.unwrap();
        let resp = send.send_request(get(&format!("/big{i}"))).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), SIZE);
    }
    let conns = origin.connections.load(Ordering::SeqCst);
    assert!(
        conns <= 2,
        "10 sequential streamed responses used {conns} upstream connections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connections_the_upstream_closed_while_idle_are_not_used() {
    // An origin that answers one request per connection with keep-alive,
    // then closes the connection while it sits idle in the proxy's pool
    // (an application server's idle timeout). It half-closes and reads on,
    // so that it sees when the proxy has closed its side too: only then is
    // the next request sent.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let released = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (counter, closed) = (accepted.clone(), released.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let closed = closed.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                let _ = stream.shutdown().await;
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
                closed.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    let site = Site::new();
    let cfg = site.config(&route("/", &format!("http://{addr}")));
    let proxy = ProxyHandle::start(&cfg, site.dir.path()).await;

    let mut send = h1(proxy.addr, &site.ca).await;
    for i in 0..4 {
        send.ready().await.unwrap();
        let resp = send.send_request(get(&format!("/r{i}"))).await.unwrap();
        assert_eq!(
            resp.status(),
            200,
            "request {i} met a connection the upstream had closed"
        );
        assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "ok");
        wait_until(
            HANG,
            "the proxy to close the connection the upstream closed",
            || released.load(Ordering::SeqCst) == i + 1,
        )
        .await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 4);
}

// ---------------------------------------------------------------- errors

/// A port on 127.0.0.1 where nothing listens.
async fn dead_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_502() {
    let site = Site::new();
    let port = dead_port().await;
    let cfg = site.config(&route("/", &format!("http://127.0.0.1:{port}")));
    let proxy = ProxyHandle::start(&cfg, site.dir.path()).await;

    let check = |proto: &str, status: StatusCode, headers: &HeaderMap, body: &str| {
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{proto}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain"),
            "{proto}"
        );
        assert!(!body.is_empty() && body.len() < 200, "{proto}: {body:?}");
        assert!(
            !body.contains(&port.to_string()) && !body.contains("127.0.0.1"),
            "{proto}: the 502 body leaks the upstream address: {body:?}"
        );
    };
    let (status, headers, body) = fetch(proxy.addr, &site.ca, get("/")).await;
    check("HTTP/1.1", status, &headers, &body);
    let (status, headers, body) = fetch_h2(proxy.addr, &site.ca, get_h2("/")).await;
    check("HTTP/2", status, &headers, &body);

    // The client connection survives a 502: the next request is answered.
    let mut send = h1(proxy.addr, &site.ca).await;
    for _ in 0..2 {
        send.ready().await.unwrap();
        let resp = send.send_request(get("/again")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
        text(resp).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_silent_before_headers_is_504() {
    let site = Site::new();
    let origin = Origin::start(|_req: Request<Incoming>| async move {
        std::future::pending::<()>().await;
        unreachable!()
    })
    .await;
    let cfg = site.config(&route_with("/", &origin.url(), "read_timeout = \"300ms\""));
    let proxy = ProxyHandle::start(&cfg, site.dir.path()).await;

    let (status, headers, body) = tokio::time::timeout(HANG, fetch(proxy.addr, &site.ca, get("/slow")))
        .await
        .expect("no answer: the read timeout did not fire");
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert!(!body.is_empty() && body.len() < 200, "{body:?}");
    assert!(!body.contains(&origin.addr.port().to_string()), "{body:?}");

    let (status, _, _) = tokio::time::timeout(HANG, fetch_h2(proxy.addr, &site.ca, get_h2("/slow")))
        .await
        .expect("no answer over HTTP/2: the read timeout did not fire");
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_stalling_mid_body_fails_the_client_read() {
    let site = Site::new();
    let origin = Origin::start(|req: Request<Incoming>| async move {
        let first = Bytes::from_static(b"the first part of the body; ");
        let chunks = stream::iter(vec![first]).chain(stream::pending());
        let mut resp = Response::new(stream_body(chunks));
        match req.uri().path() {
            // Declared lengths that are never reached.
            "/sized" => {
                resp.headers_mut()
                    .insert("content-length", "1000".parse().unwrap());
            }
            "/big-sized" => {
                resp.headers_mut()
                    .insert("content-length", "1000000".parse().unwrap());
            }
            _ => {}
        }
        resp
    })
    .await;
    let cfg = site.config(&route_with("/", &origin.url(), "read_timeout = \"300ms\""));
    let proxy = ProxyHandle::start(&cfg, site.dir.path()).await;

    // A small body of declared length is read whole before the head goes
    // out, so its stall is answered with a 504 before anything was sent.
    let resp = h1(proxy.addr, &site.ca)
        .await
        .send_request(get("/sized"))
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        504,
        "a stalled small body was not answered with 504"
    );
    let resp = h2(proxy.addr, &site.ca)
        .await
        .send_request(get_h2("/sized"))
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        504,
        "HTTP/2: a stalled small body was not answered with 504"
    );

    for path in ["/chunked", "/big-sized"] {
        // HTTP/1.1: the connection must be cut, not the body ended cleanly.
        let mut send = h1(proxy.addr, &site.ca).await;
        let resp = send.send_request(get(path)).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let result = tokio::time::timeout(HANG, resp.into_body().collect())
            .await
            .unwrap_or_else(|_| panic!("HTTP/1.1 {path}: the client's body read hangs"));
        assert!(
            result.is_err(),
            "HTTP/1.1 {path}: a truncated body looked complete to the client"
        );

        // HTTP/2: the stream must be reset.
        let mut send = h2(proxy.addr, &site.ca).await;
        let resp = send.send_request(get_h2(path)).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let result = tokio::time::timeout(HANG, resp.into_body().collect())
            .await
            .unwrap_or_else(|_| panic!("HTTP/2 {path}: the client's body read hangs"));
        assert!(
            result.is_err(),
            "HTTP/2 {path}: a truncated body looked complete to the client"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http1_request_without_host_is_400() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let proxy = proxy_to(&site, &origin).await;

    let (answer, _) = raw_exchange(proxy.addr, &site.ca, b"GET / HTTP/1.1\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer:?}");
    assert_eq!(origin.count(), 0, "a request without Host reached the origin");

    // With a Host, the same bytes are served.
    let (answer, _) = raw_exchange(proxy.addr, &site.ca, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_after_tls_is_refused_and_the_proxy_keeps_serving() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let proxy = proxy_to(&site, &origin).await;

    for garbage in [
        &b"\x00\x01garbage\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: localhost\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: localhost\r\nBad Header\r\n\r\n",
        &[0xffu8; 64][..],
    ] {
        let (answer, closed) = raw_exchange(proxy.addr, &site.ca, garbage).await;
        assert!(
            answer.starts_with("HTTP/1.1 400 ")
                || answer.starts_with("HTTP/1.1 505 ")
                || (answer.is_empty() && closed),
            "{garbage:?} -> {answer:?} (closed: {closed})"
        );
        let (status, _, body) = fetch(proxy.addr, &site.ca, get("/next")).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "hello from /next"));
    }
    assert!(!proxy.is_finished());
    assert_eq!(
        origin.count(),
        5,
        "only the well-formed requests reach the origin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_is_405() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let proxy = proxy_to(&site, &origin).await;

    let (answer, _) = raw_exchange(
        proxy.addr,
        &site.ca,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 405 "), "{answer:?}");

    // Through a real client too.
    let req = Request::connect("localhost:443").body(empty()).unwrap();
    let (status, _, body) = fetch(proxy.addr, &site.ca, req).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(!body.is_empty() && body.len() < 200, "{body:?}");

    assert_eq!(origin.count(), 0, "a CONNECT reached the origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_uploads_go_through() {
    let site = Site::new();
    let origin = Origin::start(|req: Request<Incoming>| async move {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        Response::new(full(format!("got {}", String::from_utf8_lossy(&body))))
    })
    .await;
    let proxy = proxy_to(&site, &origin).await;

    // As curl does for a large upload: the body waits for the interim answer.
    let mut raw = Raw::connect(proxy.addr, &site.ca).await;
    raw.send(b"POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await;
    let (head, closed) = raw.read_head().await;
    assert!(head.starts_with("HTTP/1.1 100 "), "{head:?} (closed: {closed})");
    raw.send(b"hello").await;
    let (head, closed) = raw.read_head().await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head:?} (closed: {closed})");
    assert_eq!(origin.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http10_request_without_host_reaches_the_origin_with_a_host() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let proxy = proxy_to(&site, &origin).await;

    // HTTP/1.0 does not require Host, and old health checkers omit it. The
    // proxy speaks HTTP/1.1 upstream, where Host is mandatory (RFC 9112
    // section 3.2): many servers (nginx, h11/uvicorn) answer 400 without it.
    let (head, _) = raw_exchange(proxy.addr, &site.ca, b"GET /old HTTP/1.0\r\n\r\n").await;
    assert!(
        head.starts_with("HTTP/1.0 200 ") || head.starts_with("HTTP/1.1 200 "),
        "{head:?}"
    );
    let seen = origin.last_seen();
    assert_eq!(seen.version, Version::HTTP_11);
    let hosts: Vec<_> = seen.headers.get_all("host").iter().collect();
    assert_eq!(
        hosts.len(),
        1,
        "an HTTP/1.1 request without exactly one Host reached the origin: {:?}",
        seen.headers
    );
    assert!(!hosts[0].is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absolute_form_target_routes_by_its_authority() {
    let site = Site::new();
    let example = named("example").await;
    let other = named("other").await;
    let cfg = site.config(&format!(
        "{}[[route]]\nhost = \"example.com\"\npath = \"/\"\nupstream = \"{}\"\n\n",
        route("/", &other.url()),
        example.url()
    ));
    let proxy = ProxyHandle::start(&cfg, site.dir.path()).await;

    // RFC 9112 section 3.2.2: the target's authority wins over Host.
    let mut raw = Raw::connect(proxy.addr, &site.ca).await;
    raw.send(b"GET https://example.com/abs?q=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    let (head, _) = raw.read_head().await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head:?}");
    let seen = example.last_seen();
    assert_eq!(seen.uri, "/abs?q=1", "the origin must get an origin-form target");
    assert_eq!(header(&seen, "host"), Some("example.com"));
    assert_eq!(seen.headers.get_all("host").iter().count(), 1);
    assert_eq!(other.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_responses_keep_their_length_and_the_connection_stays_in_step() {
    let site = Site::new();
    let origin = Origin::start(|req: Request<Incoming>| async move {
        let body = format!("hello from {}", req.uri());
        Response::builder()
            .header("content-length", body.len().to_string())
            .body(full(body))
            .unwrap()
    })
    .await;
    let proxy = proxy_to(&site, &origin).await;

    let mut send = h1(proxy.addr, &site.ca).await;
    let req = Request::head("/h")
        .header("host", "localhost")
        .body(empty())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-length"],
        "13",
        "HEAD keeps the GET length"
    );
    assert_eq!(text(resp).await, "");
    // The next answer on the same connection is the next request's, whole.
    send.ready().await.unwrap();
    let resp = send.send_request(get("/next")).await.unwrap();
    assert_eq!(text(resp).await, "hello from /next");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unasked_101_from_the_upstream_is_502() {
    let site = Site::new();
    let origin = Origin::start(|_req: Request<Incoming>| async move {
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(empty())
            .unwrap()
    })
    .await;
    let proxy = proxy_to(&site, &origin).await;

    let (status, _, body) = tokio::time::timeout(HANG, fetch(proxy.addr, &site.ca, get("/")))
        .await
        .expect("no answer to a request the upstream switched protocols on");
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(!body.is_empty() && body.len() < 200, "{body:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_or_malformed_host_is_400() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let proxy = proxy_to(&site, &origin).await;

    // RFC 9112 section 3.2: "A server MUST respond with a 400 (Bad Request)
    // status code to any HTTP/1.1 request message that lacks a Host header
    // field and to any that contains more than one Host header field line
    // or a Host header field with an invalid field value." With routes by
    // host, a proxy that picks one of two Hosts while a later hop picks the
    // other is how host-confusion attacks start.
    let cases: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: localhost\r\nHost: example.com\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: exa mple.com\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: localhost:notaport\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: user@localhost\r\n\r\n",
    ];
    let mut wrong = Vec::new();
    for request in cases {
        let (head, _) = raw_exchange(proxy.addr, &site.ca, request).await;
        if !head.starts_with("HTTP/1.1 400 ") {
            let status = head.lines().next().unwrap_or("").to_owned();
            wrong.push(format!("{:?} -> {status:?}", String::from_utf8_lossy(request)));
        }
    }
    assert!(wrong.is_empty(), "not refused with 400:\n{}", wrong.join("\n"));
    assert_eq!(origin.count(), 0, "a request with a bad Host reached the origin");
}
