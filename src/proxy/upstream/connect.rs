//! The TLS layer under an `https://` route's client: hyper-util's
//! `HttpConnector` opens the TCP connection (the name resolved anew, connect
//! timeout, TCP_NODELAY, keepalive, happy eyeballs, as for plain routes),
//! then tokio-rustls shakes hands with the route's `ClientConfig` and its
//! fixed server name, within the route's `connect_timeout`. Its plaintext
//! crosses rustls in small pieces (see [`crate::tls::pieces`]).
//!
//! Written here rather than taken from hyper-rustls: its builder refuses a
//! configuration that names ALPN protocols and offers none for an
//! HTTP/1.1-only client, and its other constructor cannot take a fixed
//! server name, while the upstream leg must offer `http/1.1` and may have to
//! ask for a name other than the upstream's host (`upstream_server_name`).
//!
//! Plain routes never pass through here: their client is built on
//! `HttpConnector` alone.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use rustls::{CertificateError, ClientConfig, InvalidMessage};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tower_service::Service;

use crate::tls::pieces::Pieces;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Opens TLS connections to one route's upstream.
#[derive(Clone)]
pub struct TlsConnector {
    tcp: HttpConnector,
    tls: tokio_rustls::TlsConnector,
    /// `upstream_server_name`, else the upstream's host: one name per route,
    /// so it is worked out once rather than from each connection's URI.
    server_name: ServerName<'static>,
    handshake_timeout: Duration,
    /// Written before the handshake: a PROXY header (`send_proxy_protocol`).
    preamble: Option<Arc<[u8]>>,
}

impl TlsConnector {
    /// `tcp` must not insist on the `http` scheme: the URIs it gets are `https`.
    pub fn new(
        tcp: HttpConnector,
        config: Arc<ClientConfig>,
        server_name: ServerName<'static>,
        handshake_timeout: Duration,
    ) -> Self {
        TlsConnector {
            tcp,
            tls: tokio_rustls::TlsConnector::from(config),
            server_name,
            handshake_timeout,
            preamble: None,
        }
    }

    /// The connector whose connections start with `preamble`.
    pub(crate) fn with_preamble(mut self, preamble: Option<Vec<u8>>) -> Self {
        self.preamble = preamble.map(Into::into);
        self
    }
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnector")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl Service<Uri> for TlsConnector {
    type Response = TokioIo<Pieces<TlsStream<TcpStream>>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let tcp = self.tcp.call(dst);
        let tls = self.tls.clone();
        let name = self.server_name.clone();
        let limit = self.handshake_timeout;
        let preamble = self.preamble.clone();
        Box::pin(async move {
            let mut tcp = tcp.await?.into_inner();
            if let Some(preamble) = preamble {
                tokio::io::AsyncWriteExt::write_all(&mut tcp, &preamble).await?;
            }
            match tokio::time::timeout(limit, tls.connect(name, tcp)).await {
                Ok(Ok(stream)) => Ok(TokioIo::new(Pieces::new(stream))),
                Ok(Err(e)) => Err(HandshakeError::Failed(e).into()),
                Err(_) => Err(HandshakeError::Timeout(limit).into()),
            }
        })
    }
}

/// Why a TLS handshake with an upstream did not complete.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("TLS handshake with the upstream failed")]
    Failed(#[source] io::Error),
    #[error("TLS handshake with the upstream timed out after {}", humantime::format_duration(*.0))]
    Timeout(Duration),
}

impl HandshakeError {
    /// The reason, in the words of the log line that goes with the 502.
    fn describe(&self) -> String {
        let io = match self {
            HandshakeError::Timeout(_) => return self.to_string(),
            HandshakeError::Failed(io) => io,
        };
        let Some(tls) = io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) else {
            return format!("{self}: {io}");
        };
        match tls {
            rustls::Error::InvalidCertificate(
                e @ (CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }),
            ) => format!("upstream certificate does not match the name asked for: {e}"),
            rustls::Error::InvalidCertificate(e) => format!("upstream certificate not trusted: {e}"),
            rustls::Error::AlertReceived(alert) => format!("upstream refused the TLS handshake: {alert:?}"),
            rustls::Error::InvalidMessage(InvalidMessage::InvalidContentType) => {
                "upstream does not speak TLS (if it serves plain HTTP, write its upstream with http://)"
                    .to_owned()
            }
            other => format!("{self}: {other}"),
        }
    }
}

/// What a failed exchange had to do with TLS, if anything: the reason a
/// handshake failed, for the log line that goes with the 502.
pub fn describe_failure(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(handshake) = e.downcast_ref::<HandshakeError>() {
            return Some(handshake.describe());
        }
        next = e.source();
    }
    None
}
