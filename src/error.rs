//! The library's error type: what can stop the proxy from starting or
//! serving. Each variant keeps its source, and its message says what to do.

use std::net::SocketAddr;

use crate::config::ConfigErrors;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration, or a file it names, is wrong.
    #[error(transparent)]
    Config(#[from] ConfigErrors),

    #[error("cannot listen on {addr}: {source}{}", bind_hint(source))]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot build the TLS configuration: {0}")]
    Tls(#[source] rustls::Error),

    #[error(transparent)]
    Route(#[from] crate::proxy::RouteError),

    #[error("the listeners failed: {0}")]
    Serve(#[source] std::io::Error),

    /// A configuration reload that could not be carried out.
    #[error("{0}")]
    Reload(String),
}

impl Error {
    /// True for errors the operator fixes in the configuration, which the
    /// binary reports with exit code 2.
    pub fn is_config(&self) -> bool {
        matches!(self, Error::Config(_) | Error::Route(_))
    }
}

fn bind_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            " (another process listens there: stop it, or choose another address in [server] listen)"
        }
        std::io::ErrorKind::PermissionDenied => {
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE, e.g. AmbientCapabilities=CAP_NET_BIND_SERVICE under systemd)"
        }
        std::io::ErrorKind::AddrNotAvailable => " (this machine has no such address: check [server] listen)",
        _ => "",
    }
}
