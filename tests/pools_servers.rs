//! What one server of a pool brings: `https://` servers verified with the
//! route's upstream TLS keys, `max_conns`, the access log naming the
//! server that answered, and hash keys from whatever a client sends.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, StatusCode};
use support::https_origin::HttpsOrigin;
use support::pools::*;
use support::process::ProxyProcess;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_servers_are_verified_with_the_routes_upstream_ca() {
    let site = Site::new();
    let ca = TestCa::new();
    std::fs::write(site.path("upstream-ca.pem"), &ca.pem).unwrap();
    let issued = ca.issue(&["localhost", "127.0.0.1"]);
    let good = HttpsOrigin::hello(&issued.chain_pem, &issued.key_pem).await;
    let stranger = TestCa::named("someone else").issue(&["localhost", "127.0.0.1"]);
    let bad = HttpsOrigin::hello(&stranger.chain_pem, &stranger.key_pem).await;
    let config = pool_config(&[quoted(&good.url()), quoted(&bad.url())], "").replace(
        "upstream = \"app\"\n",
        "upstream = \"app\"\nupstream_ca = \"upstream-ca.pem\"\n",
    );
    let proxy = ProxyHandle::start(&site.config(&config), site.dir.path()).await;
    // The untrusted server fails its handshake, which is a connect failure:
    // retried on the trusted one, then marked down.
    for _ in 0..4 {
        let (status, body) = one(proxy.addr, &site.ca, "/x").await;
        assert_eq!((status, body.as_str()), (200, "hello from /x"));
    }
    assert_eq!(good.requests(), 4);
    assert_eq!(bad.requests(), 0);
    proxy.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_server_at_max_conns_is_skipped() {
    let a = NamedOrigin::start("a").await;
    let b = NamedOrigin::start("b").await;
    let site = Arc::new(Site::new());
    let servers = [
        format!("{{ url = \"{}\", max_conns = 1 }}", a.url()),
        quoted(&b.url()),
    ];
    let proxy = ProxyHandle::start(&site.config(&pool_config(&servers, "")), site.dir.path()).await;
    a.behaviour.stall.store(true, Ordering::SeqCst);
    // Round robin sends the first request to `a`, where it stays.
    let (addr, site2) = (proxy.addr, site.clone());
    let held = tokio::spawn(async move { one(addr, &site2.ca, "/slow").await });
    wait_until(Duration::from_secs(10), "a holds a request", || {
        a.behaviour.waiting.load(Ordering::SeqCst) == 1
    })
    .await;
    let seen = tally(proxy.addr, &site.ca, "/", 6).await;
    assert_eq!(seen.get("from b"), Some(&6), "{seen:?}");
    a.behaviour.release.notify_waiters();
    assert_eq!(held.await.unwrap(), (200, "from a".to_owned()));
    let seen = tally(proxy.addr, &site.ca, "/", 4).await;
    assert_eq!(seen.get("from a"), Some(&2), "{seen:?}");
    proxy.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_access_log_names_the_server_that_answered() {
    let a = NamedOrigin::start("a").await;
    let b = NamedOrigin::start("b").await;
    let site = Site::new();
    let config = site.config(&pool_config(&[quoted(&a.url()), quoted(&b.url())], ""));
    let (proxy, addr) = ProxyProcess::start(site.dir.path(), &config).await;
    assert_eq!(one(addr, &site.ca, "/first").await.1, "from a");
    assert_eq!(one(addr, &site.ca, "/second").await.1, "from b");
    let line = proxy.line_with("\"GET /first\"").await;
    assert!(
        line.split(' ').any(|f| f == format!("upstream={}", a.url())),
        "{line}"
    );
    let line = proxy.line_with("\"GET /second\"").await;
    assert!(
        line.split(' ').any(|f| f == format!("upstream={}", b.url())),
        "{line}"
    );
}

#[tokio::test]
async fn hash_keys_from_odd_requests_are_answered_normally() {
    let a = NamedOrigin::start("a").await;
    let b = NamedOrigin::start("b").await;
    let site = Site::new();
    for key in ["cookie:session", "query:room", "header:X-User"] {
        let config = pool_config(
            &[quoted(&a.url()), quoted(&b.url())],
            &format!("balance = \"hash\"\nhash_key = \"{key}\""),
        );
        let proxy = ProxyHandle::start(&site.config(&config), site.dir.path()).await;
        let odd: Vec<Request<Body>> = vec![
            get("/?room"),
            get("/?room=&room=2&&=&%ff=1"),
            get("/?=x&session"),
            Request::get("https://localhost/")
                .header("host", "localhost")
                .header("cookie", "session")
                .header("cookie", ";;=;session=;session=2")
                .header("x-user", "")
                .body(empty())
                .unwrap(),
            Request::get("https://localhost/")
                .header("host", "localhost")
                .header(
                    "cookie",
                    http::HeaderValue::from_bytes(b"session=\xff\xfe").unwrap(),
                )
                .header("x-user", http::HeaderValue::from_bytes(b"\xff").unwrap())
                .body(empty())
                .unwrap(),
        ];
        for req in odd {
            let (status, _, body) = fetch(proxy.addr, &site.ca, req).await;
            assert_eq!(status, StatusCode::OK, "{key}");
            assert!(body.starts_with("from "), "{key}: {body}");
        }
        proxy.shutdown().await.unwrap();
    }
}

#[test]
fn check_lists_the_pools_and_refuses_an_unknown_one_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    let pool = "[[upstream]]\nname = \"app\"\nservers = [\"http://127.0.0.1:1\", \
                { url = \"unix:/run/app.sock\", weight = 2, backup = true }]\n\
                balance = \"hash\"\nhash_key = \"header:X-User\"\n[upstream.health]\npath = \"/h\"\n";
    std::fs::write(
        &path,
        format!("[[route]]\npath = \"/\"\nupstream = \"app\"\n{pool}"),
    )
    .unwrap();
    let out = support::process::run_to_end(&["check"], &path);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("route   / -> pool app"), "{text}");
    assert!(
        text.contains(
            "pool    app: http://127.0.0.1:1, unix:/run/app.sock weight 2 backup \
             (hash of header:x-user, health checks GET /h every 5s)"
        ),
        "{text}"
    );

    std::fs::write(
        &path,
        format!("[[route]]\npath = \"/\"\nupstream = \"ap\"\n{pool}"),
    )
    .unwrap();
    let out = support::process::run_to_end(&["check"], &path);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("proxy.toml:3:12: route[0].upstream: no [[upstream]] is named `ap`"),
        "{text}"
    );
    assert!(text.contains("did you mean upstream = \"app\"?"), "{text}");
}
