//! Compression of streams: server-sent events still arrive one at a time
//! in every encoding, a 32 MiB body streams through with the proxy's
//! memory bounded, and curl's own decoder reads what the proxy sends.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use support::compress::{boxed, encodings, ChannelBody, Incremental};
use support::process::ProxyProcess;
use support::*;
use tokio::sync::{mpsc, Mutex};

const HANG: Duration = Duration::from_secs(10);
const MIB: u64 = 1 << 20;

/// An origin whose `/events` is fed by the test: each request's sender is
/// handed over on `senders`.
async fn sse_origin() -> (Origin, mpsc::UnboundedReceiver<mpsc::UnboundedSender<Bytes>>) {
    let (hand_over, senders) = mpsc::unbounded_channel();
    let hand_over = std::sync::Arc::new(Mutex::new(hand_over));
    let origin = Origin::start(move |_req: Request<Incoming>| {
        let hand_over = hand_over.clone();
        async move {
            let (tx, rx) = mpsc::unbounded_channel();
            let _ = hand_over.lock().await.send(tx);
            Response::builder()
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache")
                .body(boxed(ChannelBody(rx)))
                .unwrap()
        }
    })
    .await;
    (origin, senders)
}

/// Reads `body` into `decoder` until the decoded text holds `text`.
async fn read_until(body: &mut Incoming, decoder: &mut Incremental, text: &str) -> String {
    loop {
        let frame = body
            .frame()
            .await
            .unwrap_or_else(|| panic!("the body ended before {text:?}"))
            .expect("the body failed");
        if let Ok(data) = frame.into_data() {
            let decoded = String::from_utf8_lossy(decoder.push(&data)).into_owned();
            if decoded.contains(text) {
                return decoded;
            }
        }
    }
}

#[tokio::test]
async fn server_sent_events_arrive_one_at_a_time_in_every_encoding() {
    let site = Site::new();
    let (origin, mut senders) = sse_origin().await;
    let cfg = site.config(&format!(
        "[compression]\nmin_length = 0\n\n{}",
        route("/", &origin.url(), "")
    ));
    let proxy = ProxyHandle::start(&cfg, site.dir.path()).await;
    for http2 in [false, true] {
        for enc in encodings() {
            let req = Request::get("https://localhost/events").header("accept-encoding", enc);
            let req = if http2 {
                req
            } else {
                req.header("host", "localhost")
            };
            let req = req.body(empty()).unwrap();
            let resp = if http2 {
                h2(proxy.addr, &site.ca).await.send_request(req).await.unwrap()
            } else {
                h1(proxy.addr, &site.ca).await.send_request(req).await.unwrap()
            };
            let events = within(HANG, "the origin's sender", senders.recv()).await.unwrap();
            assert_eq!(resp.headers()["content-encoding"], enc);
            let mut body = resp.into_body();
            let mut decoder = Incremental::new(enc);
            // The origin sends the second event only once the first was
            // read through the proxy: held back, the first never comes.
            events.send(Bytes::from_static(b"data: {\"n\":1}\n\n")).unwrap();
            let got = within(
                HANG,
                "event 1 on its own",
                read_until(&mut body, &mut decoder, "data: {\"n\":1}\n\n"),
            )
            .await;
            assert_eq!(got, "data: {\"n\":1}\n\n", "{enc} http2={http2}");
            events.send(Bytes::from_static(b"data: {\"n\":2}\n\n")).unwrap();
            let got = within(
                HANG,
                "event 2 on its own",
                read_until(&mut body, &mut decoder, "data: {\"n\":2}\n\n"),
            )
            .await;
            assert_eq!(
                got, "data: {\"n\":1}\n\ndata: {\"n\":2}\n\n",
                "{enc} http2={http2}"
            );
            drop(events);
            while let Some(frame) = within(HANG, "the end", body.frame()).await {
                frame.unwrap();
            }
        }
    }
}

/// 32 MiB of JSON lines, made as they are sent.
const BIG: u64 = 32 * MIB;

fn big_line(i: u64) -> String {
    format!(
        "{{\"seq\":{i},\"value\":\"{:016x}\",\"tag\":\"row\"}}\n",
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    )
}

/// Makes the 32 MiB as it is read: the origin holds one chunk at a time.
struct BigBody {
    sent: u64,
    line: u64,
}

impl http_body::Body for BigBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.sent >= BIG {
            return std::task::Poll::Ready(None);
        }
        let mut chunk = String::with_capacity(64 * 1024);
        while chunk.len() < 64 * 1024 - 100 {
            chunk.push_str(&big_line(this.line));
            this.line += 1;
        }
        this.sent += chunk.len() as u64;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(chunk)))))
    }
}

async fn big_origin() -> Origin {
    Origin::start(|_req: Request<Incoming>| async move {
        Response::builder()
            .header("content-type", "application/x-ndjson")
            .body(boxed(BigBody { sent: 0, line: 0 }))
            .unwrap()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_mib_stream_compressed_with_bounded_proxy_memory() {
    let site = Site::new();
    let origin = big_origin().await;
    let cfg = site.config(&format!(
        "[compression]\ntypes = [\"application/x-ndjson\"]\n\n{}",
        route("/", &origin.url(), "")
    ));
    for enc in encodings() {
        // A process per encoding: what one encoder's state costs is not
        // counted against the next.
        let (proxy, addr) = ProxyProcess::start(site.dir.path(), &cfg).await;
        let baseline = proxy.memory("VmHWM");
        let mut send = h1(addr, &site.ca).await;
        let req = Request::get("/big")
            .header("host", "localhost")
            .header("accept-encoding", enc)
            .body(empty())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.headers()["content-encoding"], enc);
        let mut body = resp.into_body();
        let mut decoder = Incremental::new(enc);
        let (mut wire, mut plain, mut line) = (0u64, 0u64, 0u64);
        let mut pending = Vec::new();
        let read = async {
            while let Some(frame) = body.frame().await {
                let data = frame
                    .expect("the download failed")
                    .into_data()
                    .unwrap_or_default();
                wire += data.len() as u64;
                pending.extend_from_slice(decoder.push(&data));
                decoder.forget();
                // Check whole lines as they come, and forget them.
                while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                    assert_eq!(&pending[..=end], big_line(line).as_bytes(), "{enc}: line {line}");
                    line += 1;
                    plain += end as u64 + 1;
                    pending.drain(..=end);
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(300), read)
            .await
            .expect("the compressed download hangs");
        assert!(plain >= BIG, "{enc}: only {plain} bytes decoded");
        assert!(wire < BIG / 3, "{enc}: {wire} bytes on the wire");
        let peak = proxy.memory("VmHWM");
        eprintln!(
            "{enc}: proxy peak RSS {} KiB at start, {} KiB after 32 MiB",
            baseline / 1024,
            peak / 1024
        );
        // A proxy that collected the body would hold 32 MiB of it at once.
        assert!(
            peak < baseline + BIG,
            "{enc}: the proxy's peak memory grew by {} MiB compressing a 32 MiB stream: it buffers",
            (peak - baseline) / MIB
        );
    }
}

#[tokio::test]
async fn curl_decodes_what_the_proxy_compressed() {
    let site = Site::new();
    let origin = compress::origin().await;
    let cfg = site.config(&format!("[compression]\n\n{}", route("/", &origin.url(), "")));
    let proxy = ProxyHandle::start(&cfg, site.dir.path()).await;
    std::fs::write(site.path("ca.pem"), &site.ca.pem).unwrap();
    let url = format!("https://localhost:{}/json", proxy.addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", proxy.addr.port());
    let ca = site.path("ca.pem");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args([
                "--silent",
                "--show-error",
                "--compressed",
                "--dump-header",
                "/dev/stderr",
            ])
            .arg("--cacert")
            .arg(&ca)
            .args(["--resolve", &resolve, &url])
            .output()
            .expect("curl is installed (.ci/run installs it)")
    })
    .await
    .unwrap();
    let head = String::from_utf8_lossy(&out.stderr).to_ascii_lowercase();
    assert!(out.status.success(), "curl failed: {head}");
    assert!(
        head.contains("content-encoding: "),
        "curl got no compressed answer: {head}"
    );
    assert_eq!(Bytes::from(out.stdout), compress::page());
}
