//! The typed `[[stream]]` tables: TCP and TLS listeners whose bytes go to a
//! TCP upstream, chosen by the ClientHello's SNI for TLS passthrough.

use std::net::SocketAddr;
use std::time::Duration;

use super::{ClientAuthConfig, Origin};

/// One `[[stream]]`.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// `name`: the `stream` label of its metrics and its log lines.
    /// Default: the first `listen` address as written.
    pub name: String,
    /// `listen`: at least one address.
    pub listen: Vec<SocketAddr>,
    /// `tls`, with what each kind takes.
    pub mode: StreamMode,
    /// `idle_timeout`: a stream with no byte in either direction for this
    /// long is closed. Default 24 h.
    pub idle_timeout: Duration,
    /// `connect_timeout`: longest wait for the TCP connection to the
    /// upstream. Default 5 s.
    pub connect_timeout: Duration,
    /// `handshake_timeout`: one deadline for the client's TLS handshake
    /// (terminate) or its whole ClientHello (passthrough). Default 10 s.
    pub handshake_timeout: Duration,
    /// `proxy_protocol`: a PROXY protocol header sent to the upstream
    /// first, with the client's address. `None` (the default) sends none.
    pub proxy_protocol: Option<ProxyProtocol>,
    /// `max_connections`: concurrent connections of this stream; more are
    /// closed at accept. Default 10 000.
    pub max_connections: usize,
    /// Where the stream was configured.
    pub origin: Origin,
}

/// `tls`: what the stream does with TLS, and what each kind needs.
#[derive(Debug, Clone)]
pub enum StreamMode {
    /// `"none"`: bytes as they come, to `upstream`.
    Plain { upstream: TcpUpstream },
    /// `"terminate"`: portcullis shakes hands with the certificates of
    /// `[tls]` and sends the plaintext to `upstream`.
    Terminate {
        upstream: TcpUpstream,
        /// `alpn`: the protocols offered, in order of preference. Empty
        /// (the default): no ALPN.
        alpn: Vec<Vec<u8>>,
        /// `protocol`: a protocol that speaks before the TLS handshake.
        protocol: Option<StreamProtocol>,
        /// `[stream.client_auth]`: client certificates, as `[tls.client_auth]`.
        client_auth: Option<ClientAuthConfig>,
    },
    /// `"passthrough"`: the ClientHello is read, not answered; its SNI
    /// picks the upstream and the client's TLS goes there untouched.
    Passthrough {
        /// `[[stream.route]]`, in the order written.
        routes: Vec<SniRoute>,
        /// `default`: where a ClientHello that no route matches (or that
        /// has no SNI) goes. `None`: such connections are closed.
        default: Option<TcpUpstream>,
    },
}

impl StreamMode {
    /// The value of `tls` that gives this mode.
    pub fn as_str(&self) -> &'static str {
        match self {
            StreamMode::Plain { .. } => "none",
            StreamMode::Terminate { .. } => "terminate",
            StreamMode::Passthrough { .. } => "passthrough",
        }
    }
}

/// One `[[stream.route]]`.
#[derive(Debug, Clone)]
pub struct SniRoute {
    /// `sni`: a name in lower case, or `*.` and a name, which matches
    /// exactly one more label in front of it.
    pub sni: String,
    pub upstream: TcpUpstream,
}

/// `proxy_protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocol {
    /// `"v1"`: the text header, `PROXY TCP4 ...\r\n`.
    V1,
    /// `"v2"`: the binary header.
    V2,
}

/// `protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamProtocol {
    /// `"nats"`: the upstream's plaintext INFO is sent to the client with
    /// `tls_required`, and TLS begins after it, as NATS clients expect.
    Nats,
}

/// A stream's upstream: `tcp://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpUpstream {
    /// A DNS name (lower case) or an IP literal (IPv6 without brackets).
    /// Resolved at every connection.
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for TcpUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "tcp://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "tcp://{}:{}", self.host, self.port)
        }
    }
}
