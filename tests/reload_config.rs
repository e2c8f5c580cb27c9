//! Reloading the configuration of a running proxy (the binary, its file
//! rewritten): every change is seen on the next request, connections
//! already open included; pools that stay keep their connections and
//! health; a refused file changes nothing; listeners come and go while
//! the others serve; WebSockets stay open across reloads; and no request
//! fails while reloads run under load.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use support::live::{config, LiveProxy};
use support::pools::{tally, NamedOrigin};
use support::{full, get, h1, h2, wait_until, Origin, Site, WsOrigin};
use tokio_tungstenite::tungstenite::Message;

fn route(path: &str, upstream: &str) -> String {
    support::route(path, upstream, "")
}

/// The body of GET `path` on an open connection, or its status if not 200.
async fn h1_get(send: &mut hyper::client::conn::http1::SendRequest<support::Body>, path: &str) -> String {
    send.ready().await.unwrap();
    answer(send.send_request(get(path)).await.unwrap()).await
}

async fn h2_get(send: &mut hyper::client::conn::http2::SendRequest<support::Body>, path: &str) -> String {
    send.ready().await.unwrap();
    answer(send.send_request(get(path)).await.unwrap()).await
}

async fn answer(resp: Response<Incoming>) -> String {
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    if status == 200 {
        String::from_utf8_lossy(&body).into_owned()
    } else {
        status.as_u16().to_string()
    }
}

/// An origin answering `from <name>` that counts its connections.
async fn counted(name: &'static str) -> Origin {
    Origin::start(move |_req: Request<Incoming>| async move { Response::new(full(format!("from {name}"))) })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_changes_apply_to_the_next_request_on_connections_already_open() {
    let site = Site::new();
    let (a, b) = (NamedOrigin::start("a").await, NamedOrigin::start("b").await);
    let first = config("", &(route("/a", &a.url()) + &route("/gone", &a.url())));
    let proxy = LiveProxy::start(&site, &first).await;
    let mut one = h1(proxy.tls, &site.ca).await;
    let mut two = h2(proxy.tls, &site.ca).await;
    assert_eq!(h1_get(&mut one, "/a").await, "from a");
    assert_eq!(h2_get(&mut two, "/gone").await, "from a");
    assert_eq!(h1_get(&mut one, "/new").await, "404");

    let second = config("", &(route("/a", &b.url()) + &route("/new", &a.url())));
    let said = proxy.apply(&second).await;
    assert!(said.contains("generation 2"), "{said}");
    assert!(
        said.contains("+/new") && said.contains("-/gone") && said.contains("~/a"),
        "{said}"
    );
    for _ in 0..2 {
        assert_eq!(h1_get(&mut one, "/a").await, "from b");
        assert_eq!(h2_get(&mut two, "/a").await, "from b");
        assert_eq!(h1_get(&mut one, "/new").await, "from a");
        assert_eq!(h2_get(&mut two, "/new").await, "from a");
        assert_eq!(h1_get(&mut one, "/gone").await, "404");
        assert_eq!(h2_get(&mut two, "/gone").await, "404");
    }
    assert_eq!(proxy.metric("portcullis_config_generation").await, Some(2.0));
    assert_eq!(
        proxy
            .metric("portcullis_config_reloads_total{result=\"applied\"}")
            .await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_max_body_applies_to_the_next_request() {
    let site = Site::new();
    let origin = NamedOrigin::start("a").await;
    let with = |limit: &str| {
        config(
            "",
            &support::route("/", &origin.url(), &format!("max_body = \"{limit}\"")),
        )
    };
    let proxy = LiveProxy::start(&site, &with("1KiB")).await;
    let post = || {
        Request::post("https://localhost/up")
            .header("host", "localhost")
            .body(full(vec![b'x'; 4096]))
            .unwrap()
    };
    let mut send = h1(proxy.tls, &site.ca).await;
    assert_eq!(answer(send.send_request(post()).await.unwrap()).await, "413");
    proxy.apply(&with("1MiB")).await;
    let mut send = h1(proxy.tls, &site.ca).await;
    assert_eq!(answer(send.send_request(post()).await.unwrap()).await, "from a");
}

/// A pool defined as before is the same pool: its servers keep their
/// keep-alive connections and their health. A pool given one more server
/// keeps the servers it had, with theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_keep_their_connections_and_health_across_reloads() {
    let site = Site::new();
    let a = counted("a").await;
    let b = NamedOrigin::start("b").await;
    let c = NamedOrigin::start("c").await;
    // Checks once at start and then hourly: a server found down stays
    // down, even once healthy, unless its state is lost.
    let health = "[upstream.health]\npath = \"/healthz\"\ninterval = \"1h\"\nfall = 1\nrise = 2\n";
    let pool = |servers: &[&str], extra_route: &str| {
        let list: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
        config(
            "",
            &format!(
                "[[route]]\npath = \"/\"\nupstream = \"app\"\n{extra_route}\n\
                 [[upstream]]\nname = \"app\"\nservers = [{}]\n{health}",
                list.join(", ")
            ),
        )
    };
    b.behaviour.unhealthy.store(true, Ordering::SeqCst);
    let proxy = LiveProxy::start(&site, &pool(&[&a.url(), &b.url()], "")).await;
    let b_down = || async {
        let (_, page) = support::admin::get(proxy.admin, "/upstreams").await;
        page.contains("\"state\": \"down\"")
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !b_down().await {
        assert!(tokio::time::Instant::now() < deadline, "b was never marked down");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.behaviour.unhealthy.store(false, Ordering::SeqCst);
    // The checks share the servers' keep-alive connections: once a's
    // check is done, its connection waits in the pool, and a's requests
    // take it.
    let a_checks = a.seen.clone();
    let checked = |n: usize| {
        let seen = a_checks.clone();
        move || {
            seen.lock()
                .unwrap()
                .iter()
                .filter(|p| p.uri.path() == "/healthz")
                .count()
                >= n
        }
    };
    let idle = format!(
        "portcullis_upstream_idle_connections{{route=\"app@{}\"}}",
        a.url()
    );
    let settle = |n: usize| {
        let (idle, checked, proxy) = (idle.clone(), checked(n), &proxy);
        async move {
            support::wait_until(Duration::from_secs(10), "a's check", checked).await;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while proxy.metric(&idle).await != Some(1.0) {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "a's connection did not return to the pool"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    settle(1).await;
    let base = a.connections.load(Ordering::SeqCst);
    assert_eq!(tally(proxy.tls, &site.ca, "/", 10).await.get("from a"), Some(&10));
    assert_eq!(a.connections.load(Ordering::SeqCst), base);

    // Only a route changes: the pool is kept whole, and checks nothing new.
    let said = proxy
        .apply(&pool(
            &[&a.url(), &b.url()],
            "\n[[route]]\npath = \"/other/\"\nrespond = { status = 204 }\n",
        ))
        .await;
    assert!(said.contains("1 pool(s) kept whole"), "{said}");
    let seen = tally(proxy.tls, &site.ca, "/", 10).await;
    assert_eq!(
        seen.get("from a"),
        Some(&10),
        "b came back up: its health was lost: {seen:?}"
    );
    assert_eq!(
        a.connections.load(Ordering::SeqCst),
        base,
        "a's keep-alive connection was lost"
    );

    // One more server: a and b keep their state, c joins; the new pool
    // checks its servers once at once.
    let said = proxy.apply(&pool(&[&a.url(), &b.url(), &c.url()], "")).await;
    assert!(said.contains("pools ~app"), "{said}");
    settle(2).await;
    let seen = tally(proxy.tls, &site.ca, "/", 20).await;
    assert_eq!(
        seen.get("from b"),
        None,
        "b came back up: its health was lost: {seen:?}"
    );
    assert!(seen.get("from c").copied().unwrap_or(0) > 0, "{seen:?}");
    assert!(seen.get("from a").copied().unwrap_or(0) > 0, "{seen:?}");
    assert_eq!(
        a.connections.load(Ordering::SeqCst),
        base,
        "a's keep-alive connection was lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_reload_changes_nothing() {
    let site = Site::new();
    let origin = NamedOrigin::start("a").await;
    let good = config("", &route("/", &origin.url()));
    let proxy = LiveProxy::start(&site, &good).await;

    let bad = good.clone() + "bogus = 1\nread_timeout = \"soon\"\n";
    proxy.write(&bad);
    let (status, text) = proxy.reload().await;
    assert_eq!(status, 422, "{text}");
    let file = proxy.file.display().to_string();
    assert!(text.contains(&format!("{file}:")), "{text}");
    assert!(text.contains("route[0].bogus: unknown key `bogus`"), "{text}");
    assert!(text.contains("route[0].read_timeout"), "{text}");
    assert!(text.contains("the running configuration stays"), "{text}");
    assert_eq!(support::pools::one(proxy.tls, &site.ca, "/").await.1, "from a");
    assert_eq!(proxy.metric("portcullis_config_generation").await, Some(1.0));
    assert_eq!(
        proxy
            .metric("portcullis_config_reloads_total{result=\"refused\"}")
            .await,
        Some(1.0)
    );
    // The command line says the same and exits 2.
    let out = support::process::run_to_end(&["reload"], &proxy.file);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("route[0].bogus: unknown key `bogus`"), "{stderr}");

    // A key that does not match its certificate is refused the same way,
    // and the certificate in service stays.
    let other = site.ca.issue(&["localhost"]);
    std::fs::write(site.path("other-key.pem"), &other.key_pem).unwrap();
    proxy.write(&good.replace("key = \"privkey.pem\"", "key = \"other-key.pem\""));
    let (status, text) = proxy.reload().await;
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("other-key.pem"), "{text}");
    assert!(text.contains("does not belong to the certificate"), "{text}");
    assert_eq!(support::pools::one(proxy.tls, &site.ca, "/").await.1, "from a");
    assert_eq!(proxy.metric("portcullis_config_generation").await, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_are_added_and_removed_while_another_serves() {
    let site = Site::new();
    let origin = NamedOrigin::start("a").await;
    let routes = route("/", &origin.url());
    let one = config("", &routes);
    let proxy = LiveProxy::start(&site, &one).await;
    let first = proxy.tls;
    let mut kept = h1(first, &site.ca).await;
    assert_eq!(h1_get(&mut kept, "/").await, "from a");

    let two = one.replace(
        "listen = [\"127.0.0.1:0\"]",
        "listen = [\"127.0.0.1:0\", \"127.0.0.2:0\"]",
    );
    let said = proxy.apply(&two).await;
    assert!(said.contains("listeners +127.0.0.2:"), "{said}");
    let bound = proxy.bound().await;
    assert_eq!(bound.len(), 2, "{bound:?}");
    assert_eq!(bound[0], first, "the kept address was bound again");
    let second = bound[1];
    assert_eq!(support::pools::one(second, &site.ca, "/").await.1, "from a");
    assert_eq!(h1_get(&mut kept, "/").await, "from a");

    let said = proxy.apply(&one).await;
    assert!(said.contains(&format!("listeners -{second}")), "{said}");
    wait_until(Duration::from_secs(10), "the removed listener to refuse", || {
        std::net::TcpStream::connect(second).is_err()
    })
    .await;
    assert_eq!(h1_get(&mut kept, "/").await, "from a");
    assert_eq!(support::pools::one(first, &site.ca, "/").await.1, "from a");
    assert_eq!(proxy.bound().await, vec![first]);
}

/// A WebSocket on a route that stays exchanges messages before, during
/// and after 50 reloads; one on a route the reloads remove stays open
/// until it is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_stay_open_across_fifty_reloads() {
    let site = Site::new();
    let ws = WsOrigin::start().await;
    let with_old = config(
        "",
        &(support::route("/ws", &ws.url(), "websocket = true")
            + &support::route("/old", &ws.url(), "websocket = true")),
    );
    let without_old = config("", &support::route("/ws", &ws.url(), "websocket = true"));
    let proxy = LiveProxy::start(&site, &with_old).await;
    let mut kept = support::ws_connect(proxy.tls, &site.ca, "/ws").await;
    let mut removed = support::ws_connect(proxy.tls, &site.ca, "/old").await;
    for round in 0..50 {
        let next = if round % 2 == 1 { &without_old } else { &with_old };
        proxy.apply(next).await;
        for ws in [&mut kept, &mut removed] {
            let text = format!("message {round}");
            ws.send(Message::text(text.clone())).await.unwrap();
            let echoed = support::within(Duration::from_secs(10), "the echo", ws.next()).await;
            assert_eq!(echoed.unwrap().unwrap(), Message::text(text));
        }
    }
    // The last reload removed /old: a new WebSocket there is refused, the
    // one already open still works until it closes.
    assert_eq!(support::pools::one(proxy.tls, &site.ca, "/old").await.0, 404);
    removed.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        removed.next().await.unwrap().unwrap(),
        Message::text("still here")
    );
    removed.close(None).await.unwrap();
    kept.send(Message::text("last")).await.unwrap();
    assert_eq!(kept.next().await.unwrap().unwrap(), Message::text("last"));
}

/// Requests over HTTP/1.1 and HTTP/2, without a pause, while the
/// configuration is reloaded 50 times: not one fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_reloads_under_load_fail_no_request() {
    let site = Arc::new(Site::new());
    let (a, b) = (NamedOrigin::start("a").await, NamedOrigin::start("b").await);
    let one = config("", &(route("/", &a.url()) + &route("/b/", &b.url())));
    let two = config(
        "",
        &(support::route("/", &a.url(), "response.set = { \"X-Gen\" = \"two\" }") + &route("/c/", &b.url())),
    );
    let proxy = Arc::new(LiveProxy::start(&site, &one).await);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for n in 0..4 {
        let (stop, done, site, addr) = (stop.clone(), done.clone(), site.clone(), proxy.tls);
        clients.push(tokio::spawn(async move {
            let ca = &site.ca;
            let mut failures = Vec::new();
            if n % 2 == 0 {
                let mut send = h1(addr, ca).await;
                while !stop.load(Ordering::SeqCst) {
                    match send.ready().await {
                        Ok(()) => {}
                        Err(e) => {
                            failures.push(format!("h1 connection: {e}"));
                            break;
                        }
                    }
                    let answered = send.send_request(get("/")).await;
                    count(answered, "h1", &done, &mut failures).await;
                }
            } else {
                let mut send = h2(addr, ca).await;
                while !stop.load(Ordering::SeqCst) {
                    let _ = send.ready().await;
                    let answered = send.send_request(get("/")).await;
                    count(answered, "h2", &done, &mut failures).await;
                }
            }
            failures
        }));
    }
    // New connections too, each for a few requests.
    {
        let (stop, done, site, addr) = (stop.clone(), done.clone(), site.clone(), proxy.tls);
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let (status, _) = support::pools::one(addr, &site.ca, "/").await;
                if status == 200 {
                    done.fetch_add(1, Ordering::SeqCst);
                } else {
                    failures.push(format!("new connection: status {status}"));
                }
            }
            failures
        }));
    }
    for round in 0..50 {
        let before = done.load(Ordering::SeqCst);
        proxy.apply(if round % 2 == 0 { &two } else { &one }).await;
        // Some requests between two reloads, so that they interleave.
        let done = done.clone();
        wait_until(Duration::from_secs(10), "requests between reloads", move || {
            done.load(Ordering::SeqCst) > before + 4
        })
        .await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut failures = Vec::new();
    for client in clients {
        failures.extend(client.await.unwrap());
    }
    assert!(failures.is_empty(), "{} failures: {failures:?}", failures.len());
    assert!(done.load(Ordering::SeqCst) >= 250);
    assert_eq!(proxy.metric("portcullis_config_generation").await, Some(51.0));
}

/// Counts one answer of the load: a 200 read to its end, or a failure.
async fn count(
    answered: Result<Response<Incoming>, hyper::Error>,
    what: &str,
    done: &AtomicUsize,
    failures: &mut Vec<String>,
) {
    match answered {
        Ok(resp) if resp.status() == 200 => match resp.into_body().collect().await {
            Ok(_) => {
                done.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => failures.push(format!("{what} body: {e}")),
        },
        Ok(resp) => failures.push(format!("{what} status {}", resp.status())),
        Err(e) => failures.push(format!("{what}: {e}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_config_shows_the_generation_the_digest_and_no_key_material() {
    let site = Site::new();
    let origin = NamedOrigin::start("a").await;
    let text = config("", &route("/", &origin.url()));
    let proxy = LiveProxy::start(&site, &text).await;
    let shown = proxy.config().await;
    assert_eq!(shown["generation"], 1);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(shown["sha256"], hex);
    let file = shown["text"].as_str().unwrap();
    assert!(
        file.contains(&format!("upstream = \"{}\"", origin.url())),
        "{file}"
    );
    let page = shown.to_string();
    assert!(page.contains("privkey.pem"), "key paths are shown: {page}");
    assert!(!page.contains("PRIVATE KEY"), "{page}");
    proxy.apply(&text).await;
    assert_eq!(proxy.config().await["generation"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_config_reloads_when_the_file_changes() {
    let site = Site::new();
    let origin = NamedOrigin::start("a").await;
    let first = config("watch_config = true", &route("/a/", &origin.url()));
    let proxy = LiveProxy::start(&site, &first).await;
    assert_eq!(support::pools::one(proxy.tls, &site.ca, "/b/").await.0, 404);
    proxy.write(&(first + &route("/b/", &origin.url())));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if support::pools::one(proxy.tls, &site.ca, "/b/").await.0 == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the change was not applied:\n{}",
            proxy.process.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Without an admin listener, `portcullis reload` checks the file, then
/// signals the process named by the pid file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portcullis_reload_signals_the_process_of_the_pid_file() {
    let site = Site::new();
    let origin = NamedOrigin::start("a").await;
    let text = support::tls_config("pid_file = \"portcullis.pid\"", &route("/a/", &origin.url()));
    let (process, addr) = support::process::ProxyProcess::start(site.dir.path(), &text).await;
    let pid_file = site.path("portcullis.pid");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(pid.trim(), process.pid().to_string());

    let file = site.path("proxy.toml");
    std::fs::write(&file, text.clone() + "bogus = true\n").unwrap();
    let out = support::process::run_to_end(&["reload"], &file);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown key `bogus`"));

    std::fs::write(&file, text + &route("/b/", &origin.url())).unwrap();
    let out = support::process::run_to_end(&["reload"], &file);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while support::pools::one(addr, &site.ca, "/b/").await.0 != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}",
            process.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(process);
}

/// With `tunnel_drain_after_reload`, a WebSocket whose route a reload
/// removed, or whose server left the pool, is closed after the grace;
/// one on a route and server that stay is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_drain_after_reload_closes_the_tunnels_left_out() {
    let site = Site::new();
    let (ws_a, ws_b) = (WsOrigin::start().await, WsOrigin::start().await);
    let with = |servers: &str, old_route: bool| {
        let mut rest = format!(
            "[[route]]\npath = \"/pool\"\nupstream = \"app\"\nwebsocket = true\n\n\
             [[upstream]]\nname = \"app\"\nservers = [{servers}]\nbalance = \"least_conn\"\n\n"
        );
        rest += &support::route("/stays", &ws_a.url(), "websocket = true");
        if old_route {
            rest += &support::route("/old", &ws_a.url(), "websocket = true");
        }
        config("tunnel_drain_after_reload = \"1s\"", &rest)
    };
    let both = format!("\"{}\", \"{}\"", ws_a.url(), ws_b.url());
    let proxy = LiveProxy::start(&site, &with(&both, true)).await;
    let mut stays = support::ws_connect(proxy.tls, &site.ca, "/stays").await;
    let mut old = support::ws_connect(proxy.tls, &site.ca, "/old").await;
    // Two on the pool: least_conn puts one on each server.
    let mut on_pool = vec![
        support::ws_connect(proxy.tls, &site.ca, "/pool").await,
        support::ws_connect(proxy.tls, &site.ca, "/pool").await,
    ];
    assert_eq!(ws_b.handshakes.lock().unwrap().len(), 1, "one pool tunnel on b");

    proxy.apply(&with(&format!("\"{}\"", ws_a.url()), false)).await;
    old.send(Message::text("x")).await.ok();
    assert!(
        closed_after_grace(&mut old).await,
        "the tunnel of the removed route stayed open"
    );
    // Of the two pool tunnels, the one on b (which left the pool) is
    // closed, the one on a stays.
    let mut open = 0;
    for ws in &mut on_pool {
        ws.send(Message::text("x")).await.ok();
        if !closed_after_grace(ws).await {
            open += 1;
        }
    }
    assert_eq!(open, 1, "exactly the tunnel on the server that stayed is open");
    stays.send(Message::text("still")).await.unwrap();
    assert_eq!(stays.next().await.unwrap().unwrap(), Message::text("still"));
}

type WsStream = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// True when `ws` is closed within the drain's grace and a margin.
async fn closed_after_grace(ws: &mut WsStream) -> bool {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(_)))) => continue,
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return true,
            Ok(Some(Ok(_))) => continue,
            Err(_) => return false,
        }
    }
}

/// A handshake with `ca`'s trust over TLS 1.2 only; true when it succeeds.
async fn tls12_handshake(addr: std::net::SocketAddr, ca: &support::TestCa) -> bool {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .is_ok()
}

/// A TLS setting and the certificate change on a reload: new connections
/// get the new ones, a connection already open goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_settings_and_certificates_change_on_reload() {
    let site = Site::new();
    let origin = NamedOrigin::start("a").await;
    let first = config("", &route("/", &origin.url()));
    let proxy = LiveProxy::start(&site, &first).await;
    assert!(
        tls12_handshake(proxy.tls, &site.ca).await,
        "TLS 1.2 is served at first"
    );
    let mut kept = h1(proxy.tls, &site.ca).await;
    assert_eq!(h1_get(&mut kept, "/").await, "from a");

    // Another CA's certificate in other files, and TLS 1.3 only.
    let other = support::TestCa::named("another CA");
    let issued = other.issue(&["localhost", "127.0.0.1"]);
    std::fs::write(site.path("new-chain.pem"), &issued.chain_pem).unwrap();
    std::fs::write(site.path("new-key.pem"), &issued.key_pem).unwrap();
    let second = first
        .replace("cert = \"fullchain.pem\"", "cert = \"new-chain.pem\"")
        .replace(
            "key = \"privkey.pem\"",
            "key = \"new-key.pem\"\nmin_version = \"1.3\"",
        );
    let said = proxy.apply(&second).await;
    assert!(said.contains("tls settings changed"), "{said}");

    assert!(
        !tls12_handshake(proxy.tls, &other).await,
        "TLS 1.2 is still served"
    );
    assert_eq!(support::pools::one(proxy.tls, &other, "/").await.1, "from a");
    let tcp = tokio::net::TcpStream::connect(proxy.tls).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let old_trust = tokio_rustls::TlsConnector::from(site.ca.client_config(&[b"http/1.1"]));
    assert!(
        old_trust.connect(name, tcp).await.is_err(),
        "the old certificate is still served"
    );
    assert_eq!(h1_get(&mut kept, "/").await, "from a");
}
