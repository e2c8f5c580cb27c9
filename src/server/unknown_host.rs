//! `[http] unknown_host = "close"`: a plain-HTTP request for a host the
//! proxy does not serve ends its connection without a byte, as nginx's
//! `return 444` in a default server. Scanners that knock on an address
//! get nothing to fingerprint.
//!
//! A host is known when a route names it (`host`), or a certificate in
//! service covers it (exactly or by a wildcard; looked up at each request,
//! so a reloaded certificate's names count at once). A request with no
//! host at all is unknown.

use std::collections::HashSet;
use std::sync::Arc;

use http::{header, Request};

use crate::config::RouteConfig;
use crate::tls::store::CertStore;

/// The error a service returns to have hyper close the connection
/// without an answer.
#[derive(Debug, thiserror::Error)]
#[error("request for an unknown host: connection closed without an answer (unknown_host = \"close\")")]
pub(crate) struct Close;

pub struct KnownHosts {
    routes: HashSet<String>,
    store: Arc<CertStore>,
}

impl std::fmt::Debug for KnownHosts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownHosts")
            .field("routes", &self.routes)
            .finish()
    }
}

impl KnownHosts {
    pub fn new(routes: &[RouteConfig], store: Arc<CertStore>) -> Self {
        KnownHosts {
            routes: routes.iter().filter_map(|r| r.host.clone()).collect(),
            store,
        }
    }

    /// Whether the host `req` asks for is served here.
    pub(crate) fn knows<B>(&self, req: &Request<B>) -> bool {
        let authority = match req.uri().authority() {
            Some(a) => Some(a.host().to_owned()),
            None => req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.parse::<http::uri::Authority>().ok())
                .map(|a| a.host().to_owned()),
        };
        let Some(host) = authority else {
            return false;
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.routes.contains(&host) || self.store.covers(&host)
    }
}
