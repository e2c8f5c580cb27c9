//! Shutdown: requests in flight finish, new connections are refused,
//! tunnels are closed once the requests are done, idle connections do not
//! hold the drain, and the binary exits 0 on SIGTERM and SIGINT.

mod support;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use support::process::ProxyProcess;
use support::*;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite::Message;

/// Generous bound for anything that should happen "soon": it only turns a
/// hang into a failure with a message, it measures nothing.
const SOON: Duration = Duration::from_secs(10);

/// A configuration with a shutdown grace far longer than any deadline in
/// these tests: whatever the drain finishes "soon" it finished because the
/// work was done, never because the grace period ran out.
fn config_long_grace(routes: &str) -> String {
    tls_config("shutdown_grace = \"1h\"", routes)
}

/// An origin whose every request waits for a permit on `release` after
/// reporting on `arrived`, then answers 200 with `body`.
struct HeldOrigin {
    origin: Origin,
    arrived: mpsc::UnboundedReceiver<String>,
    release: Arc<Semaphore>,
}

impl HeldOrigin {
    async fn start(body: Bytes) -> HeldOrigin {
        let (tx, arrived) = mpsc::unbounded_channel();
        let release = Arc::new(Semaphore::new(0));
        let gate = release.clone();
        let origin = Origin::start(move |req: Request<Incoming>| {
            let (tx, gate, body) = (tx.clone(), gate.clone(), body.clone());
            async move {
                let _ = tx.send(req.uri().to_string());
                gate.acquire_owned().await.unwrap().forget();
                Response::new(full(body))
            }
        })
        .await;
        HeldOrigin {
            origin,
            arrived,
            release,
        }
    }

    async fn wait_arrived(&mut self) -> String {
        within(SOON, "the request to reach the origin", self.arrived.recv())
            .await
            .expect("the origin went away")
    }
}

/// `len` bytes of numbered lines, so a cut body shows where it was cut.
fn body_of(len: usize) -> Bytes {
    let mut s = String::with_capacity(len + 16);
    let mut i = 0u32;
    while s.len() < len {
        s.push_str(&format!("line {i:07}\n"));
        i += 1;
    }
    s.truncate(len);
    Bytes::from(s)
}

/// Sends `req` and reads the whole response; on failure says how many
/// body bytes had arrived, so a cut body is told apart from a refused request.
async fn exchange(
    send: impl Future<Output = hyper::Result<Response<Incoming>>>,
) -> Result<(http::StatusCode, Bytes), String> {
    let resp = send.await.map_err(|e| format!("no response: {e:?}"))?;
    let status = resp.status();
    let mut body = resp.into_body();
    let mut got = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    got.extend_from_slice(d);
                }
            }
            Err(e) => {
                return Err(format!(
                    "{status}, then the body failed after {} bytes: {e:?}",
                    got.len()
                ))
            }
        }
    }
    Ok((status, got.freeze()))
}

/// What a request held through the drain got must be 200 and all of `body`.
fn assert_whole_body(status: http::StatusCode, got: &Bytes, body: &Bytes) {
    assert_eq!(status, 200);
    assert_eq!(got.len(), body.len(), "the body was cut");
    assert!(got == body, "the body differs");
}

/// Polls until a TCP connection to `addr` is refused.
async fn wait_refused(addr: SocketAddr) {
    within(SOON, "new connections to be refused", async {
        loop {
            match TcpStream::connect(addr).await {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
                // Accepted, or reset by a listener closing with this
                // connection in its backlog: not refused yet, try again.
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
                Err(e) => panic!("connecting to the stopping proxy failed oddly: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// The proxy, with a long grace, in front of a `HeldOrigin` answering `body`.
async fn proxy_to_held(site: &Site, body: Bytes) -> (HeldOrigin, ProxyHandle) {
    let held = HeldOrigin::start(body).await;
    let proxy = ProxyHandle::start(
        &config_long_grace(&route("/", &held.origin.url(), "")),
        site.dir.path(),
    )
    .await;
    (held, proxy)
}

/// Begins the shutdown while `in_flight` (a `what`) waits at the origin:
/// new connections are refused but the proxy keeps going; once the origin
/// answers, the whole `body` arrives and the proxy returns.
async fn shutdown_finishes_in_flight(
    mut proxy: ProxyHandle,
    held: &HeldOrigin,
    in_flight: tokio::task::JoinHandle<Result<(http::StatusCode, Bytes), String>>,
    what: &str,
    body: &Bytes,
) {
    proxy.begin_shutdown();
    wait_refused(proxy.addr).await;
    assert!(!proxy.is_finished(), "the proxy stopped with a {what} in flight");

    held.release.add_permits(1);
    let (status, got) = within(SOON, &format!("the {what} in flight to complete"), in_flight)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("the {what} in flight failed at shutdown: {e}"));
    assert_whole_body(status, &got, body);

    within(SOON, "the proxy to return", proxy.shutdown())
        .await
        .unwrap();
}

// ---------------------------------------------------------------- in-process

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_an_http1_request_in_flight() {
    let site = Site::new();
    let body = body_of(1 << 20);
    let (mut held, proxy) = proxy_to_held(&site, body.clone()).await;

    let mut send = h1(proxy.addr, &site.ca).await;
    let in_flight = tokio::spawn(async move { exchange(send.send_request(get("/slow"))).await });
    assert_eq!(held.wait_arrived().await, "/slow");
    shutdown_finishes_in_flight(proxy, &held, in_flight, "request", &body).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_an_http2_stream_in_flight() {
    let site = Site::new();
    // Smaller than half of hyper's default stream window (2 MiB), so the
    // client sends no WINDOW_UPDATE while reading it: that case is
    // `http2_response_survives_a_window_update_sent_after_the_drain`.
    let body = body_of(512 << 10);
    let (mut held, proxy) = proxy_to_held(&site, body.clone()).await;

    let mut send = h2(proxy.addr, &site.ca).await;
    let req = Request::get("https://localhost/slow-h2").body(empty()).unwrap();
    let in_flight = tokio::spawn(async move { exchange(send.send_request(req)).await });
    assert_eq!(held.wait_arrived().await, "/slow-h2");
    shutdown_finishes_in_flight(proxy, &held, in_flight, "stream", &body).await;
}

/// An open tunnel keeps working while a request is still in flight after
/// shutdown began, and is closed (both ends) once that request is done;
/// then the proxy returns, long before its grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_tunnel_is_closed_at_shutdown_after_requests_in_flight() {
    let site = Site::new();
    let mut held = HeldOrigin::start(Bytes::from_static(b"done")).await;
    let (ws_origin, mut ws_ended) = end_watching_origin().await;
    let routes = format!(
        "{}{}",
        route("/", &held.origin.url(), ""),
        route("/ws", &ws_origin.url(), "")
    );
    let mut proxy = ProxyHandle::start(&config_long_grace(&routes), site.dir.path()).await;
    let addr = proxy.addr;

    let mut ws = ws_connect(addr, &site.ca, "/ws").await;
    ws.send(Message::text("before")).await.unwrap();
    let echo = within(SOON, "an echo", ws.next()).await.unwrap().unwrap();
    assert_eq!(echo.to_text().unwrap(), "before");

    let in_flight = {
        let mut send = h1(addr, &site.ca).await;
        tokio::spawn(async move { exchange(send.send_request(get("/slow"))).await })
    };
    held.wait_arrived().await;

    proxy.begin_shutdown();
    wait_refused(addr).await;

    // Requests are still in flight: the tunnel is not closed yet.
    ws.send(Message::text("during the drain")).await.unwrap();
    let echo = within(SOON, "an echo during the drain", ws.next())
        .await
        .expect("the tunnel was closed while a request was still in flight")
        .expect("the tunnel failed while a request was still in flight");
    assert_eq!(echo.to_text().unwrap(), "during the drain");
    assert!(
        ws_ended.try_recv().is_err(),
        "the origin's end of the tunnel closed early"
    );

    held.release.add_permits(1);
    let (status, got) = within(SOON, "the request in flight to complete", in_flight)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("the request in flight failed at shutdown: {e}"));
    assert_eq!(status, 200);
    assert_eq!(&got[..], b"done");

    // Now the tunnel is closed: both ends see it end.
    within(SOON, "the client's end of the tunnel to close", async {
        while let Some(Ok(m)) = ws.next().await {
            assert!(m.is_close(), "unexpected message while closing: {m:?}");
        }
    })
    .await;
    within(SOON, "the origin's end of the tunnel to close", ws_ended.recv())
        .await
        .unwrap();
    within(SOON, "the proxy to return", proxy.shutdown())
        .await
        .unwrap();
}

/// Connections with nothing in flight (an HTTP/1.1 keep-alive connection
/// between requests, an HTTP/2 connection with no stream, a TLS connection
/// that never sent a request) do not hold the drain: with a grace period of
/// an hour, the proxy still returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_do_not_hold_the_drain() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let proxy = ProxyHandle::start(
        &config_long_grace(&route("/", &origin.url(), "")),
        site.dir.path(),
    )
    .await;

    let mut one = h1(proxy.addr, &site.ca).await;
    let resp = one.send_request(get("/a")).await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap();

    let mut two = h2(proxy.addr, &site.ca).await;
    let resp = two
        .send_request(Request::get("https://localhost/b").body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap();

    let silent = tls_connect(proxy.addr, &site.ca, &[b"http/1.1"]).await;

    within(
        SOON,
        "the proxy to return with idle connections open",
        proxy.shutdown(),
    )
    .await
    .unwrap();
    drop((one, two, silent));
}

/// A client-side stream wrapper (between hyper and TLS) that can hold the
/// client's reads, then let them through slowly, and that counts the
/// HTTP/2 PING acknowledgements the client writes.
mod valve {
    use std::pin::Pin;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll, Waker};

    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    /// Bytes handed to hyper per read once reads are paced.
    const PACE: usize = 1024;

    #[derive(Default)]
    pub struct Valve {
        held: AtomicBool,
        paced: AtomicBool,
        waker: Mutex<Option<Waker>>,
        pub ping_acks: AtomicUsize,
    }

    impl Valve {
        /// From now on the client reads nothing: what the server sends
        /// stays in the client's socket buffer.
        pub fn hold(&self) {
            self.held.store(true, Ordering::SeqCst);
        }

        /// Reads resume, a little at a time, yielding between reads, like a
        /// client on a slow link: hyper consumes (and acknowledges with
        /// WINDOW_UPDATE) what it has read while the rest still waits in
        /// the socket buffer.
        pub fn release_paced(&self) {
            self.paced.store(true, Ordering::SeqCst);
            self.held.store(false, Ordering::SeqCst);
            if let Some(w) = self.waker.lock().unwrap().take() {
                w.wake();
            }
        }
    }

    pub struct ValveIo<T> {
        pub inner: T,
        pub valve: Arc<Valve>,
        yielded: bool,
    }

    impl<T> ValveIo<T> {
        pub fn new(inner: T, valve: Arc<Valve>) -> Self {
            ValveIo {
                inner,
                valve,
                yielded: false,
            }
        }
    }

    impl<T: AsyncRead + Unpin> AsyncRead for ValveIo<T> {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let this = self.get_mut();
            if this.valve.held.load(Ordering::SeqCst) {
                *this.valve.waker.lock().unwrap() = Some(cx.waker().clone());
                if this.valve.held.load(Ordering::SeqCst) {
                    return Poll::Pending;
                }
            }
            if !this.valve.paced.load(Ordering::SeqCst) {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            if !this.yielded {
                this.yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            this.yielded = false;
            let mut tmp = [0u8; PACE];
            let n = buf.remaining().min(PACE);
            let mut small = ReadBuf::new(&mut tmp[..n]);
            match Pin::new(&mut this.inner).poll_read(cx, &mut small) {
                Poll::Ready(Ok(())) => {
                    buf.put_slice(small.filled());
                    Poll::Ready(Ok(()))
                }
                other => other,
            }
        }
    }

    impl<T: AsyncWrite + Unpin> AsyncWrite for ValveIo<T> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let r = Pin::new(&mut self.inner).poll_write(cx, buf);
            if let Poll::Ready(Ok(n)) = r {
                // HTTP/2 frame heads: length (3), type (1), flags (1), stream (4).
                let mut i = 0;
                while i + 9 <= n {
                    let len = (usize::from(buf[i]) << 16)
                        | (usize::from(buf[i + 1]) << 8)
                        | usize::from(buf[i + 2]);
                    if buf[i + 3] == 6 && buf[i + 4] & 1 == 1 {
                        self.valve.ping_acks.fetch_add(1, Ordering::SeqCst);
                    }
                    i += 9 + len;
                }
            }
            r
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }
}

/// The TCP state of the connection from `local` to `remote`, from
/// /proc/net/tcp ("08" is CLOSE_WAIT: the peer sent everything and its FIN).
fn tcp_state(local: SocketAddr, remote: SocketAddr) -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let port = |field: &str| {
        field
            .rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() > 3 && port(f[1]) == Some(local.port()) && port(f[2]) == Some(remote.port()))
            .then(|| f[3].to_owned())
    })
}

/// A client that reads a response slowly sends WINDOW_UPDATE frames while
/// it reads. If the proxy closed the connection right after writing the
/// last byte of the response (graceful shutdown done), such a frame meets a
/// closed socket: the kernel answers with a reset and the client loses the
/// part of the response it had not read yet. The proxy must close
/// lingering (shut down its write side, then read and discard until the
/// client closes or a short timeout), as nginx does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_response_survives_a_window_update_sent_after_the_drain() {
    use std::sync::atomic::Ordering;
    // The client's stream window, and a body that fits in it (so the proxy
    // can send all of it while the client reads nothing) but is more than
    // half of it (so the client sends a WINDOW_UPDATE while reading it).
    const WINDOW: u32 = 256 << 10;
    let site = Site::new();
    let body = body_of(240 << 10);
    let (mut held, mut proxy) = proxy_to_held(&site, body.clone()).await;
    let addr = proxy.addr;

    // A client socket whose buffer holds the whole response unread.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(1 << 20).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let tls = tokio_rustls::TlsConnector::from(site.ca.client_config(&[b"h2"]))
        .connect(rustls::pki_types::ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let valve = Arc::new(valve::Valve::default());
    let io = valve::ValveIo::new(tls, valve.clone());
    let (mut send, conn) = hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .initial_stream_window_size(WINDOW)
        .handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);

    let req = Request::get("https://localhost/slow-h2").body(empty()).unwrap();
    let in_flight = tokio::spawn(async move { exchange(send.send_request(req)).await });
    held.wait_arrived().await;

    proxy.begin_shutdown();
    wait_refused(addr).await;
    // The drain sent GOAWAY and a PING; once the client has answered it,
    // nothing more is needed from the client for the stream to finish.
    let v = valve.clone();
    wait_until(SOON, "the client to acknowledge the drain's PING", move || {
        v.ping_acks.load(Ordering::SeqCst) > 0
    })
    .await;

    valve.hold();
    held.release.add_permits(1);
    // The proxy writes the whole response and closes its side.
    wait_until(SOON, "the proxy to send the whole response and its FIN", || {
        tcp_state(local, addr).as_deref() == Some("08")
    })
    .await;

    valve.release_paced();
    let (status, got) = within(SOON, "the slow client to read the response", in_flight)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("the response was cut after the proxy closed the connection: {e}"));
    assert_whole_body(status, &got, &body);
    within(SOON, "the proxy to return", proxy.shutdown())
        .await
        .unwrap();
}

// ---------------------------------------------------------------- the binary

async fn binary_exits_0_on(signal: &str) {
    let site = Site::new();
    let origin = Origin::hello().await;
    let config = site.config(&route("/", &origin.url(), ""));
    let (mut running, addr) = ProxyProcess::start(site.dir.path(), &config).await;

    let (status, _, body) = within(
        SOON,
        "a request to the binary",
        fetch(addr, &site.ca, get("/before-signal")),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, "hello from /before-signal");

    running.signal(signal);
    let exit = running.wait_exit(&format!("SIG{signal}")).await;
    let log = running.stderr.lock().unwrap().clone();
    assert!(
        exit.success(),
        "the binary exited with {exit} after SIG{signal}, not 0; stderr:\n{log}"
    );
    assert!(
        log.contains("stopped"),
        "no 'stopped' line after SIG{signal}; stderr:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_exits_0_on_sigterm() {
    binary_exits_0_on("TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_exits_0_on_sigint() {
    binary_exits_0_on("INT").await;
}

/// A supervisor may stop the proxy as soon as it says it is listening. The
/// signal handlers must be in place by then: otherwise SIGTERM's default
/// action kills the process (no drain, exit by signal instead of 0). The
/// window is made wide here by not reading the child's stderr after the
/// "listening on" line: with enough routes, the child blocks writing its
/// start-up summary, exactly where a busy machine could preempt it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_handles_sigterm_as_soon_as_it_says_it_is_listening() {
    let site = Site::new();
    let origin = Origin::hello().await;
    // About 200 KB of "route ... -> ..." lines: more than a pipe holds.
    let long = "x".repeat(1000);
    let routes: String = (0..200)
        .map(|i| route(&format!("/r{i}/{long}"), &origin.url(), ""))
        .collect();
    let (go, hold) = std::sync::mpsc::channel::<()>();
    let (mut running, _addr) =
        ProxyProcess::start_holding_stderr(site.dir.path(), &site.config(&routes), Some(hold)).await;

    running.signal("TERM");
    go.send(()).unwrap();
    let exit = running.wait_exit("SIGTERM").await;
    let log = running.stderr.lock().unwrap().clone();
    let tail: String = log
        .lines()
        .filter(|l| !l.contains(" route /r"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        exit.success(),
        "the binary exited with {exit} after a SIGTERM sent once it said it was listening, not 0; \
         stderr without the route lines:\n{tail}"
    );
}
