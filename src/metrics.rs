//! Prometheus metrics: requests by route and status class, latency by
//! route, connections, tunnels, TLS handshakes (and why they failed), the
//! connection errors a flood leaves (HTTP/2 GOAWAYs by error code, HTTP/1.1
//! heads refused for their size), bytes, upstream errors, idle upstream
//! connections, certificate expiry and chain length, and reloads. Handles
//! for the hot path are made once per route at start, so counting a
//! request is an atomic increment, not a label lookup; values that already
//! live elsewhere (bytes, certificates, reload counts) are read at scrape
//! time by collectors.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::connections::ConnRegistry;
use crate::failure::{ConnError, HandshakeFailure};
use crate::tls::certs::LoadedCert;
use crate::tls::client_auth::Rejection;
use crate::tls::reload::ReloadStats;
use crate::tls::store::CertStore;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamErrorLabels {
    route: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandshakeLabels {
    pub version: String,
    pub cipher: String,
    pub result: String,
}

/// Why an upstream exchange failed, for `portcullis_upstream_errors_total`.
#[derive(Debug, Clone, Copy)]
pub enum UpstreamError {
    Connect = 0,
    Timeout = 1,
    Protocol = 2,
}

/// What `request_buffering` and `response_buffering` did, for
/// `portcullis_buffered_total`.
#[derive(Debug, Clone, Copy)]
pub enum Buffered {
    /// A request body read whole before the upstream was contacted.
    Request = 0,
    /// Such a body that went partly to a temporary file.
    RequestSpilled = 1,
    /// A response read whole before its head was sent, its upstream
    /// connection freed.
    Response = 2,
}

/// The per-route handles the request path uses.
#[derive(Debug, Clone)]
pub struct RouteMetrics {
    /// Indexed by status class: 1xx .. 5xx.
    by_class: [Counter; 5],
    latency: Histogram,
    upstream_errors: [Counter; 3],
    buffered: [Counter; 3],
}

impl RouteMetrics {
    /// Counts a response with `status`, `seconds` after the request arrived.
    pub fn record(&self, status: u16, seconds: f64) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].inc();
        self.latency.observe(seconds);
    }

    pub fn upstream_error(&self, kind: UpstreamError) {
        self.upstream_errors[kind as usize].inc();
    }

    pub fn buffered(&self, what: Buffered) {
        self.buffered[what as usize].inc();
    }
}

/// Every metric of the process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
    buffered: Family<UpstreamErrorLabels, Counter>,
    handshakes: Family<HandshakeLabels, Counter>,
    pub connections_active: Gauge,
    pub connections_total: Counter,
    /// Connections closed at accept because their client address already
    /// had `max_connections_per_ip` open (`reason="per_ip"`).
    pub connections_rejected_per_ip: Counter,
    /// Connections closed after the handshake because they spoke another
    /// HTTP than ALPN chose: `[after h2, after http/1.1]`
    /// (`reason="alpn_h2"`, `reason="alpn_http1"`).
    pub connections_rejected_alpn: [Counter; 2],
    /// TLS handshakes failed for the client's certificate, indexed by
    /// [`Rejection`].
    client_cert_rejected: [Counter; 3],
    /// `tls_handshakes_total{result="failed"}`.
    handshakes_failed: Counter,
    /// Failed handshakes, indexed by [`HandshakeFailure`].
    handshake_failures: [Counter; HandshakeFailure::ALL.len()],
    /// GOAWAYs with an error code the proxy sent, by the code's name.
    h2_goaway: Family<RejectLabels, Counter>,
    /// Idle upstream connections kept by each route's pool.
    upstream_idle: Family<RouteLabels, Gauge>,
    /// HTTP/1.1 heads hyper refused: 431, 414.
    head_too_large: [Counter; 2],
    pub tunnels_active: Gauge,
    /// What the request-path defences refused or removed, by reason.
    pub defences: Defences,
}

/// Counters of the request-path defences: requests refused before routing
/// or forwarding, and what was removed from requests that went on.
#[derive(Debug, Clone)]
pub struct Defences {
    /// Request header names dropped for holding `_`.
    pub underscore_headers: Counter,
    /// `Upgrade` tokens other than a WebSocket's, removed from requests
    /// that then went on as ordinary ones.
    pub upgrades_removed: Counter,
    refused: [Counter; Refused::COUNT],
}

/// Why a request was refused by a defence, for
/// `portcullis_requests_refused_total{reason}`.
#[derive(Debug, Clone, Copy)]
pub enum Refused {
    /// The path climbs above the root.
    PathClimbs = 0,
    /// The path holds a `%` without two hex digits.
    PathEscape = 1,
    /// `Upgrade: websocket` that is no valid handshake.
    BadWebSocket = 2,
    /// A WebSocket handshake on a route with `websocket = false`.
    WebSocketOff = 3,
    /// The upstream's 101 did not accept the client's handshake.
    ForgedSwitch = 4,
}

impl Refused {
    const COUNT: usize = 5;
    const LABELS: [&'static str; Refused::COUNT] = [
        "path_climbs",
        "path_escape",
        "bad_websocket",
        "websocket_off",
        "upstream_101_refused",
    ];
}

impl Defences {
    fn new(registry: &mut Registry) -> Self {
        let dropped = Family::<RejectLabels, Counter>::default();
        registry.register(
            "request_headers_dropped",
            "Request header fields removed before forwarding, by reason (underscore: a name with `_`)",
            dropped.clone(),
        );
        let underscore_headers = dropped.get_or_create_owned(&RejectLabels {
            reason: "underscore".to_owned(),
        });
        let upgrades_removed = Counter::default();
        registry.register(
            "upgrades_removed",
            "Upgrade headers other than a WebSocket handshake, removed from requests that went on as ordinary ones",
            upgrades_removed.clone(),
        );
        let refused = Family::<RejectLabels, Counter>::default();
        registry.register(
            "requests_refused",
            "Requests refused by the request-path defences, by reason (path_climbs, path_escape, bad_websocket, websocket_off, upstream_101_refused)",
            refused.clone(),
        );
        let refused = Refused::LABELS.map(|label| {
            refused.get_or_create_owned(&RejectLabels {
                reason: label.to_owned(),
            })
        });
        Defences {
            underscore_headers,
            upgrades_removed,
            refused,
        }
    }

    pub fn refused(&self, reason: Refused) {
        self.refused[reason as usize].inc();
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ])
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("portcullis");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by route and status class",
            requests.clone(),
        );
        let latency =
            Family::<RouteLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "request_duration_seconds",
            "Time from request to response headers, by route",
            latency.clone(),
        );
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Upstream exchanges that failed, by route and kind (connect, timeout, protocol)",
            upstream_errors.clone(),
        );
        let buffered = Family::<UpstreamErrorLabels, Counter>::default();
        registry.register(
            "buffered",
            "Bodies buffered, by route and kind (request: read whole before the upstream was contacted; request_spilled: partly in a temporary file; response: read whole, its upstream connection freed before the client read it)",
            buffered.clone(),
        );
        let handshakes = Family::<HandshakeLabels, Counter>::default();
        registry.register(
            "tls_handshakes",
            "TLS handshakes, by protocol version, cipher suite and result",
            handshakes.clone(),
        );
        let connections_active = Gauge::default();
        registry.register(
            "connections_active",
            "Client connections open now",
            connections_active.clone(),
        );
        let connections_total = Counter::default();
        registry.register(
            "connections",
            "Client connections accepted",
            connections_total.clone(),
        );
        let rejected = Family::<RejectLabels, Counter>::default();
        registry.register(
            "connections_rejected",
            "Client connections closed before their first request, by reason (per_ip: the address had max_connections_per_ip open; alpn_h2, alpn_http1: the client spoke another HTTP than ALPN chose)",
            rejected.clone(),
        );
        let connections_rejected_per_ip = rejected.get_or_create_owned(&RejectLabels {
            reason: "per_ip".to_owned(),
        });
        let connections_rejected_alpn = ["alpn_h2", "alpn_http1"].map(|reason| {
            rejected.get_or_create_owned(&RejectLabels {
                reason: reason.to_owned(),
            })
        });
        let client_cert = Family::<RejectLabels, Counter>::default();
        registry.register(
            "tls_client_cert_rejected",
            "TLS handshakes failed for the client certificate, by reason (missing, invalid, not_pinned)",
            client_cert.clone(),
        );
        let client_cert_rejected = [Rejection::Missing, Rejection::Invalid, Rejection::NotPinned].map(|r| {
            client_cert.get_or_create_owned(&RejectLabels {
                reason: r.label().to_owned(),
            })
        });
        let handshakes_failed = handshakes.get_or_create_owned(&HandshakeLabels {
            version: String::new(),
            cipher: String::new(),
            result: "failed".to_owned(),
        });
        let failures = Family::<RejectLabels, Counter>::default();
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes failed, by reason (timeout, eof, reset, alert, incompatible, protocol, \
             client_cert, other); the same handshakes as tls_handshakes{result=\"failed\"}",
            failures.clone(),
        );
        let handshake_failures = HandshakeFailure::ALL.map(|f| {
            failures.get_or_create_owned(&RejectLabels {
                reason: f.label().to_owned(),
            })
        });
        let h2_goaway = Family::<RejectLabels, Counter>::default();
        registry.register(
            "h2_goaway",
            "HTTP/2 connections the proxy ended with a GOAWAY carrying an error code, by the code \
             (ENHANCE_YOUR_CALM: too many reset streams, as in a rapid-reset flood, or a header list \
             far over max_header_size)",
            h2_goaway.clone(),
        );
        let too_large = Family::<StatusLabels, Counter>::default();
        registry.register(
            "http1_head_too_large",
            "HTTP/1.1 request heads refused for their size, by the status answered (431: over \
             max_header_size or too many fields; 414: a target over 64 KiB)",
            too_large.clone(),
        );
        let head_too_large = ["431", "414"].map(|status| {
            too_large.get_or_create_owned(&StatusLabels {
                status: status.to_owned(),
            })
        });
        let upstream_idle = Family::<RouteLabels, Gauge>::default();
        registry.register(
            "upstream_idle_connections",
            "Idle keep-alive connections to the upstream, by route: at most the route's keepalive, \
             each closed after keepalive_timeout unused",
            upstream_idle.clone(),
        );
        let tunnels_active = Gauge::default();
        registry.register(
            "tunnels_active",
            "Upgraded (WebSocket) tunnels open now",
            tunnels_active.clone(),
        );
        let defences = Defences::new(&mut registry);
        Metrics {
            defences,
            registry,
            requests,
            latency,
            upstream_errors,
            buffered,
            handshakes,
            connections_active,
            connections_total,
            connections_rejected_per_ip,
            connections_rejected_alpn,
            client_cert_rejected,
            handshakes_failed,
            handshake_failures,
            h2_goaway,
            upstream_idle,
            head_too_large,
            tunnels_active,
        }
    }

    /// The handles for one route, labelled with its host and path.
    pub fn route(&self, label: &str) -> RouteMetrics {
        let count = |status: &str| {
            self.requests.get_or_create_owned(&RequestLabels {
                route: label.to_owned(),
                status: status.to_owned(),
            })
        };
        let error = |kind: &str| {
            self.upstream_errors.get_or_create_owned(&UpstreamErrorLabels {
                route: label.to_owned(),
                kind: kind.to_owned(),
            })
        };
        RouteMetrics {
            by_class: [
                count("1xx"),
                count("2xx"),
                count("3xx"),
                count("4xx"),
                count("5xx"),
            ],
            latency: self.latency.get_or_create_owned(&RouteLabels {
                route: label.to_owned(),
            }),
            upstream_errors: [error("connect"), error("timeout"), error("protocol")],
            buffered: ["request", "request_spilled", "response"].map(|kind| {
                self.buffered.get_or_create_owned(&UpstreamErrorLabels {
                    route: label.to_owned(),
                    kind: kind.to_owned(),
                })
            }),
        }
    }

    /// The gauge of idle upstream connections of one route, labelled as in
    /// [`Metrics::route`]; made once at start and handed to the route's
    /// pool, which moves it as connections are put back, taken or closed.
    pub fn upstream_idle(&self, label: &str) -> Gauge {
        self.upstream_idle.get_or_create_owned(&RouteLabels {
            route: label.to_owned(),
        })
    }

    pub fn handshake(&self, labels: &HandshakeLabels) {
        self.handshakes.get_or_create(labels).inc();
    }

    pub fn client_cert_rejected(&self, reason: Rejection) {
        self.client_cert_rejected[reason as usize].inc();
    }

    /// Counts a failed TLS handshake, in all and by its reason.
    pub(crate) fn handshake_failed(&self, why: HandshakeFailure) {
        self.handshakes_failed.inc();
        self.handshake_failures[why as usize].inc();
    }

    /// Counts what a client connection that ended with `error` should be
    /// counted as, if anything (see [`ConnError`]).
    pub(crate) fn connection_error(&self, error: &(dyn std::error::Error + 'static)) {
        match ConnError::of(error) {
            Some(ConnError::GoAway(reason)) => {
                // h2 itself only sends the codes RFC 9113 names, so the
                // label takes a handful of values at most.
                self.h2_goaway
                    .get_or_create(&RejectLabels {
                        reason: format!("{reason:?}"),
                    })
                    .inc();
            }
            Some(ConnError::HeadTooLarge) => {
                self.head_too_large[0].inc();
            }
            Some(ConnError::UriTooLong) => {
                self.head_too_large[1].inc();
            }
            None => {}
        }
    }

    /// Adds the collectors that read state owned elsewhere at scrape time.
    pub fn register_sources(
        &mut self,
        connections: Arc<ConnRegistry>,
        certs: Arc<CertStore>,
        reloads: Arc<ReloadStats>,
    ) {
        self.registry.register_collector(Box::new(Sources {
            connections,
            certs,
            reloads,
        }));
    }

    /// The registry, for the metrics a subsystem defines beside its own
    /// code (`stream::metrics`).
    pub(crate) fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
            let _ = writeln!(out, "# metrics could not be encoded");
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertLabels {
    name: String,
    serial: String,
}

/// The labels of every per-certificate metric.
fn cert_labels(cert: &LoadedCert) -> CertLabels {
    CertLabels {
        name: cert
            .names
            .first()
            .cloned()
            .unwrap_or_else(|| cert.facts.subject.clone()),
        serial: cert.facts.serial.clone(),
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: String,
}

#[derive(Debug)]
struct Sources {
    connections: Arc<ConnRegistry>,
    certs: Arc<CertStore>,
    reloads: Arc<ReloadStats>,
}

impl Collector for Sources {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (bytes_in, bytes_out) = self.connections.total_bytes();
        for (name, help, value) in [
            (
                "bytes_received",
                "Bytes received from clients, TLS records included",
                bytes_in,
            ),
            (
                "bytes_sent",
                "Bytes sent to clients, TLS records included",
                bytes_out,
            ),
        ] {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)?;
        }

        let mut family = encoder.encode_descriptor(
            "certificate_not_after_seconds",
            "When each certificate in service expires, as a Unix timestamp",
            None,
            MetricType::Gauge,
        )?;
        let snapshot = self.certs.snapshot();
        for cert in snapshot.certs() {
            let f = &cert.facts;
            let labels = cert_labels(cert);
            let not_after = f
                .not_after
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            ConstGauge::new(not_after).encode(family.encode_family(&labels)?)?;
        }

        let mut family = encoder.encode_descriptor(
            "certificate_chain_length",
            "Certificates in each chain in service, the server's own included: 1 is a self-signed \
             certificate, or a CA-issued one without its intermediates, which clients that only \
             hold the root cannot verify",
            None,
            MetricType::Gauge,
        )?;
        for cert in snapshot.certs() {
            let length = i64::try_from(cert.certified.cert.len()).unwrap_or(i64::MAX);
            ConstGauge::new(length).encode(family.encode_family(&cert_labels(cert))?)?;
        }

        let mut family = encoder.encode_descriptor(
            "certificate_ocsp_stapled",
            "1 when an OCSP response is stapled to the certificate ([tls] ocsp_stapling), else 0",
            None,
            MetricType::Gauge,
        )?;
        for cert in snapshot.certs() {
            let stapled = i64::from(cert.certified.ocsp.is_some());
            ConstGauge::new(stapled).encode(family.encode_family(&cert_labels(cert))?)?;
        }

        let mut family = encoder.encode_descriptor(
            "certificate_reloads",
            "Certificate reloads, published or rejected",
            None,
            MetricType::Counter,
        )?;
        for (result, value) in [
            ("ok", self.reloads.published.load(Ordering::Relaxed)),
            ("rejected", self.reloads.rejected.load(Ordering::Relaxed)),
        ] {
            let labels = ReloadLabels {
                result: result.to_owned(),
            };
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
