//! The proxy service: request -> route -> forward to the upstream, tunnel an
//! upgrade, or answer locally. Every problem on the way is a `Refusal`,
//! answered in one place (`refusal.rs`); nothing a client or upstream sends
//! can make this code panic.

pub mod access;
pub(crate) mod access_line;
pub(crate) mod action;
pub mod body;
pub(crate) mod buffered_request;
pub(crate) mod buffered_response;
pub mod client_addr;
pub mod client_cert;
pub(crate) mod forwarded;
pub mod headers;
pub mod path;
pub mod placeholder;
pub(crate) mod proxy_out;
pub(crate) mod refusal;
pub mod request_body;
pub mod request_id;
pub mod respond;
pub(crate) mod rewrite;
pub mod routes;
pub mod rules;
pub(crate) mod stall;
pub mod tunnel;
pub mod upgrade;
pub mod upstream;
pub(crate) mod upstream_urls;

use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use http::uri::Authority;
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, RouteConfig};
use crate::connections::{Conn, ConnRegistry};
use crate::metrics::{Buffered, Metrics, RouteMetrics};
use access::AccessRecord;
use body::ProxyBody;
use refusal::{HeadRefusal, Refusal};
use request_body::ReadAheadError;
use routes::{How, Route, RouteTable};
use upgrade::{Accept, Asked};

/// What a route needs at request time, built once at start.
#[derive(Debug)]
pub struct RouteState {
    /// The route's servers: its pool, or its one upstream URL.
    group: Arc<upstream::group::Group>,
    /// The upstream's authority as a Host value, for clients that sent none.
    host_header: HeaderValue,
    /// `http://host:port` or `https://host:port`, for logs.
    label: Arc<str>,
    metrics: RouteMetrics,
    /// Fired when a reload has removed or changed the route and
    /// `tunnel_drain_after_reload` has passed: its tunnels close.
    pub(crate) retired: CancellationToken,
}

/// The routing state in service: what a reload replaces whole. Each
/// request takes the one in service when it arrives and keeps it until it
/// is answered.
pub type Live = arc_swap::ArcSwap<Shared>;

/// State shared by every connection: one generation of the configuration.
#[derive(Debug)]
pub struct Shared {
    routes: RouteTable<RouteState>,
    access_log: bool,
    /// `server.underscores_in_headers`.
    underscores_in_headers: bool,
    /// Tunnels outlive the HTTP connection that started them, so they are
    /// tracked here for the shutdown drain.
    pub tunnels: TaskTracker,
    pub tunnel_cancel: CancellationToken,
    pub metrics: Arc<Metrics>,
    /// `[tls] hsts`, ready to insert.
    hsts: Option<HeaderValue>,
    /// Requests answered before a route was chosen (400, 404, 405).
    unrouted: RouteMetrics,
    pub connections: Arc<ConnRegistry>,
    /// Every pool of servers once, for health checks and `/upstreams`.
    pub(crate) groups: Vec<Arc<upstream::group::Group>>,
    /// Every pool by its definition, for the next configuration to keep.
    registry: upstream::groups::Registry,
    /// `[headers]`.
    headers: crate::config::HeaderRules,
    /// Some response rule names a placeholder: each request's facts are
    /// kept for it.
    keep_request_facts: bool,
    /// `trusted_proxies` and `real_ip_header`.
    pub real_ip: client_addr::RealIp,
    /// `echo_request_id` and `trace_context`.
    pub request_ids: request_id::RequestIds,
    /// `client_body_timeout`.
    client_body_timeout: Option<std::time::Duration>,
    /// `[compression]` and whether any route compresses.
    compress: crate::serve::compress::Settings,
    /// `[server]`'s `error_pages`, for the answers of no route.
    error_pages: Arc<crate::config::ErrorPages>,
}

/// What every generation of the configuration shares.
struct Lasting {
    tunnels: TaskTracker,
    tunnel_cancel: CancellationToken,
    metrics: Arc<Metrics>,
    connections: Arc<ConnRegistry>,
}

/// Facts about one client connection, computed once per connection.
#[derive(Debug)]
pub struct ConnInfo {
    /// The connection's entry in the live-connection registry.
    pub conn: Arc<Conn>,
    pub peer: SocketAddr,
    pub peer_ip: HeaderValue,
    /// `https` on the TLS listeners, `http` on the plain one.
    pub proto: HeaderValue,
    /// The client certificate the handshake verified, if any.
    pub client_cert: Option<client_cert::Verified>,
    /// The listening port the connection arrived on (0 when unknown).
    pub server_port: u16,
    /// The connection's client: the peer, or what its PROXY header named.
    /// A request's own may differ (see [`client_addr::ClientAddr::of`]).
    pub client: client_addr::ClientAddr,
    /// The listening address the client reached, for a PROXY header sent
    /// upstream.
    pub local: Option<SocketAddr>,
}

static HTTPS: HeaderValue = HeaderValue::from_static("https");
static HTTP: HeaderValue = HeaderValue::from_static("http");
/// The headers a request can gain on its way upstream: X-Forwarded-For,
/// X-Real-IP, X-Forwarded-Proto, X-Forwarded-Host, X-Client-Cert-Verify and
/// Host, which an HTTP/2 request carries as `:authority` instead. A
/// verified client certificate adds two more, rare enough to pay for a
/// second growth.
const FORWARDING_HEADERS: usize = 6;

impl ConnInfo {
    pub fn new(conn: Arc<Conn>, tls: bool) -> Self {
        let peer = conn.peer;
        let ip = peer.ip().to_canonical().to_string();
        // An IP address renders as ASCII digits, dots, colons and hex letters,
        // all valid in a header value.
        let peer_ip = HeaderValue::from_str(&ip).unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        let proto = if tls { HTTPS.clone() } else { HTTP.clone() };
        ConnInfo {
            conn,
            peer,
            peer_ip,
            proto,
            client_cert: None,
            server_port: 0,
            client: client_addr::ClientAddr::from_socket(peer),
            local: None,
        }
    }

    /// With the listening port the connection arrived on.
    pub fn with_server_port(mut self, port: u16) -> Self {
        self.server_port = port;
        self
    }

    /// With the listening address the client reached.
    pub fn with_local(mut self, local: Option<SocketAddr>) -> Self {
        self.local = local;
        self
    }

    /// With the client certificate the TLS handshake verified.
    pub fn with_client_cert(mut self, cert: Option<&crate::tls::peer::ClientCert>) -> Self {
        self.client_cert = cert.and_then(client_cert::Verified::new);
        self
    }
}

#[derive(Debug, thiserror::Error)]
#[error("route {path}: upstream {upstream} is not a valid URI authority")]
pub struct RouteError {
    path: String,
    upstream: String,
}

impl Shared {
    /// `upstream_tls` is what `upstream::tls::load` made of `config.routes`.
    pub fn new(
        config: &Config,
        upstream_tls: &[Option<upstream::tls::RouteTls>],
        metrics: Arc<Metrics>,
        connections: Arc<ConnRegistry>,
    ) -> Result<Self, RouteError> {
        let lasting = Lasting {
            tunnels: TaskTracker::new(),
            tunnel_cancel: CancellationToken::new(),
            metrics,
            connections,
        };
        Self::build(config, upstream_tls, lasting, None)
    }

    /// The state of `config`, replacing this one: what lasts the process's
    /// life is shared, and the pools that did not change are kept (see
    /// [`upstream::groups`]).
    pub fn next(
        &self,
        config: &Config,
        upstream_tls: &[Option<upstream::tls::RouteTls>],
    ) -> Result<Self, RouteError> {
        let lasting = Lasting {
            tunnels: self.tunnels.clone(),
            tunnel_cancel: self.tunnel_cancel.clone(),
            metrics: self.metrics.clone(),
            connections: self.connections.clone(),
        };
        Self::build(config, upstream_tls, lasting, Some(&self.registry))
    }

    fn build(
        config: &Config,
        upstream_tls: &[Option<upstream::tls::RouteTls>],
        lasting: Lasting,
        before: Option<&upstream::groups::Registry>,
    ) -> Result<Self, RouteError> {
        let Lasting {
            tunnels,
            tunnel_cancel,
            metrics,
            connections,
        } = lasting;
        let mut groups = upstream::groups::Groups::new(config, metrics.clone(), before);
        let routes = config
            .routes
            .iter()
            .enumerate()
            .map(|(index, rc): (usize, &RouteConfig)| {
                // A route without its TLS gets a plain client, which refuses
                // an https:// URI: a 502, never plaintext to a TLS upstream.
                let tls = upstream_tls.get(index).and_then(Option::as_ref);
                let authority: Authority = rc.upstream.authority().parse().map_err(|_| RouteError {
                    path: rc.path.clone(),
                    upstream: rc.upstream.to_string(),
                })?;
                let host_header = HeaderValue::from_str(authority.as_str()).map_err(|_| RouteError {
                    path: rc.path.clone(),
                    upstream: rc.upstream.to_string(),
                })?;
                let metrics_label = format!("{}{}", rc.host.as_deref().unwrap_or(""), rc.path);
                Ok(Route {
                    config: rc.clone(),
                    state: RouteState {
                        group: groups.for_route(rc, tls, &metrics_label),
                        host_header,
                        label: match &rc.pool {
                            Some(pool) => pool.as_str().into(),
                            None => rc.upstream.to_string().into(),
                        },
                        metrics: metrics.route(&metrics_label),
                        retired: CancellationToken::new(),
                    },
                })
            })
            .collect::<Result<Vec<_>, RouteError>>()?;
        let (groups, registry) = groups.finish();
        Ok(Shared {
            routes: RouteTable::new(routes),
            access_log: config.log.access_log,
            underscores_in_headers: config.server.underscores_in_headers,
            tunnels,
            tunnel_cancel,
            unrouted: metrics.route("-"),
            // The configuration checked the value; a failure here only
            // means no header, never a panic.
            hsts: config
                .tls
                .hsts
                .as_deref()
                .and_then(|v| HeaderValue::from_str(v).ok()),
            metrics,
            connections,
            groups,
            registry,
            headers: config.headers.clone(),
            keep_request_facts: rules::responses_need_request(
                &config.headers,
                config.routes.iter().map(|r| &r.shaping.headers),
            ),
            real_ip: client_addr::RealIp::new(&config.server),
            request_ids: request_id::RequestIds::new(&config.server),
            client_body_timeout: config.server.client_body_timeout,
            compress: crate::serve::compress::Settings::new(config),
            error_pages: config.server.error_pages.clone(),
        })
    }

    /// Starts the pools' tasks: active health checks, and the resolution
    /// of their names every `resolve_interval`; they stop when `stop` fires.
    pub fn start_pool_tasks(&self, stop: &CancellationToken) {
        self.start_new_pool_tasks(stop, None);
    }

    /// Starts the tasks of the pools that `before` did not have; each
    /// stops when `stop` fires or a reload leaves its pool out.
    pub fn start_new_pool_tasks(&self, stop: &CancellationToken, before: Option<&Shared>) {
        let new = self
            .groups
            .iter()
            .filter(|g| !before.is_some_and(|b| b.groups.iter().any(|old| Arc::ptr_eq(old, g))));
        for group in new {
            let stop = stop.child_token();
            let retired = group.retired.clone();
            let stop_on_retire = stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = retired.cancelled() => stop_on_retire.cancel(),
                    () = stop_on_retire.cancelled() => {}
                }
            });
            if group.health.is_some() {
                tokio::spawn(upstream::health::run(group.clone(), stop.clone()));
            }
            if group.resolver.as_ref().is_some_and(|r| r.interval.is_some()) {
                tokio::spawn(upstream::resolve::run(group.clone(), stop.clone()));
            }
        }
    }

    /// Stops the tasks of the pools that `next` does not keep.
    pub fn retire_pools_left_out_of(&self, next: &Shared) {
        for group in &self.groups {
            if !next.groups.iter().any(|g| Arc::ptr_eq(g, group)) {
                group.retired.cancel();
            }
        }
    }

    pub fn routes(&self) -> &RouteTable<RouteState> {
        &self.routes
    }
}

/// Handles one request from a client. Never fails: every problem is a response.
pub async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    mut req: Request<Incoming>,
) -> Response<ProxyBody> {
    let start = Instant::now();
    let request_id = request_id::begin(&shared, &conn, &mut req);
    let facts = shared
        .keep_request_facts
        .then(|| rules::RequestFacts::capture(&req, &conn));
    let asked = shared.compress.ask(&req);
    let mut routed = None;
    let mut met = None;
    let mut response = route_and_forward(&shared, &conn, req, &request_id, &mut routed, &mut met).await;
    if shared.request_ids.echo {
        response
            .headers_mut()
            .insert(request_id::X_REQUEST_ID.clone(), request_id);
    }
    if let Some(hsts) = &shared.hsts {
        // Only over TLS: a browser ignores the header on plain HTTP anyway.
        if conn.proto == HTTPS && !response.headers().contains_key(header::STRICT_TRANSPORT_SECURITY) {
            response
                .headers_mut()
                .insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
    }
    let answered_by = met.map(|r| &r.config.shaping.headers);
    rules::apply_response(&mut response, &shared.headers, answered_by, &conn, facts.as_ref());
    let response = shared
        .compress
        .outgoing(response, asked.as_ref(), met.map(|r| &r.config));
    let metrics = routed.as_ref().map_or(&shared.unrouted, |r| &r.state.metrics);
    metrics.record(response.status().as_u16(), start.elapsed().as_secs_f64());
    response
}

/// Routes `req`, whose ID is `request_id`, and forwards it; `routed`
/// receives the route that forwarded or answered it by itself, if any, for
/// the metrics, and `met` the route met, refusals included (its header
/// rules and compression apply).
async fn route_and_forward<'s>(
    shared: &'s Arc<Shared>,
    conn: &Arc<ConnInfo>,
    mut req: Request<Incoming>,
    request_id: &HeaderValue,
    routed: &mut Option<&'s Route<RouteState>>,
    met: &mut Option<&'s Route<RouteState>>,
) -> Response<ProxyBody> {
    let mut log = shared.access_log.then(|| {
        Box::new(AccessRecord {
            client: client_addr::ClientAddr::of(req.extensions(), conn).ip,
            method: req.method().clone(),
            target: req
                .uri()
                .path_and_query()
                .map_or_else(|| req.uri().to_string(), |pq| pq.to_string()),
            status: 0,
            bytes: 0,
            upstream: None,
            start: Instant::now(),
            request_id: Some(request_id.clone()),
            details: access_line::active().then(|| {
                let client = client_addr::ClientAddr::of(req.extensions(), conn);
                access_line::Details::new(&req, client.port, conn.proto == HTTPS)
            }),
        })
    });

    let (route, upgrade) = match rewrite_head(shared, conn, &mut req) {
        Ok(decided) => decided,
        Err((refusal, route)) => {
            *met = route;
            // A route's own answer counts as the route's; a refusal of
            // what the route does not offer does not.
            if matches!(refusal, Refusal::Local(_)) {
                *routed = route;
            }
            return refusal.answer(shared, conn, route, log);
        }
    };
    *met = Some(route);
    *routed = Some(route);
    if let Some(l) = log.as_mut() {
        l.upstream = Some(route.state.label.clone());
    }
    if let Some(files) = &route.config.files {
        log = match crate::serve::answer(files, &req, log) {
            crate::serve::Answer::Done(response) => return response,
            crate::serve::Answer::Forward(log) => log,
        };
    }
    match forward(shared, conn, req, route, upgrade, &mut log).await {
        Ok(response) => response,
        Err(refusal) => refusal.answer(shared, conn, Some(route), log.take()),
    }
}

/// The decisions taken on a request head alone: a head whose target,
/// framing or host could be read two ways is refused, the route is found,
/// and the head is rewritten in place into the one the upstream receives.
/// Returns the route and, for a WebSocket handshake, what the upstream's
/// 101 must accept; or the refusal, with the route once one was chosen.
pub(crate) fn rewrite_head<'s, B>(
    shared: &'s Shared,
    conn: &ConnInfo,
    req: &mut Request<B>,
) -> Result<(&'s Arc<Route<RouteState>>, Option<Accept>), HeadRefusal<'s>> {
    let found = find_route(shared, conn.server_port, req).map_err(|refusal| (refusal, None))?;
    let route = found.route;
    let upgrade = rewrite_for_route(shared, conn, req, found).map_err(|refusal| (refusal, Some(&**route)))?;
    Ok((route, upgrade))
}

/// The route of a request head, and what it was chosen by.
struct Found<'s> {
    route: &'s Arc<Route<RouteState>>,
    /// The request's authority or Host, if it has one.
    host: Option<HeaderValue>,
    /// The normalised path, when it differs from the target's.
    normalized: Option<String>,
    /// How the route matched the path.
    how: How,
}

/// The route of a request head that can be read only one way.
fn find_route<'s, B>(shared: &'s Shared, port: u16, req: &Request<B>) -> Result<Found<'s>, Refusal> {
    if req.method() == Method::CONNECT {
        return Err(Refusal::ConnectMethod);
    }
    // Only origin-form and absolute-form targets name a resource here; an
    // authority-form or asterisk-form target has no path to route.
    if !req.uri().path().starts_with('/') {
        return Err(Refusal::NoPath);
    }
    // HTTP/1.x framing: one final `chunked` and nothing else. Anything
    // subtler (`chunked, chunked`, two lines) is where request smuggling
    // lives; the connection is closed so no byte after it is read as a
    // request.
    if req.version() < Version::HTTP_2 && !headers::transfer_encoding_is_plain_chunked(req.headers()) {
        return Err(Refusal::AmbiguousFraming);
    }
    // Both Content-Length and Transfer-Encoding (RFC 9112 section 6.1): the
    // two readings of the body disagree on where the next request starts.
    if req.extensions().get::<headers::BothFramings>().is_some() {
        return Err(Refusal::AmbiguousFraming);
    }

    // The authority of an absolute-form or HTTP/2 request wins over Host
    // (RFC 9112 section 3.2.2); HTTP/2 requests usually carry no Host at all.
    // More than one Host, or one that is not a host[:port], is a 400
    // (RFC 9112 section 3.2): routing on it would be routing on garbage.
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let (first_host, second_host) = (hosts.next(), hosts.next());
    if second_host.is_some() {
        return Err(Refusal::BadHost);
    }
    let host: Option<HeaderValue> = match req.uri().authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).ok(),
        None => first_host.cloned(),
    };
    match &host {
        Some(h) if !headers::valid_host(h.as_bytes()) => return Err(Refusal::BadHost),
        None if req.version() == Version::HTTP_11 => return Err(Refusal::BadHost),
        _ => {}
    }
    let host_str = host.as_ref().and_then(|h| h.to_str().ok());

    // Routes match the path as the application will read it, so that
    // `/x/../admin` cannot pass for a route other than `/admin`.
    // `Some` only when the path changed; nearly every request's path is
    // normal already and is not copied.
    let normalized: Option<String> = match path::normalize(req.uri().path()) {
        Ok(Cow::Borrowed(_)) => None,
        Ok(Cow::Owned(normalized)) => Some(normalized),
        Err(bad) => {
            return Err(Refusal::BadPath {
                bad,
                path: req.uri().path().to_owned(),
            })
        }
    };
    let routed_path = normalized.as_deref().unwrap_or(req.uri().path());
    let Some(matched) = shared.routes.find(host_str, port, routed_path) else {
        return Err(Refusal::NoRoute);
    };
    Ok(Found {
        route: matched.route,
        host,
        normalized,
        how: matched.how,
    })
}

/// What the route `find_route` found allows of the request, then the head
/// rewritten in place into the one the upstream receives; for a WebSocket
/// handshake, what the upstream's 101 must accept.
fn rewrite_for_route<B>(
    shared: &Shared,
    conn: &ConnInfo,
    req: &mut Request<B>,
    found: Found<'_>,
) -> Result<Option<Accept>, Refusal> {
    let Found {
        route,
        host,
        normalized,
        how,
    } = found;
    if route.config.require_client_cert && conn.client_cert.is_none() {
        return Err(Refusal::ClientCertRequired);
    }
    let routed_path = normalized.as_deref().unwrap_or(req.uri().path());
    if let Some(local) = action::decide(&route.config, how, conn, req, host.as_ref(), routed_path) {
        return Err(Refusal::Local(local?));
    }
    if route.config.files.is_some() {
        // Files are looked up by the path routed on, whatever the head
        // forwarded to a fallback becomes.
        let file_path = crate::serve::FilePath(routed_path.to_owned());
        req.extensions_mut().insert(file_path);
    }

    let get = req.method() == Method::GET;
    let upgrade = match upgrade::classify(get, req.version(), req.headers_mut()) {
        Asked::Nothing => None,
        Asked::Removed => {
            shared.metrics.defences.upgrades_removed.inc();
            None
        }
        Asked::WebSocket(_) if !route.config.websocket => return Err(Refusal::WebSocketOff),
        Asked::WebSocket(accept) => Some(accept),
        Asked::BadWebSocket(why) => return Err(Refusal::BadWebSocket(why)),
    };

    // Rewrite the request in place into one for the upstream, whose target
    // is in origin form, with the path the route was chosen by unless the
    // route forwards paths exactly as sent, rewritten as the route says.
    let path_and_query = rewrite::target(&route.config, req.uri(), normalized.as_deref())?;
    let sent = std::mem::replace(req.uri_mut(), Uri::from(path_and_query));
    let client_version = req.version();
    *req.version_mut() = Version::HTTP_11;
    let client_addr = client_addr::ClientAddr::of(req.extensions(), conn).clone();
    let client_ip = client_addr.value.clone();
    {
        let h = req.headers_mut();
        // hyper sizes the map for the headers it parsed; those this hop
        // adds would grow it (rehashing every entry) once or twice. One
        // reservation grows it once.
        h.reserve(FORWARDING_HEADERS);
        headers::remove_hop_by_hop(h, upgrade.is_some());
        let dropped = headers::drop_underscored(h, shared.underscores_in_headers);
        if dropped > 0 {
            shared.metrics.defences.underscore_headers.inc_by(dropped as u64);
        }
        if client_version == Version::HTTP_2 {
            headers::join_cookies(h);
        }
        headers::add_forwarding(h, &client_ip, &conn.proto, host.as_ref());
        if route.config.forwarded {
            forwarded::add(h, client_addr.ip, host.as_ref(), &conn.proto);
        }
        client_cert::forward(h, conn.proto == HTTPS, conn.client_cert.as_ref());
        // An HTTP/1.0 client may send no Host; the upstream speaks
        // HTTP/1.1, which requires one, so it gets its own authority.
        let host_out = match host {
            Some(host) => host,
            None => route.state.host_header.clone(),
        };
        h.insert(header::HOST, host_out);
        rules::apply_request(
            h,
            &shared.headers,
            &route.config.shaping.headers,
            &route.state.host_header,
            (conn, SocketAddr::new(client_addr.ip, client_addr.port)),
            (normalized.as_deref().unwrap_or(sent.path()), sent.query()),
        );
    }
    Ok(upgrade)
}

/// Forwards a request whose head [`rewrite_head`] has rewritten, and hands
/// back the upstream's answer, or tunnels an upgrade. `log` goes with the
/// response; on a refusal it is left for the answer.
async fn forward(
    shared: &Arc<Shared>,
    conn: &Arc<ConnInfo>,
    mut req: Request<Incoming>,
    route: &Arc<Route<RouteState>>,
    upgrade: Option<Accept>,
    log: &mut Option<Box<AccessRecord>>,
) -> Result<Response<ProxyBody>, Refusal> {
    let client_upgrade = upgrade.map(|accept| (accept, hyper::upgrade::on(&mut req)));
    let rc = &route.config;
    if let (Some(_), Some(local)) = (rc.send_proxy_protocol, conn.local) {
        let client = client_addr::ClientAddr::of(req.extensions(), conn);
        let client = SocketAddr::new(client.ip, client.port);
        req.extensions_mut()
            .insert(proxy_out::SendProxy { client, local });
    }

    let (mut parts, body) = req.into_parts();
    // The host the client named, for the upstream's URLs in the response.
    let client_host = (rc.shaping.upstream_urls.any())
        .then(|| parts.headers.get(&headers::X_FORWARDED_HOST).cloned())
        .flatten();
    // A declared length over max_body is refused before anything is read
    // or sent.
    if let Some(max_body) = rc.max_body {
        let length = body.size_hint().lower();
        if length > max_body {
            return Err(Refusal::TooLargeDeclared { max_body, length });
        }
    }
    let wait = shared.client_body_timeout.unwrap_or(rc.read_timeout);
    let (body, tracking) = match rc.buffering.request {
        Some(memory) if !body.is_end_stream() => {
            let limits = buffered_request::Limits {
                memory,
                max_body: rc.max_body,
                wait,
                temp_dir: rc.buffering.temp_dir.as_deref().map(std::path::PathBuf::as_path),
            };
            // Boxed, as the rare case: its state would otherwise make every
            // request's future larger.
            let (body, tracking, spilled) = Box::pin(buffered_request::read_whole(body, limits)).await?;
            route.state.metrics.buffered(Buffered::Request);
            if spilled {
                route.state.metrics.buffered(Buffered::RequestSpilled);
            }
            // The client has been told to go on, and has sent it all.
            parts.headers.remove(header::EXPECT);
            (body, tracking)
        }
        _ => match request_body::RequestBody::prepare(body, wait, rc.max_body).await {
            Ok((body, tracking)) => (body.stall_after(shared.client_body_timeout), tracking),
            Err(ReadAheadError::Malformed(e)) => return Err(Refusal::MalformedBody(e)),
            Err(ReadAheadError::Timeout) => return Err(Refusal::BodyTimeout),
            Err(ReadAheadError::TooLarge { limit }) => {
                return Err(Refusal::TooLargeAhead { max_body: limit })
            }
        },
    };
    let client_failed = tracking.client_failed;
    let group = &route.state.group;
    let key = group.hash_of(&parts, client_addr::ClientAddr::of(&parts.extensions, conn).ip);
    let exchange = group.request(Request::from_parts(parts, body), key);
    // The wait for response headers starts once the request body is sent.
    let deadline = async {
        if let Some(sent) = tracking.sent {
            let _ = sent.await;
        }
        tokio::time::sleep(rc.read_timeout).await;
    };
    let outcome = tokio::select! {
        r = exchange => Ok(r),
        () = deadline => Err(()),
    };
    let (response, lease) = match outcome {
        Ok(Ok(exchanged)) => exchanged,
        Ok(Err(upstream::Error::AllDown(pool))) => return Err(Refusal::PoolDown { pool }),
        // The client broke its own body mid-way: its fault, not the upstream's.
        Ok(Err(err)) if request_body::stalled(&err) => return Err(Refusal::BodyTimeout),
        Ok(Err(_)) if client_failed.load(Ordering::Relaxed) => return Err(Refusal::ClientBodyFailed),
        Ok(Err(err)) if request_body::cut_off(&err).is_some() => {
            return Err(Refusal::TooLargeSent {
                max_body: rc.max_body,
            })
        }
        Ok(Err(err)) => return Err(Refusal::Upstream(err)),
        Err(()) => {
            return Err(Refusal::NoHead {
                timeout: rc.read_timeout,
            })
        }
    };

    let status = response.status();
    if let Some(l) = log.as_mut() {
        l.status = status.as_u16();
        if route.config.pool.is_some() {
            l.upstream = Some(lease.server.label.clone());
        }
    }
    let mut response = match crate::serve::error_pages::intercept(&rc.error_pages, response, log) {
        Ok(page) => return Ok(page),
        Err(response) => response,
    };

    if status == StatusCode::SWITCHING_PROTOCOLS {
        // An upstream switching protocols unasked is broken.
        let Some((accept, client_upgrade)) = client_upgrade else {
            return Err(Refusal::SwitchUnasked);
        };
        // Only the WebSocket the client asked for is tunnelled: a 101 to
        // anything else, or one that did not read the client's key, is not.
        accept.check(response.headers()).map_err(Refusal::ForgedSwitch)?;
        let (mut parts, body) = response.into_parts();
        let upstream_upgrade = body.into_upgraded().ok_or(Refusal::NotUpgraded)?;
        headers::remove_hop_by_hop(&mut parts.headers, true);
        let retired = route.state.retired.clone();
        tunnel::start(shared, conn, rc, retired, client_upgrade, upstream_upgrade, lease);
        // The connection now carries the tunnel: it never returns to the pool.
        return Ok(Response::from_parts(
            parts,
            ProxyBody::local(bytes::Bytes::new(), log.take()),
        ));
    }

    headers::normalize_response_length(response.headers_mut()).map_err(Refusal::ResponseFraming)?;
    headers::remove_hop_by_hop(response.headers_mut(), false);
    if rc.shaping.upstream_urls.any() {
        upstream_urls::rewrite(response.headers_mut(), rc, &conn.proto, client_host.as_ref());
    }
    // `X-Accel-Buffering` is for the proxy: it goes whatever the route.
    let may_buffer = buffered_response::allowed(response.headers_mut());
    let buffer = rc.buffering.response.filter(|_| may_buffer);
    let (parts, mut body) = response.into_parts();
    if let Some(limit) = buffer.filter(|_| !body.is_end_stream()) {
        let ahead = Box::pin(buffered_response::read_ahead(&mut body, limit, rc.read_timeout));
        return match ahead.await? {
            buffered_response::Ahead::Whole(whole) => {
                route.state.metrics.buffered(Buffered::Response);
                Ok(Response::from_parts(parts, ProxyBody::local(whole, log.take())))
            }
            buffered_response::Ahead::Part(ahead) => {
                let mut body = ProxyBody::upstream(body, rc.read_timeout, log.take()).after(ahead);
                body.hold(lease);
                Ok(Response::from_parts(parts, body))
            }
        };
    }
    // A small body of known length is read whole before the head goes out,
    // so head and body leave in one write (one TLS record, one syscall)
    // rather than two. Anything larger, or of unknown length (server-sent
    // events), streams as it comes.
    let small = body
        .size_hint()
        .exact()
        .is_some_and(|n| n > 0 && n <= COALESCE_MAX);
    if small {
        // Usually the body came in with the head and is there already: it
        // is then taken as it is, with no timer and no collecting.
        if let Some(whole) = body.take_whole() {
            return Ok(Response::from_parts(parts, ProxyBody::local(whole, log.take())));
        }
        let mut collect = std::pin::pin!(body.collect());
        let read = match std::future::poll_fn(|cx| Poll::Ready(collect.as_mut().poll(cx))).await {
            Poll::Ready(read) => Ok(read),
            Poll::Pending => tokio::time::timeout(rc.read_timeout, collect).await,
        };
        return match read {
            Ok(Ok(whole)) => Ok(Response::from_parts(
                parts,
                ProxyBody::local(whole.to_bytes(), log.take()),
            )),
            Ok(Err(err)) => Err(Refusal::BodyFailed(err)),
            Err(_) => Err(Refusal::BodyStalled {
                timeout: rc.read_timeout,
            }),
        };
    }
    let mut body = ProxyBody::upstream(body, rc.read_timeout, log.take());
    body.hold(lease);
    Ok(Response::from_parts(parts, body))
}

/// The largest response body of known length that is read whole before the
/// response head is sent.
const COALESCE_MAX: u64 = 64 * 1024;
