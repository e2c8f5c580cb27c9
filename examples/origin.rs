//! A test origin for interop tests and benchmarks.
//!
//! ```text
//! cargo run --release --example origin -- --http 127.0.0.1:0 --ws 127.0.0.1:0 [--tcp 127.0.0.1:0] [--threads N]
//! ```
//!
//! Prints one line per listener (`http 127.0.0.1:PORT`, `ws 127.0.0.1:PORT`,
//! `tcp 127.0.0.1:PORT`) on stdout once it is accepting connections, so
//! scripts can read the ports.
//!
//! HTTP listener (HTTP/1.1, and h2c with prior knowledge):
//! - `/bytes/N`  N bytes of a repeating ASCII pattern, served from a static buffer
//! - `/json/N`   N bytes (up to 1 MiB) of a JSON array of records, as an API
//!   answers, `application/json`, for the compression benchmark
//! - `/echo`     the request body, streamed back
//! - `/headers`  the request line and headers as plain text
//! - `/sse`      three server-sent events, one second apart
//! - anything else: a small HTML page that opens a WebSocket at `/ws` on the
//!   same origin, echoes a text and a binary message, and records the outcome
//!   in `window.interopResult` and `document.title`.
//!
//! WebSocket listener: echoes text and binary messages, answers pings and
//! echoes the close frame. Messages and frames up to 64 MiB.
//!
//! TCP listener (only with `--tcp`): echoes every byte it reads, for the
//! stream benchmarks.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Largest WebSocket message and frame the echo server accepts.
const WS_MAX_SIZE: usize = 64 << 20;
/// Size of the static buffer `/bytes/N` is served from.
const PATTERN_LEN: usize = 256 * 1024;
const PATTERN_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

const PAGE: &str = r#"<!doctype html>
<html>
<head><meta charset="utf-8"><title>pending</title></head>
<body>
<h1>portcullis test origin</h1>
<pre id="log"></pre>
<script>
(function () {
  "use strict";
  var log = document.getElementById("log");
  var result = { done: false, ok: false, text: false, binary: false, error: null };
  window.interopResult = result;
  function note(s) { log.textContent += s + "\n"; }
  function finish(ok, error) {
    if (result.done) { return; }
    result.done = true;
    result.ok = ok;
    result.error = error || null;
    document.title = ok ? "PASS" : "FAIL: " + error;
    note(document.title);
  }
  var params = new URLSearchParams(location.search);
  var path = params.get("ws") || "/ws";
  var scheme = location.protocol === "https:" ? "wss:" : "ws:";
  var url = scheme + "//" + location.host + path;
  var textOut = "hello through portcullis \u00e9\u263a";
  var binOut = new Uint8Array(300);
  for (var i = 0; i < binOut.length; i++) { binOut[i] = (i * 7 + 3) & 255; }
  note("connecting to " + url);
  var ws;
  try { ws = new WebSocket(url); } catch (e) { finish(false, "constructor: " + e); return; }
  ws.binaryType = "arraybuffer";
  var timer = setTimeout(function () { finish(false, "timeout"); }, 15000);
  ws.onopen = function () { note("open"); ws.send(textOut); };
  ws.onmessage = function (ev) {
    if (typeof ev.data === "string") {
      if (ev.data !== textOut) { finish(false, "text echo differs"); return; }
      result.text = true;
      note("text echo ok");
      ws.send(binOut);
      return;
    }
    var got = new Uint8Array(ev.data);
    if (got.length !== binOut.length) { finish(false, "binary echo length " + got.length); return; }
    for (var j = 0; j < got.length; j++) {
      if (got[j] !== binOut[j]) { finish(false, "binary echo differs at " + j); return; }
    }
    result.binary = true;
    note("binary echo ok");
    clearTimeout(timer);
    ws.close(1000, "done");
    finish(result.text, result.text ? null : "binary before text");
  };
  ws.onerror = function () { finish(false, "websocket error"); };
  ws.onclose = function (ev) {
    if (!result.done) { finish(false, "closed early: " + ev.code); }
  };
})();
</script>
</body>
</html>
"#;

struct Args {
    http: Option<SocketAddr>,
    ws: Option<SocketAddr>,
    tcp: Option<SocketAddr>,
    threads: Option<usize>,
}

const USAGE: &str = "usage: origin [--http ADDR] [--ws ADDR] [--tcp ADDR] [--threads N]\n\
  --http ADDR   HTTP listener (default 127.0.0.1:0)\n\
  --ws ADDR     WebSocket echo listener (default 127.0.0.1:0)\n\
  --tcp ADDR    TCP echo listener (default: none)\n\
  --threads N   runtime worker threads (default: one per core)\n\
  --no-http / --no-ws   leave that listener out";

fn parse_args() -> Result<Args, String> {
    let default: SocketAddr = "127.0.0.1:0".parse().expect("valid address");
    let mut args = Args {
        http: Some(default),
        ws: Some(default),
        tcp: None,
        threads: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it.next().ok_or_else(|| format!("{name} needs a value")),
            }
        };
        match name.as_str() {
            "--http" => {
                let v = value("--http")?;
                args.http = Some(v.parse().map_err(|e| format!("--http {v}: {e}"))?);
            }
            "--ws" => {
                let v = value("--ws")?;
                args.ws = Some(v.parse().map_err(|e| format!("--ws {v}: {e}"))?);
            }
            "--tcp" => {
                let v = value("--tcp")?;
                args.tcp = Some(v.parse().map_err(|e| format!("--tcp {v}: {e}"))?);
            }
            "--threads" => {
                let v = value("--threads")?;
                let n: usize = v.parse().map_err(|e| format!("--threads {v}: {e}"))?;
                if n == 0 {
                    return Err("--threads must be at least 1".into());
                }
                args.threads = Some(n);
            }
            "--no-http" => args.http = None,
            "--no-ws" => args.ws = None,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.http.is_none() && args.ws.is_none() && args.tcp.is_none() {
        return Err("nothing to listen on".into());
    }
    Ok(args)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("origin: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = args.threads {
        builder.worker_threads(n);
    }
    let runtime = builder.build().expect("tokio runtime");
    if let Err(e) = runtime.block_on(run(args)) {
        eprintln!("origin: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> std::io::Result<()> {
    let http = match args.http {
        Some(addr) => Some(bind(addr, "http").await?),
        None => None,
    };
    let ws = match args.ws {
        Some(addr) => Some(bind(addr, "ws").await?),
        None => None,
    };
    let tcp = match args.tcp {
        Some(addr) => Some(bind(addr, "tcp").await?),
        None => None,
    };
    {
        let mut out = std::io::stdout().lock();
        if let Some(l) = &http {
            writeln!(out, "http {}", l.local_addr()?)?;
        }
        if let Some(l) = &ws {
            writeln!(out, "ws {}", l.local_addr()?)?;
        }
        if let Some(l) = &tcp {
            writeln!(out, "tcp {}", l.local_addr()?)?;
        }
        out.flush()?;
    }
    let mut tasks = Vec::new();
    if let Some(l) = http {
        tasks.push(tokio::spawn(serve_http(l)));
    }
    if let Some(l) = ws {
        tasks.push(tokio::spawn(serve_ws(l)));
    }
    if let Some(l) = tcp {
        tasks.push(tokio::spawn(serve_tcp_echo(l)));
    }
    for t in tasks {
        t.await.map_err(std::io::Error::other)?;
    }
    Ok(())
}

async fn bind(addr: SocketAddr, what: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("{what} listener {addr}: {e}")))
}

/// Accept connections forever; a failing accept (e.g. out of descriptors)
/// backs off briefly instead of spinning.
async fn accept(listener: &TcpListener) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                return stream;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

// ----------------------------------------------------------------- TCP

async fn serve_tcp_echo(listener: TcpListener) {
    loop {
        let mut stream = accept(&listener).await;
        tokio::spawn(async move {
            let (mut r, mut w) = stream.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
    }
}

// ---------------------------------------------------------------- HTTP

async fn serve_http(listener: TcpListener) {
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let stream = accept(&listener).await;
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(handle);
            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn pattern() -> &'static Bytes {
    static PATTERN: OnceLock<Bytes> = OnceLock::new();
    PATTERN.get_or_init(|| {
        let v: Vec<u8> = (0..PATTERN_LEN)
            .map(|i| PATTERN_ALPHABET[i % PATTERN_ALPHABET.len()])
            .collect();
        Bytes::from(v)
    })
}

async fn handle(req: Request<Incoming>) -> Result<Response<OriginBody>, Infallible> {
    let path = req.uri().path();
    let response = if let Some(n) = path.strip_prefix("/bytes/") {
        match n.parse::<u64>() {
            Ok(n) => bytes_response(n),
            Err(_) => plain(StatusCode::BAD_REQUEST, "bad byte count\n"),
        }
    } else if let Some(n) = path.strip_prefix("/json/") {
        match n.parse::<usize>() {
            Ok(n) if n <= JSON_LEN => json_response(n),
            _ => plain(StatusCode::BAD_REQUEST, "bad byte count\n"),
        }
    } else if path == "/echo" {
        echo_response(req)
    } else if path == "/headers" {
        headers_response(&req)
    } else if path == "/sse" {
        sse_response()
    } else {
        let mut r = Response::new(OriginBody::full(Bytes::from_static(PAGE.as_bytes())));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        r.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    };
    Ok(response)
}

fn plain(status: StatusCode, text: &'static str) -> Response<OriginBody> {
    let mut r = Response::new(OriginBody::full(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

/// The most `/json/N` serves.
const JSON_LEN: usize = 1 << 20;

/// A JSON array of records with varied values, made once: it compresses
/// as an API's answers do, not as a repeated pattern would.
fn json() -> &'static Bytes {
    static JSON: OnceLock<Bytes> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut out = String::from("[");
        let mut i: u64 = 0;
        while out.len() < JSON_LEN {
            let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            out.push_str(&format!(
                "{{\"id\":{i},\"user\":\"user{}\",\"email\":\"u{}@example.com\",\"active\":{},\"score\":{},\"token\":\"{:012x}\"}},",
                h % 10_007,
                h % 99_991,
                h % 3 == 0,
                h % 1_000,
                h >> 16
            ));
            i += 1;
        }
        Bytes::from(out)
    })
}

fn json_response(n: usize) -> Response<OriginBody> {
    let mut r = Response::new(OriginBody::full(json().slice(..n)));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(n));
    r
}

fn bytes_response(n: u64) -> Response<OriginBody> {
    let chunk = pattern().clone();
    let body = if n <= PATTERN_LEN as u64 {
        OriginBody::full(chunk.slice(..n as usize))
    } else {
        OriginBody::Repeat { chunk, remaining: n }
    };
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    r.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(n));
    r
}

fn echo_response(req: Request<Incoming>) -> Response<OriginBody> {
    let (parts, body) = req.into_parts();
    let mut r = Response::new(OriginBody::Echo(body));
    if let Some(len) = parts.headers.get(CONTENT_LENGTH) {
        r.headers_mut().insert(CONTENT_LENGTH, len.clone());
    }
    let ct = parts
        .headers
        .get(CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
    r.headers_mut().insert(CONTENT_TYPE, ct);
    r
}

fn headers_response(req: &Request<Incoming>) -> Response<OriginBody> {
    let mut text = format!("{} {} {:?}\n", req.method(), req.uri(), req.version());
    for (name, value) in req.headers() {
        text.push_str(name.as_str());
        text.push_str(": ");
        text.push_str(&String::from_utf8_lossy(value.as_bytes()));
        text.push('\n');
    }
    let mut r = Response::new(OriginBody::full(Bytes::from(text)));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

fn sse_response() -> Response<OriginBody> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        for i in 1..=3u32 {
            if i > 1 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let event = Bytes::from(format!("id: {i}\nevent: tick\ndata: tick {i}\n\n"));
            if tx.send(event).await.is_err() {
                return;
            }
        }
    });
    let mut r = Response::new(OriginBody::Events(rx));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// Every response body the origin produces, without boxing.
enum OriginBody {
    Full(Option<Bytes>),
    /// `remaining` bytes taken from `chunk` over and over.
    Repeat {
        chunk: Bytes,
        remaining: u64,
    },
    Echo(Incoming),
    Events(mpsc::Receiver<Bytes>),
}

impl OriginBody {
    fn full(b: Bytes) -> Self {
        OriginBody::Full(Some(b))
    }
}

impl Body for OriginBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            OriginBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            OriginBody::Repeat { chunk, remaining } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                let n = (*remaining).min(chunk.len() as u64) as usize;
                *remaining -= n as u64;
                Poll::Ready(Some(Ok(Frame::data(chunk.slice(..n)))))
            }
            OriginBody::Echo(incoming) => loop {
                // Pass data on; trailers are dropped.
                match std::task::ready!(Pin::new(&mut *incoming).poll_frame(cx)) {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            return Poll::Ready(Some(Ok(Frame::data(data))));
                        }
                    }
                    other => return Poll::Ready(other),
                }
            },
            OriginBody::Events(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            OriginBody::Full(b) => b.is_none(),
            OriginBody::Repeat { remaining, .. } => *remaining == 0,
            OriginBody::Echo(i) => i.is_end_stream(),
            OriginBody::Events(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            OriginBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            OriginBody::Repeat { remaining, .. } => SizeHint::with_exact(*remaining),
            OriginBody::Echo(i) => i.size_hint(),
            OriginBody::Events(_) => SizeHint::default(),
        }
    }
}

// ----------------------------------------------------------- WebSocket

async fn serve_ws(listener: TcpListener) {
    let config = WebSocketConfig::default()
        .max_message_size(Some(WS_MAX_SIZE))
        .max_frame_size(Some(WS_MAX_SIZE));
    loop {
        let stream = accept(&listener).await;
        tokio::spawn(async move {
            if let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await {
                echo(ws).await;
            }
        });
    }
}

async fn echo(mut ws: tokio_tungstenite::WebSocketStream<TcpStream>) {
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                if ws.send(m).await.is_err() {
                    return;
                }
            }
            // Pongs to pings and the reply to a close are queued by tungstenite
            // and written on the next poll; keep polling until the stream ends.
            Ok(_) => {}
            Err(e) => {
                fail(ws, &e).await;
                return;
            }
        }
    }
}

/// Fail the connection the way RFC 6455 asks: send a close frame with a code
/// that names the problem, then wait (bounded) for the peer to close.
async fn fail(mut ws: tokio_tungstenite::WebSocketStream<TcpStream>, e: &WsError) {
    let code = match e {
        WsError::Utf8(_) => CloseCode::Invalid,
        WsError::Capacity(_) => CloseCode::Size,
        WsError::Protocol(_) => CloseCode::Protocol,
        _ => return,
    };
    let frame = CloseFrame {
        code,
        reason: "".into(),
    };
    if ws.close(Some(frame)).await.is_err() {
        return;
    }
    let drain = async { while let Some(Ok(_)) = ws.next().await {} };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
}
