//! The metrics of the streams, labelled by stream name: connections
//! accepted and open, bytes each way, and connections refused by reason.
//! The families are registered once when the configuration has streams;
//! each stream takes its handles at start, so counting is an atomic
//! increment.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabels {
    stream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    stream: String,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    stream: String,
    reason: &'static str,
}

/// Why a stream connection was closed before it reached an upstream (or
/// because it could not reach one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The stream had `max_connections` open.
    MaxConnections = 0,
    /// The TLS handshake failed or timed out (terminate).
    Handshake = 1,
    /// The client's certificate was missing, invalid or not pinned.
    ClientCert = 2,
    /// Not a well-formed ClientHello within the deadline and the size
    /// bound: garbage, oversize, truncated or too slow (passthrough).
    ClientHello = 3,
    /// The ClientHello named no server and there is no `default`.
    NoSni = 4,
    /// No route has the name and there is no `default`.
    UnknownSni = 5,
    /// The upstream could not be reached within `connect_timeout`.
    Upstream = 6,
    /// The protocol adapter's exchange failed (NATS: no INFO, or a
    /// client that spoke first with something other than TLS).
    Protocol = 7,
}

impl Refusal {
    const COUNT: usize = 8;
    const LABELS: [&'static str; Refusal::COUNT] = [
        "max_connections",
        "handshake",
        "client_cert",
        "client_hello",
        "no_sni",
        "unknown_sni",
        "upstream",
        "protocol",
    ];
}

/// The families, registered once.
#[derive(Debug, Clone)]
pub(crate) struct Families {
    accepted: Family<StreamLabels, Counter>,
    active: Family<StreamLabels, Gauge>,
    bytes: Family<DirectionLabels, Counter>,
    refused: Family<RefusedLabels, Counter>,
}

impl Families {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let families = Families {
            accepted: Family::default(),
            active: Family::default(),
            bytes: Family::default(),
            refused: Family::default(),
        };
        registry.register(
            "stream_connections",
            "Connections accepted by each stream's listeners, refused ones included",
            families.accepted.clone(),
        );
        registry.register(
            "stream_connections_active",
            "Stream connections open now",
            families.active.clone(),
        );
        registry.register(
            "stream_bytes",
            "Bytes a stream moved between client and upstream, by direction (to_upstream, to_client), as plaintext where portcullis terminates TLS",
            families.bytes.clone(),
        );
        registry.register(
            "stream_refused",
            "Stream connections closed before or instead of reaching their upstream, by reason (max_connections, handshake, client_cert, client_hello, no_sni, unknown_sni, upstream, protocol)",
            families.refused.clone(),
        );
        families
    }

    /// The handles of the stream `name`.
    pub(crate) fn stream(&self, name: &str) -> StreamMetrics {
        let stream = || name.to_owned();
        let bytes = |direction| {
            self.bytes.get_or_create_owned(&DirectionLabels {
                stream: stream(),
                direction,
            })
        };
        StreamMetrics {
            accepted: self
                .accepted
                .get_or_create_owned(&StreamLabels { stream: stream() }),
            active: self
                .active
                .get_or_create_owned(&StreamLabels { stream: stream() }),
            to_upstream: bytes("to_upstream"),
            to_client: bytes("to_client"),
            refused: Refusal::LABELS.map(|reason| {
                self.refused.get_or_create_owned(&RefusedLabels {
                    stream: stream(),
                    reason,
                })
            }),
        }
    }
}

/// One stream's handles.
#[derive(Debug, Clone)]
pub(crate) struct StreamMetrics {
    pub(crate) accepted: Counter,
    active: Gauge,
    pub(crate) to_upstream: Counter,
    pub(crate) to_client: Counter,
    refused: [Counter; Refusal::COUNT],
}

impl StreamMetrics {
    pub(crate) fn refused(&self, reason: Refusal) {
        self.refused[reason as usize].inc();
    }

    /// Counts a connection as open until the guard is dropped.
    pub(crate) fn open(&self) -> Active {
        self.active.inc();
        Active(self.active.clone())
    }
}

/// A connection in the active gauge.
#[derive(Debug)]
pub(crate) struct Active(Gauge);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.dec();
    }
}
