//! One reload, from the file to the state in service.
//!
//! Everything that can fail happens before anything changes: the file is
//! read and checked, its certificates and keys loaded and matched, the
//! upstream TLS files read, the routing state and pools built, and new
//! addresses bound. Only then is it committed, in an order that never
//! leaves a request without what it needs: certificates first (a new
//! host's certificate is served before a route sends anyone there), then
//! the routing state, then the pools' tasks, then the listeners.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::changes::Changes;
use super::view::Status;
use super::{Outcome, ReloadMetrics};
use crate::config::{Config, UnknownHost};
use crate::proxy::upstream::metrics::Pools;
use crate::proxy::{Live, Shared};
use crate::server::listeners::Running;
use crate::server::{Bound, Kind, Settings};
use crate::tls::reload::ReloadHandle;
use crate::tls::store::CertStore;
use crate::Error;

/// What a reload needs of the running proxy.
pub(crate) struct Engine {
    pub(crate) config: Arc<Config>,
    pub(crate) live: Arc<Live>,
    pub(crate) running: Running,
    pub(crate) store: Arc<CertStore>,
    pub(crate) stapling: Arc<crate::tls::ocsp::Stapling>,
    pub(crate) certs: ReloadHandle,
    /// Whether the certificate in service is a temporary self-signed one
    /// because none is configured.
    pub(crate) self_signed: bool,
    /// The parent of the pools' tasks.
    pub(crate) background: CancellationToken,
    pub(crate) pools: Pools,
    pub(crate) status: Arc<ArcSwap<Status>>,
    pub(crate) metrics: ReloadMetrics,
}

/// A configuration checked and built, not yet in service.
struct Prepared {
    config: Config,
    initial: crate::tls::Initial,
    acceptor: TlsAcceptor,
    next: Shared,
}

impl Engine {
    /// Reloads from the file the configuration came from.
    pub(crate) async fn reload(&mut self, why: &'static str) -> Outcome {
        let outcome = match self.try_reload(why).await {
            Ok(outcome) => outcome,
            Err(error) => {
                self.metrics.refused();
                let errors = error.to_string();
                tracing::error!(%why, "configuration reload refused; the running configuration stays:\n{errors}");
                Outcome::Refused { errors }
            }
        };
        if let Outcome::Applied { generation, .. } = &outcome {
            self.metrics.applied(*generation);
        }
        outcome
    }

    /// Starts the binary again and hands it the listening sockets.
    pub(crate) async fn upgrade(&mut self, why: &'static str) -> Outcome {
        tracing::info!(%why, "upgrade: starting the binary again with the listening sockets");
        match crate::handover::start::new_process().await {
            Ok(pid) => {
                tracing::info!(
                    pid,
                    grace = ?self.config.server.upgrade_tunnel_grace,
                    "upgrade: the new process serves; this one stops accepting, finishes its requests and keeps its tunnels until they close"
                );
                Outcome::Upgraded { pid }
            }
            Err(errors) => {
                tracing::error!("upgrade failed: {errors}");
                Outcome::Refused { errors }
            }
        }
    }

    async fn try_reload(&mut self, why: &'static str) -> Result<Outcome, Error> {
        let Some(path) = self.config.source.clone() else {
            return Err(Error::Reload(
                "the proxy runs the embedded default configuration: there is no file to read again \
                 (start it with --config FILE to reload)"
                    .to_owned(),
            ));
        };
        let current = self.live.load_full();
        let store = self.store.clone();
        // Reading files, loading certificates and resolving names block:
        // off the threads that serve.
        let prepared = tokio::task::spawn_blocking(move || prepare(&path, &current, store))
            .await
            .map_err(|e| Error::Reload(format!("the reload failed: {e}")))??;
        let wanted = addresses(&prepared.config);
        let fresh: Vec<Bound> = self.running.bind_new(&wanted)?;
        Ok(self.commit(prepared, &wanted, fresh, why).await)
    }

    async fn commit(
        &mut self,
        prepared: Prepared,
        wanted: &[(std::net::SocketAddr, Kind)],
        fresh: Vec<Bound>,
        why: &'static str,
    ) -> Outcome {
        let Prepared {
            config,
            initial,
            acceptor,
            next,
        } = prepared;
        // A proxy that served a temporary certificate for want of one goes
        // on with the same one while none is configured.
        if !(initial.self_signed && self.self_signed) {
            self.certs
                .retarget(
                    initial.slots,
                    initial.certs,
                    config.tls.watch,
                    config.tls.poll_interval,
                )
                .await;
            self.self_signed = initial.self_signed;
        }
        self.stapling.set(config.tls.ocsp_stapling);
        let next = Arc::new(next);
        let before = self.live.swap(next.clone());
        self.pools.store(Arc::new(next.groups.clone()));
        next.start_new_pool_tasks(&self.background, Some(&before));
        before.retire_pools_left_out_of(&next);
        let settings = Settings {
            config: config.server.clone(),
            http: config.http.clone().map(Arc::new),
            acceptor,
            known_hosts: known_hosts(&config, &self.store),
        };
        let listeners = match self.running.apply(wanted, fresh, &settings) {
            Ok(listeners) => listeners,
            Err(e) => {
                tracing::warn!(error = %e, "a new listener could not start");
                Default::default()
            }
        };
        let changes = Changes::between(&self.config, &config, &before, &next, listeners);
        if let Some(grace) = config.server.tunnel_drain_after_reload {
            drain_left_out(&before, &next, changes.routes_left_out(), grace);
        }
        let config = Arc::new(config);
        let generation = self.status.load().generation + 1;
        let mut bound = self.running.local_addrs(Kind::Tls);
        bound.extend(self.running.local_addrs(Kind::Plain));
        self.status
            .store(Arc::new(Status::new(config.clone(), generation, bound)));
        self.config = config;
        let summary = changes.to_string();
        tracing::info!(%why, generation, "configuration reloaded: {summary}");
        for restart in changes.need_restart() {
            tracing::warn!("{restart} changed: this takes effect at the next restart");
        }
        Outcome::Applied {
            generation,
            changes: summary,
        }
    }
}

/// `tunnel_drain_after_reload`: after `grace`, closes the tunnels of the
/// routes of `before` named in `routes` (removed or changed), and of the
/// servers of `before`'s pools that `after`'s pools left out.
fn drain_left_out<'a>(
    before: &Shared,
    after: &Shared,
    routes: impl Iterator<Item = &'a str>,
    grace: std::time::Duration,
) {
    let left_out: Vec<&str> = routes.collect();
    let mut retired: Vec<CancellationToken> = before
        .routes()
        .iter()
        .filter(|r| {
            let c = &r.config;
            let name = format!("{}{}", c.host.as_deref().unwrap_or(""), c.path);
            left_out.contains(&name.as_str())
        })
        .map(|r| r.state.retired.clone())
        .collect();
    let servers_after: Vec<_> = after
        .groups
        .iter()
        .flat_map(|g| g.servers.load_full().to_vec())
        .collect();
    for group in &before.groups {
        for server in group.servers.load().iter() {
            if !servers_after.iter().any(|s| Arc::ptr_eq(s, server)) {
                retired.push(server.retired.clone());
            }
        }
    }
    if retired.is_empty() {
        return;
    }
    tracing::info!(
        ?grace,
        "tunnels of removed routes and servers close after the grace (tunnel_drain_after_reload)"
    );
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        for token in retired {
            token.cancel();
        }
    });
}

/// Checks the file at `path` as `portcullis check` does, and builds its
/// state beside `current`.
fn prepare(path: &std::path::Path, current: &Shared, store: Arc<CertStore>) -> Result<Prepared, Error> {
    let config = crate::config::load(path)?;
    let super::Checked {
        initial,
        client_auth,
        upstream_tls,
    } = super::check_files(&config)?;
    let server_config = crate::tls::server_config(&config.tls, store, client_auth).map_err(Error::Tls)?;
    let next = current.next(&config, &upstream_tls)?;
    Ok(Prepared {
        config,
        initial,
        acceptor: TlsAcceptor::from(server_config),
        next,
    })
}

/// The addresses `config` listens on for HTTP, with what each serves.
pub(crate) fn addresses(config: &Config) -> Vec<(std::net::SocketAddr, Kind)> {
    let plain = config
        .http
        .iter()
        .flat_map(|h| h.listen.iter().map(|&a| (a, Kind::Plain)));
    config
        .server
        .listen
        .iter()
        .map(|&a| (a, Kind::Tls))
        .chain(plain)
        .collect()
}

/// The hosts the plain listener answers, for `[http] unknown_host = "close"`.
pub(crate) fn known_hosts(
    config: &Config,
    store: &Arc<CertStore>,
) -> Option<Arc<crate::server::unknown_host::KnownHosts>> {
    match &config.http {
        Some(http) if http.unknown_host == UnknownHost::Close => Some(Arc::new(
            crate::server::unknown_host::KnownHosts::new(&config.routes, store.clone()),
        )),
        _ => None,
    }
}
