//! Upstream host names are resolved at every new connection, never once at
//! start: an application restarted with a new address (a container) is
//! found again without restarting the proxy.
//!
//! The test is honest about name resolution: the proxy binary runs in its
//! own mount namespace where /etc/hosts is a file the test rewrites, so the
//! proxy resolves `app.portcullis.test` through the C library exactly as in
//! production. This needs root and `unshare` (CI runs as root); without
//! them the test fails loudly rather than passing without testing anything.

mod support;

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use support::process::ProxyProcess;
use support::*;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const NAME: &str = "app.portcullis.test";

// ---------------------------------------------------------------- an origin that can stop

/// An HTTP/1.1 origin on a chosen address that answers `from <name>`, and
/// that can be stopped for good: listener and every connection closed.
struct NamedOrigin {
    addr: SocketAddr,
    served: Arc<AtomicUsize>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl NamedOrigin {
    async fn start(addr: &str, name: &'static str) -> NamedOrigin {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("cannot bind {addr}: {e}"));
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let (served2, stop2, tasks2) = (served.clone(), stop.clone(), tasks.clone());
        tasks.spawn(async move {
            loop {
                let tcp = tokio::select! {
                    () = stop2.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((tcp, _)) => tcp,
                        Err(_) => return,
                    },
                };
                let served = served2.clone();
                let stop = stop2.clone();
                tasks2.spawn(async move {
                    let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
                        served.fetch_add(1, Ordering::SeqCst);
                        async move { Ok::<_, Infallible>(Response::new(full(format!("from {name}")))) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service);
                    // Dropping the connection closes the socket.
                    tokio::select! {
                        _ = conn => {}
                        () = stop.cancelled() => {}
                    }
                });
            }
        });
        NamedOrigin {
            addr,
            served,
            stop,
            tasks,
        }
    }

    /// Closes the listener and every connection, and waits until they are.
    async fn stop(&self) {
        self.stop.cancel();
        self.tasks.close();
        tokio::time::timeout(Duration::from_secs(10), self.tasks.wait())
            .await
            .expect("the origin did not stop");
    }
}

// ---------------------------------------------------------------- the proxy in its own namespace

/// Rewrites the hosts file in place (same inode), so the bind mount over
/// /etc/hosts in the proxy's namespace sees the new content.
fn write_hosts(path: &Path, ip: &str) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap();
    write!(f, "127.0.0.1 localhost\n{ip} {NAME}\n").unwrap();
    f.sync_all().unwrap();
}

/// The test cannot be honest without root, unshare and a `files` source for
/// host names: say so and fail.
fn require_environment() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let euid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("?");
    assert_eq!(
        euid, "0",
        "tests/resolve.rs needs root (a private mount namespace over /etc/hosts); run it as root, as CI does"
    );
    let unshare = Command::new("unshare").arg("--version").output();
    assert!(
        matches!(&unshare, Ok(o) if o.status.success()),
        "tests/resolve.rs needs `unshare` (util-linux): {unshare:?}"
    );
    let nsswitch = std::fs::read_to_string("/etc/nsswitch.conf").unwrap_or_default();
    let hosts_line = nsswitch.lines().map(str::trim).find(|l| l.starts_with("hosts:"));
    assert!(
        hosts_line.is_some_and(|l| l.split_whitespace().any(|s| s == "files")),
        "/etc/nsswitch.conf does not look names up in files ({hosts_line:?}): /etc/hosts would be ignored"
    );
}

// ---------------------------------------------------------------- the test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_upstream_with_a_new_address_is_found_without_restarting_the_proxy() {
    require_environment();
    let site = Site::new();

    // A on 127.0.0.2, and the name says so.
    let a = NamedOrigin::start("127.0.0.2:0", "A").await;
    let port = a.addr.port();
    let hosts = site.path("hosts");
    std::fs::write(&hosts, "").unwrap();
    write_hosts(&hosts, "127.0.0.2");

    let upstream = format!("http://{NAME}:{port}");
    let cfg = site.config(&route("/", &upstream, "connect_timeout = \"2s\""));
    let config_path = site.path("proxy.toml");
    std::fs::write(&config_path, cfg).unwrap();
    let mut command = Command::new("unshare");
    command
        .args([
            "--mount",
            "sh",
            "-c",
            r#"mount --bind "$HOSTS" /etc/hosts && exec "$BIN" --config "$CFG""#,
        ])
        .env("HOSTS", &hosts)
        .env("BIN", env!("CARGO_BIN_EXE_portcullis"))
        .env("CFG", &config_path);
    let (proxy, addr) = ProxyProcess::start_command(command).await;

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
    let b = NamedOrigin::start(&format!("127.0.0.3:{port}"), "B").await;
    write_hosts(&hosts, "127.0.0.3");

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
