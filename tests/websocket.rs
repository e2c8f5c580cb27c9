//! WebSocket through the proxy: a real tokio-tungstenite client over TLS,
//! the proxy in-process, and real tokio-tungstenite origins behind it.
//! Every message shape, the close handshake in both directions, the
//! handshake headers, a thousand concurrent tunnels, the idle timeout,
//! refused upgrades and close propagation.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::Request;
use hyper::body::Incoming;
use support::nofile::ensure_open_files;
use support::*;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data as OpData, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

type Client = WebSocketStream<TlsStream<TcpStream>>;

/// Generous bound for anything that should happen "soon": it only turns a
/// hang into a failure with a message, it measures nothing.
const SOON: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- helpers

/// A proxy with `/ws` routed to `upstream` (route keys in `extra`).
async fn proxy_to(site: &Site, upstream: &str, extra: &str) -> ProxyHandle {
    ProxyHandle::start(&site.config(&route("/ws", upstream, extra)), site.dir.path()).await
}

/// The next message from `ws`, failing on end of stream, error or hang.
async fn next_msg<S>(ws: &mut WebSocketStream<S>, what: &str) -> Message
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match within(SOON, what, ws.next()).await {
        Some(Ok(m)) => m,
        Some(Err(e)) => panic!("{what}: the WebSocket failed: {e}"),
        None => panic!("{what}: the WebSocket ended"),
    }
}

/// Reads until the stream ends (end of stream or an I/O error such as a
/// TLS stream cut without close_notify), returning what arrived first.
async fn read_until_end<S>(ws: &mut WebSocketStream<S>, what: &str) -> Vec<Message>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    within(SOON, what, async {
        let mut got = Vec::new();
        loop {
            match ws.next().await {
                Some(Ok(m)) => got.push(m),
                Some(Err(_)) | None => return got,
            }
        }
    })
    .await
}

/// Connects through TLS with a handshake request the test built itself;
/// returns the client or the tungstenite error (for refused upgrades).
async fn ws_connect_req(
    addr: SocketAddr,
    ca: &TestCa,
    req: http::Request<()>,
) -> Result<(Client, http::Response<Option<Vec<u8>>>), WsError> {
    let tls = tls_connect(addr, ca, &[b"http/1.1"]).await;
    tokio_tungstenite::client_async_with_config(req, tls, Some(big_messages())).await
}

fn close_frame(code: u16, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    }
}

async fn echo_text(ws: &mut Client, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
    match next_msg(ws, "a text echo").await {
        Message::Text(t) => assert_eq!(t.as_str(), text),
        other => panic!("expected the text echo {text:?}, got {other:?}"),
    }
}

// ---------------------------------------------------------------- messages

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_message_echoes() {
    let site = Site::new();
    let origin = WsOrigin::start().await;
    let proxy = proxy_to(&site, &origin.url(), "").await;
    let mut ws = ws_connect(proxy.addr, &site.ca, "/ws").await;
    echo_text(&mut ws, "hello").await;
    echo_text(&mut ws, "ünïcödé ✓ 🦀 and an empty one next").await;
    echo_text(&mut ws, "").await;
    ws.close(None).await.unwrap();
    proxy.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_message_echoes() {
    let site = Site::new();
    let origin = WsOrigin::start().await;
    let proxy = proxy_to(&site, &origin.url(), "").await;
    let mut ws = ws_connect(proxy.addr, &site.ca, "/ws").await;
    // Every byte value, including the ones that look like HTTP or frame heads.
    let payload: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    ws.send(Message::binary(payload.clone())).await.unwrap();
    match next_msg(&mut ws, "the binary echo").await {
        Message::Binary(b) => assert!(b[..] == payload[..], "the binary echo differs"),
        other => panic!("expected a binary echo, got {other:?}"),
    }
    ws.close(None).await.unwrap();
    proxy.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_mib_message_echoes() {
    let site = Site::new();
    let origin = WsOrigin::start().await;
    let proxy = proxy_to(&site, &origin.url(), "").await;
    let mut ws = ws_connect(proxy.addr, &site.ca, "/ws").await;
    let payload: Vec<u8> = (0..16u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    ws.send(Message::binary(payload.clone())).await.unwrap();
    match within(Duration::from_secs(60), "the 16 MiB echo", ws.next()).await {
        Some(Ok(Message::Binary(b))) => {
            assert_eq!(b.len(), payload.len(), "the 16 MiB echo has the wrong length");
            assert!(b[..] == payload[..], "the 16 MiB echo differs");
        }
        other => panic!("expected the 16 MiB binary echo, got {other:?}"),
    }
    ws.close(None).await.unwrap();
    proxy.shutdown().await.unwrap();
}

/// A message sent as several frames (text and binary, with a ping between
/// two fragments, as RFC 6455 allows) is reassembled by the origin and
/// echoed whole: the tunnel passed every frame untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragmented_message_echoes_whole() {
    let site = Site::new();
    let origin = WsOrigin::start().await;
    let proxy = proxy_to(&site, &origin.url(), "").await;
    let mut ws = ws_connect(proxy.addr, &site.ca, "/ws").await;

    let frames = [
        Frame::message("Hello, ", OpCode::Data(OpData::Text), false),
        Frame::message("fragmented ", OpCode::Data(OpData::Continue), false),
        Frame::ping(&b"between fragments"[..]),
        Frame::message("wörld", OpCode::Data(OpData::Continue), true),
    ];
    for f in frames {
        ws.send(Message::Frame(f)).await.unwrap();
    }
    let mut text = None;
    let mut pong = None;
    while text.is_none() || pong.is_none() {
        match next_msg(&mut ws, "the reassembled text echo and the pong").await {
            Message::Text(t) => text = Some(t.to_string()),
            Message::Pong(p) => pong = Some(p),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(text.unwrap(), "Hello, fragmented wörld");
    assert_eq!(&pong.unwrap()[..], b"between fragments");

    let chunks: [&[u8]; 3] = [&[0, 1, 2], &[0xff; 5000], &[9]];
    let whole: Vec<u8> = chunks.concat();
    ws.send(Message::Frame(Frame::message(
        chunks[0].to_vec(),
        OpCode::Data(OpData::Binary),
        false,
    )))
    .await
    .unwrap();
    ws.send(Message::Frame(Frame::message(
        chunks[1].to_vec(),
        OpCode::Data(OpData::Continue),
        false,
    )))
    .await
    .unwrap();
    ws.send(Message::Frame(Frame::message(
        chunks[2].to_vec(),
        OpCode::Data(OpData::Continue),
        true,
    )))
    .await
    .unwrap();
    match next_msg(&mut ws, "the reassembled binary echo").await {
        Message::Binary(b) => assert_eq!(&b[..], &whole[..]),
        other => panic!("expected the reassembled binary echo, got {other:?}"),
    }
    ws.close(None).await.unwrap();
    proxy.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_is_answered_by_the_origin_with_the_same_payload() {
    let site = Site::new();
    let origin = WsOrigin::start().await;
    let proxy = proxy_to(&site, &origin.url(), "").await;
    let mut ws = ws_connect(proxy.addr, &site.ca, "/ws").await;
    for payload in [&b"are you there?"[..], &[0u8, 0xff, 7][..], &[][..]] {
        ws.send(Message::Ping(payload.to_vec().into())).await.unwrap();
        match next_msg(&mut ws, "the pong").await {
            Message::Pong(p) => assert_eq!(&p[..], payload),
            other => panic!("expected a pong, got {other:?}"),
        }
    }
    ws.close(None).await.unwrap();
    proxy.shutdown().await.unwrap();
}

// ---------------------------------------------------------------- close handshake

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_close_code_and_reason_reach_the_origin_and_come_back() {
    let site = Site::new();
    let origin = WsOrigin::start().await;
    let proxy = proxy_to(&site, &origin.url(), "").await;
    let mut ws = ws_connect(proxy.addr, &site.ca, "/ws").await;
    echo_text(&mut ws, "before closing").await;

    ws.close(Some(close_frame(4000, "bye"))).await.unwrap();
    match next_msg(&mut ws, "the origin's answer to the close").await {
        Message::Close(Some(f)) => {
            assert_eq!(u16::from(f.code), 4000);
            assert_eq!(f.reason.as_str(), "bye");
        }
        other => panic!("expected the echoed close (4000, \"bye\"), got {other:?}"),
    }
    // After the close handshake the connection ends.
    let rest = read_until_end(&mut ws, "the end of the closed WebSocket").await;
    assert!(rest.is_empty(), "messages after the close: {rest:?}");

    let closes = origin.closes.clone();
    wait_until(SOON, "the origin to record the close", || {
        !closes.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(*origin.closes.lock().unwrap(), vec![(4000, "bye".to_owned())]);
    proxy.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_close_code_and_reason_reach_the_client() {
    let site = Site::new();
    let (replies_tx, mut replies) = mpsc::unbounded_channel::<Option<(u16, String)>>();
    let origin = ScriptedWsOrigin::start(move |mut ws: WsServer| {
        let replies_tx = replies_tx.clone();
        async move {
            // Echo one message, then close with a code and a reason.
            if let Some(Ok(m)) = ws.next().await {
                let _ = ws.send(m).await;
            }
            let _ = ws.close(Some(close_frame(4001, "origin leaving"))).await;
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Close(f) = m {
                    let _ = replies_tx.send(f.map(|f| (u16::from(f.code), f.reason.to_string())));
                }
            }
        }
    })
    .await;
    let proxy = proxy_to(&site, &origin.url(), "").await;
    let mut ws = ws_connect(proxy.addr, &site.ca, "/ws").await;
    echo_text(&mut ws, "close please").await;

    match next_msg(&mut ws, "the origin's close").await {
        Message::Close(Some(f)) => {
            assert_eq!(u16::from(f.code), 4001);
            assert_eq!(f.reason.as_str(), "origin leaving");
        }
        other => panic!("expected the origin's close (4001, \"origin leaving\"), got {other:?}"),
    }
    // tungstenite answers the close; the answer travels back to the origin.
    let rest = read_until_end(&mut ws, "the end of the closed WebSocket").await;
    assert!(rest.is_empty(), "messages after the close: {rest:?}");
    let reply = within(SOON, "the client's close reply at the origin", replies.recv())
        .await
        .expect("the origin ended without a close reply");
    assert_eq!(reply.map(|(c, _)| c), Some(4001));
    proxy.shutdown().await.unwrap();
}

// ---------------------------------------------------------------- handshake headers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_handshake_headers_pass_unchanged() {
    let site = Site::new();
    let origin = WsOrigin::start().await;
    let proxy = proxy_to(&site, &origin.url(), "").await;

    let mut req = "wss://localhost/ws?room=1".into_client_request().unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "chat, superchat".parse().unwrap());
    req.headers_mut().insert(
        "sec-websocket-extensions",
        "permessage-deflate; client_max_window_bits".parse().unwrap(),
    );
    req.headers_mut()
        .insert("origin", "https://app.example".parse().unwrap());
    let sent = req.headers().clone();
    let (mut ws, resp) = ws_connect_req(proxy.addr, &site.ca, req)
        .await
        .expect("the upgrade through the proxy failed");

    assert_eq!(resp.status(), 101);
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").map(|v| v.as_bytes()),
        Some(&b"chat"[..]),
        "the 101 must carry the protocol the origin selected: {:?}",
        resp.headers()
    );
    assert!(
        resp.headers()
            .get("upgrade")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket")),
        "the 101 must carry Upgrade: websocket: {:?}",
        resp.headers()
    );
    assert!(resp.headers().contains_key("sec-websocket-accept"));

    let seen = origin
        .handshakes
        .lock()
        .unwrap()
        .last()
        .cloned()
        .expect("no handshake at the origin");
    for name in [
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-protocol",
        "sec-websocket-extensions",
        "origin",
    ] {
        assert_eq!(
            seen.get_all(name).iter().collect::<Vec<_>>(),
            sent.get_all(name).iter().collect::<Vec<_>>(),
            "{name} changed on the way to the origin; origin saw {seen:?}"
        );
    }
    assert_eq!(seen["sec-websocket-protocol"], "chat, superchat");
    assert_eq!(
        seen["sec-websocket-extensions"],
        "permessage-deflate; client_max_window_bits"
    );
    assert!(seen["upgrade"].as_bytes().eq_ignore_ascii_case(b"websocket"));
    assert!(
        seen["connection"]
            .to_str()
            .unwrap()
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade")),
        "the origin needs Connection: upgrade, saw {seen:?}"
    );

    echo_text(&mut ws, "after negotiating chat").await;
    ws.close(None).await.unwrap();
    proxy.shutdown().await.unwrap();
}

// ---------------------------------------------------------------- many tunnels

/// A thousand tunnels open at the same time, each echoing three messages
/// while all the others are open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_tunnels_echo() {
    const N: usize = 1000;
    // Client, proxy (client side and upstream side) and origin ends of each
    // tunnel live in this process, plus some slack.
    ensure_open_files(4 * N as u64 + 512, "client, proxy both sides, origin");

    let site = Arc::new(Site::new());
    let origin = WsOrigin::start().await;
    // All handshakes share two cores with everything else: a long handshake
    // deadline keeps a slow machine from turning into a failure.
    let cfg = tls_config(
        "shutdown_grace = \"10s\"\nhandshake_timeout = \"120s\"",
        &route("/ws", &origin.url(), ""),
    );
    let proxy = ProxyHandle::start(&cfg, site.dir.path()).await;
    let addr = proxy.addr;

    within(Duration::from_secs(300), "a thousand tunnels", async {
        // 1. Open all of them; at most 64 handshakes at a time.
        let gate = Arc::new(tokio::sync::Semaphore::new(64));
        let mut opening = tokio::task::JoinSet::new();
        for i in 0..N {
            let (site, gate) = (site.clone(), gate.clone());
            opening.spawn(async move {
                let _permit = gate.acquire_owned().await.unwrap();
                (i, ws_connect(addr, &site.ca, "/ws").await)
            });
        }
        let mut clients = Vec::with_capacity(N);
        while let Some(r) = opening.join_next().await {
            clients.push(r.expect("opening a tunnel failed"));
        }
        assert_eq!(clients.len(), N);
        assert_eq!(
            origin.handshakes.lock().unwrap().len(),
            N,
            "the origin saw every handshake"
        );

        // 2. All open: every one echoes three messages, concurrently.
        let mut echoing = tokio::task::JoinSet::new();
        for (i, mut ws) in clients {
            echoing.spawn(async move {
                for k in 0..3 {
                    let text = format!("tunnel {i} message {k}");
                    ws.send(Message::text(text.clone())).await.unwrap();
                    match ws.next().await {
                        Some(Ok(Message::Text(t))) => assert_eq!(t.as_str(), text, "tunnel {i} mixed up"),
                        other => panic!("tunnel {i}: expected {text:?}, got {other:?}"),
                    }
                }
                ws
            });
        }
        let mut clients = Vec::with_capacity(N);
        while let Some(r) = echoing.join_next().await {
            clients.push(r.expect("a tunnel failed to echo"));
        }
        assert_eq!(clients.len(), N);

        // 3. Close them all properly.
        let mut closing = tokio::task::JoinSet::new();
        for mut ws in clients {
            closing.spawn(async move {
                ws.close(None).await.unwrap();
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
        while let Some(r) = closing.join_next().await {
            r.expect("closing a tunnel failed");
        }
    })
    .await;
    let closes = origin.closes.clone();
    wait_until(SOON, "the origin to see every close", || {
        closes.lock().unwrap().len() == N
    })
    .await;
    within(SOON, "the proxy to stop", proxy.shutdown()).await.unwrap();
}

// ---------------------------------------------------------------- idle timeout

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tunnel_is_closed_after_the_idle_timeout() {
    let site = Site::new();
    let (origin, mut ended) = end_watching_origin().await;
    let proxy = proxy_to(&site, &origin.url(), "tunnel_idle_timeout = \"500ms\"").await;
    let mut ws = ws_connect(proxy.addr, &site.ca, "/ws").await;
    echo_text(&mut ws, "one message, then silence").await;

    // Say nothing: the proxy closes the tunnel, and both sides see it end.
    let rest = read_until_end(&mut ws, "the proxy to close the idle tunnel").await;
    assert!(
        rest.iter().all(|m| matches!(m, Message::Close(_))),
        "unexpected messages on an idle tunnel: {rest:?}"
    );
    within(SOON, "the origin to see the idle tunnel end", ended.recv())
        .await
        .unwrap();
    proxy.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_keeps_a_tunnel_open_past_the_idle_timeout() {
    let site = Site::new();
    let (origin, mut ended) = end_watching_origin().await;
    let proxy = proxy_to(&site, &origin.url(), "tunnel_idle_timeout = \"500ms\"").await;
    let mut ws = ws_connect(proxy.addr, &site.ca, "/ws").await;

    // One message every 200 ms for about 1.5 s: three idle timeouts long,
    // never 500 ms quiet.
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for k in 0..8 {
        tick.tick().await;
        ws.send(Message::text(format!("keepalive {k}")))
            .await
            .unwrap_or_else(|e| panic!("the tunnel closed while in use (message {k}): {e}"));
        match next_msg(&mut ws, "the echo on a busy tunnel").await {
            Message::Text(t) => assert_eq!(t.as_str(), format!("keepalive {k}")),
            other => panic!("the tunnel closed while in use (message {k}): {other:?}"),
        }
    }
    assert!(
        ended.try_recv().is_err(),
        "the origin's end of a busy tunnel was closed"
    );

    // And once quiet, it is closed after all.
    read_until_end(&mut ws, "the proxy to close the tunnel once quiet").await;
    within(SOON, "the origin to see the tunnel end", ended.recv())
        .await
        .unwrap();
    proxy.shutdown().await.unwrap();
}

// ---------------------------------------------------------------- refused upgrades

async fn refused_upgrade_status(answer: http::StatusCode) {
    let site = Site::new();
    let origin = Origin::start(move |_req: Request<Incoming>| async move {
        let mut resp = http::Response::new(full("no WebSocket here\n"));
        *resp.status_mut() = answer;
        resp
    })
    .await;
    let proxy = proxy_to(&site, &origin.url(), "").await;
    let req = "wss://localhost/ws".into_client_request().unwrap();
    let result = within(
        SOON,
        "the answer to a refused upgrade",
        ws_connect_req(proxy.addr, &site.ca, req),
    )
    .await;
    match result {
        Err(WsError::Http(resp)) => {
            assert_eq!(resp.status(), answer);
        }
        Ok((_, resp)) => panic!("the upgrade succeeded with {}", resp.status()),
        Err(e) => panic!("expected the origin's {answer}, got {e}"),
    }
    // The origin did get the upgrade request, with its upgrade headers.
    let seen = origin.last_seen();
    assert!(seen.headers.get("upgrade").is_some_and(|v| v == "websocket"));
    assert!(seen.headers.contains_key("sec-websocket-key"));
    proxy.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_answered_403_reaches_the_client() {
    refused_upgrade_status(http::StatusCode::FORBIDDEN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_answered_200_reaches_the_client() {
    refused_upgrade_status(http::StatusCode::OK).await;
}

/// The connection the refused upgrade came on stays a working HTTP/1.1
/// connection: the 403's body arrives whole and a second request is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_upgrade_leaves_a_working_http_connection() {
    let site = Site::new();
    let origin = Origin::start(|req: Request<Incoming>| async move {
        if req.headers().contains_key("upgrade") {
            let mut resp = http::Response::new(full("no WebSocket here\n"));
            *resp.status_mut() = http::StatusCode::FORBIDDEN;
            resp
        } else {
            http::Response::new(full(format!("plain {}", req.uri())))
        }
    })
    .await;
    let proxy = proxy_to(&site, &origin.url(), "").await;
    let mut send = h1(proxy.addr, &site.ca).await;
    let upgrade = Request::get("https://localhost/ws")
        .header("host", "localhost")
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(empty())
        .unwrap();
    use http_body_util::BodyExt;
    let resp = within(SOON, "the 403", send.send_request(upgrade)).await.unwrap();
    assert_eq!(resp.status(), 403);
    let body = within(SOON, "the 403 body", resp.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], b"no WebSocket here\n");

    within(SOON, "the connection to be ready again", send.ready())
        .await
        .unwrap();
    let resp = within(SOON, "a second request", send.send_request(get("/ws/next")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"plain /ws/next");
    proxy.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_to_an_upstream_that_is_down_is_502() {
    let site = Site::new();
    // A port that was just free: nothing listens there.
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let proxy = proxy_to(&site, &format!("http://{down}"), "connect_timeout = \"2s\"").await;
    let req = "wss://localhost/ws".into_client_request().unwrap();
    match within(
        SOON,
        "the answer for a down upstream",
        ws_connect_req(proxy.addr, &site.ca, req),
    )
    .await
    {
        Err(WsError::Http(resp)) => assert_eq!(resp.status(), 502),
        Ok((_, resp)) => panic!("the upgrade succeeded with {}", resp.status()),
        Err(e) => panic!("expected 502, got {e}"),
    }
    proxy.shutdown().await.unwrap();
}

// ---------------------------------------------------------------- close propagation

/// The client vanishes without a close frame (its TCP connection simply
/// closes, no TLS close_notify): the origin's connection ends too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_dropping_its_connection_ends_the_origin_side() {
    let site = Site::new();
    let (origin, mut ended) = end_watching_origin().await;
    let proxy = proxy_to(&site, &origin.url(), "").await;
    let mut ws = ws_connect(proxy.addr, &site.ca, "/ws").await;
    echo_text(&mut ws, "about to vanish").await;
    assert!(ended.try_recv().is_err());

    drop(ws);
    within(
        SOON,
        "the origin to see the client's connection end",
        ended.recv(),
    )
    .await
    .unwrap();
    proxy.shutdown().await.unwrap();
}

/// The same with a TCP reset (SO_LINGER 0) instead of a FIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_resetting_its_connection_ends_the_origin_side() {
    let site = Site::new();
    let (origin, mut ended) = end_watching_origin().await;
    let proxy = proxy_to(&site, &origin.url(), "").await;
    let mut ws = ws_connect(proxy.addr, &site.ca, "/ws").await;
    echo_text(&mut ws, "about to reset").await;

    #[allow(deprecated)] // set_linger is what sends the RST; nothing blocks here.
    ws.get_ref().get_ref().0.set_linger(Some(Duration::ZERO)).unwrap();
    drop(ws);
    within(
        SOON,
        "the origin to see the client's connection reset",
        ended.recv(),
    )
    .await
    .unwrap();
    proxy.shutdown().await.unwrap();
}

/// The origin vanishes without a close frame: the client's connection ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_dropping_its_connection_ends_the_client_side() {
    let site = Site::new();
    let origin = ScriptedWsOrigin::start(|mut ws: WsServer| async move {
        while let Some(Ok(m)) = ws.next().await {
            if m.to_text().is_ok_and(|t| t == "vanish") {
                // Dropping the stream closes the TCP connection, no close frame.
                return;
            }
            if ws.send(m).await.is_err() {
                return;
            }
        }
    })
    .await;
    let proxy = proxy_to(&site, &origin.url(), "").await;
    let mut ws = ws_connect(proxy.addr, &site.ca, "/ws").await;
    echo_text(&mut ws, "still here").await;
    ws.send(Message::text("vanish")).await.unwrap();
    let rest = read_until_end(&mut ws, "the client to see the origin's connection end").await;
    assert!(rest.is_empty(), "unexpected messages: {rest:?}");
    proxy.shutdown().await.unwrap();
}

// ---------------------------------------------------------------- bytes read ahead

/// An origin that speaks first, right after its 101 (the two may reach the
/// proxy in one read): the greeting reaches the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_greeting_sent_with_the_101_reaches_the_client() {
    let site = Site::new();
    let origin = ScriptedWsOrigin::start(|mut ws: WsServer| async move {
        if ws.send(Message::text("welcome")).await.is_err() {
            return;
        }
        while let Some(Ok(m)) = ws.next().await {
            if m.is_text() && ws.send(m).await.is_err() {
                return;
            }
        }
    })
    .await;
    let proxy = proxy_to(&site, &origin.url(), "").await;
    let mut ws = ws_connect(proxy.addr, &site.ca, "/ws").await;
    match next_msg(&mut ws, "the origin's greeting").await {
        Message::Text(t) => assert_eq!(t.as_str(), "welcome"),
        other => panic!("expected the greeting, got {other:?}"),
    }
    echo_text(&mut ws, "and then an echo").await;
    ws.close(None).await.unwrap();
    proxy.shutdown().await.unwrap();
}

/// A client that sends its first frame in the same write as the upgrade
/// request (without waiting for the 101): the bytes after the request head
/// belong to the tunnel and reach the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_sent_with_the_upgrade_request_reaches_the_origin() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let site = Site::new();
    let origin = WsOrigin::start().await;
    let proxy = proxy_to(&site, &origin.url(), "").await;

    let mut tls = tls_connect(proxy.addr, &site.ca, &[b"http/1.1"]).await;
    let mut bytes = b"GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        .to_vec();
    // A masked, final text frame: "early".
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    bytes.extend_from_slice(&[0x81, 0x80 | 5]);
    bytes.extend_from_slice(&mask);
    bytes.extend(b"early".iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    tls.write_all(&bytes).await.unwrap();
    tls.flush().await.unwrap();

    // The 101 head, then the echo: an unmasked final text frame "early".
    let mut got = Vec::new();
    let head_end = within(SOON, "the 101 and the echo", async {
        let mut buf = [0u8; 4096];
        loop {
            let n = tls.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "the connection ended; got {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4) {
                if got.len() >= end + 7 {
                    return end;
                }
            }
        }
    })
    .await;
    let head = String::from_utf8_lossy(&got[..head_end]).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "expected a 101, got {head:?}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "the 101 lacks the RFC 6455 accept value: {head:?}"
    );
    assert_eq!(
        &got[head_end..head_end + 7],
        b"\x81\x05early",
        "the echo of the early frame"
    );
    proxy.shutdown().await.unwrap();
}
