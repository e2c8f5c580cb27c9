//! How an `[[upstream]]` pool spreads requests over three real origins:
//! round robin by weight, least_conn away from a slow origin, random_two
//! over all of them, and backup servers only once every primary is down.

mod support;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use support::pools::*;
use support::*;

async fn three() -> [NamedOrigin; 3] {
    [
        NamedOrigin::start("a").await,
        NamedOrigin::start("b").await,
        NamedOrigin::start("c").await,
    ]
}

fn counts(seen: &HashMap<String, usize>) -> [usize; 3] {
    ["from a", "from b", "from c"].map(|k| seen.get(k).copied().unwrap_or(0))
}

#[tokio::test]
async fn round_robin_spreads_evenly_and_by_weight() {
    let [a, b, c] = three().await;
    let site = Site::new();
    let servers = [quoted(&a.url()), quoted(&b.url()), quoted(&c.url())];
    let proxy = ProxyHandle::start(&site.config(&pool_config(&servers, "")), site.dir.path()).await;
    assert_eq!(counts(&tally(proxy.addr, &site.ca, "/", 30).await), [10, 10, 10]);
    proxy.shutdown().await.unwrap();

    let servers = [
        format!("{{ url = \"{}\", weight = 3 }}", a.url()),
        quoted(&b.url()),
        quoted(&c.url()),
    ];
    let proxy = ProxyHandle::start(&site.config(&pool_config(&servers, "")), site.dir.path()).await;
    assert_eq!(counts(&tally(proxy.addr, &site.ca, "/", 50).await), [30, 10, 10]);
    proxy.shutdown().await.unwrap();
}

#[tokio::test]
async fn random_two_and_least_conn_use_every_server() {
    let [a, b, c] = three().await;
    let site = Site::new();
    let servers = [quoted(&a.url()), quoted(&b.url()), quoted(&c.url())];
    for balance in ["random_two", "least_conn"] {
        let config = pool_config(&servers, &format!("balance = \"{balance}\""));
        let proxy = ProxyHandle::start(&site.config(&config), site.dir.path()).await;
        let spread = counts(&tally(proxy.addr, &site.ca, "/", 90).await);
        assert_eq!(spread.iter().sum::<usize>(), 90, "{balance}: {spread:?}");
        assert!(spread.iter().all(|&n| n >= 10), "{balance}: {spread:?}");
        proxy.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn least_conn_sends_nothing_more_to_a_busy_server() {
    let [a, b, c] = three().await;
    let site = std::sync::Arc::new(Site::new());
    let servers = [quoted(&a.url()), quoted(&b.url()), quoted(&c.url())];
    let config = pool_config(&servers, "balance = \"least_conn\"");
    let proxy = ProxyHandle::start(&site.config(&config), site.dir.path()).await;
    // `a` holds every request to /slow until released.
    a.behaviour.stall.store(true, Ordering::SeqCst);
    let mut held = Vec::new();
    loop {
        let (addr, site2) = (proxy.addr, site.clone());
        held.push(tokio::spawn(async move { one(addr, &site2.ca, "/slow").await }));
        // Wait until that request is somewhere: stuck in `a`, or answered.
        let before = b.served() + c.served();
        wait_until(Duration::from_secs(10), "the request reached an origin", || {
            a.behaviour.waiting.load(Ordering::SeqCst) == 1 || b.served() + c.served() > before
        })
        .await;
        if a.behaviour.waiting.load(Ordering::SeqCst) == 1 {
            break;
        }
        assert!(held.len() < 10, "least_conn never picked `a`");
    }
    // `a` has one request in flight, the others none: none goes to `a`.
    let spread = counts(&tally(proxy.addr, &site.ca, "/", 20).await);
    assert_eq!(spread[0], 0, "{spread:?}");
    assert_eq!(spread[1] + spread[2], 20, "{spread:?}");
    a.behaviour.release.notify_waiters();
    for h in held {
        assert_eq!(h.await.unwrap().0, 200);
    }
    proxy.shutdown().await.unwrap();
}

#[tokio::test]
async fn backup_only_when_every_primary_is_down() {
    let [a, b, spare] = three().await;
    let site = Site::new();
    let servers = [
        quoted(&a.url()),
        quoted(&b.url()),
        format!("{{ url = \"{}\", backup = true }}", spare.url()),
    ];
    let proxy = ProxyHandle::start(&site.config(&pool_config(&servers, "")), site.dir.path()).await;
    assert_eq!(counts(&tally(proxy.addr, &site.ca, "/", 10).await), [5, 5, 0]);
    a.stop().await;
    let spread = counts(&tally(proxy.addr, &site.ca, "/", 10).await);
    assert_eq!(spread, [0, 10, 0], "one primary is left: the backup waits");
    b.stop().await;
    let spread = counts(&tally(proxy.addr, &site.ca, "/", 10).await);
    assert_eq!(spread, [0, 0, 10], "every primary is down: the backup serves");
    proxy.shutdown().await.unwrap();
}

#[tokio::test]
async fn least_conn_counts_an_open_websocket_as_a_connection() {
    let a = ws_named("127.0.0.1:0", "a").await;
    let b = ws_named("127.0.0.1:0", "b").await;
    let site = Site::new();
    let servers = [format!("\"http://{a}\""), format!("\"http://{b}\"")];
    let config = pool_config(&servers, "balance = \"least_conn\"");
    let proxy = ProxyHandle::start(&site.config(&config), site.dir.path()).await;
    let mut ws = ws_connect(proxy.addr, &site.ca, "/ws").await;
    let on = match futures_util::StreamExt::next(&mut ws).await {
        Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) => text.to_string(),
        other => panic!("no first message: {other:?}"),
    };
    let seen = tally(proxy.addr, &site.ca, "/", 6).await;
    assert_eq!(
        seen.get(&on),
        None,
        "requests went to the server holding the WebSocket: {seen:?}"
    );
    drop(ws);
    proxy.shutdown().await.unwrap();
}
