//! Load clients for `benches/vs-peers` where the packaged tools fall short.
//!
//! ```text
//! loadgen hs    --addr 127.0.0.1:PORT --cert leaf.pem [--duration 5] [--concurrency 16]
//! loadgen resume-check --addr 127.0.0.1:PORT --cert leaf.pem
//! loadgen ws    --addr 127.0.0.1:PORT --cert leaf.pem [--duration 5] [--connections 64]
//! loadgen hold  --addr 127.0.0.1:PORT --cert leaf.pem [--connections 5000]
//! loadgen ws|hold --raw ...
//! loadgen open  --kind h1|hs|ws --rate R --addr 127.0.0.1:PORT --cert leaf.pem [--duration 5] [--connections 64] [--closed]
//! loadgen certs --dir DIR --count N [--combined] [--only I]
//! ```
//!
//! - `hs`: full TLS 1.3 handshakes, one new connection per request. Session
//!   resumption is disabled in the client (`Resumption::disabled()`: no
//!   session cache and no tickets, so the ClientHello never carries a
//!   pre_shared_key), and every connection's `handshake_kind()` is checked
//!   to be `Full`. wrk and h2load cannot do this: both resume sessions.
//! - `resume-check`: the counter-proof. With resumption enabled, a second
//!   connection to the same server is `Resumed`, which shows that the
//!   server would resume if the client offered, and so that the `Full`
//!   count of `hs` comes from the client's setting.
//! - `ws`: WebSocket echo round trips through the proxy, one message in
//!   flight per connection, with latency percentiles.
//! - `hold`: opens many WebSocket connections, checks each with one echo,
//!   prints `{"held":N,...}` and keeps them open, idle, until standard input
//!   closes (or `--hold-max` passes), so the caller can read the proxy's RSS.
//! - `--raw` (ws and hold): the same over a TLS stream without HTTP and
//!   without ALPN, the bytes echoed as they are, for stream listeners (the
//!   proxy terminates TLS and an echo server answers behind it).
//! - `open`: requests at a fixed arrival rate, latency from each one's
//!   scheduled time (`open.rs`).
//! - `certs`: many ECDSA P-256 certificates under one CA (`certgen.rs`).
//! - `--source` (every mode that connects): the local addresses to connect
//!   from, in turn, so that more connections than one address has ephemeral
//!   ports can be held.
//!
//! The server certificate is pinned: the leaf in `--cert` must be the one
//! presented, and the handshake signature is verified against it. That is
//! cheaper for the client than a chain walk and just as strict here.
//!
//! Every mode is bounded in time and count and stops by itself. Results are
//! one JSON object on stdout; progress goes to stderr.
//!
//! Under `cargo bench` (which passes `--bench`), it explains itself and exits.

mod certgen;
mod open;

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, HandshakeKind, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "Load clients for the portcullis vs nginx benchmark"
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Full TLS 1.3 handshakes per second, a new connection per request.
    Hs(HsArgs),
    /// Show that the server resumes a session when the client offers one.
    ResumeCheck(Common),
    /// WebSocket echo round trips, one message in flight per connection.
    Ws(WsArgs),
    /// Hold idle WebSocket connections open until stdin closes.
    Hold(HoldArgs),
    /// Requests at a fixed arrival rate, latency from their scheduled time.
    Open(open::OpenArgs),
    /// Write many server certificates under one CA.
    Certs(certgen::CertsArgs),
}

#[derive(Args, Clone)]
struct Common {
    /// The proxy's TLS address.
    #[arg(long)]
    addr: SocketAddr,
    /// The server's leaf certificate (PEM); it is pinned.
    #[arg(long)]
    cert: PathBuf,
    /// SNI and Host.
    #[arg(long, default_value = "localhost")]
    host: String,
    /// Key exchange groups to offer, in order: x25519, secp256r1,
    /// x25519mlkem768. The default, x25519 alone, is what OpenSSL 3.0
    /// servers (nginx here) and clients (wrk, h2load) settle on, so both
    /// proxies do the same key exchange.
    #[arg(long, default_value = "x25519", value_delimiter = ',')]
    groups: Vec<String>,
    /// Client runtime threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Local addresses to connect from, in turn (default: the system's
    /// choice).
    #[arg(long, value_delimiter = ',')]
    source: Vec<IpAddr>,
}

#[derive(Args)]
struct HsArgs {
    #[command(flatten)]
    common: Common,
    /// Seconds to run.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Connections in progress at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Stop after this many connections even if time is left.
    #[arg(long, default_value_t = 2_000_000)]
    max: u64,
    /// Request path.
    #[arg(long, default_value = "/bytes/1024")]
    path: String,
}

#[derive(Args)]
struct WsArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Message size in bytes (binary messages).
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// Stop after this many round trips in all even if time is left.
    #[arg(long, default_value_t = 50_000_000)]
    max: u64,
    #[arg(long, default_value = "/ws")]
    path: String,
    /// Echo raw bytes over the TLS stream instead of WebSocket messages.
    #[arg(long)]
    raw: bool,
}

#[derive(Args)]
struct HoldArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value_t = 5000)]
    connections: usize,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 64)]
    parallel: usize,
    /// Longest time to hold them, in seconds, if stdin never closes.
    #[arg(long, default_value_t = 120.0)]
    hold_max: f64,
    /// Longest time to open them all, in seconds.
    #[arg(long, default_value_t = 120.0)]
    open_max: f64,
    #[arg(long, default_value = "/ws")]
    path: String,
    /// Hold raw TLS streams instead of WebSockets.
    #[arg(long)]
    raw: bool,
}

fn main() {
    if std::env::args().skip(1).any(|a| a == "--bench") {
        eprintln!(
            "loadgen is a load client for benches/vs-peers/run.sh, not a benchmark of its own; \
             nothing to run under `cargo bench`"
        );
        return;
    }
    let cli = Cli::parse();
    // Writing files needs no runtime.
    let cli = match cli.mode {
        Mode::Certs(a) => return finish(certgen::certs(a)),
        mode => Cli { mode },
    };
    let threads = match &cli.mode {
        Mode::Hs(a) => a.common.threads,
        Mode::ResumeCheck(a) => a.threads,
        Mode::Ws(a) => a.common.threads,
        Mode::Hold(a) => a.common.threads,
        Mode::Open(a) => a.threads(),
        Mode::Certs(_) => 1,
    };
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .expect("tokio runtime");
    let result = runtime.block_on(async move {
        match cli.mode {
            Mode::Hs(a) => hs(a).await,
            Mode::ResumeCheck(a) => resume_check(a).await,
            Mode::Ws(a) => ws(a).await,
            Mode::Hold(a) => hold(a).await,
            Mode::Open(a) => open::open(a).await,
            Mode::Certs(_) => Err("certs runs without a runtime".into()),
        }
    });
    finish(result)
}

fn finish(result: Result<String, BoxError>) {
    match result {
        Ok(json) => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{json}");
            let _ = out.flush();
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(1);
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

// ------------------------------------------------------------------- TLS

/// Accepts exactly one certificate, byte for byte, and verifies the
/// handshake signature against it with the provider's algorithms.
#[derive(Debug)]
struct Pinned {
    leaf: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.leaf.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A fresh client configuration: TLS 1.3 only, the given ALPN, the pinned
/// leaf, and resumption as asked.
fn client_config(common: &Common, alpn: &[&[u8]], resumption: bool) -> Result<Arc<ClientConfig>, BoxError> {
    use rustls::crypto::aws_lc_rs::kx_group;
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    let mut groups = Vec::new();
    for g in &common.groups {
        groups.push(match g.to_ascii_lowercase().as_str() {
            "x25519" => kx_group::X25519,
            "secp256r1" | "p256" | "p-256" => kx_group::SECP256R1,
            "x25519mlkem768" => kx_group::X25519MLKEM768,
            other => return Err(format!("unknown key exchange group {other:?}").into()),
        });
    }
    provider.kx_groups = groups;
    let provider = Arc::new(provider);
    let leaf =
        CertificateDer::from_pem_file(&common.cert).map_err(|e| format!("{}: {e}", common.cert.display()))?;
    let verifier = Arc::new(Pinned {
        leaf,
        provider: provider.clone(),
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    if !resumption {
        config.resumption = Resumption::disabled();
    }
    Ok(Arc::new(config))
}

/// The next `--source` address to connect from.
static NEXT_SOURCE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

async fn connect(connector: &TlsConnector, common: &Common) -> Result<TlsStream<TcpStream>, BoxError> {
    let tcp = if common.source.is_empty() {
        TcpStream::connect(common.addr).await?
    } else {
        let i = NEXT_SOURCE.fetch_add(1, Ordering::Relaxed) % common.source.len();
        let socket = match common.source[i] {
            IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket
            .bind(SocketAddr::new(common.source[i], 0))
            .map_err(|e| format!("binding to {}: {e}", common.source[i]))?;
        socket.connect(common.addr).await?
    };
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(common.host.clone())?;
    Ok(connector.connect(name, tcp).await?)
}

fn kind_name(kind: Option<HandshakeKind>) -> &'static str {
    match kind {
        Some(HandshakeKind::Full) => "full",
        Some(HandshakeKind::FullWithHelloRetryRequest) => "full_with_hrr",
        Some(HandshakeKind::Resumed) => "resumed",
        None => "none",
    }
}

// ------------------------------------------------------------------ stats

/// Latencies in microseconds, summarised once at the end.
struct Latencies(Vec<u32>);

impl Latencies {
    fn new() -> Self {
        Latencies(Vec::with_capacity(1 << 16))
    }
    fn push(&mut self, d: Duration) {
        self.0.push(d.as_micros().min(u32::MAX as u128) as u32);
    }
    fn merge(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }
    fn percentile(&mut self, p: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.sort_unstable();
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1] as f64
    }
}

// ------------------------------------------------------------ handshakes

/// One request on a new connection: handshake, GET with `Connection:
/// close`, read the whole response, wait for the server to close (so the
/// server, not the client, keeps TIME_WAIT and client ports are not used
/// up). Returns the handshake kind.
async fn one_request(
    connector: &TlsConnector,
    common: &Common,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> Result<Option<HandshakeKind>, BoxError> {
    let mut tls = connect(connector, common).await?;
    let kind = tls.get_ref().1.handshake_kind();
    tls.write_all(request).await?;
    tls.flush().await?;
    buf.clear();
    let complete = read_response(&mut tls, buf).await?;
    if !complete {
        return Err("response ended early".into());
    }
    // Wait (bounded) for the server's close; a reset after a complete
    // response is not an error.
    let mut scratch = [0u8; 512];
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match tls.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    Ok(kind)
}

/// Reads one HTTP/1.1 response with a Content-Length body into `buf`;
/// true when it is complete and its status is 200.
async fn read_response(tls: &mut TlsStream<TcpStream>, buf: &mut Vec<u8>) -> Result<bool, BoxError> {
    let mut chunk = [0u8; 16 * 1024];
    let mut need: Option<usize> = None;
    loop {
        if need.is_none() {
            if let Some(end) = find(buf, b"\r\n\r\n") {
                let head = std::str::from_utf8(&buf[..end]).map_err(|_| "response head is not UTF-8")?;
                if !head.starts_with("HTTP/1.1 200") {
                    let line = head.lines().next().unwrap_or("");
                    return Err(format!("unexpected status: {line}").into());
                }
                let len = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                    .ok_or("response without Content-Length")?;
                need = Some(end + 4 + len);
            }
        }
        if let Some(n) = need {
            if buf.len() >= n {
                return Ok(true);
            }
        }
        match tls.read(&mut chunk).await {
            Ok(0) => return Ok(false),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => {
                return if need.is_some_and(|n| buf.len() >= n) {
                    Ok(true)
                } else {
                    Err(e.into())
                }
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[derive(Default)]
struct HsCounts {
    ok: u64,
    errors: u64,
    full: u64,
    full_hrr: u64,
    resumed: u64,
    first_error: Option<String>,
}

async fn hs(args: HsArgs) -> Result<String, BoxError> {
    let common = args.common.clone();
    let config = client_config(&common, &[b"http/1.1"], false)?;
    eprintln!(
        "loadgen hs: resumption disabled in the client (Resumption::disabled(): no session \
         storage, no tickets, so no ClientHello offers a pre_shared_key); a fresh TCP and TLS \
         connection per request; groups {:?}",
        common.groups
    );
    // Check the negotiated parameters once, before the clock starts.
    let connector = TlsConnector::from(config.clone());
    {
        let tls = connect(&connector, &common).await?;
        let conn = tls.get_ref().1;
        eprintln!(
            "loadgen hs: negotiated {:?}, {:?}, group {:?}, handshake {}",
            conn.protocol_version(),
            conn.negotiated_cipher_suite().map(|s| s.suite()),
            conn.negotiated_key_exchange_group().map(|g| g.name()),
            kind_name(conn.handshake_kind())
        );
    }
    let request = Arc::new(
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: loadgen\r\nConnection: close\r\n\r\n",
            args.path, common.host
        )
        .into_bytes(),
    );
    let started = AtomicU64::new(0);
    let started = Arc::new(started);
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs_f64(args.duration);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let connector = connector.clone();
        let common = common.clone();
        let request = request.clone();
        let started = started.clone();
        let stop = stop.clone();
        let max = args.max;
        tasks.push(tokio::spawn(async move {
            let mut counts = HsCounts::default();
            let mut lat = Latencies::new();
            let mut buf = Vec::with_capacity(4096);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                if started.fetch_add(1, Ordering::Relaxed) >= max {
                    break;
                }
                let t = Instant::now();
                match one_request(&connector, &common, &request, &mut buf).await {
                    Ok(kind) => {
                        lat.push(t.elapsed());
                        counts.ok += 1;
                        match kind {
                            Some(HandshakeKind::Full) => counts.full += 1,
                            Some(HandshakeKind::FullWithHelloRetryRequest) => counts.full_hrr += 1,
                            Some(HandshakeKind::Resumed) => counts.resumed += 1,
                            None => {}
                        }
                    }
                    Err(e) => {
                        counts.errors += 1;
                        if counts.first_error.is_none() {
                            counts.first_error = Some(e.to_string());
                        }
                        if counts.errors > 1000 {
                            stop.store(true, Ordering::Relaxed);
                        }
                        // Do not spin on a server that refuses.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
            (counts, lat)
        }));
    }
    let mut total = HsCounts::default();
    let mut lat = Latencies::new();
    for t in tasks {
        let (c, l) = t.await?;
        total.ok += c.ok;
        total.errors += c.errors;
        total.full += c.full;
        total.full_hrr += c.full_hrr;
        total.resumed += c.resumed;
        if total.first_error.is_none() {
            total.first_error = c.first_error;
        }
        lat.merge(l);
    }
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "loadgen hs: {} connections in {secs:.2}s ({:.0}/s), handshake_kind: {} full, {} full with \
         HelloRetryRequest, {} resumed; {} errors{}",
        total.ok,
        total.ok as f64 / secs,
        total.full,
        total.full_hrr,
        total.resumed,
        total.errors,
        total
            .first_error
            .as_deref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    if total.resumed > 0 {
        return Err("a connection was resumed although resumption is disabled".into());
    }
    Ok(format!(
        "{{\"mode\":\"hs\",\"connections\":{},\"errors\":{},\"seconds\":{secs:.4},\"rate\":{:.2},\
         \"full\":{},\"full_hrr\":{},\"resumed\":{},\"resumption\":\"disabled\",\
         \"p50_us\":{:.0},\"p99_us\":{:.0},\"first_error\":{}}}",
        total.ok,
        total.errors,
        total.ok as f64 / secs,
        total.full,
        total.full_hrr,
        total.resumed,
        lat.percentile(50.0),
        lat.percentile(99.0),
        json_str(total.first_error.as_deref())
    ))
}

async fn resume_check(common: Common) -> Result<String, BoxError> {
    let request = format!(
        "GET /bytes/16 HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        common.host
    )
    .into_bytes();
    let mut buf = Vec::new();
    // With resumption (rustls' default in-memory store): the first
    // connection stores the server's tickets, the second offers one.
    let enabled = TlsConnector::from(client_config(&common, &[b"http/1.1"], true)?);
    let first = one_request(&enabled, &common, &request, &mut buf).await?;
    let second = one_request(&enabled, &common, &request, &mut buf).await?;
    // The configuration the hs mode uses.
    let disabled = TlsConnector::from(client_config(&common, &[b"http/1.1"], false)?);
    let third = one_request(&disabled, &common, &request, &mut buf).await?;
    let fourth = one_request(&disabled, &common, &request, &mut buf).await?;
    eprintln!(
        "loadgen resume-check: resumption enabled: {} then {}; disabled: {} then {}",
        kind_name(first),
        kind_name(second),
        kind_name(third),
        kind_name(fourth)
    );
    Ok(format!(
        "{{\"mode\":\"resume-check\",\"enabled\":[\"{}\",\"{}\"],\"disabled\":[\"{}\",\"{}\"]}}",
        kind_name(first),
        kind_name(second),
        kind_name(third),
        kind_name(fourth)
    ))
}

// ------------------------------------------------------------- WebSocket

async fn ws_open(
    connector: &TlsConnector,
    common: &Common,
    path: &str,
) -> Result<WebSocketStream<TlsStream<TcpStream>>, BoxError> {
    let tls = connect(connector, common).await?;
    let url = format!("wss://{}:{}{}", common.host, common.addr.port(), path);
    let (ws, response) = tokio_tungstenite::client_async(url, tls).await?;
    if response.status() != 101 {
        return Err(format!("upgrade answered {}", response.status()).into());
    }
    Ok(ws)
}

/// Sends `msg` and waits for its echo; pongs and other frames are skipped.
async fn echo_once(ws: &mut WebSocketStream<TlsStream<TcpStream>>, msg: Message) -> Result<(), BoxError> {
    let len = msg.len();
    ws.send(msg).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) if b.len() == len => return Ok(()),
            Some(Ok(Message::Text(t))) if t.len() == len => return Ok(()),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Ok(other)) => return Err(format!("unexpected message: {other:?}").into()),
            Some(Err(e)) => return Err(e.into()),
            None => return Err("connection closed".into()),
        }
    }
}

/// A connection of the echo modes: a WebSocket, or the TLS stream itself
/// (`--raw`) with a buffer for the echo.
enum EchoConn {
    Ws(Box<WebSocketStream<TlsStream<TcpStream>>>),
    Raw(Box<TlsStream<TcpStream>>, Vec<u8>),
}

impl EchoConn {
    async fn open(
        connector: &TlsConnector,
        common: &Common,
        path: &str,
        raw: bool,
    ) -> Result<Self, BoxError> {
        if raw {
            Ok(EchoConn::Raw(
                Box::new(connect(connector, common).await?),
                Vec::new(),
            ))
        } else {
            Ok(EchoConn::Ws(Box::new(ws_open(connector, common, path).await?)))
        }
    }

    /// One round trip: `payload` out, the same number of bytes (or a
    /// message of that size) back.
    async fn echo(&mut self, payload: &bytes::Bytes) -> Result<(), BoxError> {
        match self {
            EchoConn::Ws(ws) => echo_once(ws, Message::Binary(payload.clone())).await,
            EchoConn::Raw(tls, buf) => {
                tls.write_all(payload).await?;
                // rustls may keep sealed records until flushed.
                tls.flush().await?;
                buf.resize(payload.len(), 0);
                tls.read_exact(buf).await?;
                if buf[..] != payload[..] {
                    return Err("the echo differs from what was sent".into());
                }
                Ok(())
            }
        }
    }

    async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), async move {
            match self {
                EchoConn::Ws(mut ws) => {
                    let _ = WebSocketStream::close(&mut *ws, None).await;
                }
                EchoConn::Raw(mut tls, _) => {
                    let _ = tls.shutdown().await;
                }
            }
        })
        .await;
    }
}

fn echo_alpn(raw: bool) -> &'static [&'static [u8]] {
    if raw {
        &[]
    } else {
        &[b"http/1.1"]
    }
}

async fn ws(args: WsArgs) -> Result<String, BoxError> {
    let common = args.common.clone();
    let connector = TlsConnector::from(client_config(&common, echo_alpn(args.raw), false)?);
    let mut conns = Vec::with_capacity(args.connections);
    let open_deadline = Instant::now() + Duration::from_secs(60);
    for _ in 0..args.connections {
        let conn = tokio::time::timeout_at(
            open_deadline.into(),
            EchoConn::open(&connector, &common, &args.path, args.raw),
        )
        .await
        .map_err(|_| "opening the connections took over 60 s")??;
        conns.push(conn);
    }
    eprintln!(
        "loadgen ws: {} {} connections open; {}-byte messages, one in flight each",
        conns.len(),
        if args.raw { "raw TLS" } else { "WebSocket" },
        args.size
    );
    let payload = bytes::Bytes::from(vec![0x5au8; args.size]);
    let count = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(args.duration);
    let mut tasks = Vec::new();
    for mut conn in conns {
        let payload = payload.clone();
        let count = count.clone();
        let max = args.max;
        tasks.push(tokio::spawn(async move {
            let mut lat = Latencies::new();
            let mut errors = 0u64;
            let mut first_error = None;
            while Instant::now() < deadline {
                if count.fetch_add(1, Ordering::Relaxed) >= max {
                    break;
                }
                let t = Instant::now();
                let round =
                    tokio::time::timeout_at((deadline + Duration::from_secs(5)).into(), conn.echo(&payload))
                        .await;
                match round {
                    Ok(Ok(())) => lat.push(t.elapsed()),
                    Ok(Err(e)) => {
                        errors += 1;
                        first_error = Some(e.to_string());
                        break;
                    }
                    Err(_) => {
                        errors += 1;
                        first_error = Some("echo timed out".to_string());
                        break;
                    }
                }
            }
            conn.close().await;
            (lat, errors, first_error)
        }));
    }
    let mut lat = Latencies::new();
    let mut errors = 0;
    let mut first_error = None;
    for t in tasks {
        let (l, e, f) = t.await?;
        lat.merge(l);
        errors += e;
        if first_error.is_none() {
            first_error = f;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let n = lat.0.len() as u64;
    eprintln!(
        "loadgen ws: {n} round trips in {secs:.2}s ({:.0}/s), {errors} errors",
        n as f64 / secs
    );
    Ok(format!(
        "{{\"mode\":\"ws\",\"messages\":{n},\"errors\":{errors},\"seconds\":{secs:.4},\"rate\":{:.2},\
         \"p50_us\":{:.0},\"p99_us\":{:.0},\"first_error\":{}}}",
        n as f64 / secs,
        lat.percentile(50.0),
        lat.percentile(99.0),
        json_str(first_error.as_deref())
    ))
}

async fn hold(args: HoldArgs) -> Result<String, BoxError> {
    let common = args.common.clone();
    let connector = TlsConnector::from(client_config(&common, echo_alpn(args.raw), false)?);
    let t0 = Instant::now();
    let open_deadline = t0 + Duration::from_secs_f64(args.open_max);
    let path = args.path.clone();
    let raw = args.raw;
    let hello = bytes::Bytes::from_static(b"hello");
    let results: Vec<Result<EchoConn, BoxError>> = futures_util::stream::iter(0..args.connections)
        .map(|_| {
            let connector = connector.clone();
            let common = common.clone();
            let path = path.clone();
            let hello = hello.clone();
            async move {
                let open = async {
                    let mut conn = EchoConn::open(&connector, &common, &path, raw).await?;
                    conn.echo(&hello).await?;
                    Ok::<_, BoxError>(conn)
                };
                match tokio::time::timeout_at(open_deadline.into(), open).await {
                    Ok(r) => r,
                    Err(_) => Err("open deadline passed".into()),
                }
            }
        })
        .buffer_unordered(args.parallel.max(1))
        .collect()
        .await;
    let mut held = Vec::with_capacity(results.len());
    let mut failed = 0u64;
    let mut first_error = None;
    for r in results {
        match r {
            Ok(conn) => held.push(conn),
            Err(e) => {
                failed += 1;
                if first_error.is_none() {
                    first_error = Some(e.to_string());
                }
            }
        }
    }
    let open_secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "loadgen hold: {} {} connections open and idle after {open_secs:.2}s, {failed} failed",
        held.len(),
        if raw { "raw TLS" } else { "WebSocket" }
    );
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{{\"mode\":\"hold\",\"held\":{},\"failed\":{failed},\"open_seconds\":{open_secs:.3},\"first_error\":{}}}",
            held.len(),
            json_str(first_error.as_deref())
        )?;
        out.flush()?;
    }
    // Idle until the caller closes stdin, bounded by --hold-max.
    // A plain thread reads stdin (blocking) and reports its end.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin().lock();
        while let Ok(n) = stdin.read(&mut sink) {
            if n == 0 {
                break;
            }
        }
        let _ = tx.send(());
    });
    let _ = tokio::time::timeout(Duration::from_secs_f64(args.hold_max), rx).await;
    let n = held.len();
    drop(held);
    Ok(format!("{{\"mode\":\"hold-done\",\"released\":{n}}}"))
}

fn json_str(s: Option<&str>) -> String {
    match s {
        None => "null".to_string(),
        Some(s) => {
            let mut out = String::with_capacity(s.len() + 2);
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
    }
}
