//! Connections to upstreams: one pooled HTTP/1.1 keep-alive client per
//! route. Host names are resolved by the connector at every new connection,
//! never once at start, so a restarted container with a new address is
//! found on the next connection.
//!
//! The client is hyper's HTTP/1.1 connection API over a [`Pool`] of its own:
//! a route has exactly one upstream, so there is no key to hash and no
//! shared pool to look through, and a connection goes back to the pool when
//! the proxy has read its response, with no task spawned to watch it. The
//! connector is any `tower_service::Service<Uri>` that yields a hyper stream
//! (hyper-util's `HttpConnector` here), so a TLS connector fits in as well.

use std::borrow::Cow;
use std::time::Duration;

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

use super::body::BoxError;
use super::connect::{self, TlsConnector};
use super::pool::{Lease, Pool, Sender};
use super::request_body::RequestBody;
use super::upstream_tls::RouteTls;
use crate::config::RouteConfig;

/// A route's client: `http://` routes have no TLS layer at all.
#[derive(Debug)]
pub enum UpstreamClient {
    Plain(Client<HttpConnector>),
    Tls(Client<TlsConnector>),
}

impl UpstreamClient {
    /// See [`Client::request`].
    pub async fn request(&self, req: Request<RequestBody>) -> Result<(Response<Incoming>, Lease), Error> {
        match self {
            UpstreamClient::Plain(client) => client.request(req).await,
            UpstreamClient::Tls(client) => client.request(req).await,
        }
    }
}

/// How long an unused pooled connection is kept. Shorter than the idle
/// timeouts of common application servers (Node's 5 s is the outlier, and
/// a request that meets a pooled connection the upstream just closed is
/// sent again on another one).
const POOL_IDLE: Duration = Duration::from_secs(50);

/// The client of `route`, built once at start; `tls` is its TLS when the
/// upstream is `https://`.
pub fn client(route: &RouteConfig, tls: Option<&RouteTls>) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_keepalive(Some(Duration::from_secs(60)));
    connector.set_connect_timeout(Some(route.connect_timeout));
    // Happy-eyeballs between address families, as a browser would do,
    // so a name with an unreachable AAAA record still connects quickly.
    connector.set_happy_eyeballs_timeout(Some(Duration::from_millis(300)));
    // The configuration only holds upstreams that are valid URIs.
    let target: Uri = route.upstream.to_string().parse().unwrap_or_default();
    match tls {
        None => UpstreamClient::Plain(Client::new(connector, target)),
        Some(tls) => {
            connector.enforce_http(false);
            let connector = TlsConnector::new(
                connector,
                tls.config.clone(),
                tls.server_name.clone(),
                route.connect_timeout,
            );
            UpstreamClient::Tls(Client::new(connector, target))
        }
    }
}

/// A short description of why an exchange failed before any response
/// arrived, for the log line that goes with the 502: a failed TLS
/// handshake says why.
pub fn describe(err: &Error) -> Cow<'static, str> {
    match connect::describe_failure(err) {
        Some(tls) => tls.into(),
        None => err.to_string().into(),
    }
}

/// Why an exchange failed before any response arrived.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to upstream")]
    Connect(#[source] BoxError),
    #[error("upstream failed before sending a response")]
    Exchange(#[source] hyper::Error),
}

impl Error {
    pub fn is_connect(&self) -> bool {
        matches!(self, Error::Connect(_))
    }
}

/// Sends requests to one upstream over pooled HTTP/1.1 connections.
pub struct Client<C> {
    connector: C,
    /// What the connector is asked for: `http://host:port`.
    target: Uri,
    pool: Pool,
}

impl<C> std::fmt::Debug for Client<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("target", &self.target).finish()
    }
}

impl<C> Client<C>
where
    C: Service<Uri> + Clone + Send + Sync + 'static,
    C::Response: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    C::Error: Into<BoxError>,
    C::Future: Send,
{
    pub fn new(connector: C, target: Uri) -> Self {
        Client {
            connector,
            target,
            pool: Pool::new(POOL_IDLE),
        }
    }

    /// Sends `req`, whose URI is in origin form and which carries its Host
    /// header, and waits for the response head. The [`Lease`] gives the
    /// connection back once the response has been read to its end.
    ///
    /// A request that a pooled connection did not take because it closed
    /// meanwhile (the upstream's idle timeout racing this request) is sent
    /// on the next one, or on a new connection; a request that was sent is
    /// never sent twice.
    pub async fn request(&self, req: Request<RequestBody>) -> Result<(Response<Incoming>, Lease), Error> {
        let mut req = req;
        while let Some(mut sender) = self.pool.checkout() {
            match sender.try_send_request(req).await {
                Ok(response) => return Ok((response, self.pool.lease(sender))),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(Error::Exchange(e.into_error())),
                },
            }
        }
        // Boxed: a new connection is the rare case, and its handshake state
        // would otherwise make every request's future larger.
        let mut sender = Box::pin(self.connect()).await?;
        let response = sender.send_request(req).await.map_err(Error::Exchange)?;
        Ok((response, self.pool.lease(sender)))
    }

    /// A new connection, its task spawned.
    async fn connect(&self) -> Result<Sender, Error> {
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(|e| Error::Connect(e.into()))?;
        let io = connector
            .call(self.target.clone())
            .await
            .map_err(|e| Error::Connect(e.into()))?;
        let (sender, conn) = http1::handshake(io).await.map_err(Error::Exchange)?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}
