//! Header rules at request time: `[headers]` and a route's rules, compiled
//! at load, applied to the request on its way upstream (after the
//! forwarding headers, with `upstream_host` and `forwarded_for`) and to
//! every response on its way out, the proxy's own answers included.

use std::net::SocketAddr;

use http::{header, HeaderMap, HeaderValue, Request, Response};

use super::placeholder::{client_addr, Values};
use super::routes::strip_port;
use super::ConnInfo;
use crate::config::{ForwardedFor, HeaderRule, HeaderRules, RouteHeaders, RuleSet, UpstreamHost};

static X_REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// What the response rules' placeholders read of the request, kept from
/// before it was forwarded; taken only when some response rule names a
/// placeholder.
#[derive(Debug)]
pub(crate) struct RequestFacts {
    client: SocketAddr,
    host: Option<String>,
    path: String,
    query: Option<String>,
    request_id: Option<String>,
}

impl RequestFacts {
    pub(crate) fn capture<B>(req: &Request<B>, conn: &ConnInfo) -> Self {
        let host = req
            .uri()
            .authority()
            .map(|a| a.as_str())
            .or_else(|| req.headers().get(header::HOST).and_then(|h| h.to_str().ok()));
        let path = req.uri().path();
        RequestFacts {
            client: client_addr(req.extensions(), conn),
            host: host.map(|h| strip_port(h).to_string()),
            path: super::path::normalize(path).map_or_else(|_| path.to_string(), |p| p.into_owned()),
            query: req.uri().query().map(str::to_string),
            request_id: request_id(req.headers()).map(str::to_string),
        }
    }
}

fn request_id(headers: &HeaderMap) -> Option<&str> {
    headers.get(&X_REQUEST_ID).and_then(|v| v.to_str().ok())
}

/// The request rules of `[headers]`, then the route's, on a request head
/// whose forwarding headers are written (X-Forwarded-Host, which no rule
/// can change, says the host the client named); `upstream_authority` is
/// the Host `upstream_host = "upstream"` sends, and `path` and `query`
/// those of the request as routed.
pub fn apply_request(
    headers: &mut HeaderMap,
    defaults: &HeaderRules,
    route: &RouteHeaders,
    upstream_authority: &HeaderValue,
    (conn, client): (&ConnInfo, SocketAddr),
    (path, query): (&str, Option<&str>),
) {
    if route.forwarded_for == ForwardedFor::Replace {
        let client = client.ip().to_canonical().to_string();
        if let Ok(client) = HeaderValue::from_str(&client) {
            headers.insert(super::headers::X_FORWARDED_FOR.clone(), client);
        }
    }
    match &route.upstream_host {
        UpstreamHost::Client => {}
        UpstreamHost::Upstream => {
            headers.insert(header::HOST, upstream_authority.clone());
        }
        UpstreamHost::Literal(value) => {
            headers.insert(header::HOST, value.clone());
        }
    }
    if defaults.request.is_empty() && route.rules.request.is_empty() {
        return;
    }
    let request_id = request_id(headers).map(str::to_string);
    let host = headers
        .get(&super::headers::X_FORWARDED_HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| strip_port(h).to_string());
    let values = Values {
        conn,
        client,
        host: host.as_deref(),
        path,
        query,
        request_id: request_id.as_deref(),
    };
    apply(headers, &defaults.request, &values);
    apply(headers, &route.rules.request, &values);
}

/// The response rules of `[headers]` (unless the route does not inherit
/// them) and of the route that answered, if any, each where its `when`
/// says, on any response.
pub(crate) fn apply_response<B>(
    response: &mut Response<B>,
    defaults: &HeaderRules,
    route: Option<&RouteHeaders>,
    conn: &ConnInfo,
    facts: Option<&RequestFacts>,
) {
    let status = response.status().as_u16();
    let inherit = route.is_none_or(|r| r.response_inherit);
    let global = inherit && !defaults.response.is_empty() && defaults.response_when.applies(status);
    let own = route.filter(|r| !r.rules.response.is_empty() && r.rules.response_when.applies(status));
    if !global && own.is_none() {
        return;
    }
    let facts = facts.map_or_else(
        || {
            (
                SocketAddr::new(conn.client.ip, conn.client.port),
                None,
                "",
                None,
                None,
            )
        },
        |f| {
            (
                f.client,
                f.host.as_deref(),
                f.path.as_str(),
                f.query.as_deref(),
                f.request_id.as_deref(),
            )
        },
    );
    let values = Values {
        conn,
        client: facts.0,
        host: facts.1,
        path: facts.2,
        query: facts.3,
        request_id: facts.4,
    };
    if global {
        apply(response.headers_mut(), &defaults.response, &values);
    }
    if let Some(route) = own {
        apply(response.headers_mut(), &route.rules.response, &values);
    }
}

/// Whether some response rule names a placeholder, so that the request's
/// facts must be kept for it.
pub(crate) fn responses_need_request<'a>(
    defaults: &HeaderRules,
    routes: impl IntoIterator<Item = &'a RouteHeaders>,
) -> bool {
    defaults.response.needs_request() || routes.into_iter().any(|r| r.rules.response.needs_request())
}

/// `remove`, then `set`, then `add`. A value that comes out empty (a
/// client certificate's subject without one, say) sets no header and
/// removes the one there was, as nginx's `proxy_set_header` does.
fn apply(headers: &mut HeaderMap, rules: &RuleSet, values: &Values<'_>) {
    for name in &rules.remove {
        headers.remove(name);
    }
    for rule in &rules.set {
        match render(rule, values) {
            Some(value) if !value.is_empty() => {
                headers.insert(rule.name.clone(), value);
            }
            _ => {
                headers.remove(&rule.name);
            }
        }
    }
    for rule in &rules.add {
        if let Some(value) = render(rule, values).filter(|v| !v.is_empty()) {
            headers.append(rule.name.clone(), value);
        }
    }
}

/// The rule's value; `None` only if a request value made it no header
/// value, which the checks of hosts and paths rule out.
fn render(rule: &HeaderRule, values: &Values<'_>) -> Option<HeaderValue> {
    match &rule.literal {
        Some(value) => Some(value.clone()),
        None => HeaderValue::from_str(&rule.value.render(values)).ok(),
    }
}
