//! The listeners while they serve, and what a reload changes of them.
//!
//! Each listener keeps its socket for as long as its address stays in the
//! configuration: a reload never re-binds an address it keeps, so not one
//! connection attempt is refused across it. What a reload changes reaches
//! a kept listener as a new [`ConnContext`] (certificates and TLS
//! settings, timeouts, the plain listener's settings), which the
//! connections accepted from then on are served with. A new address is
//! bound before anything is changed (a reload whose address cannot be
//! bound is refused whole); a removed one stops accepting, and its
//! connections finish what they have in flight and close, as at shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::conn::ConnContext;
use super::limit::PerIp;
use super::{accept_loop, http_builder, Bound, Kind, Limits, Settings};
use crate::config::ProxyProtocolIn;
use crate::proxy::Live;

/// A listener that accepts.
struct Listening {
    configured: SocketAddr,
    kind: Kind,
    local: Option<SocketAddr>,
    /// The socket, beside the accept loop's: an address that changes kind
    /// goes on with the same socket under a new loop.
    socket: std::net::TcpListener,
    /// What its next connection is served with.
    contexts: Arc<ArcSwap<ConnContext>>,
    /// Stops its accept loop, and drains its connections.
    stop: CancellationToken,
}

/// The listeners in service, and the connections they accepted.
pub struct Running {
    live: Arc<Live>,
    listeners: Vec<Listening>,
    /// Every client connection's task.
    connections: TaskTracker,
    /// Every accept loop.
    accepting: TaskTracker,
    limits: Limits,
    /// The permits `limits.all` was made or last resized with.
    max_connections: usize,
    /// The parent of every listener's `stop`: the shutdown drain.
    drain: CancellationToken,
    shutdown_grace: Duration,
}

/// What a reload did to the listeners, for its log line.
#[derive(Debug, Default)]
pub struct ListenerChanges {
    pub added: Vec<SocketAddr>,
    pub removed: Vec<SocketAddr>,
}

impl Running {
    pub(super) fn start(bound: Vec<Bound>, settings: Settings, live: Arc<Live>) -> std::io::Result<Running> {
        let max_connections = settings.config.max_connections;
        let mut running = Running {
            live,
            listeners: Vec::new(),
            connections: TaskTracker::new(),
            accepting: TaskTracker::new(),
            limits: Limits {
                all: Arc::new(Semaphore::new(max_connections)),
                per_ip: settings
                    .config
                    .max_connections_per_ip
                    .map(|max| Arc::new(PerIp::new(max))),
            },
            max_connections,
            drain: CancellationToken::new(),
            shutdown_grace: settings.config.shutdown_grace,
        };
        let https_port = https_port(bound.iter().filter(|b| b.kind == Kind::Tls).map(|b| &b.listener));
        for b in bound {
            running.listen(b, &settings, https_port)?;
        }
        Ok(running)
    }

    /// The bound addresses of the listeners of `kind`, in configuration order.
    pub fn local_addrs(&self, kind: Kind) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter(|l| l.kind == kind)
            .filter_map(|l| l.local)
            .collect()
    }

    /// Binds the addresses of `wanted` that no listener has yet, without
    /// changing anything: the first that cannot be bound fails them all.
    pub fn bind_new(&self, wanted: &[(SocketAddr, Kind)]) -> Result<Vec<Bound>, crate::Error> {
        wanted
            .iter()
            .filter(|(addr, _)| !self.listeners.iter().any(|l| l.configured == *addr))
            .map(|&(addr, kind)| Bound::bind(addr, kind))
            .collect()
    }

    /// Serves `wanted` with `settings` from now on: kept listeners serve
    /// their next connections with the new settings, `fresh` (what
    /// [`Running::bind_new`] bound for it) start accepting, and listeners
    /// no longer wanted stop accepting and drain.
    pub fn apply(
        &mut self,
        wanted: &[(SocketAddr, Kind)],
        fresh: Vec<Bound>,
        settings: &Settings,
    ) -> std::io::Result<ListenerChanges> {
        let mut changes = ListenerChanges::default();
        let (kept, removed): (Vec<Listening>, Vec<Listening>) = std::mem::take(&mut self.listeners)
            .into_iter()
            .partition(|l| wanted.iter().any(|(addr, _)| *addr == l.configured));
        for gone in removed {
            tracing::info!(address = %gone.configured, "listener removed: no new connections; its connections finish what they have in flight");
            changes.removed.extend(gone.local);
            crate::handover::sockets::forget(gone.kind.role(), gone.configured);
            gone.stop.cancel();
        }
        self.listeners = kept;
        // A kept address that changes kind (TLS to plain or back) keeps
        // its socket under a new accept loop.
        let mut rebound = Vec::new();
        self.listeners.retain(|l| {
            match wanted.iter().find(|(addr, _)| *addr == l.configured) {
                Some(&(_, kind)) if kind != l.kind => {
                    l.stop.cancel();
                    crate::handover::sockets::forget(l.kind.role(), l.configured);
                    match l.socket.try_clone() {
                        Ok(listener) => rebound.push(Bound {
                            listener,
                            kind,
                            configured: l.configured,
                        }),
                        Err(e) => tracing::warn!(address = %l.configured, error = %e, "cannot keep the listener for its new kind"),
                    }
                    false
                }
                _ => true,
            }
        });
        let https_port = {
            let tls_kept = self.listeners.iter().filter(|l| l.kind == Kind::Tls);
            let first_kept = tls_kept.filter_map(|l| l.local).next();
            let first_fresh = fresh
                .iter()
                .filter(|b| b.kind == Kind::Tls)
                .find_map(|b| b.listener.local_addr().ok());
            first_kept.or(first_fresh).map_or(443, |a| a.port())
        };
        for l in &self.listeners {
            let ctx = self.context(settings, l.kind, https_port, l.stop.clone());
            l.contexts.store(Arc::new(ctx));
        }
        for b in fresh.into_iter().chain(rebound) {
            let local = b.listener.local_addr().ok();
            tracing::info!(address = %b.configured, bound = ?local, "listener added");
            changes.added.extend(local);
            self.listen(b, settings, https_port)?;
        }
        // Listeners in the order the configuration names them.
        self.listeners.sort_by_key(|l| {
            wanted
                .iter()
                .position(|(addr, _)| *addr == l.configured)
                .unwrap_or(usize::MAX)
        });
        self.resize(settings.config.max_connections);
        self.shutdown_grace = settings.config.shutdown_grace;
        Ok(changes)
    }

    /// Stops accepting, lets requests in flight finish within the grace
    /// period, lets tunnels run for `tunnel_grace` more (none at shutdown;
    /// `upgrade_tunnel_grace` after an upgrade), then closes what is left.
    pub async fn finish(self, tunnel_grace: Duration) {
        let grace = self.shutdown_grace;
        tracing::info!(
            ?grace,
            "shutting down: no new connections; finishing requests in flight"
        );
        self.drain.cancel();
        self.accepting.close();
        self.accepting.wait().await;
        // The sockets kept beside the accept loops close now: from here a
        // connection attempt is refused at once.
        drop(self.listeners);
        self.connections.close();
        let drained = tokio::time::timeout(grace, self.connections.wait()).await;
        if drained.is_err() {
            tracing::warn!("grace period over; closing the connections still open");
        }
        let shared = self.live.load_full();
        shared.tunnels.close();
        if !tunnel_grace.is_zero() && !shared.tunnels.is_empty() {
            tracing::info!(
                ?tunnel_grace,
                "requests finished; the tunnels still open run until they close"
            );
            if tokio::time::timeout(tunnel_grace, shared.tunnels.wait())
                .await
                .is_err()
            {
                tracing::warn!("tunnel grace over; closing the tunnels still open");
            }
        }
        // Tunnels and anything left are closed now; their tasks end at once.
        shared.tunnel_cancel.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            self.connections.wait().await;
            shared.tunnels.wait().await;
        })
        .await;
        tracing::info!("stopped");
    }

    /// Starts accepting on `b`.
    fn listen(&mut self, b: Bound, settings: &Settings, https_port: u16) -> std::io::Result<()> {
        let local = b.listener.local_addr().ok();
        crate::handover::sockets::register(b.kind.role(), b.configured, &b.listener);
        let socket = b.listener.try_clone()?;
        let stop = self.drain.child_token();
        let ctx = self.context(settings, b.kind, https_port, stop.clone());
        let contexts = Arc::new(ArcSwap::from_pointee(ctx));
        let listener = TcpListener::from_std(b.listener)?;
        self.accepting.spawn(accept_loop(
            listener,
            contexts.clone(),
            stop.clone(),
            self.connections.clone(),
            self.limits.clone(),
        ));
        self.listeners.push(Listening {
            configured: b.configured,
            kind: b.kind,
            local,
            socket,
            contexts,
            stop,
        });
        Ok(())
    }

    /// What a connection of a `kind` listener is served with.
    fn context(
        &self,
        settings: &Settings,
        kind: Kind,
        https_port: u16,
        drain: CancellationToken,
    ) -> ConnContext {
        let shared = self.live.load();
        let plain = match kind {
            Kind::Plain => settings.http.clone(),
            Kind::Tls => None,
        };
        let proxy_protocol: ProxyProtocolIn = match &plain {
            Some(http) => http.proxy_protocol,
            None => settings.config.proxy_protocol,
        };
        let config = &settings.config;
        ConnContext {
            acceptor: settings.acceptor.clone(),
            http: http_builder(config),
            live: self.live.clone(),
            metrics: shared.metrics.clone(),
            connections: shared.connections.clone(),
            plain,
            proxy_protocol,
            handshake_timeout: config.handshake_timeout,
            header_read_timeout: config.header_read_timeout,
            max_header_size: config.max_header_size,
            idle_timeout: config.idle_timeout,
            drain,
            https_port,
            send_timeout: config.send_timeout,
            known_hosts: settings.known_hosts.clone(),
        }
    }

    /// Makes `max_connections` the number of connections open at once.
    fn resize(&mut self, max: usize) {
        if max > self.max_connections {
            self.limits.all.add_permits(max - self.max_connections);
        } else if max < self.max_connections {
            // Permits held by open connections are taken as they return:
            // no connection is closed to shrink the limit.
            let excess = self.max_connections - max;
            let all = self.limits.all.clone();
            let taken = all.forget_permits(excess);
            if taken < excess {
                let owed = excess - taken;
                tokio::spawn(async move {
                    if let Ok(permits) = all.acquire_many(owed as u32).await {
                        permits.forget();
                    }
                });
            }
        }
        self.max_connections = max;
    }
}

/// The port plain-HTTP redirects point to: the first TLS listener's.
fn https_port<'a>(mut tls: impl Iterator<Item = &'a std::net::TcpListener>) -> u16 {
    tls.next()
        .and_then(|l| l.local_addr().ok())
        .map_or(443, |a| a.port())
}
