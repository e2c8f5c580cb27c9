//! Request smuggling and malformed requests: exact bytes written over real
//! TLS to the proxy, each of which must be refused (400, or 414 for an
//! oversized target) without anything reaching the origin, after which the
//! proxy must keep serving. RFC 9112 is the reference: section 3 (request
//! line), 5 (field syntax, obs-fold), 6 (message body framing), 7 (chunked).
//!
//! Every case runs against a fresh origin and a fresh proxy, so "the origin
//! received nothing" means no request head and no TCP connection at all. The
//! check is made only once the proxy has answered and the connection has
//! ended, and is followed by a valid request on a new connection that must be
//! the one and only request the origin ever sees.
//!
//! Where a refusal may be a close without a response: only when the request
//! head is valid and the body is not (a bad chunk). hyper answers a bad head
//! itself (400, 414, 431, 505) and closes, but hands a body decode error to
//! the service as an error of the request body and writes nothing itself,
//! so whether any response comes is up to the proxy.

mod support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use support::raw::Raw;
use support::*;

/// The longest any single exchange may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(10);

/// A complete request placed after a bad one in the same write: a parser
/// that misreads the framing of the bad request reads this as the next one.
const SMUGGLED: &[u8] = b"GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n";

// ---------------------------------------------------------------- raw client

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).filter(|w| *w == needle).count()
}

fn status_of(head: &str) -> Option<u16> {
    let line = head.lines().next()?;
    if !line.starts_with("HTTP/1.") {
        return None;
    }
    line.split(' ').nth(1)?.parse().ok()
}

fn first_line(head: &str) -> String {
    short(head.lines().next().unwrap_or(""))
}

/// `text` cut to a readable length for a failure message.
fn short(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= 160 {
        return text.to_owned();
    }
    let head: String = chars[..100].iter().collect();
    let tail: String = chars[chars.len() - 40..].iter().collect();
    format!("{head}…({} chars)…{tail}", chars.len())
}

// ---------------------------------------------------------------- cases

/// One bad request and the answers that count as refusing it.
struct Case {
    what: String,
    bytes: Vec<u8>,
    statuses: &'static [u16],
    /// A close without any response also counts.
    close_ok: bool,
}

/// A request with a bad head: hyper answers 400 and closes.
fn bad_head(what: &str, bytes: &[&[u8]]) -> Case {
    Case {
        what: what.to_owned(),
        bytes: bytes.concat(),
        statuses: &[400],
        close_ok: false,
    }
}

/// A request with a good head and a bad chunked body: 400, or a close
/// without a response (see the module documentation).
fn bad_body(what: &str, bytes: &[&[u8]]) -> Case {
    Case {
        close_ok: true,
        ..bad_head(what, bytes)
    }
}

/// `POST /` with `headers` (CRLF-terminated lines), then `body`, then a
/// second, smuggled request in the same write.
fn post(headers: &str, body: &[u8]) -> Vec<u8> {
    [
        b"POST / HTTP/1.1\r\nHost: localhost\r\n".as_slice(),
        headers.as_bytes(),
        b"\r\n",
        body,
        SMUGGLED,
    ]
    .concat()
}

/// The proxy with one catch-all route to `origin`.
async fn proxy_to(site: &Site, origin: &Origin) -> ProxyHandle {
    ProxyHandle::start(&site.config(&route("/", &origin.url(), "")), site.dir.path()).await
}

/// What each request the origin received looked like: "METHOD target".
fn seen(origin: &Origin) -> Vec<String> {
    origin
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|p| short(&format!("{} {}", p.method, p.uri)))
        .collect()
}

/// Sends `case` to a fresh proxy in front of a fresh origin and returns
/// what went wrong: the wrong answer, a second answer on the same
/// connection, anything at all reaching the origin, or the proxy failing to
/// serve a valid request afterwards.
async fn refusal_problems(site: &Site, case: &Case) -> Vec<String> {
    let origin = Origin::hello().await;
    let proxy = proxy_to(site, &origin).await;
    let mut problems = Vec::new();

    let mut raw = Raw::connect(proxy.addr, &site.ca).await;
    raw.send(&case.bytes).await;
    let (head, closed) = raw.read_head().await;
    match status_of(&head) {
        Some(status) if case.statuses.contains(&status) => {}
        None if head.is_empty() && closed && case.close_ok => {}
        _ => problems.push(format!(
            "answered {:?} (closed: {closed}), wanted one of {:?}{}",
            first_line(&head),
            case.statuses,
            if case.close_ok { " or a close" } else { "" }
        )),
    }
    // Whatever else comes on this connection until it ends: a parser that
    // kept going after the bad request would answer the smuggled one here.
    let rest = raw.finish().await;
    let more = count(&rest, b"HTTP/1.1 ") + count(&rest, b"HTTP/1.0 ");
    if more > 0 {
        problems.push(format!(
            "{more} more response(s) on the same connection: {:?}",
            short(&String::from_utf8_lossy(&rest))
        ));
    }
    // The proxy has answered and the connection is over: anything it was
    // going to forward has been forwarded.
    let connections = origin.connections.load(Ordering::SeqCst);
    if origin.count() != 0 || connections != 0 {
        problems.push(format!(
            "the origin received {:?} on {connections} connection(s)",
            seen(&origin)
        ));
    }

    // The proxy keeps serving, and the origin sees exactly the valid request.
    let (status, _, body) = within(
        HANG,
        "a valid request after the refusal",
        fetch(proxy.addr, &site.ca, get("/valid")),
    )
    .await;
    if status != 200 || body != "hello from /valid" {
        problems.push(format!("a valid request afterwards got {status} {body:?}"));
    }
    let after = seen(&origin);
    if after != ["GET /valid"] {
        problems.push(format!(
            "in all, the origin saw {after:?}, not only the valid request"
        ));
    }
    problems
}

/// Runs every case and fails with the list of those not refused as they must be.
async fn assert_all_refused(cases: Vec<Case>) {
    let site = Site::new();
    let mut wrong = Vec::new();
    for case in &cases {
        let problems = refusal_problems(&site, case).await;
        if !problems.is_empty() {
            wrong.push(format!("{}:\n    {}", case.what, problems.join("\n    ")));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases not refused cleanly:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

/// An origin that records each request body (or the error reading it)
/// next to the heads `Origin` records, and answers `hello from <target>`.
async fn recording_origin() -> (Origin, Arc<Mutex<Vec<Result<Vec<u8>, String>>>>) {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let recorded = bodies.clone();
    let origin = Origin::start(move |req: Request<Incoming>| {
        let recorded = recorded.clone();
        async move {
            let target = req.uri().to_string();
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes().to_vec())
                .map_err(|e| e.to_string());
            recorded.lock().unwrap().push(body);
            Response::new(full(format!("hello from {target}")))
        }
    })
    .await;
    (origin, bodies)
}

// ---------------------------------------------------------------- Content-Length

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_or_malformed_content_lengths_are_refused() {
    // RFC 9112 section 6.3, rule 5: a Content-Length that is not a valid
    // non-negative decimal, or several that differ, make the length
    // unrecoverable, and a server MUST respond 400 and close.
    assert_all_refused(vec![
        bad_head(
            "Content-Length: 5 and Content-Length: 6",
            &[&post("Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!")],
        ),
        bad_head(
            "Content-Length: 6 and Content-Length: 5",
            &[&post("Content-Length: 6\r\nContent-Length: 5\r\n", b"hello!")],
        ),
        bad_head(
            "Content-Length: 5, 6",
            &[&post("Content-Length: 5, 6\r\n", b"hello!")],
        ),
        bad_head("Content-Length: -5", &[&post("Content-Length: -5\r\n", b"hello")]),
        bad_head(
            "Content-Length: five",
            &[&post("Content-Length: five\r\n", b"hello")],
        ),
        bad_head("Content-Length: +5", &[&post("Content-Length: +5\r\n", b"hello")]),
        bad_head(
            "Content-Length: 0x5",
            &[&post("Content-Length: 0x5\r\n", b"hello")],
        ),
        bad_head(
            "Content-Length: 5 5",
            &[&post("Content-Length: 5 5\r\n", b"hello")],
        ),
        bad_head(
            "Content-Length larger than u64",
            &[&post("Content-Length: 18446744073709551616\r\n", b"hello")],
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_duplicate_content_lengths_reach_the_origin_as_one() {
    // RFC 9112 section 6.3 rule 5 and RFC 9110 section 8.6: a recipient MAY
    // accept several Content-Length lines, or a list, of one identical value,
    // or reject them. Either is safe, as long as what is forwarded has one
    // Content-Length and the body that length frames. A refusal must follow
    // the same rules as every other one.
    let site = Site::new();
    let mut wrong = Vec::new();
    for (what, request) in [
        (
            "two Content-Length: 5 lines",
            &b"POST /dup HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"
                [..],
        ),
        (
            "Content-Length: 5, 5",
            b"POST /dup HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5, 5\r\n\r\nhello",
        ),
    ] {
        let (origin, bodies) = recording_origin().await;
        let proxy = proxy_to(&site, &origin).await;
        let mut raw = Raw::connect(proxy.addr, &site.ca).await;
        raw.send(request).await;
        let resp = raw.read_response().await;
        match resp.as_ref().map(|r| r.status) {
            Some(400) => {
                drop(raw);
                let case = bad_head(what, &[request]);
                for p in refusal_problems(&site, &case).await {
                    wrong.push(format!("{what}: {p}"));
                }
            }
            Some(200) => {
                let resp = resp.unwrap();
                if resp.text() != "hello from /dup" {
                    wrong.push(format!("{what}: client got {:?}", resp.text()));
                }
                let seen = seen(&origin);
                if seen != ["POST /dup"] {
                    wrong.push(format!("{what}: the origin saw {seen:?}"));
                    continue;
                }
                let head = origin.last_seen();
                let lengths: Vec<_> = head.headers.get_all("content-length").iter().collect();
                if lengths != ["5"] || head.headers.contains_key("transfer-encoding") {
                    wrong.push(format!(
                        "{what}: the origin got Content-Length {lengths:?} and Transfer-Encoding {:?}",
                        head.headers.get("transfer-encoding")
                    ));
                }
                let body = bodies.lock().unwrap()[0].clone();
                if body.as_deref() != Ok(&b"hello"[..]) {
                    wrong.push(format!("{what}: the origin got the body {body:?}"));
                }
            }
            other => wrong.push(format!("{what}: answered {other:?}")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// ---------------------------------------------------------------- Content-Length with Transfer-Encoding

/// A request with both framings. By Content-Length the body of the first
/// ends inside the chunked framing and what follows is a new request; by
/// Transfer-Encoding the second carries a chunk that, read by its
/// Content-Length, is the start of another request.
fn both_framings() -> Vec<Case> {
    vec![
        bad_head(
            "Content-Length then Transfer-Encoding (CL.TE)",
            &[&post("Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n")],
        ),
        bad_head(
            "Transfer-Encoding then Content-Length (TE.CL)",
            &[
                b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                b"8\r\nSMUGGLED\r\n0\r\n\r\n",
                SMUGGLED,
            ],
        ),
        bad_head(
            "both, in other cases, Content-Length 0",
            &[&post("transfer-encoding: chunked\r\nCONTENT-LENGTH: 0\r\n", b"0\r\n\r\n")],
        ),
        bad_head(
            "both, the Content-Length matching the chunked bytes",
            &[&post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n")],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_with_transfer_encoding_is_refused() {
    // RFC 9112 section 6.1: a server MAY reject a request with both, and
    // then MUST close the connection. The proxy does: 400, nothing sent
    // upstream, and the bytes after the head never served.
    assert_all_refused(both_framings()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_framings_are_refused_when_the_head_arrives_a_byte_at_a_time() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let proxy = proxy_to(&site, &origin).await;
    let mut raw = Raw::connect(proxy.addr, &site.ca).await;
    let request = post(
        "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n",
        b"0\r\n\r\n",
    );
    for byte in request.chunks(1) {
        raw.send(byte).await;
    }
    let resp = raw.read_response().await.expect("an answer");
    assert_eq!(resp.status, 400, "{}", resp.head_text());
    assert!(raw.read_to_close().await.is_empty());
    assert_eq!(origin.count(), 0, "the origin saw {:?}", seen(&origin));
}

/// Three requests that must be forwarded, pipelined in one write, whose
/// bodies hold the text of a request with both framings; then a real one.
/// A check that scanned the bytes rather than following the framing would
/// refuse the wrong request, or the right one for the wrong reason.
fn kept_alive_then_both() -> Vec<u8> {
    let fake = "POST /fake HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n";
    [
        format!(
            "POST /by-length HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{fake}",
            fake.len()
        ),
        format!(
            "POST /by-chunks HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
             5;name=value\r\nPOST \r\n{:x}\r\n{}\r\n0\r\nX-Trailer: {fake_line}\r\n\r\n",
            fake.len() - 5,
            &fake[5..],
            fake_line = "Transfer-Encoding: chunked",
        ),
        "GET /plain HTTP/1.1\r\nHost: localhost\r\n\r\n".to_owned(),
        "POST /both HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
         0\r\n\r\n"
            .to_owned(),
        "GET /after HTTP/1.1\r\nHost: localhost\r\n\r\n".to_owned(),
    ]
    .concat()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_framings_later_on_a_kept_alive_connection_are_refused_and_nothing_before_is() {
    let site = Site::new();
    let (origin, bodies) = recording_origin().await;
    let proxy = proxy_to(&site, &origin).await;
    let mut raw = Raw::connect(proxy.addr, &site.ca).await;
    raw.send(&kept_alive_then_both()).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let resp = within(HANG, "an answer", raw.read_response())
            .await
            .expect("an answer");
        statuses.push(resp.status);
    }
    let refused = within(HANG, "the refusal", raw.read_response())
        .await
        .expect("a refusal");
    assert_eq!(statuses, [200, 200, 200]);
    assert_eq!(refused.status, 400, "{}", refused.head_text());
    assert!(
        refused
            .values("connection")
            .iter()
            .any(|v| v.eq_ignore_ascii_case(b"close")),
        "{}",
        refused.head_text()
    );
    // The proxy closes by itself: no shutdown from this side, and
    // /after is never answered.
    let rest = within(HANG, "the close", raw.read_to_close()).await;
    assert!(
        rest.is_empty(),
        "after the refusal: {:?}",
        String::from_utf8_lossy(&rest)
    );
    assert_eq!(
        seen(&origin),
        ["POST /by-length", "POST /by-chunks", "GET /plain"]
    );
    let fake = b"POST /fake HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n";
    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(bodies[0].as_deref(), Ok(fake.as_slice()));
    assert_eq!(bodies[1].as_deref(), Ok(fake.as_slice()));
}

/// A small deterministic generator, so that a failure names a seed that
/// reproduces it.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Body text built from pieces that look like framing and heads.
fn tricky_body(rng: &mut XorShift) -> Vec<u8> {
    const PIECES: [&[u8]; 8] = [
        b"\r\n",
        b"\r\n\r\n",
        b"0\r\n\r\n",
        b"Content-Length: 3\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"POST / HTTP/1.1\r\n",
        b"plain text ",
        b"\n\n",
    ];
    (0..rng.below(12))
        .flat_map(|_| PIECES[rng.below(PIECES.len())].to_vec())
        .collect()
}

/// One request of a random kind to `/n`, and the body the origin must get.
fn random_request(rng: &mut XorShift, n: usize) -> (Vec<u8>, Vec<u8>) {
    let mut out = Vec::new();
    if rng.below(4) == 0 {
        // Blank lines before a request line are skipped (RFC 9112 section 2.2).
        out.extend_from_slice(b"\r\n");
    }
    let body = tricky_body(rng);
    match rng.below(3) {
        0 => {
            out.extend_from_slice(format!("GET /{n} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
            (out, Vec::new())
        }
        1 => {
            out.extend_from_slice(
                format!(
                    "POST /{n} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            out.extend_from_slice(&body);
            (out, body)
        }
        _ => {
            out.extend_from_slice(
                format!("POST /{n} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n")
                    .as_bytes(),
            );
            let mut rest = body.as_slice();
            while !rest.is_empty() {
                let take = 1 + rng.below(rest.len());
                let ext = if rng.below(3) == 0 { ";a=\"b\"" } else { "" };
                out.extend_from_slice(format!("{take:X}{ext}\r\n").as_bytes());
                out.extend_from_slice(&rest[..take]);
                out.extend_from_slice(b"\r\n");
                rest = &rest[take..];
            }
            out.extend_from_slice(b"0\r\n");
            if rng.below(2) == 0 {
                out.extend_from_slice(b"X-Trailer: Content-Length: 9\r\n");
            }
            out.extend_from_slice(b"\r\n");
            (out, body)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_pipelined_requests_are_all_served_until_one_with_both_framings() {
    // The check follows the framing the way the HTTP parser does; if the
    // two ever disagreed on where a request starts, a valid request would
    // be refused or the one with both framings served. Each round
    // pipelines valid requests of every framing, with bodies full of
    // framing-like text, then (most rounds) one with both framings and
    // one more, all in writes cut at random places.
    let site = Site::new();
    let (origin, bodies) = recording_origin().await;
    let proxy = proxy_to(&site, &origin).await;
    for seed in 1..=24u64 {
        let rng = &mut XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let valid = 1 + rng.below(6);
        let refused = rng.below(4) != 0;
        let mut bytes = Vec::new();
        let mut want = Vec::new();
        for n in 0..valid {
            let (request, body) = random_request(rng, n);
            bytes.extend_from_slice(&request);
            want.push(body);
        }
        if refused {
            bytes.extend_from_slice(&post(
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                b"0\r\n\r\n",
            ));
        }
        origin.seen.lock().unwrap().clear();
        bodies.lock().unwrap().clear();
        let mut raw = Raw::connect(proxy.addr, &site.ca).await;
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let take = 1 + rng.below(rest.len().min(300));
            raw.send(&rest[..take]).await;
            rest = &rest[take..];
        }
        for n in 0..valid {
            let resp = within(HANG, "an answer", raw.read_response()).await;
            let status = resp.as_ref().map(|r| r.status);
            assert_eq!(status, Some(200), "seed {seed}: request {n} of {valid}: {resp:?}");
        }
        if refused {
            let resp = within(HANG, "the refusal", raw.read_response()).await;
            assert_eq!(resp.map(|r| r.status), Some(400), "seed {seed}");
            assert!(
                within(HANG, "the close", raw.read_to_close()).await.is_empty(),
                "seed {seed}"
            );
        }
        let targets: Vec<String> = (0..valid).map(|n| format!("/{n}")).collect();
        let seen: Vec<String> = origin
            .seen
            .lock()
            .unwrap()
            .iter()
            .map(|p| p.uri.to_string())
            .collect();
        assert_eq!(seen, targets, "seed {seed}");
        let got: Vec<Vec<u8>> = bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| b.clone().unwrap())
            .collect();
        assert_eq!(got, want, "seed {seed}");
    }
}

/// What is wrong with the framing the origin got for a body of `len`
/// bytes, if anything: it must be exactly one of `Transfer-Encoding:
/// chunked` or a `Content-Length` equal to `len`.
fn one_framing(headers: &http::HeaderMap, len: usize) -> Option<String> {
    let te: Vec<_> = headers.get_all("transfer-encoding").iter().collect();
    let cl: Vec<_> = headers.get_all("content-length").iter().collect();
    let ok = match (te.as_slice(), cl.as_slice()) {
        ([t], []) => t.as_bytes().eq_ignore_ascii_case(b"chunked"),
        ([], [c]) => c.to_str().ok() == Some(len.to_string().as_str()),
        // An empty body may go with no framing at all.
        ([], []) => len == 0,
        _ => false,
    };
    (!ok).then(|| format!("the origin got Transfer-Encoding {te:?} and Content-Length {cl:?}"))
}

// ---------------------------------------------------------------- Transfer-Encoding

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_encodings_other_than_one_final_chunked_are_refused() {
    // RFC 9112 section 6.3 rule 4: a request whose Transfer-Encoding does
    // not end in chunked has no reliable length: 400 and close. Section 6.1:
    // chunked MUST NOT be applied more than once; read once, the body would
    // reach the origin still chunk-encoded and unlabelled. A value that is
    // not a token list (a vertical tab, a form feed, quotes) is no coding at
    // all. Every body is a valid chunked body, so only the header decides.
    let chunked_body: &[u8] = b"5\r\nhello\r\n0\r\n\r\n";
    let mut cases = Vec::new();
    for value in [
        "gzip",
        "chunked, gzip",
        "identity",
        "chunked, chunked",
        "xchunked",
        "chunkedx",
        "\"chunked\"",
        "\x0bchunked",
        "chunked\x0b",
        "\x0cchunked",
        "chunked\x0c",
        "ch unked",
    ] {
        cases.push(bad_head(
            &format!("Transfer-Encoding: {value:?}"),
            &[&post(&format!("Transfer-Encoding: {value}\r\n"), chunked_body)],
        ));
    }
    cases.push(bad_head(
        "Transfer-Encoding: chunked on two lines",
        &[&post(
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            chunked_body,
        )],
    ));
    cases.push(bad_head(
        "Transfer-Encoding: chunked then Transfer-Encoding: gzip",
        &[&post(
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
            chunked_body,
        )],
    ));
    cases.push(bad_head(
        "Transfer-Encoding with a space before the colon",
        &[&post("Transfer-Encoding : chunked\r\n", chunked_body)],
    ));
    assert_all_refused(cases).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_spellings_of_chunked_are_read_as_chunked() {
    // Coding names are case-insensitive (RFC 9110 section 10.1.4) and a
    // field value may be surrounded by spaces and tabs (RFC 9112 section
    // 5.1), so these are all plain `chunked`: refusing them would be wrong.
    // What matters is that the proxy reads them as chunked, as any origin
    // would: the body is the chunks' content, the origin gets one framing,
    // and the request after the zero chunk is a request of its own.
    let site = Site::new();
    let mut wrong = Vec::new();
    for value in ["Chunked", "CHUNKED", "\tchunked", "chunked\t", " \tChunked \t"] {
        let what = format!("Transfer-Encoding: {value:?}");
        let (origin, bodies) = recording_origin().await;
        let proxy = proxy_to(&site, &origin).await;
        let mut raw = Raw::connect(proxy.addr, &site.ca).await;
        raw.send(
            &[
                b"POST /chunked HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding:".as_slice(),
                value.as_bytes(),
                b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                b"GET /next HTTP/1.1\r\nHost: localhost\r\n\r\n",
            ]
            .concat(),
        )
        .await;
        let first = raw.read_response().await;
        let second = raw.read_response().await;
        let answers: Vec<_> = [first, second]
            .iter()
            .map(|r| r.as_ref().map(|r| (r.status, r.text())))
            .collect();
        let want = [
            Some((200, "hello from /chunked".to_owned())),
            Some((200, "hello from /next".to_owned())),
        ];
        if answers != want {
            wrong.push(format!("{what}: the client got {answers:?}"));
        }
        let seen = seen(&origin);
        if seen != ["POST /chunked", "GET /next"] {
            wrong.push(format!("{what}: the origin saw {seen:?}"));
            continue;
        }
        let post = origin.seen.lock().unwrap()[0].clone();
        if let Some(problem) = one_framing(&post.headers, 5) {
            wrong.push(format!("{what}: {problem}"));
        }
        let body = bodies.lock().unwrap()[0].clone();
        if body.as_deref() != Ok(&b"hello"[..]) {
            wrong.push(format!("{what}: the origin got the body {body:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// ---------------------------------------------------------------- chunk sizes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_chunk_sizes_are_refused_and_nothing_is_forwarded() {
    // RFC 9112 section 7.1: chunk-size is 1*HEXDIG, the size line and the
    // chunk data each end in CRLF. A size that does not parse, overflows, or
    // a framing that does not line up makes the body length unknowable.
    let te = "Transfer-Encoding: chunked\r\n";
    assert_all_refused(vec![
        bad_body(
            "a chunk size that is not hex",
            &[&post(te, b"zz\r\nhello\r\n0\r\n\r\n")],
        ),
        bad_body("a negative chunk size", &[&post(te, b"-5\r\nhello\r\n0\r\n\r\n")]),
        bad_body(
            "a chunk size of 2^64",
            &[&post(te, b"10000000000000000\r\nhello\r\n0\r\n\r\n")],
        ),
        bad_body(
            "a chunk size of 2^64 + 5 (5 once wrapped)",
            &[&post(te, b"10000000000000005\r\nhello\r\n0\r\n\r\n")],
        ),
        bad_body(
            "a chunk size line ending in a bare LF",
            &[&post(te, b"5\nhello\r\n0\r\n\r\n")],
        ),
        bad_body(
            "chunk data longer than its size (no CRLF after the data)",
            &[&post(te, b"5\r\nhelloXX\r\n0\r\n\r\n")],
        ),
        bad_body(
            "chunk data followed by a bare LF",
            &[&post(te, b"5\r\nhello\n0\r\n\r\n")],
        ),
        bad_body(
            "a last chunk without its final CRLF, then a request",
            &[&post(te, b"5\r\nhello\r\n0\r\nX")],
        ),
    ])
    .await;
}

// ---------------------------------------------------------------- field syntax

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obs_fold_is_refused() {
    // RFC 9112 section 5.2: a server that receives an obs-fold in a request
    // MUST either reject it with 400 or replace it with spaces; a proxy
    // that forwards it lets the next hop unfold it differently. The Host
    // and Transfer-Encoding folds are the ones that change routing and framing.
    let get = |fields: &str| format!("GET / HTTP/1.1\r\nHost: localhost\r\n{fields}\r\n").into_bytes();
    assert_all_refused(vec![
        bad_head(
            "a continuation line starting with a space",
            &[&get("X-Folded: a\r\n b\r\n")],
        ),
        bad_head(
            "a continuation line starting with a tab",
            &[&get("X-Folded: a\r\n\tb\r\n")],
        ),
        bad_head(
            "a folded Host",
            &[b"GET / HTTP/1.1\r\nHost: localhost\r\n evil.example\r\n\r\n"],
        ),
        bad_head(
            "a folded Transfer-Encoding",
            &[&post(
                "Content-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n",
                b"hello",
            )],
        ),
        bad_head(
            "a first field line starting with a space",
            &[b"GET / HTTP/1.1\r\n Host: localhost\r\nHost: localhost\r\n\r\n"],
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_and_a_space_before_the_colon_are_refused() {
    // RFC 9110 section 5.5: field values are visible characters, spaces
    // and tabs; NUL, other controls and a CR outside CRLF are invalid, and
    // a recipient MUST reject (or replace) them. RFC 9112 section 5.1: no
    // whitespace is allowed between a field name and the colon; a server
    // MUST reject such a request with 400.
    let get = |field: &[u8]| {
        [
            b"GET / HTTP/1.1\r\nHost: localhost\r\n".as_slice(),
            field,
            b"\r\n\r\n",
        ]
        .concat()
    };
    assert_all_refused(vec![
        bad_head("a NUL in a field value", &[&get(b"X-Ctl: a\x00b")]),
        bad_head("a \\x01 in a field value", &[&get(b"X-Ctl: a\x01b")]),
        bad_head("a \\x7f in a field value", &[&get(b"X-Ctl: a\x7fb")]),
        bad_head("an ESC in a field value", &[&get(b"X-Ctl: a\x1bb")]),
        bad_head("a bare CR in a field value", &[&get(b"X-Ctl: a\rb")]),
        bad_head("a bare CR ending a field line", &[&get(b"X-Ctl: a\rX-Other: b")]),
        bad_head("a NUL in a field name", &[&get(b"X-C\x00tl: a")]),
        bad_head(
            "Host with a space before the colon",
            &[b"GET / HTTP/1.1\r\nHost : localhost\r\n\r\n"],
        ),
        bad_head(
            "Host with a tab before the colon",
            &[b"GET / HTTP/1.1\r\nHost\t: localhost\r\n\r\n"],
        ),
        bad_head(
            "a second Host with a space before the colon",
            &[b"GET / HTTP/1.1\r\nHost: localhost\r\nHost : evil.example\r\n\r\n"],
        ),
        bad_head(
            "Content-Length with a space before the colon",
            &[&post("Content-Length : 5\r\n", b"hello")],
        ),
    ])
    .await;
}

// ---------------------------------------------------------------- request line

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_request_targets_are_refused() {
    // RFC 9112 section 3.2: a GET's target is origin-form or absolute-form;
    // authority-form is for CONNECT only and asterisk-form for OPTIONS only.
    // A space inside the target breaks the request line (section 3); an
    // invalid URI is invalid. Section 3: a request line longer than the
    // server will parse is refused: 414 for a long target is the RFC's own
    // answer and counts as a refusal too.
    let long = |line_len: usize| {
        let fixed = "GET / HTTP/1.1".len();
        format!(
            "GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
            "a".repeat(line_len - fixed)
        )
        .into_bytes()
    };
    let mut cases = vec![
        bad_head(
            "GET foo (a relative target)",
            &[b"GET foo HTTP/1.1\r\nHost: localhost\r\n\r\n"],
        ),
        bad_head(
            "GET localhost:443 (authority-form without CONNECT)",
            &[b"GET localhost:443 HTTP/1.1\r\nHost: localhost\r\n\r\n"],
        ),
        bad_head(
            "GET * (asterisk-form without OPTIONS)",
            &[b"GET * HTTP/1.1\r\nHost: localhost\r\n\r\n"],
        ),
        bad_head(
            "GET /a b (a space in the target)",
            &[b"GET /a b HTTP/1.1\r\nHost: localhost\r\n\r\n"],
        ),
        bad_head(
            "GET http://[bad",
            &[b"GET http://[bad HTTP/1.1\r\nHost: localhost\r\n\r\n"],
        ),
        bad_head(
            "GET /a\\x00b",
            &[b"GET /a\x00b HTTP/1.1\r\nHost: localhost\r\n\r\n"],
        ),
    ];
    // A line this long is also a head over max_header_size (64 KiB by
    // default), which hyper answers 431 before it sees the line whole.
    for (what, line_len) in [
        ("a request line of 64 KiB + 1 bytes", 64 * 1024 + 1),
        ("a request line of 96 KiB", 96 * 1024),
    ] {
        cases.push(Case {
            statuses: &[400, 414, 431],
            ..bad_head(what, &[&long(line_len)])
        });
    }
    assert_all_refused(cases).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http10_request_with_transfer_encoding_is_refused() {
    // RFC 9112 section 6.1: chunked is HTTP/1.1; a server that receives
    // Transfer-Encoding in an HTTP/1.0 request ought to treat the message
    // as faulty, as HTTP/1.0 hops in between may read it by Content-Length
    // or until close.
    let request = |fields: &str, body: &[u8]| {
        [
            b"POST / HTTP/1.0\r\nHost: localhost\r\n".as_slice(),
            fields.as_bytes(),
            b"\r\n",
            body,
            b"GET /smuggled HTTP/1.0\r\nHost: localhost\r\n\r\n",
        ]
        .concat()
    };
    assert_all_refused(vec![
        bad_head(
            "HTTP/1.0 with Transfer-Encoding: chunked",
            &[&request(
                "Transfer-Encoding: chunked\r\n",
                b"5\r\nhello\r\n0\r\n\r\n",
            )],
        ),
        bad_head(
            "HTTP/1.0 with Transfer-Encoding: chunked and Content-Length",
            &[&request(
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                b"0\r\n\r\n",
            )],
        ),
    ])
    .await;
}
