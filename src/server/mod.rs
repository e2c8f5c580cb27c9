//! The listeners: accept, bound the number of connections (in all, and per
//! client address), hand each one to its own task, and drain in order at
//! shutdown (stop accepting, let requests in flight finish within the grace
//! period, then close tunnels).

/// `AsyncWrite` for a stream wrapper whose writes go straight to its
/// `inner` stream.
macro_rules! write_through {
    ($wrapper:ident) => {
        impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for $wrapper<T> {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }

            fn poll_flush(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
            }
        }
    };
}
use write_through;

pub(crate) mod acme;
mod alpn;
pub(crate) mod conn;
mod cork;
mod counting;
pub(crate) mod framing;
mod idle;
mod limit;
pub(crate) mod linger;
pub mod listener;
pub(crate) mod plain;
mod preface;
mod proxy_protocol;
mod quiet;
mod send_timeout;
pub mod unknown_host;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{HttpConfig, ProxyProtocolIn, ServerConfig};
use crate::proxy::Shared;
use crate::side::Side;
use conn::ConnContext;
use limit::{PerIp, Slot};

/// What a listening socket serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tls,
    Plain,
}

/// Bound listeners, ready to serve.
pub struct Server {
    listeners: Vec<(std::net::TcpListener, Kind)>,
    config: ServerConfig,
    http: Option<Arc<HttpConfig>>,
    /// For `[http] unknown_host = "close"`.
    known_hosts: Option<Arc<unknown_host::KnownHosts>>,
}

impl Server {
    pub fn new(
        listeners: Vec<(std::net::TcpListener, Kind)>,
        config: ServerConfig,
        http: Option<HttpConfig>,
    ) -> Self {
        Server {
            listeners,
            config,
            http: http.map(Arc::new),
            known_hosts: None,
        }
    }

    /// The hosts the plain listener serves, for `unknown_host = "close"`.
    pub fn with_known_hosts(mut self, known: unknown_host::KnownHosts) -> Self {
        self.known_hosts = Some(Arc::new(known));
        self
    }

    /// The bound addresses of the listeners of `kind`, in configuration order.
    pub fn local_addrs(&self, kind: Kind) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter(|(_, k)| *k == kind)
            .filter_map(|(l, _)| l.local_addr().ok())
            .collect()
    }

    /// Serves until `shutdown` completes, then drains. Must run inside a
    /// tokio runtime.
    pub async fn run(
        self,
        acceptor: TlsAcceptor,
        shared: Arc<Shared>,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let https_port = self.local_addrs(Kind::Tls).first().map_or(443, |a| a.port());
        let listeners = self
            .listeners
            .into_iter()
            .map(|(l, kind)| Ok((TcpListener::from_std(l)?, kind)))
            .collect::<std::io::Result<Vec<_>>>()?;

        let drain = CancellationToken::new();
        let ctx = Arc::new(ConnContext {
            acceptor,
            http: http_builder(&self.config),
            shared: shared.clone(),
            handshake_timeout: self.config.handshake_timeout,
            header_read_timeout: self.config.header_read_timeout,
            max_header_size: self.config.max_header_size,
            idle_timeout: self.config.idle_timeout,
            drain: drain.clone(),
            https_port,
            send_timeout: self.config.send_timeout,
            known_hosts: self.known_hosts.clone(),
        });
        let connections = TaskTracker::new();
        let limits = Limits {
            all: Arc::new(Semaphore::new(self.config.max_connections)),
            per_ip: self
                .config
                .max_connections_per_ip
                .map(|max| Arc::new(PerIp::new(max))),
        };
        let accepting = TaskTracker::new();
        for (listener, kind) in listeners {
            let plain = match (kind, &self.http) {
                (Kind::Plain, Some(http)) => Some(http.clone()),
                _ => None,
            };
            let proxy_protocol = match &plain {
                Some(http) => http.proxy_protocol,
                None => self.config.proxy_protocol,
            };
            accepting.spawn(accept_loop(
                listener,
                plain,
                proxy_protocol,
                ctx.clone(),
                connections.clone(),
                limits.clone(),
            ));
        }
        accepting.close();

        shutdown.await;
        tracing::info!(grace = ?self.config.shutdown_grace, "shutting down: no new connections; finishing requests in flight");
        drain.cancel();
        accepting.wait().await;
        connections.close();
        let drained = tokio::time::timeout(self.config.shutdown_grace, connections.wait()).await;
        if drained.is_err() {
            tracing::warn!("grace period over; closing the connections still open");
        }
        // Tunnels and anything left are closed now; their tasks end at once.
        shared.tunnel_cancel.cancel();
        shared.tunnels.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            connections.wait().await;
            shared.tunnels.wait().await;
        })
        .await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The HTTP/1.1 and HTTP/2 settings of every client connection.
///
/// `max_header_size` bounds the request head: over HTTP/1.1 it is the
/// largest read buffer hyper keeps while the head is incomplete (a larger
/// head is answered 431 and the connection closed; the configuration keeps
/// it at 8 KiB or more, hyper's minimum); over HTTP/2 it is the
/// SETTINGS_MAX_HEADER_LIST_SIZE announced to the client (h2 answers a
/// larger header list 431 and resets the stream, and ends the connection
/// for one over four times the limit).
pub(crate) fn http_builder(config: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(config.max_header_size)
        .keep_alive(config.keepalive);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(config.max_header_size).unwrap_or(u32::MAX));
    builder
}

/// The connection limits shared by every listener.
#[derive(Clone)]
struct Limits {
    /// `max_connections`: a permit per open client socket.
    all: Arc<Semaphore>,
    /// `max_connections_per_ip`, when set.
    per_ip: Option<Arc<PerIp>>,
}

/// Accepts until the drain begins. `plain` is the `[http]` configuration
/// for a plain-HTTP listener, `None` for a TLS one.
async fn accept_loop(
    listener: TcpListener,
    plain: Option<Arc<HttpConfig>>,
    proxy_protocol: ProxyProtocolIn,
    ctx: Arc<ConnContext>,
    connections: TaskTracker,
    limits: Limits,
) {
    loop {
        let permit = tokio::select! {
            () = ctx.drain.cancelled() => return,
            p = limits.all.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            () = ctx.drain.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, peer)) => {
                // Behind a PROXY header the client is known only once it
                // is read: its limit is taken then (proxy_protocol.rs).
                let ip_slot = match &limits.per_ip {
                    _ if proxy_protocol != ProxyProtocolIn::Off => None,
                    None => None,
                    Some(per_ip) => match per_ip.acquire(peer.ip()) {
                        Some(slot) => Some(slot),
                        None => {
                            refuse(tcp, peer, &ctx);
                            continue;
                        }
                    },
                };
                listener::tune_accepted(&tcp);
                let ctx = ctx.clone();
                let hard_stop = ctx.shared.tunnel_cancel.clone();
                let plain = plain.clone();
                let per_ip = limits.per_ip.clone();
                connections.spawn(async move {
                    let serve = async {
                        let (tcp, peer, ip_slot) = match proxy_protocol {
                            ProxyProtocolIn::Off => (tcp, peer, ip_slot),
                            mode => {
                                match proxy_protocol::arrive(&ctx, tcp, peer, mode, per_ip.as_ref()).await {
                                    Some(arrived) => arrived,
                                    None => return,
                                }
                            }
                        };
                        let slot = Slot::new(permit, ip_slot);
                        match plain {
                            Some(http) => plain::serve(ctx, http, tcp, slot, peer).await,
                            None => conn::serve(ctx, tcp, slot, peer).await,
                        }
                    };
                    let mut serve = std::pin::pin!(serve);
                    let mut hard_stop = Side::new(hard_stop.cancelled_owned());
                    std::future::poll_fn(|cx| match hard_stop.poll(cx) {
                        Poll::Ready(()) => Poll::Ready(()),
                        Poll::Pending => serve.as_mut().poll(cx),
                    })
                    .await;
                });
            }
            Err(e) => {
                // Out of file descriptors and similar: wait a moment rather
                // than spin, and keep the listener.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Closes a connection whose address has `max_connections_per_ip` open, at
/// once and before any TLS: with a reset, so that no TIME_WAIT is left on
/// this side however many a client opens.
fn refuse(tcp: tokio::net::TcpStream, peer: SocketAddr, ctx: &ConnContext) {
    ctx.shared.metrics.connections_rejected_per_ip.inc();
    tracing::debug!(%peer, "connection refused: max_connections_per_ip reached for this address");
    let _ = socket2::SockRef::from(&tcp).set_linger(Some(Duration::ZERO));
    drop(tcp);
}
