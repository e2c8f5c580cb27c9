//! `request_buffering` and `response_buffering`, against real sockets: an
//! upload is read whole before the upstream is contacted (in memory, or
//! partly in a temporary file that is gone afterwards), a response that
//! fits frees its upstream connection before a slow client has read it,
//! server-sent events and `X-Accel-Buffering: no` still stream, and what a
//! lying client or upstream sends ends in a clear answer.

mod support;

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use support::admin::AdminProxy;
use support::raw::Raw;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

const HANG: Duration = Duration::from_secs(10);
const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------- helpers

/// What an upload origin saw of one request.
#[derive(Debug, Clone)]
struct Upload {
    content_length: Option<String>,
    chunked: bool,
    expect: bool,
    body: Vec<u8>,
    /// Descriptors of this process open on the temporary directory while
    /// the origin received the request (the proxy runs in this process).
    temp_fds: usize,
}

/// An origin whose listener can be asked, without waiting, whether the
/// proxy has connected: a connection that completed its handshake is in
/// the accept queue whether or not anyone accepted it.
struct Gate {
    listener: Option<std::net::TcpListener>,
    addr: std::net::SocketAddr,
}

impl Gate {
    fn new() -> Gate {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        Gate {
            listener: Some(listener),
            addr,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// No connection has reached the origin yet.
    fn untouched(&self) -> bool {
        match self.listener.as_ref().unwrap().accept() {
            Err(e) => e.kind() == ErrorKind::WouldBlock,
            Ok(_) => false,
        }
    }

    /// From now on the origin serves: each request's body is read whole
    /// and recorded, then answered 200.
    fn serve(&mut self, temp: PathBuf) -> Arc<Mutex<Vec<Upload>>> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let listener = tokio::net::TcpListener::from_std(self.listener.take().unwrap()).unwrap();
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let record = record.clone();
                let temp = temp.clone();
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let record = record.clone();
                    let temp = temp.clone();
                    async move {
                        let content_length = req
                            .headers()
                            .get("content-length")
                            .map(|v| v.to_str().unwrap().to_owned());
                        let chunked = req.headers().contains_key("transfer-encoding");
                        let expect = req.headers().contains_key("expect");
                        let temp_fds = fds_in(&temp);
                        let body = req.into_body().collect().await.unwrap().to_bytes().to_vec();
                        record.lock().unwrap().push(Upload {
                            content_length,
                            chunked,
                            expect,
                            body,
                            temp_fds,
                        });
                        Ok::<_, std::convert::Infallible>(Response::new(full("stored")))
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), service),
                );
            }
        });
        seen
    }
}

/// Descriptors of this process open on a file in `dir`, unlinked or not.
fn fds_in(dir: &Path) -> usize {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with(&dir))
        .count()
}

/// A temporary directory for spilled bodies, empty.
fn temp_dir(site: &Site) -> PathBuf {
    let dir = site.path("spill");
    std::fs::create_dir(&dir).unwrap();
    dir.canonicalize().unwrap()
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

/// The byte at `i` of a test body: not all alike, so a misplaced piece shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn buffering(temp: &Path) -> String {
    format!("[buffering]\ntemp_dir = \"{}\"\n", temp.display())
}

/// A proxy to a [`Gate`] origin, its route with `keys`, and spilled bodies
/// in a directory of their own.
struct Setup {
    site: Site,
    temp: PathBuf,
    gate: Gate,
    proxy: AdminProxy,
}

async fn upload_proxy(keys: &str) -> Setup {
    let site = Site::new();
    let temp = temp_dir(&site);
    let gate = Gate::new();
    let config = site.config(&format!("{}{}", buffering(&temp), route("/", &gate.url(), keys)));
    let proxy = AdminProxy::start(&config, site.dir.path()).await;
    Setup {
        site,
        temp,
        gate,
        proxy,
    }
}

/// As [`Setup`], its origin serving from the start.
struct Serving {
    site: Site,
    temp: PathBuf,
    proxy: AdminProxy,
    seen: Arc<Mutex<Vec<Upload>>>,
}

async fn serving(keys: &str) -> Serving {
    let Setup {
        site,
        temp,
        mut gate,
        proxy,
    } = upload_proxy(keys).await;
    let seen = gate.serve(temp.clone());
    Serving {
        site,
        temp,
        proxy,
        seen,
    }
}

/// The first upload the origin saw, checked to be `body` with its length.
fn sized(seen: &Mutex<Vec<Upload>>, body: &[u8]) -> Upload {
    let upload = seen.lock().unwrap()[0].clone();
    assert_eq!(upload.content_length.as_deref(), Some(&*body.len().to_string()));
    assert!(upload.body == body, "the origin got another body");
    upload
}

/// Waits for `portcullis_buffered_total` of `kind` on route `/` to be `n`.
async fn counted(proxy: &AdminProxy, kind: &str, n: f64) {
    let sample = format!("portcullis_buffered_total{{route=\"/\",kind=\"{kind}\"}}");
    proxy.wait_for_metric(&sample, n).await;
}

/// Sends `body` as chunks of `piece` bytes, without the last chunk.
async fn send_chunks(client: &mut Raw, body: &[u8], piece: usize) {
    for part in body.chunks(piece) {
        client.send(format!("{:x}\r\n", part.len()).as_bytes()).await;
        client.send(part).await;
        client.send(b"\r\n").await;
    }
}

// ---------------------------------------------------------------- uploads

/// 8 MiB sent in pieces: the proxy reads it (it answered 100 Continue) and
/// the origin has no connection until the last byte, then gets the whole
/// body with its Content-Length.
#[tokio::test]
async fn an_upload_is_read_whole_before_the_upstream_is_contacted() {
    let Setup {
        site,
        temp,
        mut gate,
        proxy,
    } = upload_proxy("request_buffering = \"16MiB\"").await;
    let body = pattern(8 * MIB);

    let mut client = Raw::connect(proxy.tls, &site.ca).await;
    client
        .send(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 8388608\r\nExpect: 100-continue\r\n\r\n")
        .await;
    // hyper says 100 Continue when the proxy starts reading the body; had
    // the proxy been streaming, it would have connected before that.
    let (head, _) = client.read_head().await;
    assert!(head.starts_with("HTTP/1.1 100"), "{head}");
    for piece in body.chunks(MIB).take(7) {
        assert!(
            gate.untouched(),
            "the origin was contacted before the body was complete"
        );
        client.send(piece).await;
        assert!(
            gate.untouched(),
            "the origin was contacted before the body was complete"
        );
    }
    let seen = gate.serve(temp.clone());
    client.send(&body[7 * MIB..]).await;
    let response = within(HANG, "the answer", client.read_response()).await.unwrap();
    assert_eq!(response.status, 200, "{}", response.head_text());

    let upload = sized(&seen, &body);
    assert_eq!(upload.temp_fds, 0, "a body under the memory size went to a file");
    assert!(!upload.expect, "Expect went on with a body that is all there");
    counted(&proxy, "request", 1.0).await;
    proxy.stop().await;
}

/// A chunked body over the memory size: part of it goes to a file with no
/// name, the origin gets it sized, and nothing is left in the directory or
/// open on it afterwards.
#[tokio::test]
async fn a_chunked_body_over_the_memory_size_spills_and_leaves_nothing() {
    let Serving {
        site,
        temp,
        proxy,
        seen,
    } = serving("request_buffering = \"1MiB\"").await;
    let body = pattern(3 * MIB + 17);

    let mut client = Raw::connect(proxy.tls, &site.ca).await;
    client.send(CHUNKED_POST).await;
    send_chunks(&mut client, &body, 100_000).await;
    // The body is past the memory size: it is in a file by now, one that
    // has no name.
    wait_until(HANG, "the body to spill", || fds_in(&temp) == 1).await;
    assert_eq!(entries(&temp), 0, "the temporary file has a name");
    assert!(
        seen.lock().unwrap().is_empty(),
        "the origin got the request early"
    );
    client.send(b"0\r\n\r\n").await;
    let response = within(HANG, "the answer", client.read_response()).await.unwrap();
    assert_eq!(response.status, 200, "{}", response.head_text());

    let upload = sized(&seen, &body);
    assert!(!upload.chunked, "the body went on chunked");
    counted(&proxy, "request_spilled", 1.0).await;
    drop(client);
    wait_until(HANG, "the temporary file to be closed", || fds_in(&temp) == 0).await;
    proxy.stop().await;
}

const CHUNKED_POST: &[u8] = b"POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n";

/// A chunked body that grows past max_body is a 413, and the upstream is
/// never contacted; its temporary file is gone.
#[tokio::test]
async fn a_body_over_max_body_is_413_without_an_upstream_connection() {
    let Setup {
        site,
        temp,
        gate,
        proxy,
    } = upload_proxy("request_buffering = \"1MiB\"\nmax_body = \"2MiB\"").await;

    let mut client = Raw::connect(proxy.tls, &site.ca).await;
    client.send(CHUNKED_POST).await;
    send_chunks(&mut client, &pattern(3 * MIB), 256 * 1024).await;
    let response = within(HANG, "the answer", client.read_response()).await.unwrap();
    assert_eq!(response.status, 413, "{}", response.head_text());
    assert!(
        gate.untouched(),
        "the origin was contacted for a body over max_body"
    );
    wait_until(HANG, "the temporary file to be closed", || fds_in(&temp) == 0).await;
    assert_eq!(entries(&temp), 0);
}

/// An HTTP/2 upload carries no length: buffered, it reaches the origin
/// with one, and a response that fits goes back the same way.
#[tokio::test]
async fn an_http2_upload_without_a_length_reaches_the_origin_sized() {
    let Serving {
        site, proxy, seen, ..
    } = serving("request_buffering = \"1MiB\"\nresponse_buffering = \"1MiB\"").await;
    let body = pattern(2 * MIB + 5);
    let pieces: Vec<Result<Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>> = body
        .chunks(100_000)
        .map(|piece| Ok(Frame::data(Bytes::copy_from_slice(piece))))
        .collect();
    let request = Request::post("https://localhost/upload")
        .body(BodyExt::boxed(StreamBody::new(futures_util::stream::iter(
            pieces,
        ))))
        .unwrap();
    let mut send = h2(proxy.tls, &site.ca).await;
    let response = within(HANG, "the answer", send.send_request(request))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    sized(&seen, &body);
    counted(&proxy, "request_spilled", 1.0).await;
    counted(&proxy, "response", 1.0).await;
    proxy.stop().await;
}

/// An origin that answers the first request of each connection with the
/// length of its body, and closes the connection without answering when a
/// second comes: a kept connection that died while idle.
async fn one_answer_per_connection() -> (String, Arc<Mutex<Vec<usize>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let record = bodies.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 65536];
                for round in 0..2 {
                    let end = loop {
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break end + 4;
                        }
                        match tcp.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    if round == 1 {
                        return;
                    }
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    while buf.len() < end + length {
                        match tcp.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    record.lock().unwrap().push(length);
                    buf.drain(..end + length);
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{length}",
                        length.to_string().len()
                    );
                    let _ = tcp.write_all(answer.as_bytes()).await;
                }
            });
        }
    });
    (url, bodies)
}

/// A buffered body is kept whole, however large: an idempotent PUT that
/// meets a dead kept connection is sent again, spilled part included.
#[tokio::test]
async fn a_buffered_put_is_sent_again_when_its_kept_connection_died() {
    let site = Site::new();
    let temp = temp_dir(&site);
    let (url, bodies) = one_answer_per_connection().await;
    let config = site.config(&format!(
        "{}[[route]]\npath = \"/\"\nupstream = \"app\"\nrequest_buffering = \"64KiB\"\n\n\
         [[upstream]]\nname = \"app\"\nservers = [\"{url}\"]\n",
        buffering(&temp)
    ));
    let proxy = ProxyHandle::start(&config, site.dir.path()).await;
    let mut client = Raw::connect(proxy.addr, &site.ca).await;
    client.get("/").await;
    let first = within(HANG, "the first answer", client.read_response())
        .await
        .unwrap();
    assert_eq!(first.status, 200);
    let body = pattern(300_000);
    client
        .send(b"PUT /file HTTP/1.1\r\nHost: localhost\r\nContent-Length: 300000\r\n\r\n")
        .await;
    client.send(&body).await;
    let again = within(HANG, "the PUT's answer", client.read_response())
        .await
        .unwrap();
    assert_eq!(again.status, 200, "{}", again.head_text());
    assert_eq!(again.text(), "300000");
    assert_eq!(*bodies.lock().unwrap(), [0, 300_000]);
}

/// A temporary directory that is not there: the body that would spill is
/// a 500, said in the log, and the upstream is never contacted.
#[tokio::test]
async fn a_body_that_cannot_spill_is_a_500_without_an_upstream_connection() {
    let site = Site::new();
    let gate = Gate::new();
    let config = site.config(&format!(
        "{}{}",
        buffering(&site.path("not-there")),
        route("/", &gate.url(), "request_buffering = \"64KiB\"")
    ));
    let proxy = ProxyHandle::start(&config, site.dir.path()).await;
    let mut client = Raw::connect(proxy.addr, &site.ca).await;
    client
        .send(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 200000\r\n\r\n")
        .await;
    client.send(&pattern(200_000)).await;
    let response = within(HANG, "the answer", client.read_response()).await.unwrap();
    assert_eq!(response.status, 500, "{}", response.head_text());
    assert!(
        gate.untouched(),
        "the origin was contacted for a body that was not kept"
    );
}

// ---------------------------------------------------------------- hostile clients

/// A client that declares more than it sends and ends its side: 400, and
/// no upstream request.
#[tokio::test]
async fn a_client_that_lies_about_content_length_gets_400_and_no_upstream_request() {
    let Setup {
        site, gate, proxy, ..
    } = upload_proxy("request_buffering = \"1MiB\"").await;

    let mut client = Raw::connect(proxy.tls, &site.ca).await;
    client
        .send(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n")
        .await;
    client.send(&pattern(1000)).await;
    let answer = String::from_utf8_lossy(&within(HANG, "the close", client.finish()).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(gate.untouched(), "the origin was contacted for a broken body");
}

/// Garbage where a chunk size belongs, past the read-ahead a streamed body
/// has: 400, and no upstream request.
#[tokio::test]
async fn garbage_chunk_sizes_get_400_and_no_upstream_request() {
    let Setup {
        site, gate, proxy, ..
    } = upload_proxy("request_buffering = \"1MiB\"").await;

    let mut client = Raw::connect(proxy.tls, &site.ca).await;
    client.send(CHUNKED_POST).await;
    send_chunks(&mut client, &pattern(100_000), 100_000).await;
    client.send(b"zz-not-hex\r\nmore\r\n0\r\n\r\n").await;
    let response = within(HANG, "the answer", client.read_response()).await.unwrap();
    assert_eq!(response.status, 400, "{}", response.head_text());
    assert!(gate.untouched(), "the origin was contacted for a broken body");
}

/// A client gone in the middle of an upload that had spilled: no upstream
/// request, and the temporary file is gone.
#[tokio::test]
async fn a_client_gone_mid_upload_leaves_no_file_and_no_upstream_request() {
    let Setup {
        site,
        temp,
        gate,
        proxy,
    } = upload_proxy("request_buffering = \"64KiB\"").await;

    let mut client = Raw::connect(proxy.tls, &site.ca).await;
    client
        .send(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4194304\r\n\r\n")
        .await;
    client.send(&pattern(MIB)).await;
    wait_until(HANG, "the body to spill", || fds_in(&temp) == 1).await;
    drop(client);
    wait_until(HANG, "the temporary file to be closed", || fds_in(&temp) == 0).await;
    assert_eq!(entries(&temp), 0);
    assert!(gate.untouched(), "the origin was contacted for an abandoned body");
}

// ---------------------------------------------------------------- responses

/// A 512 KiB response to a client that reads only its head: the upstream
/// connection is back in the pool already, so the next request reuses it.
#[tokio::test]
async fn a_response_that_fits_frees_its_upstream_connection_before_the_client_reads_it() {
    let site = Site::new();
    let big = Bytes::from(pattern(512 * 1024));
    let served = big.clone();
    let origin = Origin::start(move |_req| {
        let served = served.clone();
        async move { Response::new(full(served)) }
    })
    .await;
    let config = site.config(&route("/", &origin.url(), "response_buffering = \"1MiB\""));
    let proxy = AdminProxy::start(&config, site.dir.path()).await;

    let mut slow = Raw::connect(proxy.tls, &site.ca).await;
    slow.get("/big").await;
    let (head, _) = within(HANG, "the head", slow.read_head()).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // The slow client has read the head alone; another request finds the
    // connection free.
    let mut other = Raw::connect(proxy.tls, &site.ca).await;
    other.get("/big").await;
    let response = within(HANG, "the second answer", other.read_response())
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(
        origin.connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the upstream connection was still held by the slow client"
    );
    counted(&proxy, "response", 2.0).await;
    // The slow client still gets every byte.
    let rest = within(HANG, "the slow body", slow.read_body(big.len())).await;
    assert!(rest == big, "the slow client got another body");
    proxy.stop().await;
}

/// An origin that answers each request with `head`, `first`, then waits
/// for `go` before `second` and the end.
async fn two_step_origin(
    head: &'static str,
    first: &'static str,
    second: &'static str,
) -> (String, Arc<Notify>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let go = Arc::new(Notify::new());
    let wait = go.clone();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tcp.read(&mut buf).await.unwrap();
            request.extend_from_slice(&buf[..n]);
        }
        let chunk = |data: &str| format!("{:x}\r\n{data}\r\n", data.len());
        tcp.write_all(format!("{head}{}", chunk(first)).as_bytes())
            .await
            .unwrap();
        wait.notified().await;
        tcp.write_all(format!("{}0\r\n\r\n", chunk(second)).as_bytes())
            .await
            .unwrap();
        let _ = tcp.read(&mut buf).await;
    });
    (url, go)
}

/// Reads the chunked body's pieces until `want` has arrived.
async fn read_until(client: &mut Raw, want: &str) -> String {
    let mut got = String::new();
    while !got.contains(want) {
        let more = client.read_some().await;
        assert!(
            !more.is_empty(),
            "the connection ended before {want:?}; got {got:?}"
        );
        got.push_str(&String::from_utf8_lossy(&more));
    }
    got
}

async fn streams_event_by_event(head: &'static str) -> String {
    let site = Site::new();
    let (url, go) = two_step_origin(head, "data: one\n\n", "data: two\n\n").await;
    let config = site.config(&route("/", &url, "response_buffering = \"1MiB\""));
    let proxy = ProxyHandle::start(&config, site.dir.path()).await;
    let mut client = Raw::connect(proxy.addr, &site.ca).await;
    client.get("/events").await;
    let (head, _) = within(HANG, "the head", client.read_head()).await;
    within(HANG, "the first event", read_until(&mut client, "data: one")).await;
    go.notify_one();
    within(HANG, "the second event", read_until(&mut client, "data: two")).await;
    head
}

/// Server-sent events are never buffered: the first event arrives before
/// the origin sends the second.
#[tokio::test]
async fn server_sent_events_still_stream_event_by_event() {
    streams_event_by_event(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await;
}

/// `X-Accel-Buffering: no` turns buffering off for its response, and is
/// not passed on.
#[tokio::test]
async fn x_accel_buffering_no_streams_and_is_not_passed_on() {
    let head = streams_event_by_event(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await;
    assert!(!head.to_ascii_lowercase().contains("x-accel-buffering"), "{head}");
}

/// An upstream that declares more than it sends, then closes: with the
/// response read ahead, the client gets a clean 502 rather than a cut 200.
#[tokio::test]
async fn an_upstream_that_lies_about_content_length_is_a_502() {
    let site = Site::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = tcp.read(&mut buf).await;
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n";
        tcp.write_all(head.as_bytes()).await.unwrap();
        tcp.write_all(&pattern(100_000)).await.unwrap();
    });
    let config = site.config(&route("/", &url, "response_buffering = \"1MiB\""));
    let proxy = ProxyHandle::start(&config, site.dir.path()).await;
    let mut client = Raw::connect(proxy.addr, &site.ca).await;
    client.get("/").await;
    let response = within(HANG, "the answer", client.read_response()).await.unwrap();
    assert_eq!(response.status, 502, "{}", response.head_text());
}
