//! `balance = "hash"`: a client stays on one server across reconnects and
//! between its pages and its WebSocket, whatever address of 127.0.0.0/8 it
//! comes from; a header key does the same; and a server that goes down
//! gives its clients to the others and takes them back when it returns.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;

use futures_util::StreamExt;
use http::Request;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use support::pools::*;
use support::*;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;

/// A TLS connection to the proxy from the local address `from`.
async fn connect_from(
    from: &str,
    proxy: SocketAddr,
    ca: &TestCa,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let tcp = socket.connect(proxy).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(ca.client_config(&[b"http/1.1"]));
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// Who answers a GET from `from`, on a connection of its own.
async fn page_from(from: &str, proxy: SocketAddr, ca: &TestCa) -> String {
    let tls = connect_from(from, proxy, ca).await;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = send.send_request(get("/")).await.unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

/// Who answers a WebSocket from `from`.
async fn socket_from(from: &str, proxy: SocketAddr, ca: &TestCa) -> String {
    let tls = connect_from(from, proxy, ca).await;
    let (mut ws, resp) = tokio_tungstenite::client_async("wss://localhost/ws", tls)
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    match ws.next().await {
        Some(Ok(Message::Text(text))) => text.to_string(),
        other => panic!("no first message: {other:?}"),
    }
}

#[tokio::test]
async fn a_client_address_sticks_to_one_server_for_pages_and_websockets() {
    let origins = [
        ws_named("127.0.0.1:0", "a").await,
        ws_named("127.0.0.1:0", "b").await,
        ws_named("127.0.0.1:0", "c").await,
    ];
    let site = Site::new();
    let servers: Vec<String> = origins.iter().map(|a| format!("\"http://{a}\"")).collect();
    let config = pool_config(&servers, "balance = \"hash\"\nhash_key = \"client_ip\"");
    let proxy = ProxyHandle::start(&site.config(&config), site.dir.path()).await;
    let clients: Vec<String> = (2..14).map(|i| format!("127.0.0.{i}")).collect();
    let mut home = HashMap::new();
    for client in &clients {
        home.insert(client.clone(), page_from(client, proxy.addr, &site.ca).await);
    }
    let used: std::collections::HashSet<_> = home.values().collect();
    assert!(used.len() >= 2, "twelve addresses all on one server: {home:?}");
    for client in &clients {
        for _ in 0..2 {
            assert_eq!(
                page_from(client, proxy.addr, &site.ca).await,
                home[client],
                "{client} moved"
            );
        }
        assert_eq!(
            socket_from(client, proxy.addr, &site.ca).await,
            home[client],
            "{client}'s WebSocket moved"
        );
    }
    proxy.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_down_server_gives_its_keys_away_and_takes_them_back() {
    let a = NamedOrigin::start("a").await;
    let b = NamedOrigin::start("b").await;
    let site = Site::new();
    let servers = [quoted(&a.url()), quoted(&b.url())];
    let config = pool_config(
        &servers,
        "balance = \"hash\"\nhash_key = \"header:X-User\"\n[upstream.health]\npath = \"/healthz\"\ninterval = \"30ms\"\nrise = 1\nfall = 1",
    );
    let proxy = ProxyHandle::start(&site.config(&config), site.dir.path()).await;
    let user = |n: usize| {
        Request::get("https://localhost/")
            .header("host", "localhost")
            .header("x-user", format!("user-{n}"))
            .body(empty())
            .unwrap()
    };
    let mut send = h1(proxy.addr, &site.ca).await;
    let mut ask = async |n: usize| {
        let resp = send.send_request(user(n)).await.unwrap();
        String::from_utf8_lossy(&resp.into_body().collect().await.unwrap().to_bytes()).into_owned()
    };
    let mut before = Vec::new();
    for n in 0..40 {
        before.push(ask(n).await);
    }
    for (n, home) in before.iter().enumerate() {
        assert_eq!(&ask(n).await, home, "user-{n} moved");
    }
    assert!(before.iter().any(|s| s == "from a") && before.iter().any(|s| s == "from b"));

    a.behaviour
        .unhealthy
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let checks = a.checks.load(std::sync::atomic::Ordering::SeqCst);
    wait_until(std::time::Duration::from_secs(10), "a fails a check", || {
        a.checks.load(std::sync::atomic::Ordering::SeqCst) >= checks + 2
    })
    .await;
    for n in 0..40 {
        assert_eq!(ask(n).await, "from b", "user-{n} stayed on a down server");
    }
    a.behaviour
        .unhealthy
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let checks = a.checks.load(std::sync::atomic::Ordering::SeqCst);
    wait_until(std::time::Duration::from_secs(10), "a passes a check", || {
        a.checks.load(std::sync::atomic::Ordering::SeqCst) >= checks + 2
    })
    .await;
    for (n, home) in before.iter().enumerate() {
        assert_eq!(&ask(n).await, home, "user-{n} did not come back");
    }
    proxy.shutdown().await.unwrap();
}
