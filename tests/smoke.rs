mod support;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke() {
    let site = Site::new();
    let origin = Origin::hello().await;
    let ws = WsOrigin::start().await;
    let cfg = site.config(&format!(
        "[[route]]\npath = \"/\"\nupstream = \"{}\"\n\n[[route]]\npath = \"/ws\"\nupstream = \"{}\"\n",
        origin.url(),
        ws.url()
    ));
    let proxy = ProxyHandle::start(&cfg, site.dir.path()).await;
    let (status, _, body) = fetch(proxy.addr, &site.ca, get("/a?b=1")).await;
    assert_eq!(status, 200);
    assert_eq!(body, "hello from /a?b=1");
    let mut h2c = h2(proxy.addr, &site.ca).await;
    let resp = h2c
        .send_request(http::Request::get("https://localhost/x").body(empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    use futures_util::{SinkExt, StreamExt};
    let mut c = ws_connect(proxy.addr, &site.ca, "/ws").await;
    c.send(tokio_tungstenite::tungstenite::Message::text("hi"))
        .await
        .unwrap();
    let m = c.next().await.unwrap().unwrap();
    assert_eq!(m.into_text().unwrap().as_str(), "hi");
    proxy.shutdown().await.unwrap();
}
