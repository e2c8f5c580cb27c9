//! The request-head target: the bytes a client sends, served by hyper with
//! the client listeners' settings over an in-memory connection, each request
//! then going through the decisions the listeners take on it: the ACME
//! challenge check and the https redirect of the plain listener, then the
//! proxy's refusals, routing and head rewrite, and the request body as it
//! would be sent upstream. Nothing is sent anywhere; the rewritten request
//! is checked instead.

use std::any::Any;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::FutureExt as _;
use http::header::{self, HeaderMap, HeaderName};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio_util::task::TaskTracker;

use super::client::ScriptedClient;
use crate::config;
use crate::connections::ConnRegistry;
use crate::metrics::Metrics;
use crate::proxy::body::ProxyBody;
use crate::proxy::request_body::{BodyError, ReadAheadError, RequestBody};
use crate::proxy::routes::Route;
use crate::proxy::{self, headers, respond, ConnInfo, RouteState, Shared};
use crate::server::{acme, framing, plain};

/// A host-specific route, a prefix with a small `max_body`, and a segment
/// prefix; no catch-all, so that "no route" is reachable too.
const ROUTES: &str = r#"
[[route]]
host = "app.example"
path = "/"
upstream = "http://127.0.0.1:9"

[[route]]
path = "/api/"
upstream = "http://[::1]:9"
max_body = 16

[[route]]
path = "/ws"
upstream = "http://localhost:9"
"#;

/// A webroot that does not exist: challenge requests are decided without
/// serving a file.
const WEBROOT: &str = "/nonexistent/portcullis-fuzz-webroot";

const HTTPS_PORT: u16 = 8443;

/// Every input is complete and its sender has closed, so nothing may wait
/// for the client; a connection still open after this is stuck.
const STUCK: Duration = Duration::from_secs(10);

/// How many turns the server must stay idle, its input read and no request
/// in hand, before the client closes: enough for hyper to write an answer
/// and parse a request it already holds.
const QUIET_POLLS: u32 = 8;

/// The hop-by-hop headers that never reach an upstream (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [&str; 6] = [
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "proxy-connection",
    "upgrade",
];

/// What every input is served with, built once.
struct Fixture {
    shared: Shared,
    conn: ConnInfo,
    http: auto::Builder<TokioExecutor>,
    max_header_size: usize,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // The fixture is a constant: a failure is a broken harness, not a
        // finding about the input.
        let config = config::from_str(ROUTES, Path::new("fuzz-routes.toml"))
            .unwrap_or_else(|e| panic!("the fuzzing routes do not validate:\n{e}"));
        let shared = Shared::new(
            &config,
            &[],
            Arc::new(Metrics::new()),
            Arc::new(ConnRegistry::default()),
        )
        .unwrap_or_else(|e| panic!("the fuzzing routes are unusable: {e}"));
        let peer: SocketAddr = ([0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0207], 40000).into();
        let registration = Arc::new(ConnRegistry::default()).open(peer);
        Fixture {
            shared,
            conn: ConnInfo::new(registration.conn().clone(), true),
            http: crate::server::http_builder(&config.server),
            max_header_size: config.server.max_header_size,
        }
    })
}

/// Serves `bytes` as everything one client sends on one connection.
pub fn request_head(bytes: &[u8]) {
    // A fresh runtime per input, so that nothing one input left behind
    // changes how the next one runs.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("the fuzzing runtime does not start: {e}"));
    let requests = Arc::new(Requests::default());
    runtime.block_on(serve(fixture(), bytes, requests.clone()));
    let failure = match requests.failure.lock() {
        Ok(mut slot) => slot.take(),
        Err(poisoned) => poisoned.into_inner().take(),
    };
    if let Some(panic) = failure {
        std::panic::resume_unwind(panic);
    }
}

/// What the harness keeps about the requests of one connection.
#[derive(Default)]
struct Requests {
    /// The first panic of a request's checks.
    failure: Mutex<Option<Box<dyn Any + Send>>>,
    /// Requests reading their body, which wait for the client.
    reading_body: AtomicUsize,
}

/// Counts a request as reading its body while it lives.
struct ReadingBody<'a>(&'a AtomicUsize);

impl<'a> ReadingBody<'a> {
    fn start(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        ReadingBody(count)
    }
}

impl Drop for ReadingBody<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One connection: the client sends `bytes`, reads every answer, and
/// closes once the server has read everything and waits for nothing but
/// the client, as a client that pipelines its requests would. HTTP/2
/// requests run in tasks of their own, so the panics of their checks are
/// caught and kept in `requests`.
async fn serve(fixture: &'static Fixture, bytes: &[u8], requests: Arc<Requests>) {
    let in_flight = TaskTracker::new();
    let service = {
        let (in_flight, requests) = (in_flight.clone(), requests.clone());
        service_fn(move |req| {
            let requests = requests.clone();
            let checked = AssertUnwindSafe(handle(fixture, req, requests.clone())).catch_unwind();
            in_flight.track_future(async move {
                let response = checked.await.unwrap_or_else(|panic| {
                    if let Ok(mut slot) = requests.failure.lock() {
                        slot.get_or_insert(panic);
                    }
                    respond::bad_gateway(None)
                });
                Ok::<_, Infallible>(response)
            })
        })
    };
    let (client, closer) = ScriptedClient::new(bytes);
    // The HTTP/1.1 listeners' framing check, as they run it.
    let (client, service) = framing::check(client, fixture.max_header_size, service);
    let connection = fixture
        .http
        .serve_connection_with_upgrades(TokioIo::new(client), service);
    let close_when_quiet = async {
        let mut quiet = 0;
        while quiet < QUIET_POLLS {
            tokio::task::yield_now().await;
            let waiting_for_client = in_flight.len() == requests.reading_body.load(Ordering::Relaxed);
            quiet = if closer.read_all() && waiting_for_client {
                quiet + 1
            } else {
                0
            };
        }
        closer.close();
    };
    let everything = async {
        tokio::pin!(connection);
        tokio::select! {
            _ = connection.as_mut() => {}
            () = close_when_quiet => {
                let _ = connection.await;
            }
        }
        in_flight.close();
        in_flight.wait().await;
    };
    if tokio::time::timeout(STUCK, everything).await.is_err() {
        panic!("a connection whose client sent everything and closed is still open after {STUCK:?}");
    }
}

/// What the listeners decide for one request, checked as it goes.
async fn handle(
    fixture: &Fixture,
    mut req: Request<Incoming>,
    requests: Arc<Requests>,
) -> Response<ProxyBody> {
    if let Some(answer) = acme::challenge(Path::new(WEBROOT), &req).await {
        // Nothing to serve from a missing webroot: no file, and never a
        // fall-through to the redirect or an upstream.
        let status = answer.status();
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED,
            "challenge {} answered {status}",
            req.uri()
        );
    }
    check_redirect(&req, &plain::redirect(&req, HTTPS_PORT));

    let sent = req.headers().clone();
    match proxy::rewrite_head(&fixture.shared, &fixture.conn, &mut req) {
        Err((refusal, route)) => {
            let answer = refusal.answer(&fixture.shared, &fixture.conn, route, None);
            let status = answer.status();
            assert!(
                [
                    StatusCode::MOVED_PERMANENTLY,
                    StatusCode::BAD_REQUEST,
                    StatusCode::NOT_FOUND,
                    StatusCode::METHOD_NOT_ALLOWED
                ]
                .contains(&status),
                "a refusal answered {status}"
            );
            answer
        }
        Ok((route, upgrade)) => {
            check_forwarded(fixture, &sent, &req, route, upgrade.is_some());
            let _reading = ReadingBody::start(&requests.reading_body);
            send_body(route, req).await
        }
    }
}

/// A 308 points at https on the same host, for the same path; when the
/// request has no usable host, the answer is a 400.
fn check_redirect<B>(req: &Request<B>, answer: &Response<ProxyBody>) {
    if answer.status() == StatusCode::BAD_REQUEST {
        return;
    }
    assert_eq!(answer.status(), StatusCode::PERMANENT_REDIRECT);
    let location = answer
        .headers()
        .get(header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .unwrap_or_else(|| panic!("a 308 without a readable Location for {}", req.uri()));
    let target: Uri = location
        .parse()
        .unwrap_or_else(|e| panic!("Location {location:?} for {} is no URI: {e}", req.uri()));
    assert_eq!(target.scheme_str(), Some("https"), "{location}");
    assert_eq!(target.port_u16(), Some(HTTPS_PORT), "{location}");
    assert!(target.path().starts_with('/'), "{location}");
}

/// What the upstream would receive: one Host, no hop-by-hop header, one
/// framing at most, and the forwarding headers this hop wrote.
fn check_forwarded<B>(
    fixture: &Fixture,
    sent: &HeaderMap,
    req: &Request<B>,
    route: &Route<RouteState>,
    upgrade: bool,
) {
    let h = req.headers();
    assert_eq!(req.version(), Version::HTTP_11);
    // Origin form: the upstream connection is the route's, and the
    // authority travels in Host alone.
    assert_eq!(req.uri().scheme_str(), None, "{}", req.uri());
    assert_eq!(req.uri().authority(), None, "{}", req.uri());
    assert!(req.uri().path().starts_with('/'), "{}", req.uri());

    let hosts: Vec<_> = h.get_all(header::HOST).iter().collect();
    assert_eq!(hosts.len(), 1, "forwarded with Host {hosts:?}");
    assert!(
        headers::valid_host(hosts[0].as_bytes()),
        "forwarded Host {:?}",
        hosts[0]
    );
    if let Some(client_host) = h.get(&headers::X_FORWARDED_HOST) {
        // The upstream is told the host the route was chosen by.
        assert_eq!(client_host, hosts[0]);
        let host = client_host.to_str().unwrap_or_default();
        let found = fixture
            .shared
            .routes()
            .find(Some(host), fixture.conn.server_port, req.uri().path());
        assert!(
            found.is_some_and(|m| std::ptr::eq(&**m.route, route)),
            "Host {host} routes elsewhere"
        );
    }

    for name in HOP_BY_HOP {
        if upgrade && name == "upgrade" {
            continue;
        }
        assert!(!h.contains_key(name), "forwarded with {name}: {:?}", h.get(name));
    }
    let connection: Vec<_> = h.get_all(header::CONNECTION).iter().collect();
    if upgrade {
        assert_eq!(
            connection,
            ["upgrade"],
            "an upgrade forwarded with Connection {connection:?}"
        );
        assert!(h.contains_key(header::UPGRADE));
    } else {
        assert!(connection.is_empty(), "forwarded with Connection {connection:?}");
    }
    for name in named_by_connection(sent) {
        let written_here = name == header::HOST
            || name == headers::X_FORWARDED_FOR
            || name == headers::X_FORWARDED_PROTO
            || name == headers::X_FORWARDED_HOST
            || name == headers::X_REAL_IP
            || name == header::CONNECTION
            || (upgrade && name == header::UPGRADE);
        assert!(
            written_here || !h.contains_key(&name),
            "forwarded {name}, which Connection named"
        );
    }
    assert!(
        !(h.contains_key(header::CONTENT_LENGTH) && h.contains_key(header::TRANSFER_ENCODING)),
        "forwarded with both Content-Length and Transfer-Encoding"
    );

    assert_eq!(h.get_all(&headers::X_FORWARDED_FOR).iter().count(), 1);
    let peer_ip = fixture.conn.peer_ip.as_bytes();
    let forwarded_for = h
        .get(&headers::X_FORWARDED_FOR)
        .map_or(&b""[..], |v| v.as_bytes());
    assert!(
        forwarded_for.ends_with(peer_ip),
        "X-Forwarded-For {forwarded_for:?}"
    );
    assert_eq!(h.get(&headers::X_REAL_IP), Some(&fixture.conn.peer_ip));
    assert_eq!(h.get(&headers::X_FORWARDED_PROTO), Some(&fixture.conn.proto));

    // The upstream reads the path the route was chosen by: no dot-segment,
    // no repeated slash, and nothing a second normalisation would change.
    let path = req.uri().path();
    assert!(
        matches!(
            crate::proxy::path::normalize(path),
            Ok(std::borrow::Cow::Borrowed(_))
        ),
        "forwarded a path that is not normal: {path}"
    );
    // No name that a CGI-style stack could fold onto another.
    assert!(
        h.keys().all(|name| !name.as_str().contains('_')),
        "forwarded a header name with `_`: {h:?}"
    );
    // Nothing but a WebSocket is ever asked of the upstream.
    if let Some(token) = h.get(header::UPGRADE) {
        assert!(upgrade, "forwarded Upgrade {token:?} on an ordinary request");
        assert!(
            token.as_bytes().trim_ascii().eq_ignore_ascii_case(b"websocket"),
            "forwarded Upgrade {token:?}"
        );
    }
    assert!(!h.contains_key("http2-settings"), "forwarded HTTP2-Settings");
}

/// The header names the client's `Connection` lists.
fn named_by_connection(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect()
}

/// The request body as the upstream client would send it: refused when
/// its framing breaks within the read-ahead or it is too large, otherwise
/// read to its end. The upstream never gets more than `max_body`, nor a
/// length other than the Content-Length it is told.
async fn send_body(route: &Route<RouteState>, req: Request<Incoming>) -> Response<ProxyBody> {
    let rc = &route.config;
    let (parts, body) = req.into_parts();
    if rc.max_body.is_some_and(|max| body.size_hint().lower() > max) {
        return respond::payload_too_large(None);
    }
    let (mut body, tracking) = match RequestBody::prepare(body, rc.read_timeout, rc.max_body).await {
        Ok(prepared) => prepared,
        Err(ReadAheadError::Malformed(_)) => return respond::bad_request_close(None),
        Err(ReadAheadError::Timeout) => return respond::request_timeout(None),
        Err(ReadAheadError::TooLarge { .. }) => return respond::payload_too_large(None),
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut length = 0u64;
    let ended = loop {
        match body.frame().await {
            None => break Ok(()),
            Some(Ok(frame)) => length += frame.data_ref().map_or(0, |d| d.len() as u64),
            Some(Err(e)) => break Err(e),
        }
    };
    if let Some(max) = rc.max_body {
        assert!(length <= max, "{length} bytes passed a max_body of {max}");
    }
    match ended {
        Ok(()) => {
            if let Some(declared) = declared {
                assert_eq!(
                    length, declared,
                    "a body of another length than its Content-Length"
                );
            }
            if let Some(sent) = tracking.sent {
                assert!(sent.await.is_ok(), "a body sent in full did not say so");
            }
            respond::local(StatusCode::OK, "200 forwarded\n", None)
        }
        Err(BodyError::Client(_)) => {
            assert!(tracking.client_failed.load(Ordering::Relaxed));
            respond::bad_request_close(None)
        }
        Err(BodyError::TooLarge { .. }) => respond::payload_too_large(None),
        // No stall timer is set here.
        Err(BodyError::Stalled) => respond::local(StatusCode::REQUEST_TIMEOUT, "408 stalled\n", None),
        // Only a buffered body has a file, and none is buffered here.
        Err(BodyError::Spill(_)) => respond::internal_error(None),
    }
}
