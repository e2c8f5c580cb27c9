//! When a server of a pool counts as down, and when it is back: passive
//! health (failed requests within `fail_timeout`), active health (`fall`
//! failed checks in a row, then `rise` passing ones), what `/upstreams` and
//! `/metrics` say meanwhile, and the 502 when every server is down.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use support::admin::AdminProxy;
use support::pools::*;
use support::process::ProxyProcess;
use support::*;

/// Polls `/upstreams` until the server at `url` has `state`.
async fn wait_for_state(proxy: &AdminProxy, url: &str, state: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, page) = proxy.get("/upstreams").await;
        let json: serde_json::Value = serde_json::from_str(&page).unwrap();
        let servers = json[0]["servers"].as_array().unwrap();
        let server = servers.iter().find(|s| s["address"] == url).unwrap();
        if server["state"] == state {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url} never became {state}:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn passive_health_takes_a_failing_server_out_then_back() {
    let [a, b] = [NamedOrigin::start("a").await, NamedOrigin::start("b").await];
    // A server that refuses connections: bound, then closed.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let site = Site::new();
    let servers = [quoted(&dead_url), quoted(&a.url()), quoted(&b.url())];
    let config = pool_config(
        &servers,
        "[upstream.passive]\nmax_fails = 1\nfail_timeout = \"300ms\"",
    );
    let proxy = AdminProxy::start(&site.config(&config), site.dir.path()).await;
    // The first request meets the dead server and is retried elsewhere.
    assert_eq!(one(proxy.tls, &site.ca, "/").await.0, 200);
    wait_for_state(&proxy, &dead_url, "down").await;
    let label = format!("{{pool=\"app\",server=\"{dead_url}\"}}");
    assert_eq!(
        proxy
            .metric(&format!("portcullis_upstream_server_up{label}"))
            .await,
        Some(0.0)
    );
    let failures = format!(
        "portcullis_upstream_server_failures_total{{pool=\"app\",server=\"{dead_url}\",kind=\"connect\"}}"
    );
    assert_eq!(proxy.metric(&failures).await, Some(1.0));
    assert_eq!(
        proxy
            .metric(&format!("portcullis_upstream_server_in_flight{label}"))
            .await,
        Some(0.0)
    );
    assert!(proxy
        .metric(&format!("portcullis_upstream_server_state_seconds{label}"))
        .await
        .is_some());
    let (_, json) = proxy.get("/upstreams").await;
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json[0]["name"], "app");
    assert_eq!(json[0]["retries"], 1);
    assert_eq!(json[0]["servers"][1]["weight"], 1);
    assert_eq!(json[0]["servers"][1]["in_flight"], 0);
    let attempts_while_down = proxy
        .metric(&format!("portcullis_upstream_server_requests_total{label}"))
        .await;
    let seen = tally(proxy.tls, &site.ca, "/", 6).await;
    assert_eq!(seen.values().sum::<usize>(), 6, "{seen:?}");
    assert_eq!(seen.get("from a").copied().unwrap_or(0), 3, "{seen:?}");
    assert_eq!(
        proxy
            .metric(&format!("portcullis_upstream_server_requests_total{label}"))
            .await,
        attempts_while_down,
        "a down server gets no request"
    );
    // After fail_timeout it is up again (and, still dead, goes down again).
    wait_for_state(&proxy, &dead_url, "up").await;
    proxy.stop().await;
}

#[tokio::test]
async fn active_health_follows_fall_and_rise() {
    let [a, b] = [NamedOrigin::start("a").await, NamedOrigin::start("b").await];
    let site = Site::new();
    let servers = [quoted(&a.url()), quoted(&b.url())];
    let config = pool_config(
        &servers,
        "[upstream.health]\npath = \"/healthz\"\ninterval = \"50ms\"\ntimeout = \"1s\"\nrise = 2\nfall = 3",
    );
    let proxy = AdminProxy::start(&site.config(&config), site.dir.path()).await;
    wait_until(Duration::from_secs(10), "checks reach both origins", || {
        a.checks.load(Ordering::SeqCst) >= 1 && b.checks.load(Ordering::SeqCst) >= 1
    })
    .await;
    a.behaviour.unhealthy.store(true, Ordering::SeqCst);
    let failing_from = a.checks.load(Ordering::SeqCst);
    wait_for_state(&proxy, &a.url(), "down").await;
    assert!(
        a.checks.load(Ordering::SeqCst) >= failing_from + 3,
        "down only after `fall` failed checks"
    );
    let (_, page) = proxy.get("/upstreams").await;
    assert!(page.contains("outside expect_status 200-399"), "{page}");
    let seen = tally(proxy.tls, &site.ca, "/", 4).await;
    assert_eq!(seen.get("from b"), Some(&4), "{seen:?}");

    a.behaviour.unhealthy.store(false, Ordering::SeqCst);
    let passing_from = a.checks.load(Ordering::SeqCst);
    wait_for_state(&proxy, &a.url(), "up").await;
    assert!(
        a.checks.load(Ordering::SeqCst) >= passing_from + 2,
        "up only after `rise` passes"
    );
    let seen = tally(proxy.tls, &site.ca, "/", 4).await;
    assert_eq!(seen.get("from a"), Some(&2), "{seen:?}");
    // The checks stop with the proxy.
    proxy.stop().await;
    let after = a.checks.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        a.checks.load(Ordering::SeqCst) <= after + 1,
        "checks went on after shutdown"
    );
}

#[tokio::test]
async fn every_server_down_is_a_502_that_says_so() {
    let dead: Vec<String> = (0..2)
        .map(|_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("\"http://{}\"", l.local_addr().unwrap())
        })
        .collect();
    let site = Site::new();
    let config = site.config(&pool_config(&dead, "[upstream.passive]\nfail_timeout = \"1m\""));
    let config = config + "\n[log]\nlevel = \"info\"\n";
    let (proxy, addr) = ProxyProcess::start(site.dir.path(), &config).await;
    // Both refuse: the first request marks both down on its two attempts.
    let (status, _) = one(addr, &site.ca, "/").await;
    assert_eq!(status, 502);
    let (status, body) = one(addr, &site.ca, "/").await;
    assert_eq!(status, 502);
    assert_eq!(
        body,
        "502 bad gateway: every server of the upstream pool is down\n"
    );
    let line = proxy.line_with("every server of pool app is down").await;
    assert!(line.contains("ERROR"), "{line}");
}
