//! Connections to upstreams: one pooled HTTP/1.1 keep-alive client per
//! route. Host names are resolved by the connector at every new connection,
//! never once at start, so a restarted container with a new address is
//! found on the next connection.

use std::borrow::Cow;
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::connect::{self, TlsConnector};
use super::request_body::RequestBody;
use super::upstream_tls::RouteTls;
use crate::config::RouteConfig;

/// A route's client: `http://` routes have no TLS layer at all.
#[derive(Debug)]
pub enum UpstreamClient {
    Plain(Client<HttpConnector, RequestBody>),
    Tls(Client<TlsConnector, RequestBody>),
}

impl UpstreamClient {
    pub fn request(&self, req: http::Request<RequestBody>) -> ResponseFuture {
        match self {
            UpstreamClient::Plain(client) => client.request(req),
            UpstreamClient::Tls(client) => client.request(req),
        }
    }
}

/// How long an unused pooled connection is kept. Shorter than the idle
/// timeouts of common application servers (Node's 5 s is the outlier, and
/// the client retries a request whose pooled connection turned out closed).
const POOL_IDLE: Duration = Duration::from_secs(50);

/// The client of `route`; `tls` is its TLS when the upstream is `https://`.
pub fn client(route: &RouteConfig, tls: Option<&RouteTls>) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_keepalive(Some(Duration::from_secs(60)));
    connector.set_connect_timeout(Some(route.connect_timeout));
    // Happy-eyeballs between address families, as a browser would do,
    // so a name with an unreachable AAAA record still connects quickly.
    connector.set_happy_eyeballs_timeout(Some(Duration::from_millis(300)));
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_idle_timeout(POOL_IDLE)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        // The Host header is the client's, set explicitly by the proxy.
        .set_host(false);
    match tls {
        None => UpstreamClient::Plain(builder.build(connector)),
        Some(tls) => {
            connector.enforce_http(false);
            let connector = TlsConnector::new(
                connector,
                tls.config.clone(),
                tls.server_name.clone(),
                route.connect_timeout,
            );
            UpstreamClient::Tls(builder.build(connector))
        }
    }
}

/// A short description of why an exchange failed before any response
/// arrived, for the log line that goes with the 502.
pub fn describe(err: &hyper_util::client::legacy::Error) -> Cow<'static, str> {
    if let Some(tls) = connect::describe_failure(err) {
        tls.into()
    } else if err.is_connect() {
        "cannot connect to upstream".into()
    } else {
        "upstream failed before sending a response".into()
    }
}
