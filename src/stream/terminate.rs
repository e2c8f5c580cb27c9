//! TLS for a terminating stream: the listeners' rustls configuration
//! (certificate store, versions, suites, groups, session resumption), so
//! SNI selection, hot reload and bootstrap certificates work as for HTTP,
//! with the stream's own ALPN list and client-certificate verifier; and
//! the handshake under the stream's deadline.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::server::danger::ClientCertVerifier;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::metrics::Refusal;
use super::Stream;
use crate::config::TlsConfig;
use crate::connections::TlsFacts;
use crate::server::linger::Lingering;
use crate::tls::store::CertStore;
use crate::tls::{client_auth, peer};

/// The acceptor of a stream offering `alpn` (none when empty).
pub(crate) fn acceptor(
    tls: &TlsConfig,
    store: Arc<CertStore>,
    alpn: &[Vec<u8>],
    client_auth: Option<Arc<dyn ClientCertVerifier>>,
) -> Result<TlsAcceptor, rustls::Error> {
    let listeners = crate::tls::server_config(tls, store, client_auth)?;
    let mut config = (*listeners).clone();
    config.alpn_protocols = alpn.to_vec();
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The handshake with the client within `handshake_timeout`, and what it
/// settled; `None` when it failed, which is counted and logged here.
///
/// The stream comes boxed: rustls' connection state is over a kilobyte,
/// and inline it would be copied into every async frame it passes through
/// on its way to the tunnel, each copy kept for the stream's whole life.
pub(crate) async fn handshake<T>(
    stream: &Stream,
    acceptor: &TlsAcceptor,
    io: T,
    peer: SocketAddr,
) -> Option<(Box<TlsStream<T>>, TlsFacts)>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let accept = acceptor.accept(io).into_fallible();
    let tls = match tokio::time::timeout(stream.config.handshake_timeout, accept).await {
        Ok(Ok(tls)) => tls,
        Ok(Err((e, io))) => {
            match client_auth::rejection(&e) {
                Some(reason) => {
                    stream.metrics.refused(Refusal::ClientCert);
                    tracing::debug!(stream = %stream.name, %peer, error = %e, reason = reason.label(), "stream: client certificate rejected");
                    // The alert says why; a reset could destroy it before
                    // the client reads it (see server::conn).
                    drop(Lingering::new(io));
                }
                None => {
                    stream.metrics.refused(Refusal::Handshake);
                    tracing::debug!(stream = %stream.name, %peer, error = %e, "stream: TLS handshake failed");
                }
            }
            return None;
        }
        Err(_) => {
            stream.metrics.refused(Refusal::Handshake);
            tracing::debug!(stream = %stream.name, %peer, timeout = ?stream.config.handshake_timeout, "stream: TLS handshake timed out");
            return None;
        }
    };
    let conn = tls.get_ref().1;
    let mut facts = crate::server::conn::tls_facts(conn);
    facts.client_subject = peer::client_cert(conn).map(|c| c.subject);
    Some((Box::new(tls), facts))
}
