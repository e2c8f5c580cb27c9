//! TLS passthrough streams: the ClientHello's SNI picks the upstream, which
//! shakes hands itself, so the client sees the upstream's certificate; a
//! hello without a name, or with one no route has, goes to `default` or is
//! closed and counted; a hello cut into many TCP segments or TLS records
//! is read whole; anything that is not a hello is closed and counted.

mod support;

use support::streams::{closed_without_a_byte, tcp, tls_upstream, Manual, StreamProxy, HANG};
use support::{within, TestCa};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A passthrough stream `name` with these route tables and extra keys.
fn passthrough(name: &str, extra: &str, routes: &[(&str, String)]) -> String {
    let mut text =
        format!("[[stream]]\nname = \"{name}\"\nlisten = \"127.0.0.1:0\"\ntls = \"passthrough\"\n{extra}\n");
    for (sni, upstream) in routes {
        text.push_str(&format!(
            "[[stream.route]]\nsni = \"{sni}\"\nupstream = \"{upstream}\"\n"
        ));
    }
    text
}

/// A passthrough stream `name` with `extra` keys and one route, for
/// `a.example`, to an upstream that says "A".
struct OneRoute {
    ca: TestCa,
    a_leaf: rustls::pki_types::CertificateDer<'static>,
    proxy: StreamProxy,
    _dir: tempfile::TempDir,
}

impl OneRoute {
    async fn start(name: &str, extra: &str) -> OneRoute {
        let ca = TestCa::new();
        let (a, a_leaf) = tls_upstream(&ca, &["a.example"], "A").await;
        let dir = tempfile::tempdir().unwrap();
        let proxy = StreamProxy::start(&passthrough(name, extra, &[("a.example", tcp(a))]), dir.path()).await;
        OneRoute {
            ca,
            a_leaf,
            proxy,
            _dir: dir,
        }
    }

    /// A handshake with the first flight cut by `cut` reaches A.
    async fn reaches_a(&self, name: &str, cut: impl FnOnce(Vec<u8>) -> Vec<Vec<u8>>) {
        let mut manual = Manual::connect(self.proxy.addr(name), &self.ca, "a.example", cut)
            .await
            .unwrap();
        assert_eq!(manual.leaf(), self.a_leaf);
        assert_eq!(manual.read_line().await.unwrap(), "A");
    }
}

fn whole(flight: Vec<u8>) -> Vec<Vec<u8>> {
    vec![flight]
}

/// A hello no upstream would answer: the connection is closed by the
/// proxy before any byte comes back.
async fn refused(proxy: &StreamProxy, name: &str, sni: &str, ca: &TestCa) {
    let result = Manual::connect(proxy.addr(name), ca, sni, whole).await;
    assert!(result.is_err(), "{sni}: the handshake should not complete");
}

#[tokio::test]
async fn routes_by_sni_and_the_client_sees_the_upstreams_certificate() {
    let ca = TestCa::new();
    let (a, a_leaf) = tls_upstream(&ca, &["a.example"], "upstream A").await;
    let (b, b_leaf) = tls_upstream(&ca, &["*.wild.example"], "upstream B").await;
    let dir = tempfile::tempdir().unwrap();
    let config = passthrough("sni", "", &[("a.example", tcp(a)), ("*.wild.example", tcp(b))]);
    let proxy = StreamProxy::start(&config, dir.path()).await;

    let mut to_a = Manual::connect(proxy.addr("sni"), &ca, "a.example", whole)
        .await
        .unwrap();
    assert_eq!(to_a.leaf(), a_leaf, "the client sees A's own certificate");
    assert_eq!(to_a.read_line().await.unwrap(), "upstream A");
    let mut to_b = Manual::connect(proxy.addr("sni"), &ca, "x.wild.example", whole)
        .await
        .unwrap();
    assert_eq!(to_b.leaf(), b_leaf);
    assert_eq!(to_b.read_line().await.unwrap(), "upstream B");

    // Through tokio-rustls too, with the bytes echoed.
    let tls = support::streams::tls_connect_name(proxy.addr("sni"), &ca, "a.example").await;
    let (mut read, mut write) = tokio::io::split(tls);
    write.write_all(b"ping\n").await.unwrap();
    let mut got = String::new();
    let mut reader = tokio::io::BufReader::new(&mut read);
    use tokio::io::AsyncBufReadExt;
    within(HANG, "A's tag", reader.read_line(&mut got)).await.unwrap();
    within(HANG, "the echo", reader.read_line(&mut got))
        .await
        .unwrap();
    assert_eq!(got, "upstream A\nping\n");

    let connections = proxy.connections().await;
    let streams: Vec<&serde_json::Value> = connections["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.get("stream"))
        .collect();
    assert!(
        streams
            .iter()
            .any(|s| s["sni"] == "x.wild.example" && s["tls"] == "passthrough" && s["upstream"] == tcp(b)),
        "{connections:#}"
    );
    drop((to_a, to_b, read, write));
    proxy.shutdown().await;
}

#[tokio::test]
async fn no_sni_and_unknown_sni_are_closed_and_counted_without_a_default() {
    let one = OneRoute::start("strict", "").await;
    // rustls sends no SNI for an IP address.
    refused(&one.proxy, "strict", "127.0.0.1", &one.ca).await;
    refused(&one.proxy, "strict", "other.example", &one.ca).await;
    let refusals = "portcullis_stream_refused_total{stream=\"strict\",reason=";
    one.proxy
        .wait_metric(&format!("{refusals}\"no_sni\"}}"), 1.0)
        .await;
    one.proxy
        .wait_metric(&format!("{refusals}\"unknown_sni\"}}"), 1.0)
        .await;
    one.proxy
        .wait_metric("portcullis_stream_connections_total{stream=\"strict\"}", 2.0)
        .await;
    one.proxy.shutdown().await;
}

#[tokio::test]
async fn no_sni_and_unknown_sni_go_to_the_default() {
    let ca = TestCa::new();
    let (a, _) = tls_upstream(&ca, &["a.example"], "A").await;
    let (fallback, fallback_leaf) = tls_upstream(&ca, &["other.example", "127.0.0.1"], "default").await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("default = \"{}\"", tcp(fallback));
    let proxy = StreamProxy::start(
        &passthrough("fallback", &extra, &[("a.example", tcp(a))]),
        dir.path(),
    )
    .await;
    for sni in ["127.0.0.1", "other.example"] {
        let mut manual = Manual::connect(proxy.addr("fallback"), &ca, sni, whole)
            .await
            .unwrap();
        assert_eq!(manual.leaf(), fallback_leaf, "{sni}");
        assert_eq!(manual.read_line().await.unwrap(), "default", "{sni}");
        drop(manual);
    }
    assert_eq!(
        proxy
            .metric("portcullis_stream_refused_total{stream=\"fallback\",reason=\"no_sni\"}")
            .await,
        0.0
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_hello_sent_byte_by_byte_is_read_whole() {
    let one = OneRoute::start("bytes", "").await;
    one.reaches_a("bytes", |flight| flight.into_iter().map(|b| vec![b]).collect())
        .await;
    one.proxy.shutdown().await;
}

/// `flight`'s handshake bytes in TLS records of at most `size` bytes,
/// each record in a TCP segment of its own.
fn records_of(size: usize) -> impl FnOnce(Vec<u8>) -> Vec<Vec<u8>> {
    move |flight| {
        let mut message = Vec::new();
        let mut rest = &flight[..];
        while rest.len() >= 5 {
            let n = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
            message.extend_from_slice(&rest[5..5 + n]);
            rest = &rest[5 + n..];
        }
        message
            .chunks(size)
            .map(|piece| {
                let mut record = vec![22, 3, 1];
                record.extend_from_slice(&(piece.len() as u16).to_be_bytes());
                record.extend_from_slice(piece);
                record
            })
            .collect()
    }
}

#[tokio::test]
async fn a_hello_in_many_tls_records_is_read_whole() {
    let one = OneRoute::start("records", "").await;
    one.reaches_a("records", records_of(40)).await;
    one.proxy.shutdown().await;
}

#[tokio::test]
async fn garbage_oversize_and_truncated_hellos_are_closed_and_counted() {
    let one = OneRoute::start("hostile", "handshake_timeout = \"60s\"").await;
    let addr = one.proxy.addr("hostile");
    let attempts: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n",
        // A PROXY header sent by the client is not a ClientHello either.
        b"PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n",
        // A hello that claims 16 MiB.
        b"\x16\x03\x01\x00\x04\x01\xff\xff\xff",
        // A record that claims more than TLS allows.
        b"\x16\x03\x01\xff\xff\x01",
    ];
    for (index, bytes) in attempts.iter().enumerate() {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(bytes).await.unwrap();
        assert!(closed_without_a_byte(&mut tcp).await, "attempt {index}");
    }
    // Half a hello, then the client's end: the proxy gives up at once.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&half_hello(&one.ca)).await.unwrap();
    tcp.shutdown().await.unwrap();
    assert!(closed_without_a_byte(&mut tcp).await, "the truncated hello");
    one.proxy
        .wait_metric(
            "portcullis_stream_refused_total{stream=\"hostile\",reason=\"client_hello\"}",
            5.0,
        )
        .await;
    // The stream still routes a real hello.
    one.reaches_a("hostile", whole).await;
    one.proxy.shutdown().await;
}

/// The first half of a real ClientHello.
fn half_hello(ca: &TestCa) -> Vec<u8> {
    let name = rustls::pki_types::ServerName::try_from("a.example").unwrap();
    let mut conn = rustls::ClientConnection::new(ca.client_config(&[]), name).unwrap();
    let mut flight = Vec::new();
    conn.write_tls(&mut flight).unwrap();
    flight.truncate(flight.len() / 2);
    flight
}

#[tokio::test]
async fn a_silent_client_is_closed_at_the_handshake_deadline() {
    let one = OneRoute::start("silent", "handshake_timeout = \"200ms\"").await;
    let mut tcp = TcpStream::connect(one.proxy.addr("silent")).await.unwrap();
    assert!(closed_without_a_byte(&mut tcp).await);
    one.proxy
        .wait_metric(
            "portcullis_stream_refused_total{stream=\"silent\",reason=\"client_hello\"}",
            1.0,
        )
        .await;
    one.proxy.shutdown().await;
}
