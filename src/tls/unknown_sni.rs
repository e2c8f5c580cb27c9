//! `[tls] unknown_sni = "reject"`: the certificate resolver that refuses
//! a handshake for a name no certificate covers, or for no name at all,
//! instead of serving the first certificate (nginx's
//! `ssl_reject_handshake on` in the default server).

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::store::CertStore;

#[derive(Debug)]
pub(crate) struct RejectUnknown(pub Arc<CertStore>);

impl ResolvesServerCert for RejectUnknown {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = client_hello.server_name()?;
        if !self.0.covers(name) {
            tracing::debug!(
                sni = name,
                "TLS handshake refused: no certificate covers the name (unknown_sni = \"reject\")"
            );
            return None;
        }
        self.0.resolve(client_hello)
    }
}
