//! Upstreams that answer with malformed HTTP/1.1: a raw TcpListener (not
//! hyper) writes exact bytes, and a raw TLS client reads exactly what the
//! proxy sends on. A malformed response head must become a 502 made by the
//! proxy; a body that turns bad after the head has gone out must end the
//! response visibly (no closing chunk, connection closed), never look
//! complete. Whatever the outcome, nothing malformed may reach the client:
//! no control character in a head, no folded line, no second framing header.
//!
//! RFC 9112 is the reference: section 4 (status line), 5 (field syntax,
//! obs-fold), 6 (framing), 7 (chunked); RFC 9110 section 15.2 for 1xx.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::raw::{Raw, Resp};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The longest any single exchange may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- the upstream

/// What the scripted upstream does with one request.
type Script = dyn Fn(usize, usize, &str) -> Vec<u8> + Send + Sync;

/// An HTTP/1.1 upstream on 127.0.0.1:0 written on a bare TcpListener. For
/// each request head it receives it writes what the script returns for
/// (connection number, request number on that connection, head), in one
/// write, and keeps the connection open; an empty answer writes nothing.
/// Keeping it open means a bad answer is refused for what it is, not
/// because the connection ended.
struct RawUpstream {
    addr: SocketAddr,
    /// (connection number, request head) of every request received.
    requests: Arc<Mutex<Vec<(usize, String)>>>,
    connections: Arc<AtomicUsize>,
}

impl RawUpstream {
    async fn start<F>(script: F) -> RawUpstream
    where
        F: Fn(usize, usize, &str) -> Vec<u8> + Send + Sync + 'static,
    {
        let script: Arc<Script> = Arc::new(script);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (requests2, connections2) = (requests.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut tcp, _)) = listener.accept().await else {
                    return;
                };
                let conn = connections2.fetch_add(1, Ordering::SeqCst);
                let (script, requests) = (script.clone(), requests2.clone());
                tokio::spawn(async move {
                    let mut pending = Vec::new();
                    let mut buf = [0u8; 4096];
                    for nth in 0.. {
                        // The proxy sends bodiless GETs: a request is its head.
                        let end = loop {
                            if let Some(end) = find(&pending, b"\r\n\r\n") {
                                break end + 4;
                            }
                            match tcp.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => pending.extend_from_slice(&buf[..n]),
                            }
                        };
                        let head: Vec<u8> = pending.drain(..end).collect();
                        let head = String::from_utf8_lossy(&head).into_owned();
                        requests.lock().unwrap().push((conn, head.clone()));
                        let answer = script(conn, nth, &head);
                        if !answer.is_empty() && tcp.write_all(&answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        RawUpstream {
            addr,
            requests,
            connections,
        }
    }

    /// An upstream that answers every request with `answer`.
    async fn always(answer: &'static [u8]) -> RawUpstream {
        RawUpstream::start(move |_, _, _| answer.to_vec()).await
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The proxy with one catch-all route to `upstream`.
async fn proxy_to(site: &Site, upstream: &RawUpstream) -> ProxyHandle {
    ProxyHandle::start(&site.config(&route("/", &upstream.url(), "")), site.dir.path()).await
}

// ---------------------------------------------------------------- raw client

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// What is malformed in a response head as the client received it: any
/// control character but the line ends, a folded line, a Content-Length that
/// is not one plain number, both framings at once, or a framing header
/// repeated.
fn malformed(resp: &Resp) -> Vec<String> {
    let mut wrong = Vec::new();
    let lines = resp.head.strip_suffix(b"\r\n\r\n").unwrap_or(&resp.head);
    // Split on CRLF only: a bare CR or LF stays inside a line and counts as
    // a control character there.
    let mut rest = lines;
    let mut i = 0;
    while !rest.is_empty() {
        let end = find(rest, b"\r\n").unwrap_or(rest.len());
        let line = &rest[..end];
        if let Some(b) = line.iter().find(|&&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            wrong.push(format!("line {i} holds the control character {b:#04x}"));
        }
        if i > 0 && matches!(line.first(), Some(b' ' | b'\t')) {
            wrong.push(format!("line {i} is folded (starts with whitespace)"));
        }
        rest = rest.get(end + 2..).unwrap_or(&[]);
        i += 1;
    }
    let lengths = resp.values("content-length");
    if lengths.len() > 1 {
        wrong.push(format!("{} Content-Length lines", lengths.len()));
    }
    if let Some(len) = lengths.first() {
        if len.is_empty() || !len.iter().all(u8::is_ascii_digit) {
            wrong.push(format!(
                "Content-Length {:?} is not one number",
                String::from_utf8_lossy(len)
            ));
        }
    }
    let codings = resp.values("transfer-encoding");
    if codings.len() > 1 {
        wrong.push(format!("{} Transfer-Encoding lines", codings.len()));
    }
    if !lengths.is_empty() && !codings.is_empty() {
        wrong.push("both Content-Length and Transfer-Encoding".to_owned());
    }
    wrong
}

/// One GET for `/x` through a fresh proxy to a fresh upstream that answers
/// `answer`; returns the response (or `None` if the connection closed
/// without a whole head) and the open connection.
async fn exchange(site: &Site, answer: &'static [u8]) -> (Option<Resp>, Raw, RawUpstream, ProxyHandle) {
    let upstream = RawUpstream::always(answer).await;
    let proxy = proxy_to(site, &upstream).await;
    let mut raw = Raw::connect(proxy.addr, &site.ca).await;
    raw.get("/x").await;
    let resp = raw.read_response().await;
    (resp, raw, upstream, proxy)
}

/// Checks that every answer is refused with a clean 502 made by the proxy,
/// and that the client connection then still serves a request.
async fn assert_all_502(cases: &[(&str, &'static [u8])]) {
    let site = Site::new();
    let mut wrong = Vec::new();
    for &(what, answer) in cases {
        let (resp, mut raw, upstream, _proxy) = exchange(&site, answer).await;
        let Some(resp) = resp else {
            wrong.push(format!("{what}: the connection closed without an answer"));
            continue;
        };
        if resp.status != 502 {
            wrong.push(format!(
                "{what}: answered {} {:?}, not 502:\n      {:?}",
                resp.status,
                resp.text(),
                resp.head_text()
            ));
        }
        for m in malformed(&resp) {
            wrong.push(format!("{what}: {m}: {:?}", resp.head_text()));
        }
        // The 502 is the proxy's own: nothing of the upstream's answer in it.
        if find(&resp.head, b"x-bad").is_some() || find(&resp.body, b"hello").is_some() {
            wrong.push(format!(
                "{what}: the upstream's answer leaked into the 502: {resp:?}"
            ));
        }
        // The client connection is still in step: the next request on it is
        // answered in full (by the same broken upstream, so a 502 again).
        let before = upstream.requests.lock().unwrap().len();
        raw.get("/again").await;
        match raw.read_response().await {
            Some(again) if again.status == 502 && again.complete => {}
            other => wrong.push(format!(
                "{what}: the next request on the connection got {other:?}"
            )),
        }
        let after = upstream.requests.lock().unwrap().len();
        if after != before + 1 {
            wrong.push(format!(
                "{what}: the upstream got {} request(s) for one",
                after - before
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// ---------------------------------------------------------------- framing

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_with_content_length_and_transfer_encoding_is_502() {
    // RFC 9112 section 6.3 rule 3: such a message "ought to be handled as
    // an error" (it may be an attempt at response splitting); nginx answers
    // 502, and so does the proxy, as it answers 400 to such a request. The
    // Content-Length here (3) is shorter than the chunked body (11): a
    // proxy that kept it would send a response that looks complete and is
    // not.
    assert_all_502(&[
        (
            "Content-Length then Transfer-Encoding",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nb\r\nhello world\r\n0\r\n\r\n",
        ),
        (
            "Transfer-Encoding then Content-Length",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nb\r\nhello world\r\n0\r\n\r\n",
        ),
        (
            "a Content-Length longer than the chunked body",
            b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\nb\r\nhello world\r\n0\r\n\r\n",
        ),
        (
            "a Content-Length equal to the chunked bytes",
            b"HTTP/1.1 200 OK\r\nContent-Length: 21\r\nTransfer-Encoding: chunked\r\n\r\nb\r\nhello world\r\n0\r\n\r\n",
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_content_lengths_from_the_upstream_are_502() {
    // RFC 9112 section 6.3 rule 5: differing Content-Lengths make the
    // length unrecoverable; a proxy MUST NOT forward such a response and
    // answers 502 instead.
    assert_all_502(&[
        (
            "Content-Length: 5 and Content-Length: 6",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        ),
        (
            "Content-Length: 5, 6",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!",
        ),
        (
            "Content-Length: -5",
            b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello",
        ),
        (
            "Content-Length: +5",
            b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
        ),
        (
            "Content-Length: five",
            b"HTTP/1.1 200 OK\r\nContent-Length: five\r\n\r\nhello",
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_duplicate_content_lengths_reach_the_client_as_one() {
    // RFC 9110 section 8.6: a recipient of one value repeated (as lines or
    // as a list) MAY reject it or replace it with the single value; what it
    // must not do is forward it as it came ("a sender MUST NOT forward a
    // message with a Content-Length header field value that does not match
    // the ABNF"). So: a 502, or exactly one `Content-Length: 5`.
    let site = Site::new();
    let mut wrong = Vec::new();
    for (what, answer) in [
        (
            "two Content-Length: 5 lines",
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"[..],
        ),
        (
            "Content-Length: 5, 5",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello",
        ),
    ] {
        let (resp, mut raw, _upstream, _proxy) = exchange(&site, answer).await;
        let Some(resp) = resp else {
            wrong.push(format!("{what}: the connection closed without an answer"));
            continue;
        };
        for m in malformed(&resp) {
            wrong.push(format!("{what}: {m}: {:?}", resp.head_text()));
        }
        match resp.status {
            502 => {}
            200 => {
                let lengths = resp.values("content-length");
                if lengths != [b"5"] {
                    wrong.push(format!(
                        "{what}: the client got Content-Length {:?}",
                        lengths
                            .iter()
                            .map(|v| String::from_utf8_lossy(v))
                            .collect::<Vec<_>>()
                    ));
                }
                if !resp.complete || resp.text() != "hello" {
                    wrong.push(format!("{what}: body {:?}", resp.text()));
                }
            }
            other => wrong.push(format!("{what}: answered {other}")),
        }
        // Whatever came, the connection is in step for the next request.
        raw.get("/again").await;
        match raw.read_response().await {
            Some(r) if r.complete && matches!(r.status, 200 | 502) => {}
            other => wrong.push(format!("{what}: the next request got {other:?}")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_chunk_size_mid_body_ends_the_response_visibly() {
    // RFC 9112 section 7.1. The head has been taken and the first chunk is
    // good, so the proxy may already have sent the head and that chunk on.
    // Acceptable: a 502 (if nothing had gone out yet), or the response cut
    // short: no closing zero chunk and the connection closed, so the client
    // knows it is incomplete. Never a response that looks complete, and
    // never the bytes after the bad size line.
    let site = Site::new();
    let mut wrong = Vec::new();
    // Each with the bytes that must never reach the client: those after the
    // point where the framing breaks.
    for (what, answer, after) in [
        (
            "a chunk size that is not hex",
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n"[..],
            &b"world"[..],
        ),
        (
            "a chunk size of 2^64",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n10000000000000000\r\nworld\r\n0\r\n\r\n",
            b"world",
        ),
        (
            "a chunk size line ending in a bare LF",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\nworld\r\n0\r\n\r\n",
            b"world",
        ),
        (
            "chunk data longer than its size",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworldXX\r\n0\r\n\r\n",
            b"XX",
        ),
    ] {
        let (resp, mut raw, _upstream, _proxy) = exchange(&site, answer).await;
        let outcome = match &resp {
            None => "closed without a response".to_owned(),
            Some(r) if r.status == 502 => "502".to_owned(),
            Some(r) => format!("{} with the body cut short at {:?}", r.status, r.text()),
        };
        if let Some(resp) = &resp {
            for m in malformed(resp) {
                wrong.push(format!("{what}: {m}: {:?}", resp.head_text()));
            }
            if resp.status != 502 && resp.complete {
                wrong.push(format!(
                    "{what}: a response cut short by the upstream looks complete: {} {:?}",
                    resp.status,
                    resp.text()
                ));
            }
            if find(&resp.body, after).is_some() {
                wrong.push(format!(
                    "{what}: bytes after the bad size line reached the client: {:?}",
                    resp.text()
                ));
            }
            if resp.status != 502 && !resp.complete {
                // Cut short: the connection must end, it cannot carry on.
                let rest = raw.read_to_close().await;
                if !rest.is_empty() {
                    wrong.push(format!(
                        "{what}: more bytes after the cut: {:?}",
                        String::from_utf8_lossy(&rest)
                    ));
                }
            }
        }
        println!("{what}: {outcome}");
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// ---------------------------------------------------------------- heads

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_status_line_is_502() {
    // RFC 9112 section 4: status-line = HTTP-version SP status-code SP
    // [ reason-phrase ], the status code three digits. No HTTP/0.9.
    assert_all_502(&[
        ("bytes that are not HTTP", b"garbage garbage\r\n\r\nhello"),
        ("a TLS record", b"\x16\x03\x01\x00\x05hello\r\n\r\n"),
        (
            "a status code that is not a number",
            b"HTTP/1.1 2x0 OK\r\nContent-Length: 5\r\n\r\nhello",
        ),
        (
            "a two-digit status code",
            b"HTTP/1.1 99 Low\r\nContent-Length: 5\r\n\r\nhello",
        ),
        ("HTTP/9.9", b"HTTP/9.9 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
        (
            "a NUL in the reason phrase",
            b"HTTP/1.1 200 O\x00K\r\nContent-Length: 5\r\n\r\nhello",
        ),
        (
            "a status line ending in a bare CR",
            b"HTTP/1.1 200 OK\rX-Bad: 1\r\nContent-Length: 5\r\n\r\nhello",
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_head_without_end_is_502_once_past_its_limit() {
    // A head is read whole before anything goes on, so one that never ends
    // must be cut off at a limit (64 KiB), not buffered for ever.
    let endless: &'static [u8] = Box::leak(
        [&b"HTTP/1.1 200 OK\r\nX-Long: "[..], &vec![b'a'; 80 * 1024]]
            .concat()
            .into_boxed_slice(),
    );
    assert_all_502(&[("an 80 KiB header field", endless)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_header_with_a_control_character_is_502() {
    // RFC 9110 section 5.5: NUL, CR and LF in a field value are invalid and
    // dangerous; other controls are invalid too. Passed on, a NUL or a bare
    // CR splits the header for some clients and not for others.
    assert_all_502(&[
        (
            "a NUL in a field value",
            b"HTTP/1.1 200 OK\r\nX-Bad: a\x00b\r\nContent-Length: 5\r\n\r\nhello",
        ),
        (
            "a \\x01 in a field value",
            b"HTTP/1.1 200 OK\r\nX-Bad: a\x01b\r\nContent-Length: 5\r\n\r\nhello",
        ),
        (
            "a bare CR in a field value",
            b"HTTP/1.1 200 OK\r\nX-Bad: a\rSet-Cookie: x=1\r\nContent-Length: 5\r\n\r\nhello",
        ),
        (
            "a NUL in a field name",
            b"HTTP/1.1 200 OK\r\nX-B\x00ad: a\r\nContent-Length: 5\r\n\r\nhello",
        ),
        (
            "a space before the colon",
            b"HTTP/1.1 200 OK\r\nX-Bad : a\r\nContent-Length: 5\r\n\r\nhello",
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_obs_fold_in_a_response_header_is_refused_or_unfolded() {
    // RFC 9112 section 5.2: a proxy that receives an obs-fold in a response
    // MUST either replace the response with a 502 or replace each fold with
    // spaces before forwarding. Passing the fold on is the one wrong answer.
    let site = Site::new();
    let mut wrong = Vec::new();
    for (what, answer) in [
        (
            "a continuation line starting with a space",
            &b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 5\r\n\r\nhello"[..],
        ),
        (
            "a continuation line starting with a tab",
            b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n\tb\r\nContent-Length: 5\r\n\r\nhello",
        ),
        (
            "a folded Content-Length",
            b"HTTP/1.1 200 OK\r\nContent-Length:\r\n 5\r\n\r\nhello",
        ),
        (
            "a folded Transfer-Encoding",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n\r\nhello",
        ),
    ] {
        let (resp, _raw, _upstream, _proxy) = exchange(&site, answer).await;
        let Some(resp) = resp else {
            wrong.push(format!("{what}: the connection closed without an answer"));
            continue;
        };
        for m in malformed(&resp) {
            wrong.push(format!("{what}: {m}: {:?}", resp.head_text()));
        }
        match resp.status {
            502 => {}
            200 => {
                if !resp.complete || resp.text() != "hello" {
                    wrong.push(format!("{what}: unfolded, but the body is {:?}", resp.text()));
                }
            }
            other => wrong.push(format!("{what}: answered {other}")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// ---------------------------------------------------------------- the pool

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_beyond_the_content_length_never_answer_another_request() {
    // The first answer carries, after its 5-byte body and in the same write,
    // a whole second response. A pooled connection reused with those bytes
    // still unread would hand them to the next request as its answer: the
    // next client (here the same one) would get "poisoned". The upstream
    // answers nothing more on that connection, so any answer to the second
    // request arriving over it can only be the leftover bytes.
    let site = Site::new();
    let upstream = RawUpstream::start(|conn, nth, head| {
        let path = head.split(' ').nth(1).unwrap_or("?").to_owned();
        match (conn, nth) {
            (0, 0) => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst\
                        HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Poisoned: yes\r\n\r\npoisoned"
                .to_vec(),
            (0, _) => Vec::new(),
            _ => format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\nanswer to {path}",
                "answer to ".len() + path.len()
            )
            .into_bytes(),
        }
    })
    .await;
    let proxy = proxy_to(&site, &upstream).await;

    let mut raw = Raw::connect(proxy.addr, &site.ca).await;
    raw.get("/one").await;
    let first = raw.read_response().await.expect("no answer to the first request");
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.text(), "first", "{first:?}");
    assert_eq!(first.values("content-length"), [b"5"], "{first:?}");
    assert!(malformed(&first).is_empty(), "{:?}", malformed(&first));

    // The second request on the same client connection gets its own answer.
    raw.get("/two").await;
    let second = raw
        .read_response()
        .await
        .expect("no answer to the second request");
    assert!(
        second.values("x-poisoned").is_empty() && second.text() != "poisoned",
        "the leftover bytes of the first answer answered the second request: {second:?}"
    );
    assert_eq!(
        (second.status, second.text().as_str()),
        (200, "answer to /two"),
        "{second:?}"
    );
    // And so does one on a new client connection.
    let (status, _, body) = within(
        HANG,
        "a request on a new connection",
        fetch(proxy.addr, &site.ca, get("/three")),
    )
    .await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "answer to /three"));
    let on_first: Vec<String> = upstream
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|(conn, _)| *conn == 0)
        .map(|(_, head)| head.lines().next().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        on_first,
        ["GET /one HTTP/1.1"],
        "the connection with leftover bytes was used again"
    );
    assert!(
        upstream.connections.load(Ordering::SeqCst) >= 2,
        "the second request was not sent on a new upstream connection"
    );
}

// ---------------------------------------------------------------- 1xx

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interim_responses_before_the_final_one_do_not_replace_or_taint_it() {
    // RFC 9110 section 15.2: a client MUST be able to parse one or more 1xx
    // responses before the final one, even unexpected ones; 102 and 103 are
    // well-formed HTTP, so a 502 would be wrong. (A proxy MUST forward 1xx
    // responses; hyper's server cannot send a 1xx other than 100, so they
    // may be dropped.) The final response must arrive whole, with its own
    // headers only, and the connection must stay in step.
    let site = Site::new();
    let upstream = RawUpstream::always(
        b"HTTP/1.1 102 Processing\r\nX-Interim: 102\r\n\r\n\
          HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\nX-Interim: 103\r\n\r\n\
          HTTP/1.1 199 Whatever\r\nX-Interim: 199\r\n\r\n\
          HTTP/1.1 200 OK\r\nX-Final: yes\r\nContent-Length: 5\r\n\r\nfinal",
    )
    .await;
    let proxy = proxy_to(&site, &upstream).await;

    let mut raw = Raw::connect(proxy.addr, &site.ca).await;
    for round in ["/one", "/two"] {
        raw.get(round).await;
        let mut interim = Vec::new();
        let last = loop {
            let resp = raw
                .read_response()
                .await
                .unwrap_or_else(|| panic!("{round}: closed before the final response"));
            assert!(
                malformed(&resp).is_empty(),
                "{round}: {:?} in {resp:?}",
                malformed(&resp)
            );
            if (100..200).contains(&resp.status) {
                // A forwarded 1xx carries no framing.
                assert!(
                    resp.values("content-length").is_empty() && resp.values("transfer-encoding").is_empty(),
                    "{round}: {resp:?}"
                );
                interim.push(resp.status);
                continue;
            }
            break resp;
        };
        assert_eq!(last.status, 200, "{round}: {last:?} after {interim:?}");
        assert_eq!(last.text(), "final", "{round}: {last:?}");
        assert!(last.complete, "{round}: {last:?}");
        assert_eq!(last.values("x-final"), [b"yes"], "{round}: {last:?}");
        assert!(
            last.values("x-interim").is_empty() && last.values("link").is_empty(),
            "{round}: a 1xx's headers leaked into the final response: {:?}",
            last.head_text()
        );
        println!("{round}: interim responses passed on: {interim:?}");
    }
}

// ---------------------------------------------------------------- trailers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trailers_of_a_chunked_response_reach_an_http2_client() {
    // What gRPC-style services send after the body; an HTTP/2 client can
    // receive them, so they are passed on.
    let upstream = RawUpstream::always(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n5\r\nhello\r\n0\r\nx-checksum: abc123\r\n\r\n",
    )
    .await;
    let site = Site::new();
    let proxy = proxy_to(&site, &upstream).await;
    let mut send = h2(proxy.addr, &site.ca).await;
    let req = http::Request::get("https://localhost/x").body(empty()).unwrap();
    let resp = within(HANG, "the response", send.send_request(req))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = within(
        HANG,
        "the body's end",
        http_body_util::BodyExt::collect(resp.into_body()),
    )
    .await
    .expect("the body is whole");
    let trailers = body.trailers().cloned().expect("no trailers reached the client");
    assert_eq!(body.to_bytes(), &b"hello"[..]);
    assert_eq!(trailers["x-checksum"], "abc123");

    // The connection stayed in step: the next request reuses it.
    let req = http::Request::get("https://localhost/y").body(empty()).unwrap();
    let resp = within(HANG, "the second response", send.send_request(req))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 1);
}
