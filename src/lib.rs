//! portcullis: a TLS-terminating reverse proxy.
//!
//! `Proxy::bind` takes a validated [`config::Config`], loads the
//! certificates and binds the listeners; `Proxy::run` serves until the
//! shutdown future completes, then drains. The binary is a thin shell
//! around these two calls; tests drive them directly.

pub mod admin;
pub mod config;
pub mod connections;
pub mod error;
mod failure;
#[doc(hidden)]
pub mod fuzzing;
pub mod gencert;
mod log_limit;
pub mod metrics;
pub mod proxy;
mod serve;
pub mod server;
pub mod side;
pub mod stream;
pub mod telemetry;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

pub use config::Config;
pub use error::Error;

use proxy::Shared;
use server::{Kind, Server};
use tls::reload::{ReloadHandle, Reloader};
use tls::store::CertStore;

/// A proxy whose listeners are bound and whose certificates are loaded.
pub struct Proxy {
    server: Server,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    store: Arc<CertStore>,
    self_signed: bool,
    bootstrapped: usize,
    reloader: Reloader,
    admin: Option<(std::net::TcpListener, Arc<admin::AdminState>)>,
    streams: stream::Streams,
}

impl Proxy {
    /// Loads the certificates and binds every listener. Fails with every
    /// configuration problem found, or the first address that cannot be bound.
    pub fn bind(config: Config) -> Result<Proxy, Error> {
        let (initial, client_auth) = tls::client_auth::load_all(&config.tls)?;
        let store = Arc::new(CertStore::new(initial.certs));
        let reloader = Reloader::new(
            initial.slots,
            store.clone(),
            config.tls.watch,
            config.tls.poll_interval,
        );
        let server_config =
            tls::server_config(&config.tls, store.clone(), client_auth).map_err(Error::Tls)?;
        let connections = Arc::new(connections::ConnRegistry::default());
        let mut metrics = metrics::Metrics::new();
        metrics.register_sources(
            connections.clone(),
            store.clone(),
            reloader.handle().stats.clone(),
        );
        let streams = stream::Streams::bind(&config, &store, &mut metrics, &connections)?;
        let pools = proxy::upstream::metrics::Pools::default();
        metrics
            .registry_mut()
            .register_collector(Box::new(proxy::upstream::metrics::PoolCollector(pools.clone())));
        let metrics = Arc::new(metrics);
        let admin = match &config.admin {
            Some(admin) => {
                let addr = admin.listen;
                let listener = server::listener::bind(addr).map_err(|source| Error::Bind { addr, source })?;
                let state = Arc::new(admin::AdminState {
                    metrics: metrics.clone(),
                    connections: connections.clone(),
                    reloads: reloader.handle().stats.clone(),
                    serving: std::sync::atomic::AtomicBool::new(false),
                    pools: pools.clone(),
                });
                Some((listener, state))
            }
            None => None,
        };
        let upstream_tls = proxy::upstream::tls::load(&config.routes)?;
        let shared =
            Arc::new(Shared::new(&config, &upstream_tls, metrics, connections).map_err(Error::Route)?);
        let _ = pools.set(shared.groups.clone());
        let plain_addrs = config
            .http
            .iter()
            .flat_map(|h| h.listen.iter().map(|&a| (a, Kind::Plain)));
        let listeners = config
            .server
            .listen
            .iter()
            .map(|&a| (a, Kind::Tls))
            .chain(plain_addrs)
            .map(|(addr, kind)| {
                server::listener::bind(addr)
                    .map(|l| (l, kind))
                    .map_err(|source| Error::Bind { addr, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Proxy {
            server: {
                let server = Server::new(listeners, config.server.clone(), config.http.clone());
                match &config.http {
                    Some(http) if http.unknown_host == config::UnknownHost::Close => server.with_known_hosts(
                        server::unknown_host::KnownHosts::new(&config.routes, store.clone()),
                    ),
                    _ => server,
                }
            },
            acceptor: TlsAcceptor::from(server_config),
            shared,
            store,
            self_signed: initial.self_signed,
            bootstrapped: initial.bootstrapped.len(),
            reloader,
            admin,
            streams,
        })
    }

    /// The TLS addresses actually bound (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.server.local_addrs(Kind::Tls)
    }

    /// The plain-HTTP (`[http]`) addresses actually bound.
    pub fn plain_addrs(&self) -> Vec<SocketAddr> {
        self.server.local_addrs(Kind::Plain)
    }

    /// Each stream's name and bound addresses, in configuration order.
    pub fn stream_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.streams.addrs()
    }

    /// True when serving a temporary self-signed certificate because none
    /// was configured.
    pub fn is_self_signed(&self) -> bool {
        self.self_signed
    }

    /// The admin listener's bound address, when `[admin]` is configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// How many configured certificates are served by a temporary
    /// bootstrap certificate until their files appear.
    pub fn bootstrapped(&self) -> usize {
        self.bootstrapped
    }

    /// Asks for a certificate reload (what SIGHUP does) and reads reload counters.
    pub fn reload_handle(&self) -> ReloadHandle {
        self.reloader.handle()
    }

    /// The certificates in service.
    pub fn cert_store(&self) -> &Arc<CertStore> {
        &self.store
    }

    /// The routes in match order, for the start-up summary.
    pub fn routes(&self) -> Vec<(String, String)> {
        self.shared
            .routes()
            .iter()
            .map(|r| {
                let host = r.config.host.as_deref().unwrap_or("");
                (format!("{host}{}", r.config.path), r.config.upstream_text())
            })
            .collect()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets
    /// requests in flight finish within the grace period, closes tunnels
    /// and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let stop_background = tokio_util::sync::CancellationToken::new();
        let reloader = tokio::spawn(self.reloader.run(stop_background.clone()));
        self.shared.start_pool_tasks(&stop_background);
        let admin = self.admin.map(|(listener, state)| {
            // The TLS listeners were bound in `bind`; they accept from here on.
            state.serving.store(true, std::sync::atomic::Ordering::Relaxed);
            tokio::spawn(admin::serve(listener, state, stop_background.clone()))
        });
        // The streams drain beside the HTTP listeners, with the same grace.
        let drain = tokio_util::sync::CancellationToken::new();
        let streams = tokio::spawn(self.streams.run(drain.clone()));
        let shutdown = async {
            shutdown.await;
            drain.cancel();
        };
        let result = self.server.run(self.acceptor, self.shared, shutdown).await;
        drain.cancel();
        let _ = streams.await;
        stop_background.cancel();
        let _ = reloader.await;
        if let Some(admin) = admin {
            let _ = admin.await;
        }
        result.map_err(Error::Serve)
    }
}
