//! The upstream leg: everything between a rewritten request and the
//! upstream's answer. Its parts, in the order a request meets them:
//!
//! - [`groups`]: the pools of servers built at start, one per URL route
//!   and one per `[[upstream]]`; [`group`]: the pick of a server
//!   ([`balance`]) and the retries; [`server`]: one server, its health
//!   (passive, and active from [`health`]) and its requests in flight;
//!   [`resolve`]: a name's addresses as servers, followed as they change;
//!   [`metrics`]: their series in `/metrics`.
//! - this file: the [`Client`], one pooled HTTP/1.1 keep-alive client per
//!   server, built at start. Host names are resolved by the connector at
//!   every new connection, never once at start, so a restarted container
//!   with a new address is found on the next connection.
//! - [`pool`]: the server's idle connections, newest first, at most
//!   `keepalive` of them for at most `keepalive_timeout`; one list per
//!   server, so there is no key to hash and no shared pool to look through.
//! - [`connect`]: new connections, from hyper-util's `HttpConnector` (plain
//!   routes) or [`TlsConnector`] on top of it (`https://` routes).
//! - [`tls`]: the rustls `ClientConfig` of each `https://` route, made at
//!   start, and [`insecure`], the verifier behind
//!   `upstream_insecure_skip_verify`.
//! - [`h1`]: the exchange itself, run in the request's task: request out,
//!   response head and body in, the upstream side of an upgrade.

pub(crate) mod balance;
pub mod connect;
pub(crate) mod group;
pub(crate) mod groups;
pub mod h1;
pub(crate) mod health;
pub mod insecure;
pub mod metrics;
pub mod pool;
pub(crate) mod resolve;
pub(crate) mod server;
pub mod tls;

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Duration;

use http::{Request, Response, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use prometheus_client::metrics::gauge::Gauge;
use tower_service::Service;

use crate::config::{ProxyProtocol, RouteConfig, Scheme, ServerAddress};
use crate::proxy::body::BoxError;
use crate::proxy::request_body::RequestBody;
use connect::TlsConnector;
use h1::body::UpstreamBody;
use h1::{Conn, ExchangeError};
pub(crate) use pool::Limits;
use pool::Pool;
use tls::RouteTls;

/// How a server opens connections: `http://` servers have no TLS layer.
#[derive(Debug)]
enum Connector {
    Plain(HttpConnector),
    Tls(TlsConnector),
    /// `unix:/path`, connected within the connect timeout.
    Unix(PathBuf, Duration),
}

/// The client of `route`'s upstream URL, built once at start; `tls` is its
/// TLS when the upstream is `https://`, and `idle_gauge` the route's count
/// of idle upstream connections.
pub fn client(route: &RouteConfig, tls: Option<&RouteTls>, idle_gauge: Gauge) -> Client {
    let limits = Limits {
        keepalive: route.keepalive,
        idle_timeout: route.keepalive_timeout,
    };
    let address = ServerAddress::Url(route.upstream.clone());
    server_client(
        &address,
        route.connect_timeout,
        limits,
        tls,
        idle_gauge,
        route.send_proxy_protocol,
    )
}

/// The client of one server at `address`; `tls` is used when it is
/// `https://`, and `proxy_protocol` starts each connection with a PROXY
/// header (`send_proxy_protocol`).
pub(crate) fn server_client(
    address: &ServerAddress,
    connect_timeout: Duration,
    mut limits: Limits,
    tls: Option<&RouteTls>,
    idle_gauge: Gauge,
    proxy_protocol: Option<ProxyProtocol>,
) -> Client {
    if proxy_protocol.is_some() {
        // A connection that began with one client's PROXY header is that
        // client's alone.
        limits.keepalive = 0;
    }
    let pool = Pool::new(limits, idle_gauge);
    let url = match address {
        ServerAddress::Unix(path) => {
            return Client {
                connector: Connector::Unix(path.clone(), connect_timeout),
                target: Uri::default(),
                pool,
                proxy_protocol,
            }
        }
        ServerAddress::Url(url) => url,
    };
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_keepalive(Some(Duration::from_secs(60)));
    connector.set_connect_timeout(Some(connect_timeout));
    // Happy-eyeballs between address families, as a browser would do,
    // so a name with an unreachable AAAA record still connects quickly.
    connector.set_happy_eyeballs_timeout(Some(Duration::from_millis(300)));
    // The configuration only holds upstreams that are valid URIs.
    let target: Uri = url.to_string().parse().unwrap_or_default();
    let connector = match tls {
        Some(tls) if url.scheme == Scheme::Https => {
            connector.enforce_http(false);
            Connector::Tls(TlsConnector::new(
                connector,
                tls.config.clone(),
                tls.server_name.clone(),
                connect_timeout,
            ))
        }
        _ => Connector::Plain(connector),
    };
    Client {
        connector,
        target,
        pool,
        proxy_protocol,
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
    Exchange(#[source] ExchangeError),
    /// No server of the pool can take a request: all are down (or busy at
    /// their `max_conns`).
    #[error("every server of pool {0} is down")]
    AllDown(std::sync::Arc<str>),
}

impl Error {
    pub fn is_connect(&self) -> bool {
        matches!(self, Error::Connect(_))
    }
}

/// Sends requests to one upstream over pooled HTTP/1.1 connections.
pub struct Client {
    connector: Connector,
    /// What the connector is asked for: `http://host:port`.
    target: Uri,
    pool: Pool,
    /// `send_proxy_protocol`.
    proxy_protocol: Option<ProxyProtocol>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("target", &self.target).finish()
    }
}

impl Client {
    /// Sends `req`, whose URI is in origin form and which carries its Host
    /// header, and waits for the response head. The body reads on from the
    /// same connection and gives it back to the pool at its end.
    ///
    /// A pooled connection is taken only if the upstream has not closed it
    /// meanwhile (its idle timeout racing this request); a request that was
    /// sent is never sent twice.
    pub async fn request(&self, req: Request<RequestBody>) -> Result<Response<UpstreamBody>, Error> {
        let (conn, _) = self.connection(&req).await?;
        self.send(conn, req).await
    }

    /// A connection for one exchange of `req`: a pooled one (`true`) or a
    /// new one. Nothing is sent yet, so a failure here may be tried
    /// elsewhere.
    pub(crate) async fn connection<B>(&self, req: &Request<B>) -> Result<(Conn, bool), Error> {
        match self.pool.checkout() {
            Some(conn) => Ok((conn, true)),
            // Boxed: a new connection is the rare case, and its handshake
            // state would otherwise make every request's future larger.
            None => {
                let preamble = super::proxy_out::preamble(self.proxy_protocol, req);
                Box::pin(self.connect(preamble)).await.map(|conn| (conn, false))
            }
        }
    }

    /// Sends `req` on `conn` and waits for the response head.
    pub(crate) async fn send(
        &self,
        conn: Conn,
        req: Request<RequestBody>,
    ) -> Result<Response<UpstreamBody>, Error> {
        let exchanged = h1::exchange(conn, req).await.map_err(Error::Exchange)?;
        Ok(exchanged.into_response(self.pool.home()))
    }

    /// A new connection; `preamble` (a PROXY header) is its first bytes.
    async fn connect(&self, preamble: Option<Vec<u8>>) -> Result<Conn, Error> {
        let target = self.target.clone();
        match &self.connector {
            Connector::Plain(connector) => {
                let mut tcp = open(connector.clone(), target).await?.into_inner();
                if let Some(preamble) = preamble {
                    tokio::io::AsyncWriteExt::write_all(&mut tcp, &preamble)
                        .await
                        .map_err(|e| Error::Connect(e.into()))?;
                }
                Ok(Conn::new(tcp))
            }
            Connector::Tls(connector) => {
                let connector = connector.clone().with_preamble(preamble);
                Ok(Conn::new(open(connector, target).await?.into_inner()))
            }
            Connector::Unix(path, limit) => {
                match tokio::time::timeout(*limit, tokio::net::UnixStream::connect(path)).await {
                    Ok(Ok(mut stream)) => {
                        if let Some(preamble) = preamble {
                            tokio::io::AsyncWriteExt::write_all(&mut stream, &preamble)
                                .await
                                .map_err(|e| Error::Connect(e.into()))?;
                        }
                        Ok(Conn::new(stream))
                    }
                    Ok(Err(e)) => Err(Error::Connect(e.into())),
                    Err(_) => Err(Error::Connect(
                        format!("connect timeout after {}", humantime::format_duration(*limit)).into(),
                    )),
                }
            }
        }
    }
}

/// A new connection from `connector`.
async fn open<C>(mut connector: C, target: Uri) -> Result<C::Response, Error>
where
    C: Service<Uri>,
    C::Error: Into<BoxError>,
{
    std::future::poll_fn(|cx| connector.poll_ready(cx))
        .await
        .map_err(|e| Error::Connect(e.into()))?;
    connector.call(target).await.map_err(|e| Error::Connect(e.into()))
}
