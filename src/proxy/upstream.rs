//! Connections to upstreams: one pooled HTTP/1.1 keep-alive client per
//! route. Host names are resolved by the connector at every new connection,
//! never once at start, so a restarted container with a new address is
//! found on the next connection.

use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::RouteConfig;

pub type UpstreamClient = Client<HttpConnector, super::request_body::RequestBody>;

/// How long an unused pooled connection is kept. Shorter than the idle
/// timeouts of common application servers (Node's 5 s is the outlier, and
/// the client retries a request whose pooled connection turned out closed).
const POOL_IDLE: Duration = Duration::from_secs(50);

pub fn client(route: &RouteConfig) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_keepalive(Some(Duration::from_secs(60)));
    connector.set_connect_timeout(Some(route.connect_timeout));
    // Happy-eyeballs between address families, as a browser would do,
    // so a name with an unreachable AAAA record still connects quickly.
    connector.set_happy_eyeballs_timeout(Some(Duration::from_millis(300)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        // The Host header is the client's, set explicitly by the proxy.
        .set_host(false)
        .build(connector)
}

/// A short description of why an exchange failed before any response
/// arrived, for the log line that goes with the 502.
pub fn describe(err: &hyper_util::client::legacy::Error) -> &'static str {
    if err.is_connect() {
        "cannot connect to upstream"
    } else {
        "upstream failed before sending a response"
    }
}
