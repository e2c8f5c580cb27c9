//! Streams (`[[stream]]`): listeners of their own kind, which move the
//! bytes of a TCP connection to an upstream without ever going through
//! HTTP. They share the certificate store and client authentication of
//! `tls/`, the live-connection registry, the metrics registry and the
//! shutdown drain with the HTTP listeners.
//!
//! Its parts:
//! - `accept`: the accept loop, under `max_connections` and the drain;
//! - `conn`: one connection, by mode (`none`, `terminate`, `passthrough`),
//!   from accept to the access line;
//! - `terminate`: the TLS acceptor of a stream and its handshake;
//! - `hello` and `client_hello`: reading a passthrough ClientHello within
//!   its bounds, and the server name it asks for;
//! - `sni`: a passthrough stream's routes by server name;
//! - `upstream` and `proxy_header`: the connection to the upstream, and
//!   the PROXY protocol header it is sent first;
//! - `join`: the two legs joined;
//! - `counted`: the legs' byte counts; `metrics` and `access`: what is
//!   seen of a stream;
//! - `protocol/`: adapters for protocols that speak before the TLS
//!   handshake (NATS).

mod accept;
mod access;
mod client_hello;
mod conn;
mod counted;
mod hello;
mod join;
mod metrics;
mod protocol;
pub(crate) mod proxy_header;
mod sni;
mod terminate;
mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, ConfigErrors, StreamConfig, StreamMode};
use crate::connections::ConnRegistry;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::tls::store::CertStore;
use metrics::StreamMetrics;
use sni::SniRoutes;

/// What every connection of one stream shares.
pub(crate) struct Stream {
    pub(crate) config: StreamConfig,
    /// The `stream` label and the access line's name.
    pub(crate) name: Arc<str>,
    /// `terminate`: the TLS acceptor.
    pub(crate) acceptor: Option<TlsAcceptor>,
    /// `passthrough`: the routes by server name.
    pub(crate) routes: Option<SniRoutes>,
    pub(crate) metrics: StreamMetrics,
    /// `max_connections`: a permit per open connection.
    pub(crate) limit: Arc<Semaphore>,
    pub(crate) connections: Arc<ConnRegistry>,
    /// `[log] access_log`.
    pub(crate) access_log: bool,
    /// Cancelled once the shutdown grace is over: what is still open closes.
    pub(crate) stop: CancellationToken,
}

/// The streams' listeners, bound, and what their connections share.
pub struct Streams {
    bound: Vec<(Arc<Stream>, Vec<std::net::TcpListener>)>,
    grace: Duration,
    stop: CancellationToken,
}

impl Streams {
    /// Builds every stream of `config` and binds its listeners.
    pub(crate) fn bind(
        config: &Config,
        store: &Arc<CertStore>,
        metrics: &mut Metrics,
        connections: &Arc<ConnRegistry>,
    ) -> Result<Streams, Error> {
        let stop = CancellationToken::new();
        let mut streams = Streams {
            bound: Vec::new(),
            grace: config.server.shutdown_grace,
            stop: stop.clone(),
        };
        if config.streams.is_empty() {
            return Ok(streams);
        }
        let families = metrics::Families::register(metrics.registry_mut());
        let verifiers = client_auth(config)?;
        for (stream, verifier) in config.streams.iter().zip(verifiers) {
            let (acceptor, routes) = match &stream.mode {
                StreamMode::Plain { .. } => (None, None),
                StreamMode::Terminate { alpn, .. } => {
                    let acceptor = terminate::acceptor(&config.tls, store.clone(), alpn, verifier)
                        .map_err(Error::Tls)?;
                    (Some(acceptor), None)
                }
                StreamMode::Passthrough { routes, default } => {
                    (None, Some(SniRoutes::new(routes, default.clone())))
                }
            };
            let listeners = stream
                .listen
                .iter()
                .map(|&addr| {
                    crate::server::listener::bind("stream", addr)
                        .map_err(|source| Error::Bind { addr, source })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let shared = Stream {
                name: Arc::from(stream.name.as_str()),
                acceptor,
                routes,
                metrics: families.stream(&stream.name),
                limit: Arc::new(Semaphore::new(stream.max_connections)),
                connections: connections.clone(),
                access_log: config.log.access_log,
                stop: stop.clone(),
                config: stream.clone(),
            };
            streams.bound.push((Arc::new(shared), listeners));
        }
        Ok(streams)
    }

    /// Each stream's name and bound addresses (useful with port 0), in
    /// configuration order.
    pub fn addrs(&self) -> Vec<(String, SocketAddr)> {
        self.bound
            .iter()
            .flat_map(|(stream, listeners)| {
                listeners
                    .iter()
                    .filter_map(|l| l.local_addr().ok())
                    .map(|addr| (stream.name.to_string(), addr))
            })
            .collect()
    }

    /// Accepts until `drain` is cancelled; then lets open streams run for
    /// the shutdown grace (or for `after_upgrade`, when set by then),
    /// closes what is left and returns.
    pub(crate) async fn run(
        self,
        drain: CancellationToken,
        after_upgrade: Arc<std::sync::OnceLock<Duration>>,
    ) {
        let open = TaskTracker::new();
        let accepting = TaskTracker::new();
        for (stream, listeners) in self.bound {
            for listener in listeners {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => {
                        accepting.spawn(accept::run(listener, stream.clone(), open.clone(), drain.clone()));
                    }
                    Err(e) => {
                        tracing::error!(stream = %stream.name, error = %e, "a stream listener cannot be used")
                    }
                }
            }
        }
        accepting.close();
        drain.cancelled().await;
        accepting.wait().await;
        open.close();
        let grace = after_upgrade.get().copied().unwrap_or(self.grace);
        if !open.is_empty() && tokio::time::timeout(grace, open.wait()).await.is_err() {
            tracing::warn!("grace period over; closing the streams still open");
        }
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), open.wait()).await;
    }
}

/// The client-certificate verifier of every stream (`None` without
/// `[stream.client_auth]`), each CA bundle read now; every problem is
/// reported at once, at the stream's own key.
pub fn client_auth(
    config: &Config,
) -> Result<Vec<Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>>, ConfigErrors> {
    let mut verifiers = Vec::new();
    let mut errors = Vec::new();
    for (index, stream) in config.streams.iter().enumerate() {
        let StreamMode::Terminate {
            client_auth: Some(auth),
            ..
        } = &stream.mode
        else {
            verifiers.push(None);
            continue;
        };
        match crate::tls::client_auth::verifier(auth) {
            Ok(verifier) => verifiers.push(Some(verifier)),
            Err(mut e) => {
                e.key = format!("stream[{index}].client_auth.ca");
                errors.push(e);
                verifiers.push(None);
            }
        }
    }
    if errors.is_empty() {
        Ok(verifiers)
    } else {
        Err(ConfigErrors(errors))
    }
}
