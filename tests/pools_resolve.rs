//! A pool server whose name resolves to several addresses is one server per
//! address, followed as the addresses change (compose `--scale 1`, then
//! 3, then 2) without a restart: new addresses get requests, a vanished one
//! gets none, and a WebSocket tunnel open on it keeps working.
//!
//! The proxy binary resolves names through the C library in a mount
//! namespace of its own, over a hosts file the test rewrites (see
//! support/hosts.rs); an ordinary user can run it.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::hosts::{proxy_command, require_environment, write_hosts};
use support::pools::*;
use support::process::ProxyProcess;
use support::*;
use tokio_tungstenite::tungstenite::Message;

const NAME: &str = "scaled.portcullis.test";

/// Tallies batches of `n` requests until `done` holds for one, within 20 s.
async fn until(
    proxy: &ProxyProcess,
    addr: std::net::SocketAddr,
    ca: &TestCa,
    n: usize,
    what: &str,
    done: impl Fn(&HashMap<String, usize>) -> bool,
) -> HashMap<String, usize> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let seen = tally(addr, ca, "/", n).await;
        if done(&seen) {
            return seen;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: last batch {seen:?}; proxy stderr:\n{}",
            proxy.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn count(seen: &HashMap<String, usize>, who: &str) -> usize {
    seen.get(&format!("from {who}")).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_follows_a_name_from_one_to_three_to_two_addresses() {
    require_environment();
    let site = Site::new();
    let a = ws_named("127.0.0.2:0", "a").await;
    let port = a.port();
    ws_named(&format!("127.0.0.3:{port}"), "b").await;
    ws_named(&format!("127.0.0.4:{port}"), "c").await;

    let hosts = site.path("hosts");
    write_hosts(&hosts, NAME, &["127.0.0.2"]);
    let pool = pool_config(
        &[format!("\"http://{NAME}:{port}\"")],
        "resolve_interval = \"100ms\"",
    );
    let config_path = site.path("proxy.toml");
    std::fs::write(&config_path, site.config(&pool)).unwrap();
    let (proxy, addr) = ProxyProcess::start_command(proxy_command(&hosts, &config_path)).await;

    let seen = tally(addr, &site.ca, "/", 6).await;
    assert_eq!(count(&seen, "a"), 6, "{seen:?}");

    // Scaled to three: every address gets its share.
    write_hosts(&hosts, NAME, &["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
    until(&proxy, addr, &site.ca, 9, "three addresses", |seen| {
        ["a", "b", "c"].iter().all(|who| count(seen, who) == 3)
    })
    .await;

    // A WebSocket on c, the address about to vanish.
    let mut on_c = None;
    for _ in 0..12 {
        let mut ws = ws_connect(addr, &site.ca, "/ws").await;
        match ws.next().await {
            Some(Ok(Message::Text(text))) if text.as_str() == "from c" => {
                on_c = Some(ws);
                break;
            }
            Some(Ok(_)) => {}
            other => panic!("no first message: {other:?}"),
        }
    }
    let mut on_c = on_c.expect("no WebSocket landed on c in 12 tries");

    // Scaled to two: c gets nothing new, its tunnel goes on.
    write_hosts(&hosts, NAME, &["127.0.0.2", "127.0.0.3"]);
    until(&proxy, addr, &site.ca, 6, "c removed", |seen| {
        count(seen, "c") == 0 && count(seen, "a") == 3
    })
    .await;
    let seen = tally(addr, &site.ca, "/", 10).await;
    assert_eq!(count(&seen, "c"), 0, "{seen:?}");
    assert_eq!(count(&seen, "a") + count(&seen, "b"), 10, "{seen:?}");
    on_c.send(Message::text("still there?")).await.unwrap();
    match on_c.next().await {
        Some(Ok(Message::Text(text))) => assert_eq!(text.as_str(), "still there?"),
        other => panic!("the tunnel on the removed address broke: {other:?}"),
    }
}
