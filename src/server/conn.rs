//! One client connection: TCP tuning, the TLS handshake under one deadline,
//! then HTTP/1.1 or HTTP/2 (chosen by ALPN) with upgrades, until the client
//! leaves or the proxy shuts down.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::alpn::{self, Alpn, Serve};
use super::cork::{cork, Uncork};
use super::counting::Counting;
use super::framing;
use super::limit::Slot;
use super::linger::Lingering;
use super::quiet::Quiet;
use crate::config::{HttpConfig, ProxyProtocolIn};
use crate::connections::{Conn, ConnRegistry, TlsFacts};
use crate::failure::HandshakeFailure;
use crate::metrics::HandshakeLabels;
use crate::metrics::Metrics;
use crate::proxy::body::ProxyBody;
use crate::proxy::{self, ConnInfo, Live};
use crate::side::Side;
use crate::tls::pieces::Pieces;
use crate::tls::{client_auth, peer};

/// What the connections of one listener need, for one generation of the
/// configuration: a reload makes a new one for every listener it keeps,
/// and a connection keeps the one it was accepted with. Its requests are
/// routed by the routing state in `live` at the time each one arrives.
pub struct ConnContext {
    pub acceptor: TlsAcceptor,
    pub http: auto::Builder<TokioExecutor>,
    /// The routing state in service, replaced whole by a reload.
    pub live: Arc<Live>,
    pub metrics: Arc<Metrics>,
    pub connections: Arc<ConnRegistry>,
    /// The `[http]` settings, on a plain-HTTP listener.
    pub plain: Option<Arc<HttpConfig>>,
    /// Whether connections begin with a PROXY protocol header.
    pub proxy_protocol: ProxyProtocolIn,
    pub handshake_timeout: Duration,
    /// Longest wait for a request head; here, for the first bytes after the
    /// handshake (hyper bounds the rest of the head, and idle keep-alive).
    pub header_read_timeout: Duration,
    /// `max_header_size`, for the request framing check (see [`super::framing`]).
    pub max_header_size: usize,
    /// Longest quiet time of a connection with no request in flight.
    pub idle_timeout: Duration,
    /// Cancelled when the listener stops accepting (at shutdown, or when
    /// a reload removes its address): finish what is in flight.
    pub drain: CancellationToken,
    /// The port plain-HTTP redirects point to: the first TLS listener's.
    pub https_port: u16,
    /// `send_timeout`, for every client stream.
    pub send_timeout: Option<Duration>,
    /// Set with `[http] unknown_host = "close"`.
    pub known_hosts: Option<Arc<super::unknown_host::KnownHosts>>,
}

pub async fn serve(ctx: Arc<ConnContext>, tcp: TcpStream, slot: Slot, peer: SocketAddr) {
    let metrics = &ctx.metrics;
    let local = tcp.local_addr().ok();
    let registration = ctx.connections.open(peer);
    let server_port = local.map_or(0, |a| a.port());
    let tcp = Counting::new(tcp, registration, metrics.clone(), slot);

    let accept = ctx.acceptor.accept(tcp).into_fallible();
    let tls = match tokio::time::timeout(ctx.handshake_timeout, accept).await {
        Ok(Ok(tls)) => tls,
        // Scanners and health checkers fail handshakes all day; at debug
        // level they do not drown the log.
        Ok(Err((e, tcp))) => {
            metrics.handshake_failed(HandshakeFailure::of(&e));
            match client_auth::rejection(&e) {
                Some(reason) => {
                    metrics.client_cert_rejected(reason);
                    tracing::debug!(%peer, error = %e, "TLS handshake failed: client certificate rejected");
                    // The alert saying why is written, but a TLS 1.3 client
                    // may already have sent its request: closing with those
                    // bytes unread resets the connection, and the reset can
                    // destroy the alert before the client reads it.
                    drop(Lingering::new(tcp));
                }
                None => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
            }
            return;
        }
        Err(_) => {
            metrics.handshake_failed(HandshakeFailure::Timeout);
            tracing::debug!(%peer, timeout = ?ctx.handshake_timeout, "TLS handshake timed out");
            return;
        }
    };
    let mut tls = tls;
    let client_cert = peer::client_cert(tls.get_ref().1);
    let mut facts = tls_facts(tls.get_ref().1);
    facts.client_subject = client_cert.as_ref().map(|c| c.subject.clone());
    metrics.handshake(&HandshakeLabels {
        version: facts.version.clone(),
        cipher: facts.cipher.clone(),
        result: "ok".to_owned(),
    });
    let conn = tls.get_ref().0.conn().clone();
    let alpn = Alpn::from_protocol(tls.get_ref().1.alpn_protocol());
    tls.get_mut().0.list(Some(facts));
    let tls = Quiet::new(Pieces::new(tls));

    let info = Arc::new(
        ConnInfo::new(conn.clone(), true)
            .with_client_cert(client_cert.as_ref())
            .with_server_port(server_port)
            .with_local(local),
    );
    let live = ctx.live.clone();
    let handle = move |req| {
        // Each request is routed by the configuration in service when it
        // arrives, and keeps that one until it is answered.
        let shared = live.load_full();
        let info = info.clone();
        async move { Ok::<_, Infallible>(proxy::handle(shared, info, req).await) }
    };
    // A request's future is a few KiB. HTTP/2 moves it into a task of its
    // own, and more than once: boxed, those moves are of a pointer. Over
    // HTTP/1.1 it stays where it is, and a box would only add a copy.
    if alpn == Alpn::H2 {
        serve_http(
            &ctx,
            tls,
            alpn,
            service_fn(move |req| Box::pin(handle(req))),
            conn,
            peer,
        )
        .await;
    } else {
        serve_http(&ctx, tls, alpn, service_fn(handle), conn, peer).await;
    }
}

/// How long a connection that has not begun a request yet when the drain
/// starts (at shutdown, an upgrade, or a reload that removes its listener)
/// still waits for one: a client that connected just before the drain is
/// sending it now, and closing under it would fail a request that was
/// never refused. An idle connection holds the drain no longer than this.
const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

/// What the handshake settled, for `/connections` and the metrics.
pub(crate) fn tls_facts(tls: &rustls::ServerConnection) -> TlsFacts {
    let name = |v: Option<String>| v.unwrap_or_default();
    TlsFacts {
        sni: tls.server_name().map(str::to_owned),
        alpn: tls
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        version: name(tls.protocol_version().and_then(|v| v.as_str().map(str::to_owned))),
        cipher: name(
            tls.negotiated_cipher_suite()
                .and_then(|c| c.suite().as_str().map(str::to_owned)),
        ),
        client_subject: None,
    }
}

/// Serves HTTP on an established stream until the client leaves or the
/// drain begins, then closes it with a lingering drain.
///
/// The first bytes must come within `header_read_timeout` (see
/// [`super::preface`]); a client that sends nothing is closed then, as
/// hyper closes one whose request head is not complete in that time. Then
/// `alpn` decides the protocol, or the first bytes do when it is unset
/// (see [`super::alpn`]).
pub async fn serve_http<I, S>(
    ctx: &ConnContext,
    io: I,
    alpn: Alpn,
    service: S,
    conn: Arc<Conn>,
    peer: SocketAddr,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<ProxyBody>> + Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: Send + 'static,
{
    let io = super::send_timeout::SendTimeout::new(io, ctx.send_timeout);
    let read = tokio::time::timeout(ctx.header_read_timeout, super::preface::read(io));
    tokio::pin!(read);
    let first = tokio::select! {
        r = &mut read => r,
        () = ctx.drain.cancelled() => match tokio::time::timeout(FIRST_REQUEST_GRACE, &mut read).await {
            Ok(r) => r,
            Err(_) => return,
        },
    };
    let io = match first {
        Ok(Ok(io)) => io,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "connection failed before its first request");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, timeout = ?ctx.header_read_timeout, "no request within header_read_timeout; closing");
            return;
        }
    };
    let serve = alpn::decide(alpn, io.is_h2());
    if let Serve::Refuse(refusal) = serve {
        tracing::debug!(%peer, ?alpn, "{}", refusal.describe());
        let index = match refusal {
            alpn::Refusal::NotH2Preface => 0,
            alpn::Refusal::H2PrefaceAfterHttp1 => 1,
        };
        ctx.metrics.connections_rejected_alpn[index].inc();
        refuse(ctx, io, refusal.reply()).await;
        return;
    }
    let service = super::idle::Tracked::new(service, conn.clone());
    let result = if serve == Serve::Http2 {
        // An HTTP/2 connection's writes are corked (see cork.rs).
        let (corked, handle) = cork(Lingering::new(io));
        let http2 = ctx.http.clone().http2_only();
        let mut http = Uncork::new(http2.serve_connection(TokioIo::new(corked), service), handle);
        until_done(ctx, &conn, peer, Pin::new(&mut http), |c| {
            c.get_mut().inner().graceful_shutdown()
        })
        .await
    } else {
        // hyper-util's builder reads the first bytes again to choose, and
        // finds the same ones: they are not the HTTP/2 preface (a client
        // that sent it is served HTTP/2 or refused above), so this is
        // always HTTP/1.1.
        let (io, service) = framing::check(io, ctx.max_header_size, service);
        let http = ctx
            .http
            .serve_connection_with_upgrades(TokioIo::new(Lingering::new(io)), service);
        tokio::pin!(http);
        until_done(ctx, &conn, peer, http.as_mut(), |c| c.graceful_shutdown()).await
    };
    if let Err(e) = result {
        ctx.metrics.connection_error(&*e);
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Writes `reply` and closes the connection. The close lingers: closing
/// with the client's bytes unread would reset the connection, and the
/// reset can destroy the reply before the client reads it. A client that
/// does not read is given no longer than `header_read_timeout`.
async fn refuse<I>(ctx: &ConnContext, io: I, reply: &[u8])
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut io = Lingering::new(io);
    if !reply.is_empty() {
        let write = async {
            io.write_all(reply).await?;
            io.flush().await
        };
        // The connection is being closed for its fault: a failure to tell
        // the client why changes nothing.
        let _ = tokio::time::timeout(ctx.header_read_timeout, write).await;
    }
}

/// Runs `http` to its end. Once the drain begins, or the connection has
/// been idle for `idle_timeout` (see [`super::idle`]), `shutdown` asks it
/// to finish (HTTP/1.1: close once the current response is done; HTTP/2:
/// GOAWAY, then finish the open streams), and it is run to its end.
async fn until_done<C, E>(
    ctx: &ConnContext,
    conn: &Arc<Conn>,
    peer: SocketAddr,
    mut http: Pin<&mut C>,
    shutdown: impl FnOnce(Pin<&mut C>),
) -> Result<(), E>
where
    C: Future<Output = Result<(), E>>,
{
    enum Stop<T> {
        Done(T),
        Drain,
        Idle,
    }
    let mut drain = Side::new(ctx.drain.clone().cancelled_owned());
    let mut idle = Side::new(super::idle::expired(conn.clone(), ctx.idle_timeout));
    let served = std::future::poll_fn(|cx| {
        if drain.poll(cx).is_ready() {
            return Poll::Ready(Stop::Drain);
        }
        if idle.poll(cx).is_ready() {
            return Poll::Ready(Stop::Idle);
        }
        http.as_mut().poll(cx).map(Stop::Done)
    })
    .await;
    match served {
        Stop::Done(result) => result,
        Stop::Drain => {
            if conn.requests_begun.load(std::sync::atomic::Ordering::Relaxed) == 0 {
                if let Ok(done) = tokio::time::timeout(FIRST_REQUEST_GRACE, http.as_mut()).await {
                    return done;
                }
            }
            shutdown(http.as_mut());
            http.await
        }
        Stop::Idle => {
            tracing::debug!(%peer, timeout = ?ctx.idle_timeout, "connection idle; closing");
            shutdown(http.as_mut());
            // HTTP/2's graceful GOAWAY waits for the client to answer a
            // PING; a client that never does is dropped after another
            // quiet period rather than kept for ever.
            let mut idle = Side::new(super::idle::expired(conn.clone(), ctx.idle_timeout));
            std::future::poll_fn(|cx| match idle.poll(cx) {
                Poll::Ready(()) => Poll::Ready(Ok(())),
                Poll::Pending => http.as_mut().poll(cx),
            })
            .await
        }
    }
}
