//! Hostile and broken clients as an operator sees them: an HTTP/2
//! rapid-reset flood across many connections leaves a few log lines and a
//! summary with the count, not a line per connection, while the metrics
//! count every connection's GOAWAY; failed TLS handshakes are counted by
//! reason; HTTP/1.1 heads refused for their size are counted by status.
//!
//! The flood runs against the real binary, whose stderr is read back;
//! the counts are read from `/metrics`. Real sockets, real TLS.

mod support;

use std::time::Duration;

use rustls::pki_types::ServerName;
use support::admin::{wait_for_metric, AdminProxy};
use support::process::ProxyProcess;
use support::raw::Raw;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest any single exchange may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(10);

/// How many connections the flood opens, one after the other.
const CONNECTIONS: usize = 40;

/// What h2 writes when it ends a rapid-reset connection.
const H2_WARNING: &str = "remotely-reset pending-accept streams reached limit";

/// An HTTP/2 frame: its 9-byte header, then `payload`.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    [&len[1..], &[kind, flags], &stream.to_be_bytes()[..], payload].concat()
}

/// One connection's attack, in one write: the preface and SETTINGS, then
/// `streams` requests each cancelled at once (HEADERS with END_STREAM,
/// then RST_STREAM CANCEL), which the server must take in before it can
/// hand a single one to the application.
fn rapid_reset(streams: u32) -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    // :method GET, :scheme https, :path / from the static table, then
    // :authority localhost as a literal.
    let head = b"\x82\x87\x84\x01\x09localhost";
    for stream in (1..).step_by(2).take(streams as usize) {
        out.extend(frame(0x1, 0x5, stream, head));
        out.extend(frame(0x3, 0, stream, &0x8u32.to_be_bytes()));
    }
    out
}

/// The error code of the first GOAWAY among the frames the server sent.
fn goaway_code(mut frames: &[u8]) -> Option<u32> {
    while frames.len() >= 9 {
        let len = usize::try_from(u32::from_be_bytes([0, frames[0], frames[1], frames[2]])).ok()?;
        let payload = frames.get(9..9 + len)?;
        if frames[3] == 0x7 {
            return Some(u32::from_be_bytes(payload.get(4..8)?.try_into().ok()?));
        }
        frames = &frames[9 + len..];
    }
    None
}

/// Floods one connection and returns what the proxy sent until it ended it.
async fn flood_one(addr: std::net::SocketAddr, ca: &TestCa) -> Vec<u8> {
    let mut tls = tls_connect(addr, ca, &[b"h2"]).await;
    tls.write_all(&rapid_reset(100)).await.unwrap();
    let mut received = Vec::new();
    // The end may come as a reset rather than a close: what came before
    // it is kept either way.
    let _ = within(
        HANG,
        "the proxy to end a flooding connection",
        tls.read_to_end(&mut received),
    )
    .await;
    received
}

/// The WARN lines of a text log.
fn warnings(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains(" WARN ")).collect()
}

/// The number at the start of a summary line's message.
fn suppressed_count(line: &str) -> u64 {
    let (before, _) = line
        .split_once(" similar warning")
        .unwrap_or_else(|| panic!("not a summary: {line}"));
    before
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rapid_reset_flood_writes_a_few_lines_and_counts_every_goaway() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let toml = format!(
        "{}\n[admin]\nlisten = \"127.0.0.1:0\"\n",
        site.config(&route("/", &origin.url(), ""))
    );
    let (proxy, addr) = ProxyProcess::start(site.dir.path(), &toml).await;
    let admin = proxy.logged_addr("admin on http://").await;

    for connection in 0..CONNECTIONS {
        let received = flood_one(addr, &site.ca).await;
        assert_eq!(
            goaway_code(&received),
            Some(0xb),
            "connection {connection} was not ended with GOAWAY ENHANCE_YOUR_CALM"
        );
    }
    assert_eq!(origin.count(), 0, "a cancelled request reached the origin");

    wait_for_metric(
        admin,
        "portcullis_h2_goaway_total{reason=\"ENHANCE_YOUR_CALM\"}",
        CONNECTIONS as f64,
    )
    .await;

    // h2 warned once per connection: the first is written, the others
    // are told by count once their interval is over.
    let told = || {
        let log = proxy.stderr_text();
        let lines: Vec<&str> = warnings(&log)
            .into_iter()
            .filter(|l| l.contains(H2_WARNING))
            .collect();
        let summaries: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.contains("similar warning"))
            .collect();
        let written = lines.len() - summaries.len();
        let counted: u64 = summaries.iter().map(|l| suppressed_count(l)).sum();
        written as u64 + counted >= CONNECTIONS as u64
    };
    wait_until(
        Duration::from_secs(40),
        "a summary line counting the suppressed warnings",
        told,
    )
    .await;
    let log = proxy.stderr_text();
    let all = warnings(&log);
    let summaries = all.iter().filter(|l| l.contains("similar warning")).count();
    // One line of each kind h2 writes, and a summary per kind and interval.
    assert!(
        all.len() - summaries <= 3 && summaries <= 6,
        "{} WARN lines for {CONNECTIONS} flooding connections:\n{log}",
        all.len()
    );
    let summary = all
        .iter()
        .find(|l| l.contains("similar warning") && l.contains(H2_WARNING))
        .unwrap_or_else(|| panic!("no summary of h2's warning:\n{log}"));
    assert!(summary.contains("warnings suppressed in the last "), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_handshakes_are_counted_by_reason() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let toml = tls_config("handshake_timeout = \"1s\"", &route("/", &origin.url(), ""));
    let proxy = AdminProxy::start(&toml, site.dir.path()).await;
    let failures = |reason: &str| format!("portcullis_tls_handshake_failures_total{{reason=\"{reason}\"}}");

    // Connected, and gone before a byte: a scanner or a health check.
    drop(TcpStream::connect(proxy.tls).await.unwrap());
    proxy.wait_for_metric(&failures("eof"), 1.0).await;

    // Plain HTTP to the TLS port.
    let mut tcp = TcpStream::connect(proxy.tls).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let _ = within(
        HANG,
        "the proxy to close a plain HTTP client",
        tcp.read_to_end(&mut Vec::new()),
    )
    .await;
    proxy.wait_for_metric(&failures("protocol"), 1.0).await;

    // A client that does not trust the certificate says so with an alert.
    let stranger = TestCa::new();
    let tcp = TcpStream::connect(proxy.tls).await.unwrap();
    let refused = tokio_rustls::TlsConnector::from(stranger.client_config(&[b"h2"]))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await;
    assert!(refused.is_err(), "a client trusted a certificate of another CA");
    proxy.wait_for_metric(&failures("alert"), 1.0).await;

    // A client that says nothing until handshake_timeout.
    let silent = TcpStream::connect(proxy.tls).await.unwrap();
    proxy.wait_for_metric(&failures("timeout"), 1.0).await;
    drop(silent);

    proxy
        .wait_for_metric(
            "portcullis_tls_handshakes_total{version=\"\",cipher=\"\",result=\"failed\"}",
            4.0,
        )
        .await;
    for reason in ["reset", "incompatible", "client_cert", "other"] {
        assert_eq!(proxy.metric(&failures(reason)).await, Some(0.0), "{reason}");
    }
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_heads_refused_for_their_size_are_counted() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let toml = tls_config("max_header_size = \"80KiB\"", &route("/", &origin.url(), ""));
    let proxy = AdminProxy::start(&toml, site.dir.path()).await;
    let refused = |status: &str| format!("portcullis_http1_head_too_large_total{{status=\"{status}\"}}");

    // hyper answers these itself and closes the connection.
    let big_header = http::Request::get("https://localhost/")
        .header("host", "localhost")
        .header("x-pad", "a".repeat(100 * 1024))
        .body(empty())
        .unwrap();
    let (status, _, _) = within(
        HANG,
        "the answer to a 100 KiB head",
        fetch(proxy.tls, &site.ca, big_header),
    )
    .await;
    assert_eq!(status, 431);
    proxy.wait_for_metric(&refused("431"), 1.0).await;

    // Longer than the http crate lets a client build: written by hand.
    let mut raw = Raw::connect(proxy.tls, &site.ca).await;
    raw.get(&format!("/{}", "a".repeat(70 * 1024))).await;
    let status = raw.read_response().await.map(|r| r.status);
    assert_eq!(status, Some(414));
    proxy.wait_for_metric(&refused("414"), 1.0).await;
    assert_eq!(proxy.metric(&refused("431")).await, Some(1.0));
    assert_eq!(origin.count(), 0);
    proxy.stop().await;
}
