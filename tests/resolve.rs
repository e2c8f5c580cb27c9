//! Upstream host names are resolved at every new connection, never once at
//! start: an application restarted with a new address (a container) is
//! found again without restarting the proxy.
//!
//! The test is honest about name resolution: the proxy binary runs in its
//! own mount namespace where /etc/hosts is a file the test rewrites, so the
//! proxy resolves `app.portcullis.test` through the C library exactly as in
//! production. `unshare --user --map-root-user --mount` gives that
//! namespace to an ordinary user; without it the test fails loudly rather
//! than passing without testing anything.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use http::StatusCode;
use support::hosts::{proxy_command, require_environment, write_hosts};
use support::pools::NamedOrigin;
use support::process::ProxyProcess;
use support::*;

const NAME: &str = "app.portcullis.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_upstream_with_a_new_address_is_found_without_restarting_the_proxy() {
    require_environment();
    let site = Site::new();

    // A on 127.0.0.2, and the name says so.
    let a = NamedOrigin::start_on("127.0.0.2:0", "A").await;
    let port = a.addr.port();
    let hosts = site.path("hosts");
    write_hosts(&hosts, NAME, &["127.0.0.2"]);

    let upstream = format!("http://{NAME}:{port}");
    let cfg = site.config(&route("/", &upstream, "connect_timeout = \"2s\""));
    let config_path = site.path("proxy.toml");
    std::fs::write(&config_path, cfg).unwrap();
    let (proxy, addr) = ProxyProcess::start_command(proxy_command(&hosts, &config_path)).await;

    for _ in 0..3 {
        let (status, _, body) = fetch(addr, &site.ca, get("/who")).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "from A"),
            "before the move; proxy stderr:\n{}",
            proxy.stderr_text()
        );
    }
    assert_eq!(a.served.load(Ordering::SeqCst), 3);

    // The application restarts elsewhere: A goes away for good (its pooled
    // connection in the proxy dies with it), B comes up on 127.0.0.3 with
    // the same port, and the name moves.
    a.stop().await;
    let b = NamedOrigin::start_on(&format!("127.0.0.3:{port}"), "B").await;
    write_hosts(&hosts, NAME, &["127.0.0.3"]);

    // A request may meet the dying pooled connection and get a 502; the
    // next new connection must resolve the name again and reach B.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut failures = Vec::new();
    loop {
        let (status, _, body) = fetch(addr, &site.ca, get("/who")).await;
        match (status, body.as_str()) {
            (StatusCode::OK, "from B") => break,
            (StatusCode::BAD_GATEWAY, _) => failures.push(status),
            other => panic!("unexpected answer after the move: {other:?}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the proxy still cannot reach {NAME} after it moved to 127.0.0.3 ({} answers were 502): \
             it keeps the address it resolved before. Proxy stderr:\n{}",
            failures.len(),
            proxy.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And it stays there.
    for _ in 0..3 {
        let (status, _, body) = fetch(addr, &site.ca, get("/who")).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "from B"));
    }
    assert_eq!(a.served.load(Ordering::SeqCst), 3, "A answered after it stopped");
    assert!(b.served.load(Ordering::SeqCst) >= 4);
    eprintln!("502 answers while the upstream moved: {}", failures.len());
    b.stop().await;
}
