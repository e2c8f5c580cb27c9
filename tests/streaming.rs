//! Bodies stream through the proxy: server-sent events arrive one by one,
//! an echo flows back while its upload is still going, 100 MiB crosses
//! each way with the proxy's memory staying small, and a long upload is
//! not cut by the response timeout.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use support::process::ProxyProcess;
use support::*;
use tokio::sync::Notify;

/// Longer than any step here takes; reaching it means the proxy hangs.
const HANG: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- helpers

/// A streaming body from a stream of chunks.
fn stream_body<S>(chunks: S) -> Body
where
    S: futures_util::Stream<Item = Bytes> + Send + Sync + 'static,
{
    BodyExt::boxed(StreamBody::new(
        chunks.map(|b| Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(b))),
    ))
}

/// A body fed from a channel: the origin decides when each chunk leaves.
fn channel_body() -> (tokio::sync::mpsc::UnboundedSender<Bytes>, Body) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let chunks = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    // The unfold future is not Sync, and the harness' Body is: SyncBody
    // makes it so.
    let body = BodyExt::boxed_unsync(StreamBody::new(
        chunks.map(|b| Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(b))),
    ));
    (tx, sync_body(body))
}

/// Makes an `UnsyncBoxBody` usable where the harness wants a `BoxBody`.
fn sync_body(
    body: http_body_util::combinators::UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>,
) -> Body {
    BodyExt::boxed(SyncBody(Mutex::new(body)))
}

struct SyncBody(
    Mutex<http_body_util::combinators::UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>>,
);

impl http_body::Body for SyncBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let inner = self.get_mut().0.get_mut().unwrap();
        std::pin::Pin::new(inner).poll_frame(cx)
    }
}

// ---------------------------------------------------------------- server-sent events

/// An origin whose `/events` sends `data: 1`, then waits until `go` is
/// notified (the test saw event 1 through the proxy), then sends `data: 2`
/// and ends.
async fn sse_origin(go: Arc<Notify>) -> Origin {
    Origin::start(move |_req: Request<Incoming>| {
        let go = go.clone();
        async move {
            let (tx, body) = channel_body();
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from_static(b"data: 1\n\n"));
                go.notified().await;
                let _ = tx.send(Bytes::from_static(b"data: 2\n\n"));
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache")
                .body(body)
                .unwrap()
        }
    })
    .await
}

/// Reads `body` until `text` has arrived (in total), returning all read.
async fn read_until(body: &mut Incoming, got: &mut String, text: &str) {
    while !got.contains(text) {
        let frame = body
            .frame()
            .await
            .unwrap_or_else(|| panic!("the body ended before {text:?}; got {got:?}"))
            .expect("the body failed");
        if let Ok(data) = frame.into_data() {
            got.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
}

async fn events_arrive_one_by_one(resp: Response<Incoming>, go: &Notify) {
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    let mut got = String::new();
    // If the proxy held the body back, event 1 would never come: the origin
    // sends event 2 (and ends) only after this line.
    tokio::time::timeout(
        Duration::from_secs(10),
        read_until(&mut body, &mut got, "data: 1\n\n"),
    )
    .await
    .expect("event 1 did not arrive on its own: the proxy buffers the stream");
    assert_eq!(got, "data: 1\n\n");
    go.notify_one();
    tokio::time::timeout(
        Duration::from_secs(10),
        read_until(&mut body, &mut got, "data: 2\n\n"),
    )
    .await
    .expect("event 2 did not arrive");
    let rest = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .expect("the stream did not end")
        .unwrap()
        .to_bytes();
    assert!(rest.is_empty(), "{rest:?}");
    assert_eq!(got, "data: 1\n\ndata: 2\n\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_arrive_one_by_one_over_http1() {
    let site = Site::new();
    let go = Arc::new(Notify::new());
    let origin = sse_origin(go.clone()).await;
    let proxy = ProxyHandle::start(&site.config(&route("/", &origin.url(), "")), site.dir.path()).await;

    let mut send = h1(proxy.addr, &site.ca).await;
    let resp = tokio::time::timeout(Duration::from_secs(10), send.send_request(get("/events")))
        .await
        .expect("no response head: the proxy waits for the whole body")
        .unwrap();
    events_arrive_one_by_one(resp, &go).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_arrive_one_by_one_over_http2() {
    let site = Site::new();
    let go = Arc::new(Notify::new());
    let origin = sse_origin(go.clone()).await;
    let proxy = ProxyHandle::start(&site.config(&route("/", &origin.url(), "")), site.dir.path()).await;

    let mut send = h2(proxy.addr, &site.ca).await;
    let req = Request::get("https://localhost/events").body(empty()).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), send.send_request(req))
        .await
        .expect("no response head: the proxy waits for the whole body")
        .unwrap();
    assert_eq!(resp.version(), Version::HTTP_2);
    events_arrive_one_by_one(resp, &go).await;
}

// ---------------------------------------------------------------- both ways at once

/// Sends a body of declared length piece by piece, each piece only once
/// the one before has come back through the proxy: the upstream answers
/// at once and echoes as it reads, so this finishes only if the proxy
/// keeps sending the request body after the response has started, and
/// passes each echoed piece on as it comes.
async fn echo_conversation<F>(send: impl FnOnce(Request<Body>) -> F)
where
    F: std::future::Future<Output = hyper::Result<Response<Incoming>>>,
{
    // Above the size of the bodies the proxy reads whole before answering.
    const PIECES: usize = 4;
    const PIECE: usize = 32 * 1024;
    let piece = |i: usize| Bytes::from(vec![b'a' + i as u8; PIECE]);
    let (tx, body) = channel_body();
    let req = Request::post("https://localhost/echo")
        .header("host", "localhost")
        .header("content-length", PIECES * PIECE)
        .body(body)
        .unwrap();
    tx.send(piece(0)).unwrap();
    let resp = within(HANG, "the echo's response head", send(req)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut got = Vec::new();
    for i in 0..PIECES {
        let what = format!("piece {i} echoed while the upload is still open");
        while got.len() < (i + 1) * PIECE {
            let frame = within(HANG, &what, body.frame())
                .await
                .expect("the echo ended early");
            if let Ok(data) = frame.expect("the echo failed").into_data() {
                got.extend_from_slice(&data);
            }
        }
        if i + 1 < PIECES {
            tx.send(piece(i + 1)).unwrap();
        }
    }
    let want: Vec<u8> = (0..PIECES).flat_map(|i| piece(i).to_vec()).collect();
    assert!(
        got == want,
        "the echo differs from the upload ({} bytes back)",
        got.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_echo_flows_back_while_its_upload_is_still_going() {
    let site = Site::new();
    let origin = Origin::start(|req: Request<Incoming>| async move {
        Response::new(BodyExt::boxed(req.into_body().map_err(Into::into)))
    })
    .await;
    let proxy = ProxyHandle::start(&site.config(&route("/", &origin.url(), "")), site.dir.path()).await;

    let mut send = h1(proxy.addr, &site.ca).await;
    echo_conversation(|req| send.send_request(req)).await;
    let mut send = h2(proxy.addr, &site.ca).await;
    echo_conversation(|req| send.send_request(req)).await;
}

// ---------------------------------------------------------------- a slow upload

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_longer_than_read_timeout_is_not_cut() {
    // read_timeout bounds the wait for the upstream's answer. An upload that
    // takes longer than that while the upstream reads every chunk as it
    // comes is not a silent upstream and must not become a 504.
    let site = Site::new();
    let received = Arc::new(AtomicU64::new(0));
    let received2 = received.clone();
    let origin = Origin::start(move |req: Request<Incoming>| {
        let received = received2.clone();
        async move {
            let mut body = req.into_body();
            let mut n = 0u64;
            while let Some(frame) = body.frame().await {
                // A cut upload (the proxy gave up) ends the count here.
                let Ok(frame) = frame else { break };
                if let Ok(data) = frame.into_data() {
                    n += data.len() as u64;
                    received.store(n, Ordering::SeqCst);
                }
            }
            Response::new(full(format!("received {n}")))
        }
    })
    .await;
    let cfg = site.config(&route("/", &origin.url(), "read_timeout = \"300ms\""));
    let proxy = ProxyHandle::start(&cfg, site.dir.path()).await;

    // A slow client: ten chunks, 100 ms apart, so the whole upload lasts
    // at least a second. The pauses are the condition under test, not a
    // synchronisation: the result must be the same at any pace.
    const CHUNKS: u64 = 10;
    let chunks = stream::iter(0..CHUNKS).then(|i| async move {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Bytes::from(vec![b'u'; 1000])
    });
    let req = Request::post("/upload")
        .header("host", "localhost")
        .body(stream_body(chunks))
        .unwrap();
    let (status, _, body) = tokio::time::timeout(Duration::from_secs(30), fetch(proxy.addr, &site.ca, req))
        .await
        .expect("the upload hangs");
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "received 10000"),
        "the upload was cut after the upstream had received {} bytes",
        received.load(Ordering::SeqCst)
    );
}

// ---------------------------------------------------------------- 100 MiB with bounded memory

const MIB: u64 = 1 << 20;
const BIG: u64 = 100 * MIB;
const CHUNK: usize = 64 * 1024;
/// The proxy's peak resident memory must stay far below one body.
const MEMORY_LIMIT: u64 = 64 * MIB;

/// The origin for the big transfers: `/upload` counts what it receives,
/// `/download` streams `BIG` bytes in chunks made on the fly.
async fn bulk_origin() -> Origin {
    Origin::start(|req: Request<Incoming>| async move {
        match req.uri().path() {
            "/upload" => {
                let mut body = req.into_body();
                let (mut n, mut sum) = (0u64, 0u64);
                while let Some(frame) = body.frame().await {
                    let Ok(frame) = frame else {
                        return Response::builder()
                            .status(500)
                            .body(full("upload failed"))
                            .unwrap();
                    };
                    if let Ok(data) = frame.into_data() {
                        n += data.len() as u64;
                        sum = data.iter().fold(sum, |s, &b| s.wrapping_add(b as u64));
                    }
                }
                Response::new(full(format!("{n} {sum}")))
            }
            _ => {
                let chunks =
                    stream::iter(0..BIG / CHUNK as u64).map(|i| Bytes::from(vec![(i % 251) as u8; CHUNK]));
                Response::builder()
                    .header("content-type", "application/octet-stream")
                    .body(stream_body(chunks))
                    .unwrap()
            }
        }
    })
    .await
}

/// What `BIG` bytes of chunks `i % 251` sum to.
fn expected_sum() -> u64 {
    (0..BIG / CHUNK as u64).map(|i| (i % 251) * CHUNK as u64).sum()
}

/// Uploads `BIG` bytes made on the fly; returns the origin's "count sum".
async fn upload(send: impl std::future::Future<Output = Response<Incoming>>) -> String {
    let resp = send.await;
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

fn big_upload_body() -> Body {
    stream_body(stream::iter(0..BIG / CHUNK as u64).map(|i| Bytes::from(vec![(i % 251) as u8; CHUNK])))
}

/// Reads a download to its end, counting and summing, never keeping it.
async fn drain(resp: Response<Incoming>) -> (u64, u64) {
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let (mut n, mut sum) = (0u64, 0u64);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("the download failed").into_data() {
            n += data.len() as u64;
            sum = data.iter().fold(sum, |s, &b| s.wrapping_add(b as u64));
        }
    }
    (n, sum)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_mib_each_way_with_bounded_proxy_memory() {
    let site = Site::new();
    let origin = bulk_origin().await;
    let cfg = site.config(&route("/", &origin.url(), ""));
    let (mut proxy, addr) = ProxyProcess::start(site.dir.path(), &cfg).await;
    let baseline = proxy.memory("VmHWM");
    let want = format!("{BIG} {}", expected_sum());
    let deadline = Duration::from_secs(300);

    // HTTP/1.1 upload, then download, on one client connection.
    let mut send = h1(addr, &site.ca).await;
    let req = Request::post("/upload")
        .header("host", "localhost")
        .body(big_upload_body())
        .unwrap();
    let got = tokio::time::timeout(deadline, upload(async { send.send_request(req).await.unwrap() }))
        .await
        .expect("the HTTP/1.1 upload hangs");
    assert_eq!(got, want, "HTTP/1.1 upload: bytes and sum the origin received");
    send.ready().await.unwrap();
    let resp = send.send_request(get("/download")).await.unwrap();
    let (n, sum) = tokio::time::timeout(deadline, drain(resp))
        .await
        .expect("the HTTP/1.1 download hangs");
    assert_eq!((n, sum), (BIG, expected_sum()), "HTTP/1.1 download");

    // HTTP/2 both ways.
    let mut send = h2(addr, &site.ca).await;
    let req = Request::post("https://localhost/upload")
        .body(big_upload_body())
        .unwrap();
    let got = tokio::time::timeout(deadline, upload(async { send.send_request(req).await.unwrap() }))
        .await
        .expect("the HTTP/2 upload hangs");
    assert_eq!(got, want, "HTTP/2 upload");
    let req = Request::get("https://localhost/download").body(empty()).unwrap();
    let resp = send.send_request(req).await.unwrap();
    let (n, sum) = tokio::time::timeout(deadline, drain(resp))
        .await
        .expect("the HTTP/2 download hangs");
    assert_eq!((n, sum), (BIG, expected_sum()), "HTTP/2 download");

    let peak = proxy.memory("VmHWM");
    eprintln!(
        "proxy peak RSS: {} KiB at start, {} KiB after 400 MiB moved",
        baseline / 1024,
        peak / 1024
    );
    assert!(
        peak < MEMORY_LIMIT,
        "the proxy's peak resident memory reached {} MiB moving 100 MiB bodies (limit {} MiB): it buffers",
        peak / MIB,
        MEMORY_LIMIT / MIB
    );
    assert!(
        proxy.try_wait().is_none(),
        "the proxy died; stderr:\n{}",
        proxy.stderr_text()
    );
}
