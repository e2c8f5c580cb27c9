//! Binary upgrade (`POST /upgrade`, `portcullis upgrade`): the running
//! binary starts its file again and hands the new process its listening
//! sockets. Not one connection attempt is refused across the switch; the
//! old process finishes its requests, keeps its WebSocket until it closes,
//! then exits 0; a new binary that cannot serve leaves the old one serving.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::live::config;
use support::pools::NamedOrigin;
use support::process::ProxyProcess;
use support::{Site, WsOrigin};
use tokio_tungstenite::tungstenite::Message;

/// Ends a process this test did not start as a child (the new one).
struct Kill(u32);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.0.to_string())
            .status();
    }
}

/// The process ID in `upgraded: process N serves now`.
fn new_pid(text: &str) -> u32 {
    text.split("process ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no process ID in {text:?}"))
}

/// The binary copied where the test can replace it, as a package upgrade
/// replaces the installed one.
fn own_binary(site: &Site) -> std::path::PathBuf {
    let path = site.path("portcullis");
    install(&path);
    path
}

/// Copies the built binary to `path`, replacing what is there as a
/// package manager does (a new file renamed over the old), and waits until
/// it can be run: a process another test forks in the meantime holds the
/// copy's write descriptor until it execs (ETXTBSY).
fn install(path: &std::path::Path) {
    let tmp = path.with_extension("new");
    std::fs::copy(env!("CARGO_BIN_EXE_portcullis"), &tmp).unwrap();
    std::fs::rename(&tmp, path).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match std::process::Command::new(path).arg("--version").output() {
            Ok(_) => return,
            Err(e) if e.raw_os_error() == Some(26) && std::time::Instant::now() < deadline => {
                std::thread::yield_now();
            }
            Err(e) => panic!("cannot run {}: {e}", path.display()),
        }
    }
}

async fn start(
    site: &Site,
    binary: &std::path::Path,
    toml: &str,
) -> (ProxyProcess, std::net::SocketAddr, std::net::SocketAddr) {
    std::fs::write(site.path("proxy.toml"), toml).unwrap();
    let command = support::process::run_command(binary, &site.path("proxy.toml"));
    let (process, tls) = ProxyProcess::start_command(command).await;
    let admin = process.logged_addr("admin on http://").await;
    (process, tls, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_refuses_no_connection_and_the_old_process_leaves_after_its_tunnel() {
    let site = Arc::new(Site::new());
    let origin = NamedOrigin::start("a").await;
    let ws = WsOrigin::start().await;
    let toml = config(
        "",
        &(support::route("/", &origin.url(), "") + &support::route("/ws", &ws.url(), "websocket = true")),
    );
    let binary = own_binary(&site);
    let (mut old, tls, admin) = start(&site, &binary, &toml).await;
    let mut tunnel = support::ws_connect(tls, &site.ca, "/ws").await;

    // New connections, one request each, without a pause.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let load = {
        let (stop, served, site) = (stop.clone(), served.clone(), site.clone());
        tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let attempt = async {
                    let tcp = tokio::net::TcpStream::connect(tls)
                        .await
                        .map_err(|e| format!("connect: {e}"))?;
                    let connector = tokio_rustls::TlsConnector::from(site.ca.client_config(&[b"http/1.1"]));
                    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                    let stream = connector
                        .connect(name, tcp)
                        .await
                        .map_err(|e| format!("handshake: {e}"))?;
                    let (status, _, body) = support::from::send(stream, support::get("/")).await;
                    if status != 200 || body != "from a" {
                        return Err(format!("answer {status}: {body}"));
                    }
                    Ok::<(), String>(())
                };
                match tokio::time::timeout(Duration::from_secs(5), attempt).await {
                    Ok(Ok(())) => {
                        served.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(Err(e)) => failures.push(e),
                    Err(_) => failures.push("no answer within 5 s".to_owned()),
                }
            }
            failures
        })
    };
    let before = served.load(Ordering::SeqCst);
    support::wait_until(Duration::from_secs(10), "requests before the upgrade", || {
        served.load(Ordering::SeqCst) > before + 20
    })
    .await;
    let (status, text) = support::admin::post(admin, "/upgrade").await;
    assert_eq!(status, 200, "{text}");
    let _new = Kill(new_pid(&text));
    assert_ne!(new_pid(&text), old.pid());
    let after = served.load(Ordering::SeqCst);
    support::wait_until(Duration::from_secs(20), "requests after the upgrade", || {
        served.load(Ordering::SeqCst) > after + 50
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let failures = load.await.unwrap();
    assert!(failures.is_empty(), "{} failed: {failures:?}", failures.len());

    // The new process answers the admin listener and has the address.
    let (status, page) = support::admin::get(admin, "/config").await;
    assert_eq!(status, 200);
    assert!(page.contains(&tls.to_string()), "{page}");

    // Only the new process answers the admin listener now, though the old
    // one still runs (for its WebSocket): each reload is the next
    // generation of the same process.
    for generation in 2..6 {
        let (status, text) = support::admin::post(admin, "/reload").await;
        assert_eq!(status, 200, "{text}");
        assert!(text.contains(&format!("generation {generation}:")), "{text}");
    }

    // The old process keeps its WebSocket, and leaves once it closes.
    tunnel.send(Message::text("still here")).await.unwrap();
    assert_eq!(tunnel.next().await.unwrap().unwrap(), Message::text("still here"));
    assert!(
        old.try_wait().is_none(),
        "the old process left with a tunnel open"
    );
    tunnel.close(None).await.unwrap();
    // The closing handshake completes, and the client leaves.
    while let Some(Ok(_)) = tunnel.next().await {}
    drop(tunnel);
    let mut exited = None;
    support::wait_until(Duration::from_secs(20), "the old process to exit", || {
        exited = old.try_wait();
        exited.is_some()
    })
    .await;
    assert!(exited.unwrap().success(), "{:?}\n{}", exited, old.stderr_text());
    assert_eq!(support::pools::one(tls, &site.ca, "/").await.1, "from a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_binary_that_cannot_serve_leaves_the_old_one_serving() {
    let site = Site::new();
    let origin = NamedOrigin::start("a").await;
    let toml = config("", &support::route("/", &origin.url(), ""));
    let binary = own_binary(&site);
    let (mut old, tls, admin) = start(&site, &binary, &toml).await;

    // A binary that fails at once.
    let broken = site.path("broken");
    std::fs::write(&broken, "#!/bin/sh\necho broken >&2\nexit 1\n").unwrap();
    std::fs::set_permissions(&broken, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::rename(&broken, &binary).unwrap();
    let (status, text) = support::admin::post(admin, "/upgrade").await;
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("did not start serving"), "{text}");
    assert!(text.contains("goes on serving"), "{text}");
    assert_eq!(support::pools::one(tls, &site.ca, "/").await.1, "from a");
    assert!(old.try_wait().is_none());

    // The right binary, but a configuration it refuses: the same.
    install(&binary);
    std::fs::write(site.path("proxy.toml"), toml.clone() + "bogus = 1\n").unwrap();
    let (status, text) = support::admin::post(admin, "/upgrade").await;
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("exit status: 2"), "{text}");
    assert_eq!(support::pools::one(tls, &site.ca, "/").await.1, "from a");
    assert!(old.try_wait().is_none());
    // The new process's errors are in the log beside the old one's (read
    // from the pipe by another thread, so they may still be on their way).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !old.stderr_text().contains("unknown key `bogus`") {
        assert!(tokio::time::Instant::now() < deadline, "{}", old.stderr_text());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Inherited-socket variables that lie (garbage, the standard streams, a
/// descriptor that is not open) are ignored: the proxy binds its own
/// sockets and serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_inheritance_variables_are_ignored() {
    let site = Site::new();
    let origin = NamedOrigin::start("a").await;
    let toml = config("", &support::route("/", &origin.url(), ""));
    std::fs::write(site.path("proxy.toml"), &toml).unwrap();
    let mut command = support::process::run_command(
        std::path::Path::new(env!("CARGO_BIN_EXE_portcullis")),
        &site.path("proxy.toml"),
    );
    command
        .env(
            "PORTCULLIS_INHERIT_FDS",
            "garbage,tls/127.0.0.1:0=1,tls/127.0.0.1:0=999,admin/nonsense=7,=",
        )
        .env("PORTCULLIS_READY_FD", "2");
    let (process, tls) = ProxyProcess::start_command(command).await;
    assert_eq!(support::pools::one(tls, &site.ca, "/").await.1, "from a");
    let log = process.stderr_text();
    assert!(log.contains("ignoring inherited descriptor 1"), "{log}");
    assert!(log.contains("ignoring inherited descriptor 999"), "{log}");
    assert!(log.contains("not role/addr=fd"), "{log}");
}
