//! Short answers made by the proxy itself: 400, 403, 404, 405, 413, 502, 504. Plain text,
//! one line, no detail that would help an attacker map the network.

use http::{header, HeaderValue, Response, StatusCode};

use super::access::AccessRecord;
use super::body::ProxyBody;

static TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

pub fn local(status: StatusCode, text: &'static str, log: Option<Box<AccessRecord>>) -> Response<ProxyBody> {
    let log = log.map(|mut l| {
        l.status = status.as_u16();
        l
    });
    let mut response = Response::new(ProxyBody::local(text, log));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, TEXT_PLAIN.clone());
    response
}

pub fn bad_request(log: Option<Box<AccessRecord>>) -> Response<ProxyBody> {
    local(StatusCode::BAD_REQUEST, "400 bad request\n", log)
}

/// A 400 after which the connection is closed: what follows a request
/// whose framing is broken cannot be trusted to be a request.
pub fn bad_request_close(log: Option<Box<AccessRecord>>) -> Response<ProxyBody> {
    let mut response = bad_request(log);
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

pub fn request_timeout(log: Option<Box<AccessRecord>>) -> Response<ProxyBody> {
    let mut response = local(
        StatusCode::REQUEST_TIMEOUT,
        "408 the request body did not arrive in time\n",
        log,
    );
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A route with `require_client_cert`, and no verified client certificate.
pub fn client_cert_required(log: Option<Box<AccessRecord>>) -> Response<ProxyBody> {
    local(
        StatusCode::FORBIDDEN,
        "403 a client certificate is required for this path\n",
        log,
    )
}

pub fn not_found(log: Option<Box<AccessRecord>>) -> Response<ProxyBody> {
    local(StatusCode::NOT_FOUND, "404 no route for this path\n", log)
}

pub fn bad_gateway(log: Option<Box<AccessRecord>>) -> Response<ProxyBody> {
    local(
        StatusCode::BAD_GATEWAY,
        "502 bad gateway: the upstream is unreachable or failed\n",
        log,
    )
}

/// Every server of the route's pool is down; the pool's name stays in the
/// log line, since it says nothing a client should know.
pub fn pool_down(log: Option<Box<AccessRecord>>) -> Response<ProxyBody> {
    local(
        StatusCode::BAD_GATEWAY,
        "502 bad gateway: every server of the upstream pool is down\n",
        log,
    )
}

pub fn gateway_timeout(log: Option<Box<AccessRecord>>) -> Response<ProxyBody> {
    local(
        StatusCode::GATEWAY_TIMEOUT,
        "504 gateway timeout: the upstream did not answer in time\n",
        log,
    )
}

pub fn method_not_allowed(log: Option<Box<AccessRecord>>) -> Response<ProxyBody> {
    local(
        StatusCode::METHOD_NOT_ALLOWED,
        "405 CONNECT is not supported: this is a reverse proxy\n",
        log,
    )
}

pub fn payload_too_large(log: Option<Box<AccessRecord>>) -> Response<ProxyBody> {
    local(StatusCode::PAYLOAD_TOO_LARGE, "413 request body too large\n", log)
}

/// The proxy itself failed (a buffered body could not be stored).
pub fn internal_error(log: Option<Box<AccessRecord>>) -> Response<ProxyBody> {
    local(
        StatusCode::INTERNAL_SERVER_ERROR,
        "500 internal server error\n",
        log,
    )
}

/// A path that climbs above the root, or holds a broken `%` escape.
pub fn bad_path(log: Option<Box<AccessRecord>>) -> Response<ProxyBody> {
    local(
        StatusCode::BAD_REQUEST,
        "400 bad request: the path climbs above the root or holds a broken % escape\n",
        log,
    )
}

/// `Upgrade: websocket` that is not a valid handshake. The version the
/// proxy forwards is named, as RFC 6455 section 4.4 asks.
pub fn bad_websocket(log: Option<Box<AccessRecord>>) -> Response<ProxyBody> {
    let mut response = local(
        StatusCode::BAD_REQUEST,
        "400 bad request: not a valid WebSocket handshake\n",
        log,
    );
    response
        .headers_mut()
        .insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
    response
}

/// A WebSocket handshake on a route with `websocket = false`.
pub fn websocket_off(log: Option<Box<AccessRecord>>) -> Response<ProxyBody> {
    local(
        StatusCode::BAD_REQUEST,
        "400 bad request: this path does not accept WebSocket connections\n",
        log,
    )
}
