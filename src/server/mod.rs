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
pub mod listeners;
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
use crate::proxy::Live;
use crate::side::Side;
use arc_swap::ArcSwap;
use conn::ConnContext;
use limit::{PerIp, Slot};

/// What a listening socket serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tls,
    Plain,
}

impl Kind {
    /// The listener's role, as an upgrade hands its socket over.
    pub(crate) fn role(self) -> &'static str {
        match self {
            Kind::Tls => "tls",
            Kind::Plain => "plain",
        }
    }
}

/// A socket bound for an address of the configuration.
pub struct Bound {
    pub listener: std::net::TcpListener,
    pub kind: Kind,
    /// The address as configured (port 0 stays 0), by which a reload
    /// knows the listener again.
    pub configured: SocketAddr,
}

impl Bound {
    /// Binds `configured` for `kind`.
    pub fn bind(configured: SocketAddr, kind: Kind) -> Result<Bound, crate::Error> {
        let listener = listener::bind(kind.role(), configured).map_err(|source| crate::Error::Bind {
            addr: configured,
            source,
        })?;
        Ok(Bound {
            listener,
            kind,
            configured,
        })
    }
}

/// What the connections of every listener are served with, for one
/// generation of the configuration.
pub struct Settings {
    pub config: ServerConfig,
    pub http: Option<Arc<HttpConfig>>,
    pub acceptor: TlsAcceptor,
    /// For `[http] unknown_host = "close"`.
    pub known_hosts: Option<Arc<unknown_host::KnownHosts>>,
}

/// Bound listeners, ready to serve.
pub struct Server {
    listeners: Vec<Bound>,
    config: ServerConfig,
    http: Option<Arc<HttpConfig>>,
    /// For `[http] unknown_host = "close"`.
    known_hosts: Option<Arc<unknown_host::KnownHosts>>,
}

impl Server {
    pub fn new(listeners: Vec<Bound>, config: ServerConfig, http: Option<HttpConfig>) -> Self {
        Server {
            listeners,
            config,
            http: http.map(Arc::new),
            known_hosts: None,
        }
    }

    /// The hosts the plain listener serves, for `unknown_host = "close"`.
    pub fn with_known_hosts(mut self, known: Arc<unknown_host::KnownHosts>) -> Self {
        self.known_hosts = Some(known);
        self
    }

    /// The bound addresses of the listeners of `kind`, in configuration order.
    pub fn local_addrs(&self, kind: Kind) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter(|b| b.kind == kind)
            .filter_map(|b| b.listener.local_addr().ok())
            .collect()
    }

    /// Starts accepting on every listener. Must run inside a tokio runtime.
    pub fn start(self, acceptor: TlsAcceptor, live: Arc<Live>) -> std::io::Result<listeners::Running> {
        let settings = Settings {
            config: self.config,
            http: self.http,
            acceptor,
            known_hosts: self.known_hosts,
        };
        listeners::Running::start(self.listeners, settings, live)
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
pub(crate) struct Limits {
    /// `max_connections`: a permit per open client socket.
    all: Arc<Semaphore>,
    /// `max_connections_per_ip`, when set.
    per_ip: Option<Arc<PerIp>>,
}

/// Accepts until the drain begins. `plain` is the `[http]` configuration
/// for a plain-HTTP listener, `None` for a TLS one.
async fn accept_loop(
    listener: TcpListener,
    contexts: Arc<ArcSwap<ConnContext>>,
    stop: CancellationToken,
    connections: TaskTracker,
    limits: Limits,
) {
    loop {
        let permit = tokio::select! {
            () = stop.cancelled() => return,
            p = limits.all.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, peer)) => {
                // A connection is served by the configuration in service
                // when it arrived.
                let ctx = contexts.load_full();
                let proxy_protocol = ctx.proxy_protocol;
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
                let hard_stop = ctx.live.load().tunnel_cancel.clone();
                let plain = ctx.plain.clone();
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
    ctx.metrics.connections_rejected_per_ip.inc();
    tracing::debug!(%peer, "connection refused: max_connections_per_ip reached for this address");
    let _ = socket2::SockRef::from(&tcp).set_linger(Some(Duration::ZERO));
    drop(tcp);
}
