//! Connection and request limits, against real sockets and real TLS: the
//! request head size (431 over HTTP/1.1 and HTTP/2), the request body size
//! by declared length and by streamed growth (413, and the origin never
//! receives more than the limit), connections per client address (closed
//! before any TLS), the deadlines that cut off a slowloris client and a
//! silent one, `idle_timeout` closing an HTTP/2 connection with no stream
//! (and never a slow or streaming answer), and service to a normal client while 2 000 hostile
//! connections hold on.
//!
//! Each test fails without its limit: it waits for something that only the
//! limit brings (an answer, a close) and calls it a failure past a generous
//! deadline, and timings are never asserted beyond that.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use support::admin::AdminProxy;
use support::nofile::ensure_open_files;
use support::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

/// The longest any single exchange may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(10);

fn config(server_keys: &str, routes: &str) -> String {
    tls_config(&format!("shutdown_grace = \"2s\"\n{server_keys}"), routes)
}

/// A GET to `/` over HTTP/1.1 with an `x-pad` header of `bytes` bytes.
fn padded(bytes: usize) -> Request<Body> {
    Request::get("https://localhost/")
        .header("host", "localhost")
        .header("x-pad", "a".repeat(bytes))
        .body(empty())
        .unwrap()
}

/// The same over HTTP/2: the authority is in the URI.
fn padded_h2(bytes: usize) -> Request<Body> {
    Request::get("https://localhost/")
        .header("x-pad", "a".repeat(bytes))
        .body(empty())
        .unwrap()
}

/// An origin that reads every request body frame by frame, counting the
/// bytes it receives into the returned total (also when the body breaks
/// off), and answers `received N`.
async fn counting_origin() -> (Origin, Arc<AtomicU64>) {
    let received = Arc::new(AtomicU64::new(0));
    let total = received.clone();
    let origin = Origin::start(move |req: Request<Incoming>| {
        let total = total.clone();
        async move {
            let mut body = req.into_body();
            let mut mine = 0usize;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => {
                        if let Some(data) = frame.data_ref() {
                            mine += data.len();
                            total.fetch_add(data.len() as u64, Ordering::SeqCst);
                        }
                    }
                    Err(_) => break,
                }
            }
            Response::new(full(format!("received {mine}")))
        }
    })
    .await;
    (origin, received)
}

/// A body of `count` chunks of `size` bytes, of unknown length: chunked
/// over HTTP/1.1, DATA frames without content-length over HTTP/2.
fn streamed(count: usize, size: usize) -> Body {
    let chunks = futures_util::stream::iter((0..count).map(move |_| Bytes::from(vec![b'x'; size])));
    BodyExt::boxed(StreamBody::new(
        chunks.map(|b| Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(b))),
    ))
}

fn post(body: Body) -> Request<Body> {
    Request::post("https://localhost/upload")
        .header("host", "localhost")
        .body(body)
        .unwrap()
}

fn post_h2(body: Body) -> Request<Body> {
    Request::post("https://localhost/upload").body(body).unwrap()
}

/// A TLS connection to `addr` from `source` (any address in 127/8 works on
/// Linux), failing instead of panicking.
async fn try_tls(
    addr: SocketAddr,
    source: IpAddr,
    ca: &TestCa,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let tcp = socket.connect(addr).await?;
    tokio_rustls::TlsConnector::from(ca.client_config(alpn))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// One GET over HTTP/1.1 on `tls`: the status.
async fn get_on<T>(tls: T) -> Result<StatusCode, hyper::Error>
where
    T: AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let resp = send.send_request(get("/")).await?;
    let status = resp.status();
    resp.into_body().collect().await?;
    Ok(status)
}

/// Reads until the peer closes (end of stream or an error such as a
/// reset); panics if it sends anything instead.
async fn closed_without_a_byte(stream: &mut (impl AsyncRead + Unpin), what: &str) {
    let mut buf = [0u8; 256];
    match stream.read(&mut buf).await {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!(
            "{what}: expected a close, received {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
    }
}

// ---------------------------------------------------------------- request head

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_over_max_header_size_is_431_over_http1() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let toml = config("max_header_size = \"16KiB\"", &route("/", &origin.url(), ""));
    let proxy = ProxyHandle::start(&toml, site.dir.path()).await;

    // 12 KiB of headers is under the limit (and over hyper's 8 KiB minimum).
    let (status, _, body) = within(
        HANG,
        "a 12 KiB head",
        fetch(proxy.addr, &site.ca, padded(12 * 1024)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(origin.count(), 1);

    // 20 KiB is over it: hyper answers 431 itself, then closes the connection.
    let tls = tls_connect(proxy.addr, &site.ca, &[b"http/1.1"]).await;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let resp = within(
        HANG,
        "the answer to a 20 KiB head",
        send.send_request(padded(20 * 1024)),
    )
    .await
    .expect("the proxy closed without answering a head over max_header_size");
    assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let _ = within(HANG, "the connection to close after the 431", conn).await;
    assert_eq!(origin.count(), 1, "a head over the limit reached the origin");
    proxy.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_over_max_header_size_is_431_over_http2() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let toml = config("max_header_size = \"16KiB\"", &route("/", &origin.url(), ""));
    let proxy = ProxyHandle::start(&toml, site.dir.path()).await;
    let mut send = h2(proxy.addr, &site.ca).await;

    let resp = within(
        HANG,
        "a 12 KiB header list",
        send.send_request(padded_h2(12 * 1024)),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // Over the limit (SETTINGS_MAX_HEADER_LIST_SIZE, counted as RFC 9113
    // does): h2 answers 431 on that stream and resets it; the connection
    // goes on.
    let resp = within(
        HANG,
        "the answer to a 20 KiB header list",
        send.send_request(padded_h2(20 * 1024)),
    )
    .await
    .expect("the stream was reset without a 431");
    assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let resp = within(HANG, "a request after the 431", send.send_request(padded_h2(100)))
        .await
        .expect("the connection did not survive a refused header list");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        origin.count(),
        2,
        "a header list over the limit reached the origin"
    );

    // Over four times the limit, h2 stops decoding and ends the connection.
    let abuse = within(
        HANG,
        "the answer to an 80 KiB header list",
        send.send_request(padded_h2(80 * 1024)),
    )
    .await;
    assert!(abuse.is_err(), "an 80 KiB header list was answered: {abuse:?}");
    let (status, _, _) = within(HANG, "a new connection", fetch(proxy.addr, &site.ca, get("/"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(origin.count(), 3);
    proxy.shutdown().await.unwrap();
}

// ---------------------------------------------------------------- request body

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_length_over_max_body_is_413_and_nothing_is_forwarded() {
    let site = Site::new();
    let (origin, received) = counting_origin().await;
    let toml = config("", &route("/", &origin.url(), "max_body = \"1KiB\""));
    let proxy = ProxyHandle::start(&toml, site.dir.path()).await;

    let over = || full(vec![b'x'; 1025]);
    let (status, _, text) = within(HANG, "HTTP/1.1 413", fetch(proxy.addr, &site.ca, post(over()))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    let mut send = h2(proxy.addr, &site.ca).await;
    let resp = within(HANG, "HTTP/2 413", send.send_request(post_h2(over())))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        origin.connections.load(Ordering::SeqCst),
        0,
        "the origin was connected to for a body over max_body"
    );
    assert_eq!(received.load(Ordering::SeqCst), 0);

    // Exactly the limit passes.
    let (status, _, text) = within(
        HANG,
        "a body of exactly max_body",
        fetch(proxy.addr, &site.ca, post(full(vec![b'x'; 1024]))),
    )
    .await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "received 1024"));
    proxy.shutdown().await.unwrap();
}

/// A body without a declared length that is over the limit within the
/// first 64 KiB (what the proxy reads before forwarding a chunked body) is
/// refused before the origin is even connected to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_body_over_max_body_within_the_read_ahead_is_413_with_nothing_forwarded() {
    let site = Site::new();
    let (origin, received) = counting_origin().await;
    let toml = config("", &route("/", &origin.url(), "max_body = \"16KiB\""));
    let proxy = ProxyHandle::start(&toml, site.dir.path()).await;

    let (status, _, text) = within(
        HANG,
        "HTTP/1.1 413",
        fetch(proxy.addr, &site.ca, post(streamed(8, 4096))),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    let mut send = h2(proxy.addr, &site.ca).await;
    let resp = within(HANG, "HTTP/2 413", send.send_request(post_h2(streamed(8, 4096))))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(origin.connections.load(Ordering::SeqCst), 0);
    assert_eq!(received.load(Ordering::SeqCst), 0);

    // Under the limit, streamed, passes whole.
    let (status, _, text) = within(
        HANG,
        "a streamed body under max_body",
        fetch(proxy.addr, &site.ca, post(streamed(4, 4096))),
    )
    .await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "received 16384"));
    proxy.shutdown().await.unwrap();
}

/// A body that grows past the limit after forwarding has begun is cut off:
/// the upstream request is aborted with at most the limit sent, and the
/// client, which has no response yet, gets 413.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_body_growing_past_max_body_is_cut_off_at_the_limit() {
    const LIMIT: u64 = 128 * 1024;
    let site = Site::new();
    let (origin, received) = counting_origin().await;
    let toml = config("", &route("/", &origin.url(), "max_body = \"128KiB\""));
    let proxy = ProxyHandle::start(&toml, site.dir.path()).await;

    for http2 in [false, true] {
        let before = received.load(Ordering::SeqCst);
        let connections = origin.connections.load(Ordering::SeqCst);
        // 512 KiB in 16 KiB chunks: four times the limit.
        let status = if http2 {
            let mut send = h2(proxy.addr, &site.ca).await;
            within(
                HANG,
                "HTTP/2 413",
                send.send_request(post_h2(streamed(32, 16 * 1024))),
            )
            .await
            .map(|r| r.status())
        } else {
            let mut send = h1(proxy.addr, &site.ca).await;
            within(
                HANG,
                "HTTP/1.1 413",
                send.send_request(post(streamed(32, 16 * 1024))),
            )
            .await
            .map(|r| r.status())
        };
        let status = status.unwrap_or_else(|e| panic!("http2={http2}: no response, only {e}"));
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "http2={http2}");
        // Forwarding had begun: unlike a refusal within the read-ahead, the
        // upstream request was sent (and aborted, so its connection is not
        // reused). The 413 can reach the client before the origin's accept
        // loop has counted the connection the kernel already accepted.
        wait_until(
            HANG,
            &format!("http2={http2}: the request to be forwarded on a new connection"),
            || origin.connections.load(Ordering::SeqCst) > connections,
        )
        .await;
        assert_eq!(
            origin.connections.load(Ordering::SeqCst),
            connections + 1,
            "http2={http2}"
        );
        // The origin's request ends once the proxy aborts it; what it got
        // by then is all it will ever get.
        let mut last = u64::MAX;
        wait_until(HANG, "the origin's byte count to settle", || {
            let now = received.load(Ordering::SeqCst);
            let settled = now == last;
            last = now;
            settled
        })
        .await;
        let got = received.load(Ordering::SeqCst) - before;
        assert!(
            got <= LIMIT,
            "http2={http2}: the origin received {got} bytes, over max_body ({LIMIT})"
        );
    }
    proxy.shutdown().await.unwrap();
}

// ---------------------------------------------------------------- per address

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_max_connections_per_ip_are_closed_before_tls() {
    const MAX: usize = 3;
    let site = Site::new();
    let origin = Origin::hello().await;
    // A long handshake deadline: the held connections must outlive the test.
    let toml = config(
        &format!("max_connections_per_ip = {MAX}\nhandshake_timeout = \"60s\""),
        &route("/", &origin.url(), ""),
    );
    let proxy = AdminProxy::start(&toml, site.dir.path()).await;
    let local: IpAddr = "127.0.0.1".parse().unwrap();

    // MAX connections that say nothing: each holds a place while the proxy
    // waits for its ClientHello. The listener accepts in order, so they are
    // counted before the next one is looked at.
    let mut held = Vec::new();
    for _ in 0..MAX {
        held.push(TcpStream::connect(proxy.tls).await.unwrap());
    }
    // One more from the same address is closed at once, before any TLS:
    // the proxy sends nothing, not even a ServerHello to a ClientHello.
    // (The reset may come so soon that it is the connect that reports it.)
    within(
        HANG,
        "the proxy to close a connection over max_connections_per_ip",
        async {
            if let Ok(mut extra) = TcpStream::connect(proxy.tls).await {
                closed_without_a_byte(&mut extra, "a connection over the limit").await;
            }
        },
    )
    .await;
    let refused = try_tls(proxy.tls, local, &site.ca, &[b"http/1.1"]).await;
    assert!(refused.is_err(), "a TLS handshake over the limit succeeded");
    let mut rejected = 2;

    // The limit is per address: another one is served meanwhile.
    let other: IpAddr = "127.0.0.2".parse().unwrap();
    let tls = within(
        HANG,
        "a connection from 127.0.0.2",
        try_tls(proxy.tls, other, &site.ca, &[b"http/1.1"]),
    )
    .await
    .expect("a connection from another address was refused");
    assert_eq!(get_on(tls).await.unwrap(), StatusCode::OK);

    // Once one of the held connections is closed, a new one is accepted
    // (as soon as the proxy has seen the close: until then, it is refused).
    drop(held.pop());
    let status = within(HANG, "a connection to be accepted after one closed", async {
        loop {
            match try_tls(proxy.tls, local, &site.ca, &[b"http/1.1"]).await {
                Ok(tls) => return get_on(tls).await.unwrap(),
                Err(_) => rejected += 1,
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(status, StatusCode::OK);

    let counted = proxy
        .metric("portcullis_connections_rejected_total{reason=\"per_ip\"}")
        .await;
    assert_eq!(counted, Some(rejected as f64), "connections refused per address");
    drop(held);
    proxy.stop().await;
}

// ---------------------------------------------------------------- slow clients

/// A client that sends its request head one byte a second is closed by
/// `header_read_timeout` long before the head is complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_client_is_cut_off_by_header_read_timeout() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let toml = config("header_read_timeout = \"2s\"", &route("/", &origin.url(), ""));
    let proxy = ProxyHandle::start(&toml, site.dir.path()).await;

    let head = b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: slowloris, one byte a second\r\n\r\n";
    let mut tls = tls_connect(proxy.addr, &site.ca, &[b"http/1.1"]).await;
    // 20 s is ten times the timeout, and a quarter of the head's 80 s.
    let sent = within(
        Duration::from_secs(20),
        "the proxy to cut off a slowloris client",
        async {
            let mut buf = [0u8; 256];
            for (index, byte) in head.iter().enumerate() {
                if tls.write_all(&[*byte]).await.is_err() || tls.flush().await.is_err() {
                    return index;
                }
                // The pause between two bytes, which also notices the close.
                match tokio::time::timeout(Duration::from_secs(1), tls.read(&mut buf)).await {
                    Err(_) => {}
                    Ok(Ok(0)) | Ok(Err(_)) => return index + 1,
                    Ok(Ok(n)) => panic!(
                        "the proxy answered a partial head: {:?}",
                        String::from_utf8_lossy(&buf[..n])
                    ),
                }
            }
            panic!("the whole head went through one byte a second");
        },
    )
    .await;
    assert!(sent < head.len());
    assert_eq!(origin.count(), 0);
    proxy.shutdown().await.unwrap();
}

/// A client that completes the TLS handshake and then sends nothing, or
/// only part of the HTTP/2 preface, is closed after `header_read_timeout`;
/// so is an HTTP/1.1 keep-alive connection left idle after a response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_after_the_handshake_is_closed_by_header_read_timeout() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let toml = config("header_read_timeout = \"1s\"", &route("/", &origin.url(), ""));
    let proxy = ProxyHandle::start(&toml, site.dir.path()).await;

    for (alpn, sent) in [
        (&b"http/1.1"[..], &b""[..]),
        (&b"h2"[..], &b""[..]),
        (&b"h2"[..], &b"PRI * HTTP/2.0\r\n"[..]),
        (&b"http/1.1"[..], &b"GET / HT"[..]),
    ] {
        let mut tls = tls_connect(proxy.addr, &site.ca, &[alpn]).await;
        tls.write_all(sent).await.unwrap();
        tls.flush().await.unwrap();
        let what = format!(
            "the proxy to close a connection (ALPN {}) that sent {:?}",
            String::from_utf8_lossy(alpn),
            String::from_utf8_lossy(sent)
        );
        within(HANG, &what, closed_without_a_byte(&mut tls, &what)).await;
    }

    // Idle keep-alive after a response.
    let tls = tls_connect(proxy.addr, &site.ca, &[b"http/1.1"]).await;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let resp = send.send_request(get("/")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.into_body().collect().await.unwrap();
    let _ = within(HANG, "the proxy to close an idle keep-alive connection", conn).await;
    assert_eq!(origin.count(), 1);
    proxy.shutdown().await.unwrap();
}

// ---------------------------------------------------------------- idle connections

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed_by_idle_timeout() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let toml = config("idle_timeout = \"1s\"", &route("/", &origin.url(), ""));
    let proxy = ProxyHandle::start(&toml, site.dir.path()).await;

    // A preface and its SETTINGS, then nothing: no stream is ever opened.
    let mut tls = tls_connect(proxy.addr, &site.ca, &[b"h2"]).await;
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let mut frames = Vec::new();
    within(
        HANG,
        "the proxy to close an HTTP/2 connection that opened no stream",
        async {
            let _ = tls.read_to_end(&mut frames).await;
        },
    )
    .await;
    // Its last frame is a GOAWAY (type 7), which makes the close graceful.
    assert!(
        frames.windows(4).any(|w| w[3] == 7 && w[..3] == [0, 0, 8]),
        "no GOAWAY in {frames:?}"
    );

    // After a served request, the connection is closed once quiet.
    let tls = tls_connect(proxy.addr, &site.ca, &[b"h2"]).await;
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let resp = send
        .send_request(Request::get("https://localhost/").body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.into_body().collect().await.unwrap();
    let _ = within(HANG, "the proxy to close an idle HTTP/2 connection", conn).await;
    assert_eq!(origin.count(), 1);
    proxy.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_never_cuts_a_slow_answer_or_a_streaming_response() {
    let site = Site::new();
    // /slow answers after three idle periods; /stream sends a chunk every
    // fifth of a period for three periods.
    let origin = Origin::start(|req: Request<Incoming>| async move {
        if req.uri().path() == "/slow" {
            tokio::time::sleep(Duration::from_secs(3)).await;
            return Response::new(full("finally"));
        }
        let chunks = futures_util::stream::unfold(0, |i| async move {
            if i == 15 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            Some((Bytes::from_static(b"tick\n"), i + 1))
        });
        Response::new(BodyExt::boxed(StreamBody::new(chunks.map(|b| {
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(b))
        }))))
    })
    .await;
    let toml = config("idle_timeout = \"1s\"", &route("/", &origin.url(), ""));
    let proxy = ProxyHandle::start(&toml, site.dir.path()).await;

    let mut h2 = h2(proxy.addr, &site.ca).await;
    let slow = h2.send_request(Request::get("https://localhost/slow").body(empty()).unwrap());
    let resp = within(HANG, "the slow answer", slow).await.unwrap();
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "finally");
    let resp = h2
        .send_request(Request::get("https://localhost/stream").body(empty()).unwrap())
        .await
        .unwrap();
    let body = within(HANG, "the streamed answer", resp.into_body().collect())
        .await
        .unwrap();
    assert_eq!(body.to_bytes(), "tick\n".repeat(15));

    let (status, _, body) = fetch(proxy.addr, &site.ca, get("/stream")).await;
    assert_eq!((status, body), (StatusCode::OK, "tick\n".repeat(15)));
    proxy.shutdown().await.unwrap();
}

// ---------------------------------------------------------------- under attack

/// How a hostile connection misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hostile {
    /// Connects and sends nothing.
    Silent,
    /// Sends the start of a ClientHello record and stalls.
    MidHandshake,
    /// Completes TLS, sends nothing.
    AfterHandshake,
    /// Completes TLS, sends part of a request head and stalls.
    MidHead,
}

/// A TLS record header announcing a 512-byte handshake message, and the
/// start of a ClientHello: the server waits for the rest of the record.
const PARTIAL_CLIENT_HELLO: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];
const PARTIAL_HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Stall: ";

/// What the hostile clients have done, for the test's own checks.
#[derive(Default)]
struct Attack {
    /// Clients whose first connection is established.
    started: AtomicUsize,
    /// Hostile connections the proxy closed, by kind.
    cut: [AtomicUsize; 4],
}

/// One hostile client: misbehaves as `kind`, waits for the proxy to close
/// the connection, and starts again, until `stop`. Every step is bounded.
async fn hostile(
    kind: Hostile,
    addr: SocketAddr,
    ca: Arc<rustls::ClientConfig>,
    attack: Arc<Attack>,
    stop: CancellationToken,
) {
    let mut first = true;
    while !stop.is_cancelled() {
        let connected = tokio::select! {
            () = stop.cancelled() => return,
            c = tokio::time::timeout(HANG, TcpStream::connect(addr)) => c,
        };
        let Ok(Ok(mut tcp)) = connected else {
            // A full backlog or out of ports: try again, unhurried.
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(100)) => continue,
            }
        };
        if std::mem::take(&mut first) {
            attack.started.fetch_add(1, Ordering::SeqCst);
        }
        let closed = async {
            match kind {
                Hostile::Silent => closed_without_a_byte(&mut tcp, "a silent connection").await,
                Hostile::MidHandshake => {
                    if tcp.write_all(PARTIAL_CLIENT_HELLO).await.is_ok() {
                        closed_without_a_byte(&mut tcp, "a stalled handshake").await;
                    }
                }
                Hostile::AfterHandshake | Hostile::MidHead => {
                    let connector = tokio_rustls::TlsConnector::from(ca.clone());
                    let name = ServerName::try_from("localhost").unwrap();
                    let Ok(mut tls) = connector.connect(name, tcp).await else {
                        return;
                    };
                    if kind == Hostile::MidHead && tls.write_all(PARTIAL_HEAD).await.is_err() {
                        return;
                    }
                    let _ = tls.flush().await;
                    closed_without_a_byte(&mut tls, "a stalled request head").await;
                }
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            r = tokio::time::timeout(Duration::from_secs(30), closed) => {
                if r.is_ok() {
                    attack.cut[kind as usize].fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }
}

/// 2 000 hostile connections, four times `max_connections`, kept up for
/// the whole test (each one reconnects as soon as the proxy closes it):
/// half say nothing after the TCP handshake, a quarter stall in the TLS
/// handshake, and a quarter stall after it (silent, or part way through a
/// request head). The deadlines free their places, so a normal client
/// that queues behind them is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_client_is_served_while_2000_hostile_connections_hold_on() {
    const HOSTILE: usize = 2000;
    // Each hostile client has a socket here, and the proxy one for each it
    // accepted; with lingering closes and the rest, 3 000 is the most.
    ensure_open_files(6000, "hostile clients and the proxy's ends");
    let site = Site::new();
    let origin = Origin::hello().await;
    let toml = config(
        "max_connections = 500\nhandshake_timeout = \"1s\"\nheader_read_timeout = \"1s\"",
        &route("/", &origin.url(), ""),
    );
    let proxy = ProxyHandle::start(&toml, site.dir.path()).await;

    let attack = Arc::new(Attack::default());
    let stop = CancellationToken::new();
    let client_config = site.ca.client_config(&[b"http/1.1"]);
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..HOSTILE {
        let kind = match index % 8 {
            0..=3 => Hostile::Silent,
            4 | 5 => Hostile::MidHandshake,
            6 => Hostile::AfterHandshake,
            _ => Hostile::MidHead,
        };
        tasks.spawn(hostile(
            kind,
            proxy.addr,
            client_config.clone(),
            attack.clone(),
            stop.clone(),
        ));
    }
    wait_until(
        Duration::from_secs(60),
        "the hostile connections to be established",
        || attack.started.load(Ordering::SeqCst) == HOSTILE,
    )
    .await;

    // The normal client queues behind the hostile connections.
    let status = within(
        Duration::from_secs(20),
        "a normal client to be served under attack",
        async {
            let tls = tls_connect(proxy.addr, &site.ca, &[b"http/1.1"]).await;
            get_on(tls).await
        },
    )
    .await
    .expect("the normal client's request failed");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(origin.count(), 1, "a hostile request reached the origin");

    stop.cancel();
    within(HANG, "the hostile clients to stop", async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    for kind in [
        Hostile::Silent,
        Hostile::MidHandshake,
        Hostile::AfterHandshake,
        Hostile::MidHead,
    ] {
        assert!(
            attack.cut[kind as usize].load(Ordering::SeqCst) > 0,
            "no {kind:?} connection was ever closed by the proxy"
        );
    }
    within(HANG, "the proxy to stop", proxy.shutdown()).await.unwrap();
}
