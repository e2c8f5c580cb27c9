//! Every answer the proxy gives a request in place of its upstream, as one
//! [`Refusal`], and what each one means, written once: the response (one of
//! [`respond`]'s, whose texts clients and tests read), the counter it moves
//! (`portcullis_upstream_errors_total`, `portcullis_requests_refused_total`)
//! and the log line it writes.
//!
//! The request path only names what went wrong (`Err(Refusal::...)`) and
//! [`Refusal::answer`] does the rest, so no refusal is counted but not
//! logged, or answered unlike the others of its kind. The two mappings
//! below, the meaning of each variant and its log line, name every variant
//! with no catch-all, so the compiler places a new one in both.

use std::time::Duration;

use http::Response;

use super::access::AccessRecord;
use super::action::Local;
use super::body::ProxyBody;
use super::headers::BadFraming;
use super::path::BadPath;
use super::routes::Route;
use super::upstream::h1::body::BodyReadError;
use super::{respond, upstream, ConnInfo, RouteState, Shared};
use crate::metrics::{Refused, UpstreamError};

/// Why a request is answered by the proxy rather than by its upstream.
#[derive(Debug)]
pub(crate) enum Refusal {
    // The request head, before a route is chosen.
    /// `CONNECT`: a reverse proxy has nothing to open a tunnel to.
    ConnectMethod,
    /// An authority-form or asterisk-form target: no path to route.
    NoPath,
    /// A Transfer-Encoding other than one plain `chunked`, or both
    /// Content-Length and Transfer-Encoding: the body, and so where the next
    /// request starts, could be read two ways.
    AmbiguousFraming,
    /// More than one Host, one that is not a `host[:port]`, or none on HTTP/1.1.
    BadHost,
    /// A path that climbs above the root or holds a broken `%` escape, as
    /// the client sent it.
    BadPath { bad: BadPath, path: String },
    /// No route for the host and path.
    NoRoute,

    // The route's own rules, once it is chosen.
    /// A route with `require_client_cert`, and no verified client certificate.
    ClientCertRequired,
    /// A WebSocket handshake on a route with `websocket = false`.
    WebSocketOff,
    /// `Upgrade: websocket` that is no valid handshake, and why.
    BadWebSocket(&'static str),
    /// The normalised path does not make a target again. It holds only bytes
    /// of the path it came from and decoded unreserved characters, so this
    /// is a refusal only so that it cannot be a panic.
    PathNotRebuilt,
    /// The route's own answer: its `redirect` or `respond`, the 405 of a
    /// method it does not take, the 301 to a prefix's trailing slash.
    Local(Local),

    // The request body.
    /// A declared length over `max_body`, refused before anything is read.
    TooLargeDeclared { max_body: u64, length: u64 },
    /// A body that grew past `max_body` while it was read ahead.
    TooLargeAhead { max_body: u64 },
    /// A body that grew past `max_body` while it streamed: the upstream
    /// request was cut there, before any response started.
    TooLargeSent { max_body: Option<u64> },
    /// A body whose framing broke while it was read ahead.
    MalformedBody(hyper::Error),
    /// A body that did not arrive within the route's `read_timeout`.
    BodyTimeout,
    /// The client broke its own body while it was forwarded: its fault, not
    /// the upstream's.
    ClientBodyFailed,
    /// A buffered body could not be written to its temporary file.
    SpillFailed(std::io::Error),

    // The upstream.
    /// No connection, or an exchange that failed before a response head.
    Upstream(upstream::Error),
    /// Every server of the route's pool is down.
    PoolDown { pool: std::sync::Arc<str> },
    /// No response head within `read_timeout` of the request being sent.
    NoHead { timeout: Duration },
    /// A 101 to a request that asked for no upgrade.
    SwitchUnasked,
    /// A 101 that does not accept the client's WebSocket handshake, and why.
    ForgedSwitch(&'static str),
    /// A 101 whose connection could not be taken over.
    NotUpgraded,
    /// A response head whose body could be delimited two ways.
    ResponseFraming(BadFraming),
    /// A small response body, read whole before the head goes out, that
    /// failed on the way.
    BodyFailed(BodyReadError),
    /// The same body, stalled for `read_timeout`.
    BodyStalled { timeout: Duration },
}

/// A refusal of a request head, with the route it was refused on once one
/// was chosen, which its log line names.
pub(crate) type HeadRefusal<'s> = (Refusal, Option<&'s Route<RouteState>>);

/// One of [`respond`]'s answers: status, headers and body text.
type Answer = fn(Option<Box<AccessRecord>>) -> Response<ProxyBody>;

/// What a refusal means besides its log line: the answer, the route's
/// upstream-error counter it moves (only the upstream's own failures count
/// there, never the client's), and the defence counter it moves (the
/// refusals that stop an attempt to reach what a route does not offer).
type Meaning = (Answer, Option<UpstreamError>, Option<Refused>);

impl Refusal {
    /// Counts the refusal, logs it and makes the response the client gets;
    /// `route` is the route it was met on, if one was chosen, and `log` the
    /// request's access record, which takes the response's status.
    pub(crate) fn answer(
        self,
        shared: &Shared,
        conn: &ConnInfo,
        route: Option<&Route<RouteState>>,
        log: Option<Box<AccessRecord>>,
    ) -> Response<ProxyBody> {
        let (answer, upstream_error, defence) = self.meaning();
        if let (Some(kind), Some(route)) = (upstream_error, route) {
            route.state.metrics.upstream_error(kind);
        }
        if let Some(reason) = defence {
            shared.metrics.defences.refused(reason);
        }
        self.log(conn, route);
        match self {
            // The route's own answer is what the operator wrote: no page.
            Refusal::Local(local) => local.response(log),
            _ => {
                let mut response = answer(log);
                let pages = route.map_or(&shared.error_pages, |r| &r.config.error_pages);
                crate::serve::error_pages::apply(&mut response, pages);
                response
            }
        }
    }

    /// Each refusal's answer and counters, one row each.
    fn meaning(&self) -> Meaning {
        use respond::{
            bad_gateway, bad_path, bad_request, bad_request_close, bad_websocket, client_cert_required,
            gateway_timeout, internal_error, method_not_allowed, not_found, payload_too_large, pool_down,
            request_timeout, websocket_off,
        };
        use UpstreamError::{Connect, Protocol, Timeout};
        // `bad_request_close` closes the connection: what follows a request
        // whose framing broke cannot be trusted to be a request.
        match self {
            Refusal::ConnectMethod => (method_not_allowed, None, None),
            Refusal::NoPath | Refusal::BadHost => (bad_request, None, None),
            Refusal::AmbiguousFraming => (bad_request_close, None, None),
            Refusal::BadPath {
                bad: BadPath::Climbs, ..
            } => (bad_path, None, Some(Refused::PathClimbs)),
            Refusal::BadPath {
                bad: BadPath::BadEscape,
                ..
            } => (bad_path, None, Some(Refused::PathEscape)),
            Refusal::NoRoute => (not_found, None, None),
            Refusal::ClientCertRequired => (client_cert_required, None, None),
            Refusal::WebSocketOff => (websocket_off, None, Some(Refused::WebSocketOff)),
            Refusal::BadWebSocket(_) => (bad_websocket, None, Some(Refused::BadWebSocket)),
            Refusal::PathNotRebuilt => (bad_path, None, None),
            // Answered by `Local::response`, never by this row.
            Refusal::Local(_) => (not_found, None, None),
            Refusal::TooLargeDeclared { .. }
            | Refusal::TooLargeAhead { .. }
            | Refusal::TooLargeSent { .. } => (payload_too_large, None, None),
            Refusal::MalformedBody(_) | Refusal::ClientBodyFailed => (bad_request_close, None, None),
            Refusal::BodyTimeout => (request_timeout, None, None),
            Refusal::SpillFailed(_) => (internal_error, None, None),
            Refusal::Upstream(err) if err.is_connect() => (bad_gateway, Some(Connect), None),
            Refusal::Upstream(_) => (bad_gateway, Some(Protocol), None),
            Refusal::PoolDown { .. } => (pool_down, Some(Connect), None),
            Refusal::NoHead { .. } => (gateway_timeout, Some(Timeout), None),
            Refusal::SwitchUnasked => (bad_gateway, Some(Protocol), None),
            Refusal::ForgedSwitch(_) => (bad_gateway, Some(Protocol), Some(Refused::ForgedSwitch)),
            Refusal::NotUpgraded => (bad_gateway, None, None),
            Refusal::ResponseFraming(_) => (bad_gateway, Some(Protocol), None),
            Refusal::BodyFailed(_) => (bad_gateway, Some(Protocol), None),
            Refusal::BodyStalled { .. } => (gateway_timeout, Some(Timeout), None),
        }
    }

    /// The log line: a client's mistake at debug (a missing client
    /// certificate at info), an upstream's failure as a warning that names
    /// the route and the upstream. The refusals of a head's framing, host or
    /// route, a body timeout and a 101 that could not be taken over log
    /// nothing.
    fn log(&self, conn: &ConnInfo, route: Option<&Route<RouteState>>) {
        // Every refusal that names the route or the upstream is met on a route.
        let (route_path, upstream) = match route {
            Some(route) => (route.config.path.as_str(), &*route.state.label),
            None => ("-", "-"),
        };
        match self {
            Refusal::ConnectMethod
            | Refusal::NoPath
            | Refusal::AmbiguousFraming
            | Refusal::BadHost
            | Refusal::NoRoute
            | Refusal::PathNotRebuilt
            | Refusal::Local(_)
            | Refusal::BodyTimeout
            | Refusal::NotUpgraded => {}
            Refusal::BadPath { bad, path } => {
                tracing::debug!(client = %conn.peer, path = path.as_str(), ?bad, "path refused");
            }
            Refusal::ClientCertRequired => {
                tracing::info!(route = %route_path, client = %conn.peer, "request without a verified client certificate on a route that requires one; answering 403");
            }
            Refusal::WebSocketOff => {
                tracing::debug!(route = %route_path, client = %conn.peer, "WebSocket handshake on a route with websocket = false; answering 400");
            }
            Refusal::BadWebSocket(why) => {
                tracing::debug!(route = %route_path, client = %conn.peer, why, "malformed WebSocket handshake; answering 400");
            }
            Refusal::TooLargeDeclared { max_body, length } => {
                tracing::debug!(route = %route_path, max_body, length, "request body larger than max_body; answering 413");
            }
            Refusal::TooLargeAhead { max_body } => {
                tracing::debug!(route = %route_path, max_body, "request body grew past max_body before forwarding; answering 413");
            }
            Refusal::TooLargeSent { max_body } => {
                tracing::debug!(route = %route_path, ?max_body, "request body grew past max_body; upstream request aborted, answering 413");
            }
            Refusal::MalformedBody(e) => {
                tracing::debug!(route = %route_path, error = %e, "malformed request body refused before forwarding");
            }
            Refusal::ClientBodyFailed => {
                tracing::debug!(route = %route_path, "request body failed while being forwarded");
            }
            Refusal::SpillFailed(e) => {
                tracing::error!(route = %route_path, error = %e, "cannot write a buffered request body to a temporary file (see [buffering] temp_dir); answering 500");
            }
            Refusal::Upstream(err) => {
                let cause = std::error::Error::source(err)
                    .map(error_chain)
                    .unwrap_or_default();
                tracing::warn!(route = %route_path, upstream = %upstream, error = %cause, "{}", upstream::describe(err));
            }
            Refusal::PoolDown { pool } => {
                tracing::error!(route = %route_path, pool = %pool, "every server of pool {pool} is down; answering 502");
            }
            Refusal::NoHead { timeout } => {
                tracing::warn!(route = %route_path, upstream = %upstream, ?timeout, "upstream sent no response headers in time");
            }
            Refusal::SwitchUnasked => {
                tracing::warn!(route = %route_path, upstream = %upstream, "upstream answered 101 to a request that asked for no upgrade");
            }
            Refusal::ForgedSwitch(why) => {
                tracing::warn!(route = %route_path, upstream = %upstream, why, "upstream's 101 does not accept the WebSocket handshake; answering 502");
            }
            Refusal::ResponseFraming(bad) => {
                tracing::warn!(route = %route_path, upstream = %upstream, "{}; answering 502", bad.describe());
            }
            Refusal::BodyFailed(err) => {
                tracing::warn!(route = %route_path, upstream = %upstream, error = %error_chain(err), "upstream failed in the middle of a response body");
            }
            Refusal::BodyStalled { timeout } => {
                tracing::warn!(route = %route_path, upstream = %upstream, ?timeout, "upstream stopped in the middle of a response body");
            }
        }
    }
}

/// The error and its causes on one line, for a log that names the real
/// reason ("connection refused") rather than only the outermost wrapper.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    /// The refusals that can be made without a live exchange, with what
    /// each must answer and count.
    #[test]
    fn each_refusal_answers_and_counts_as_it_always_has() {
        use UpstreamError::{Connect, Protocol, Timeout};
        let gone = || upstream::Error::Connect("connection refused".into());
        let cases: Vec<(Refusal, StatusCode, Option<UpstreamError>, Option<Refused>)> = vec![
            (Refusal::ConnectMethod, StatusCode::METHOD_NOT_ALLOWED, None, None),
            (Refusal::NoPath, StatusCode::BAD_REQUEST, None, None),
            (Refusal::AmbiguousFraming, StatusCode::BAD_REQUEST, None, None),
            (Refusal::BadHost, StatusCode::BAD_REQUEST, None, None),
            (
                Refusal::BadPath {
                    bad: BadPath::Climbs,
                    path: "/..".into(),
                },
                StatusCode::BAD_REQUEST,
                None,
                Some(Refused::PathClimbs),
            ),
            (
                Refusal::BadPath {
                    bad: BadPath::BadEscape,
                    path: "/%".into(),
                },
                StatusCode::BAD_REQUEST,
                None,
                Some(Refused::PathEscape),
            ),
            (Refusal::NoRoute, StatusCode::NOT_FOUND, None, None),
            (Refusal::ClientCertRequired, StatusCode::FORBIDDEN, None, None),
            (
                Refusal::WebSocketOff,
                StatusCode::BAD_REQUEST,
                None,
                Some(Refused::WebSocketOff),
            ),
            (
                Refusal::BadWebSocket("why"),
                StatusCode::BAD_REQUEST,
                None,
                Some(Refused::BadWebSocket),
            ),
            (Refusal::PathNotRebuilt, StatusCode::BAD_REQUEST, None, None),
            (
                Refusal::TooLargeDeclared {
                    max_body: 1,
                    length: 2,
                },
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                None,
            ),
            (
                Refusal::TooLargeAhead { max_body: 1 },
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                None,
            ),
            (
                Refusal::TooLargeSent { max_body: Some(1) },
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                None,
            ),
            (Refusal::BodyTimeout, StatusCode::REQUEST_TIMEOUT, None, None),
            (Refusal::ClientBodyFailed, StatusCode::BAD_REQUEST, None, None),
            (
                Refusal::SpillFailed(std::io::ErrorKind::StorageFull.into()),
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                None,
            ),
            (
                Refusal::Upstream(gone()),
                StatusCode::BAD_GATEWAY,
                Some(Connect),
                None,
            ),
            (
                Refusal::PoolDown { pool: "app".into() },
                StatusCode::BAD_GATEWAY,
                Some(Connect),
                None,
            ),
            (
                Refusal::NoHead {
                    timeout: Duration::ZERO,
                },
                StatusCode::GATEWAY_TIMEOUT,
                Some(Timeout),
                None,
            ),
            (
                Refusal::SwitchUnasked,
                StatusCode::BAD_GATEWAY,
                Some(Protocol),
                None,
            ),
            (
                Refusal::ForgedSwitch("why"),
                StatusCode::BAD_GATEWAY,
                Some(Protocol),
                Some(Refused::ForgedSwitch),
            ),
            (Refusal::NotUpgraded, StatusCode::BAD_GATEWAY, None, None),
            (
                Refusal::ResponseFraming(BadFraming::Both),
                StatusCode::BAD_GATEWAY,
                Some(Protocol),
                None,
            ),
            (
                Refusal::BodyFailed(BodyReadError::Truncated),
                StatusCode::BAD_GATEWAY,
                Some(Protocol),
                None,
            ),
            (
                Refusal::BodyStalled {
                    timeout: Duration::ZERO,
                },
                StatusCode::GATEWAY_TIMEOUT,
                Some(Timeout),
                None,
            ),
        ];
        for (refusal, status, upstream_error, defence) in cases {
            let (answer, counted, defended) = refusal.meaning();
            let response = answer(None);
            assert_eq!(response.status(), status, "{refusal:?}");
            let closes = response.headers().get(http::header::CONNECTION).is_some();
            let framing = matches!(refusal, Refusal::AmbiguousFraming | Refusal::ClientBodyFailed);
            assert_eq!(
                closes,
                framing || status == StatusCode::REQUEST_TIMEOUT,
                "{refusal:?}"
            );
            assert_eq!(
                counted.map(|k| k as usize),
                upstream_error.map(|k| k as usize),
                "{refusal:?}"
            );
            assert_eq!(
                defended.map(|r| r as usize),
                defence.map(|r| r as usize),
                "{refusal:?}"
            );
        }
    }
}
