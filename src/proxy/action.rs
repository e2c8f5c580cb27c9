//! The answers a route gives by itself, instead of forwarding: its
//! `redirect` and `respond`, the 405 of a method it does not take, and the
//! 301 that adds a prefix route's trailing slash. Each is a [`Local`]
//! answer, which the request path hands on as a refusal to be counted,
//! logged and answered in one place.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use super::access::AccessRecord;
use super::body::ProxyBody;
use super::placeholder::Values;
use super::refusal::Refusal;
use super::routes::{strip_port, How};
use super::ConnInfo;
use crate::config::{RouteAction, RouteConfig, RouteShaping};

static TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

/// An answer made here: status, the one header that goes with it, body.
#[derive(Debug)]
pub(crate) struct Local {
    pub status: StatusCode,
    /// `Location` of a redirect, or `Allow` of a 405.
    header: Option<(header::HeaderName, HeaderValue)>,
    body: Bytes,
}

impl Local {
    pub(crate) fn response(self, log: Option<Box<AccessRecord>>) -> Response<ProxyBody> {
        let log = log.map(|mut l| {
            l.status = self.status.as_u16();
            l
        });
        let has_body = !self.body.is_empty();
        let mut response = Response::new(ProxyBody::local(self.body, log));
        *response.status_mut() = self.status;
        if has_body {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, TEXT_PLAIN.clone());
        }
        if let Some((name, value)) = self.header {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// What `route` answers by itself to `req`, matched `how` on the
/// normalised `path`, when it does not forward it: a method it does not
/// take, the bare prefix of a route ending in `/`, or its own action.
pub(crate) fn decide<B>(
    route: &RouteConfig,
    how: How,
    conn: &ConnInfo,
    req: &http::Request<B>,
    host: Option<&HeaderValue>,
    path: &str,
) -> Option<Result<Local, Refusal>> {
    let shaping = &route.shaping;
    if !shaping.takes_method(req.method()) {
        return Some(Ok(method_not_allowed(shaping)));
    }
    if how == How::AddSlash {
        return Some(add_slash(path, req.uri().query()));
    }
    if matches!(shaping.action, RouteAction::Proxy | RouteAction::Files) {
        return None;
    }
    let values = Values {
        conn,
        client: super::placeholder::client_addr(req.extensions(), conn),
        host: host.and_then(|h| h.to_str().ok()).map(strip_port),
        path,
        query: req.uri().query(),
        request_id: req.headers().get("x-request-id").and_then(|v| v.to_str().ok()),
    };
    answer(&shaping.action, &values)
}

/// The 301 from `path` to `path/`, the query kept (a static route's
/// directory asked without its slash too).
pub(crate) fn add_slash(path: &str, query: Option<&str>) -> Result<Local, Refusal> {
    let mut location = String::with_capacity(path.len() + 2 + query.map_or(0, str::len));
    location.push_str(path);
    location.push('/');
    if let Some(query) = query {
        location.push('?');
        location.push_str(query);
    }
    let location = HeaderValue::from_str(&location).map_err(|_| Refusal::PathNotRebuilt)?;
    Ok(Local {
        status: StatusCode::MOVED_PERMANENTLY,
        header: Some((header::LOCATION, location)),
        body: Bytes::new(),
    })
}

/// The 405 of a route with `methods`, listing them in `Allow`.
fn method_not_allowed(shaping: &RouteShaping) -> Local {
    let mut allow: Vec<&str> = shaping.methods.iter().map(http::Method::as_str).collect();
    if allow.contains(&"GET") && !allow.contains(&"HEAD") {
        allow.push("HEAD");
    }
    let allow = HeaderValue::from_str(&allow.join(", ")).ok();
    Local {
        status: StatusCode::METHOD_NOT_ALLOWED,
        header: allow.map(|v| (header::ALLOW, v)),
        body: Bytes::from_static(b"405 method not allowed\n"),
    }
}

/// The route's own answer, when it has one instead of an upstream.
fn answer(action: &RouteAction, values: &Values<'_>) -> Option<Result<Local, Refusal>> {
    match action {
        RouteAction::Proxy | RouteAction::Files => None,
        RouteAction::Redirect { to, status } => {
            let location = to.render(values);
            Some(match HeaderValue::from_str(&location) {
                Ok(location) => Ok(Local {
                    status: *status,
                    header: Some((header::LOCATION, location)),
                    body: Bytes::new(),
                }),
                Err(_) => Err(Refusal::PathNotRebuilt),
            })
        }
        RouteAction::Respond { status, body } => Some(Ok(Local {
            status: *status,
            header: None,
            body: Bytes::copy_from_slice(body.as_bytes()),
        })),
    }
}
