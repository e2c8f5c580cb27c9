//! `send_proxy_protocol` on a route: each upstream connection starts with
//! a PROXY header (v1 or v2, written by `stream::proxy_header`) naming the
//! request's client and the address it reached, for upstreams that read
//! one. Such a connection speaks for one client only, so the route keeps
//! no idle connections: each request opens its own.

use std::net::SocketAddr;

use http::Request;

use crate::config::ProxyProtocol;
use crate::stream::proxy_header;

/// The two addresses of a request's PROXY header, in its extensions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SendProxy {
    pub client: SocketAddr,
    /// The proxy's listening address the client reached.
    pub local: SocketAddr,
}

/// The header that goes before the first byte of `req`'s connection, when
/// its route sends one.
pub(crate) fn preamble<B>(version: Option<ProxyProtocol>, req: &Request<B>) -> Option<Vec<u8>> {
    let send = req.extensions().get::<SendProxy>()?;
    Some(proxy_header::header(version?, send.client, send.local))
}
