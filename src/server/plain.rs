//! The plain-HTTP listener (`[http]`): ACME http-01 challenges from the
//! webroot, and for everything else a 308 redirect to https, or, with the
//! redirect turned off, the same routing as TLS traffic.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use percent_encoding::{utf8_percent_encode, CONTROLS};
use tokio::net::TcpStream;

use super::conn::ConnContext;
use super::limit::Slot;
use crate::config::HttpConfig;
use crate::proxy::body::ProxyBody;
use crate::proxy::{self, headers, respond, ConnInfo};

pub async fn serve(
    ctx: Arc<ConnContext>,
    http: Arc<HttpConfig>,
    tcp: TcpStream,
    slot: Slot,
    peer: SocketAddr,
) {
    let local = tcp.local_addr().ok();
    let registration = ctx.connections.open(peer);
    let server_port = local.map_or(0, |a| a.port());
    let mut tcp = super::counting::Counting::new(tcp, registration, ctx.metrics.clone(), slot);
    tcp.list(None);
    let conn = tcp.conn().clone();
    let info = Arc::new(
        ConnInfo::new(conn.clone(), false)
            .with_server_port(server_port)
            .with_local(local),
    );
    let ctx2 = ctx.clone();
    let service = service_fn(move |req| {
        let ctx = ctx2.clone();
        let http = http.clone();
        let info = info.clone();
        async move {
            if let Some(known) = &ctx.known_hosts {
                if !known.knows(&req) {
                    return Err(super::unknown_host::Close);
                }
            }
            Ok(handle(ctx, http, info, req).await)
        }
    });
    // No TLS, so no ALPN: the first bytes decide, as for a TLS client that
    // offered none.
    super::conn::serve_http(&ctx, tcp, super::alpn::Alpn::Unset, service, conn, peer).await;
}

async fn handle(
    ctx: Arc<ConnContext>,
    http: Arc<HttpConfig>,
    info: Arc<ConnInfo>,
    mut req: Request<Incoming>,
) -> Response<ProxyBody> {
    // The challenge log names the client.
    req.extensions_mut().insert(info.peer);
    // A request with two framings is refused by the proxy, before any of
    // the plain listener's own answers: a redirect would keep it alive.
    if req.extensions().get::<headers::BothFramings>().is_some() {
        return proxy::handle(ctx.live.load_full(), info, req).await;
    }
    if let Some(webroot) = &http.acme_webroot {
        if let Some(response) = super::acme::challenge(webroot, &req).await {
            return response;
        }
    }
    if http.redirect_to_https {
        return redirect(&req, ctx.https_port);
    }
    proxy::handle(ctx.live.load_full(), info, req).await
}

/// 308 keeps the method and body, so a POST sent to http:// by mistake is
/// repeated as a POST on https://.
pub(crate) fn redirect(req: &Request<Incoming>, https_port: u16) -> Response<ProxyBody> {
    let authority = req.uri().authority().cloned().or_else(|| {
        let h = req.headers().get(header::HOST)?.to_str().ok()?;
        h.parse::<http::uri::Authority>().ok()
    });
    // Only a host[:port] that routing would take: http's parser lets through
    // authorities such as `([::1]:8443` that no Location can carry.
    let host = authority
        .filter(|a| headers::valid_host(a.as_str().as_bytes()))
        .map(|a| a.host().to_owned());
    // Only origin- and absolute-form targets name a path to send the client
    // to: an asterisk-form `*` would be glued to the port of the Location.
    let (Some(host), true) = (host, req.uri().path().starts_with('/')) else {
        return respond::bad_request(None);
    };
    // http accepts UTF-8 in a target as it was sent; a Location is an
    // ASCII URI, so such bytes are percent-encoded.
    let path = utf8_percent_encode(req.uri().path_and_query().map_or("/", |pq| pq.as_str()), CONTROLS);
    let location = if https_port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{https_port}{path}")
    };
    let Ok(location) = HeaderValue::from_str(&location) else {
        return respond::bad_request(None);
    };
    let mut response = respond::local(StatusCode::PERMANENT_REDIRECT, "308 use https\n", None);
    response.headers_mut().insert(header::LOCATION, location);
    response
}
