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
pub mod handover;
mod log_limit;
pub mod metrics;
pub mod proxy;
pub mod reload;
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
    stapling: Arc<tls::ocsp::Stapling>,
    self_signed: bool,
    bootstrapped: usize,
    reloader: Reloader,
    admin: Option<(std::net::TcpListener, Arc<admin::AdminState>)>,
    streams: stream::Streams,
    /// The configuration in service, for reloads to compare against.
    config: Arc<Config>,
    pools: proxy::upstream::metrics::Pools,
    reloads: (reload::Handle, tokio::sync::mpsc::UnboundedReceiver<reload::Ask>),
    reload_metrics: reload::ReloadMetrics,
    status: Arc<arc_swap::ArcSwap<reload::view::Status>>,
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
        let reload_metrics = reload::ReloadMetrics::register(metrics.registry_mut());
        let stapling = tls::ocsp::Stapling::new(config.tls.ocsp_stapling, metrics.registry_mut());
        let metrics = Arc::new(metrics);
        let reloads = reload::Handle::new();
        let config = Arc::new(config);
        // The bound addresses are known once the listeners are bound, below.
        let status = Arc::new(arc_swap::ArcSwap::from_pointee(reload::view::Status::new(
            config.clone(),
            1,
            Vec::new(),
        )));
        let admin = match &config.admin {
            Some(admin) => {
                let addr = admin.listen;
                let listener =
                    server::listener::bind("admin", addr).map_err(|source| Error::Bind { addr, source })?;
                let state = Arc::new(admin::AdminState {
                    metrics: metrics.clone(),
                    connections: connections.clone(),
                    reloads: reloader.handle().stats.clone(),
                    serving: std::sync::atomic::AtomicBool::new(false),
                    pools: pools.clone(),
                    reload: reloads.0.clone(),
                    status: status.clone(),
                });
                Some((listener, state))
            }
            None => None,
        };
        let upstream_tls = proxy::upstream::tls::load(&config.routes)?;
        let shared =
            Arc::new(Shared::new(&config, &upstream_tls, metrics, connections).map_err(Error::Route)?);
        pools.store(Arc::new(shared.groups.clone()));
        let listeners = reload::engine::addresses(&config)
            .into_iter()
            .map(|(addr, kind)| server::Bound::bind(addr, kind))
            .collect::<Result<Vec<_>, _>>()?;
        let mut server = Server::new(listeners, config.server.clone(), config.http.clone());
        let mut bound = server.local_addrs(Kind::Tls);
        bound.extend(server.local_addrs(Kind::Plain));
        status.store(Arc::new(reload::view::Status::new(config.clone(), 1, bound)));
        if let Some(known) = reload::engine::known_hosts(&config, &store) {
            server = server.with_known_hosts(known);
        }
        Ok(Proxy {
            server,
            acceptor: TlsAcceptor::from(server_config),
            shared,
            stapling,
            store,
            self_signed: initial.self_signed,
            bootstrapped: initial.bootstrapped.len(),
            reloader,
            admin,
            streams,
            config,
            pools,
            reloads,
            reload_metrics,
            status,
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

    /// Reads the certificate reload counters, and asks for a re-read of
    /// the certificates alone.
    pub fn reload_handle(&self) -> ReloadHandle {
        self.reloader.handle()
    }

    /// Asks for a reload of the whole configuration (what SIGHUP does).
    pub fn config_reloader(&self) -> reload::Handle {
        self.reloads.0.clone()
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
        let certs = self.reloader.handle();
        let reloader = tokio::spawn(self.reloader.run(stop_background.clone()));
        tokio::spawn(tls::ocsp::run(
            self.store.clone(),
            self.stapling.clone(),
            stop_background.clone(),
        ));
        // The admin listener stops with the others: after an upgrade its
        // socket is the new process's, and an old process that still
        // answered there would take its reloads and scrapes.
        let stop_admin = stop_background.child_token();
        self.shared.start_pool_tasks(&stop_background);
        let admin = self.admin.map(|(listener, state)| {
            // The TLS listeners were bound in `bind`; they accept from here on.
            state.serving.store(true, std::sync::atomic::Ordering::Relaxed);
            tokio::spawn(admin::serve(listener, state, stop_admin.clone()))
        });
        // The streams drain beside the HTTP listeners, with the same grace.
        let drain = tokio_util::sync::CancellationToken::new();
        let after_upgrade = Arc::new(std::sync::OnceLock::new());
        let streams = tokio::spawn(self.streams.run(drain.clone(), after_upgrade.clone()));
        let live = Arc::new(proxy::Live::new(self.shared));
        let running = self
            .server
            .start(self.acceptor, live.clone())
            .map_err(Error::Serve)?;
        let (handle, mut asks) = self.reloads;
        let _watch = match (&self.config.source, self.config.server.watch_config) {
            (Some(path), true) => reload::watch::start(path, handle.clone(), stop_background.clone()),
            _ => None,
        };
        let mut engine = reload::engine::Engine {
            config: self.config,
            live,
            running,
            store: self.store,
            stapling: self.stapling,
            certs,
            self_signed: self.self_signed,
            background: stop_background.clone(),
            pools: self.pools,
            status: self.status,
            metrics: self.reload_metrics,
        };
        crate::handover::sockets::close_unclaimed();
        if crate::handover::sockets::ready() {
            handover::notify::send(&format!("MAINPID={}\nREADY=1", std::process::id()));
        } else {
            handover::notify::send("READY=1");
        }
        let mut shutdown = std::pin::pin!(shutdown);
        let mut tunnel_grace = std::time::Duration::ZERO;
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(ask) = asks.recv() => {
                    let outcome = match ask.what {
                        reload::What::Reload => engine.reload(ask.why).await,
                        reload::What::Upgrade => engine.upgrade(ask.why).await,
                    };
                    let upgraded = matches!(outcome, reload::Outcome::Upgraded { .. });
                    if let Some(reply) = ask.reply {
                        let _ = reply.send(outcome);
                    }
                    if upgraded {
                        tunnel_grace = engine.config.server.upgrade_tunnel_grace;
                        let _ = after_upgrade.set(tunnel_grace);
                        break;
                    }
                }
            }
        }
        // No socket is kept for another process any more: once the
        // listeners close, a connection attempt here is refused. A reload
        // asked from now on is refused at once instead of waiting.
        crate::handover::sockets::forget_all();
        drop(asks);
        stop_admin.cancel();
        drain.cancel();
        engine.running.finish(tunnel_grace).await;
        let _ = streams.await;
        stop_background.cancel();
        let _ = reloader.await;
        if let Some(admin) = admin {
            let _ = admin.await;
        }
        Ok(())
    }
}
