//! Certificate hot reload as renewal tools do it: certbot re-pointing its
//! live/ symlinks, a Kubernetes Secret volume swapping `..data`, `mv` over
//! the old file, an in-place rewrite, key and certificate written one after
//! the other. Each asserts that the served certificate changes within a
//! deadline and that connections opened before the change keep working.
//! Invalid candidates are never served; SIGHUP, poll-only mode and the
//! bootstrap certificate are covered too.

mod support;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use support::certs::{expired_pair, v1_pair};
use support::*;
use tokio_tungstenite::tungstenite::Message;

const DEADLINE: Duration = Duration::from_secs(10);

/// The serial (lowercase hex) of the certificate a fresh handshake gets.
async fn served_serial(addr: std::net::SocketAddr, ca: &TestCa) -> String {
    let tls = tls_connect(addr, ca, &[b"http/1.1"]).await;
    let der = tls.get_ref().1.peer_certificates().expect("no certificate")[0].clone();
    serial_of(&der)
}

fn serial_of(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.raw_serial().iter().map(|b| format!("{b:02x}")).collect()
}

async fn wait_for_serial(addr: std::net::SocketAddr, ca: &TestCa, want: &str) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let got = served_serial(addr, ca).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still serving {got}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn config(cert: &str, key: &str, extra_tls: &str, origin: &Origin, ws: &WsOrigin) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nshutdown_grace = \"5s\"\n\n[tls]\ncert = \"{cert}\"\nkey = \"{key}\"\n{extra_tls}\n\n\
         [[route]]\npath = \"/\"\nupstream = \"{}\"\n\n[[route]]\npath = \"/ws\"\nupstream = \"{}\"\n",
        origin.url(),
        ws.url()
    )
}

/// Connections opened before a renewal: a WebSocket and an idle HTTP/1.1
/// keep-alive connection.
struct OldConnections {
    ws: tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    h1: hyper::client::conn::http1::SendRequest<Body>,
}

impl OldConnections {
    async fn open(addr: std::net::SocketAddr, ca: &TestCa) -> Self {
        let mut ws = ws_connect(addr, ca, "/ws").await;
        ws.send(Message::text("before")).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("before"));
        let mut h1 = h1(addr, ca).await;
        let resp = h1.send_request(get("/before")).await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.into_body().collect().await.unwrap();
        OldConnections { ws, h1 }
    }

    async fn still_work(mut self) {
        self.ws.send(Message::text("after")).await.unwrap();
        assert_eq!(self.ws.next().await.unwrap().unwrap(), Message::text("after"));
        let resp = self
            .h1
            .send_request(get("/after"))
            .await
            .expect("the idle keep-alive connection was dropped");
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hello from /after");
    }
}

fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap();
}

fn symlink(target: impl AsRef<Path>, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

/// Replaces a symlink atomically, as renewal tools do: a new link, renamed over.
fn repoint(link: &Path, target: impl AsRef<Path>) {
    let name = link.file_name().unwrap().to_string_lossy();
    let tmp = link.with_file_name(format!("{name}_tmp"));
    let _ = std::fs::remove_file(&tmp);
    symlink(target, &tmp);
    std::fs::rename(&tmp, link).unwrap();
}

/// Writes `pair` as `d/cert.pem`, then `d/key.pem`; returns those names.
fn write_plain(d: &Path, pair: &Issued) -> (String, String) {
    write(&d.join("cert.pem"), &pair.chain_pem);
    write(&d.join("key.pem"), &pair.key_pem);
    ("cert.pem".into(), "key.pem".into())
}

/// Writes `pair` as `d/cert.pem` and `d/key.pem` and starts the proxy on
/// them, with `extra_tls`, in front of a hello origin and a WebSocket echo.
async fn start_on_plain_files(d: &Path, pair: &Issued, extra_tls: &str) -> ProxyHandle {
    write_plain(d, pair);
    let origin = Origin::hello().await;
    let ws = WsOrigin::start().await;
    ProxyHandle::start(&config("cert.pem", "key.pem", extra_tls, &origin, &ws), d).await
}

/// Rewrites `d/key.pem`, then `d/cert.pem`, in place: the key lands first.
fn rewrite_key_first(d: &Path, cert: &str, key: &str) {
    write(&d.join("key.pem"), key);
    write(&d.join("cert.pem"), cert);
}

/// Writes `pair` beside `d/key.pem` and `d/cert.pem` and renames the new
/// files over the old ones, key first.
fn mv_over(d: &Path, pair: &Issued) {
    write(&d.join("key.pem.new"), &pair.key_pem);
    write(&d.join("cert.pem.new"), &pair.chain_pem);
    std::fs::rename(d.join("key.pem.new"), d.join("key.pem")).unwrap();
    std::fs::rename(d.join("cert.pem.new"), d.join("cert.pem")).unwrap();
}

async fn run_style(
    setup: impl FnOnce(&Path, &Issued) -> (String, String),
    renew: impl FnOnce(&Path, &Issued),
) {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let first = ca.issue(&["localhost"]);
    let second = ca.issue(&["localhost"]);
    let (cert, key) = setup(dir.path(), &first);
    let origin = Origin::hello().await;
    let ws = WsOrigin::start().await;
    let proxy = ProxyHandle::start(&config(&cert, &key, "", &origin, &ws), dir.path()).await;
    assert_eq!(served_serial(proxy.addr, &ca).await, serial_of(&first.leaf_der));

    let old = OldConnections::open(proxy.addr, &ca).await;
    renew(dir.path(), &second);
    wait_for_serial(proxy.addr, &ca, &serial_of(&second.leaf_der)).await;
    old.still_work().await;
    assert_eq!(proxy.rejected(), 0, "a half-written pair was read");
    proxy.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certbot_renew_repoints_live_symlinks_into_archive() {
    run_style(
        |d, first| {
            std::fs::create_dir_all(d.join("archive/example")).unwrap();
            std::fs::create_dir_all(d.join("live/example")).unwrap();
            write(&d.join("archive/example/fullchain1.pem"), &first.chain_pem);
            write(&d.join("archive/example/privkey1.pem"), &first.key_pem);
            symlink(
                "../../archive/example/fullchain1.pem",
                &d.join("live/example/fullchain.pem"),
            );
            symlink(
                "../../archive/example/privkey1.pem",
                &d.join("live/example/privkey.pem"),
            );
            (
                "live/example/fullchain.pem".into(),
                "live/example/privkey.pem".into(),
            )
        },
        |d, second| {
            write(&d.join("archive/example/fullchain2.pem"), &second.chain_pem);
            write(&d.join("archive/example/privkey2.pem"), &second.key_pem);
            repoint(
                &d.join("live/example/fullchain.pem"),
                "../../archive/example/fullchain2.pem",
            );
            repoint(
                &d.join("live/example/privkey.pem"),
                "../../archive/example/privkey2.pem",
            );
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_secret_volume_swaps_data_symlink() {
    run_style(
        |d, first| {
            let v1 = d.join("secret/..2026_11_01_00_00_00.1");
            std::fs::create_dir_all(&v1).unwrap();
            write(&v1.join("tls.crt"), &first.chain_pem);
            write(&v1.join("tls.key"), &first.key_pem);
            symlink("..2026_11_01_00_00_00.1", &d.join("secret/..data"));
            symlink("..data/tls.crt", &d.join("secret/tls.crt"));
            symlink("..data/tls.key", &d.join("secret/tls.key"));
            ("secret/tls.crt".into(), "secret/tls.key".into())
        },
        |d, second| {
            let v2 = d.join("secret/..2026_11_02_00_00_00.2");
            std::fs::create_dir_all(&v2).unwrap();
            write(&v2.join("tls.crt"), &second.chain_pem);
            write(&v2.join("tls.key"), &second.key_pem);
            repoint(&d.join("secret/..data"), "..2026_11_02_00_00_00.2");
            std::fs::remove_dir_all(d.join("secret/..2026_11_01_00_00_00.1")).unwrap();
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mv_of_new_files_over_the_old_ones() {
    run_style(write_plain, mv_over).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_rewrite_like_cp() {
    run_style(write_plain, |d, second| {
        // std::fs::write truncates and rewrites the same inode, as cp does.
        write(&d.join("cert.pem"), &second.chain_pem);
        write(&d.join("key.pem"), &second.key_pem);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_then_certificate_are_read_together() {
    run_style(
        write_plain,
        // The new key lands first: on its own it does not match the
        // certificate in service, and must not be paired with it.
        |d, second| rewrite_key_first(d, &second.chain_pem, &second.key_pem),
    )
    .await;
}

/// Every kind of bad candidate is refused with the current certificate kept;
/// a valid certificate after them is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_candidates_are_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new();
    let good = ca.issue(&["localhost"]);
    let proxy = start_on_plain_files(d, &good, "").await;
    let good_serial = serial_of(&good.leaf_der);

    let other = ca.issue(&["localhost"]);
    let wrong_names = ca.issue(&["other.example"]);
    let expired = expired_pair();
    let v1 = v1_pair(d);
    let truncated = &good.chain_pem[..good.chain_pem.len() / 2];
    let candidates: Vec<(&str, String, String)> = vec![
        ("expired", expired.0, expired.1),
        ("key mismatch", good.chain_pem.clone(), other.key_pem.clone()),
        (
            "wrong names",
            wrong_names.chain_pem.clone(),
            wrong_names.key_pem.clone(),
        ),
        ("x509 v1", v1.0, v1.1),
        ("truncated", truncated.to_string(), good.key_pem.clone()),
        ("empty", String::new(), good.key_pem.clone()),
        (
            "new key without its certificate",
            good.chain_pem.clone(),
            other.key_pem.clone(),
        ),
    ];
    for (what, cert, key) in candidates {
        let before = proxy.rejected();
        rewrite_key_first(d, &cert, &key);
        wait_until(DEADLINE, &format!("the {what} candidate to be rejected"), || {
            proxy.rejected() > before
        })
        .await;
        assert_eq!(
            served_serial(proxy.addr, &ca).await,
            good_serial,
            "{what} candidate was served"
        );
    }
    let fresh = ca.issue(&["localhost"]);
    rewrite_key_first(d, &fresh.chain_pem, &fresh.key_pem);
    wait_for_serial(proxy.addr, &ca, &serial_of(&fresh.leaf_der)).await;
    proxy.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_mode_with_the_watcher_off() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new();
    let first = ca.issue(&["localhost"]);
    let proxy = start_on_plain_files(d, &first, "watch = false\npoll_interval = \"1s\"").await;
    let second = ca.issue(&["localhost"]);
    rewrite_key_first(d, &second.chain_pem, &second.key_pem);
    wait_for_serial(proxy.addr, &ca, &serial_of(&second.leaf_der)).await;
    proxy.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_reload_request_with_watch_and_poll_off() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new();
    let first = ca.issue(&["localhost"]);
    let proxy = start_on_plain_files(d, &first, "watch = false\npoll_interval = \"0s\"").await;
    let second = ca.issue(&["localhost"]);
    rewrite_key_first(d, &second.chain_pem, &second.key_pem);
    // Nothing watches and nothing polls: the old certificate stays until asked.
    assert_eq!(served_serial(proxy.addr, &ca).await, serial_of(&first.leaf_der));
    proxy.reload.reload_now();
    wait_for_serial(proxy.addr, &ca, &serial_of(&second.leaf_der)).await;
    proxy.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_serves_self_signed_until_the_files_appear() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new();
    let origin = Origin::hello().await;
    let ws = WsOrigin::start().await;
    let extra = "bootstrap = \"self-signed\"";
    let toml = config(
        "live/example/fullchain.pem",
        "live/example/privkey.pem",
        extra,
        &origin,
        &ws,
    );
    let proxy = ProxyHandle::start(&toml, d).await;

    // The bootstrap certificate is not from the CA: read it without verifying.
    let der = unverified_leaf(proxy.addr).await;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let subject = cert.subject().to_string();
    assert!(subject.contains("self-signed"), "{subject}");

    let real = ca.issue(&["localhost"]);
    std::fs::create_dir_all(d.join("live/example")).unwrap();
    write(&d.join("live/example/privkey.pem"), &real.key_pem);
    write(&d.join("live/example/fullchain.pem"), &real.chain_pem);
    let want = serial_of(&real.leaf_der);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while serial_of(&unverified_leaf(proxy.addr).await) != want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the real certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And it verifies against the CA, as a client would check.
    assert_eq!(served_serial(proxy.addr, &ca).await, want);
    proxy.shutdown().await.unwrap();
}

/// The leaf certificate a handshake gets, without verifying it: the
/// bootstrap certificate is self-signed by design.
async fn unverified_leaf(addr: std::net::SocketAddr) -> Vec<u8> {
    #[derive(Debug)]
    struct AnyCert;
    impl rustls::client::danger::ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::aws_lc_rs::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert))
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(rustls::pki_types::ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// 100 reloads while clients keep making full handshakes: none fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_reloads_under_load_fail_no_handshake() {
    portcullis::telemetry::init("portcullis=info");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Arc::new(TestCa::new());
    let a = ca.issue(&["localhost"]);
    let b = ca.issue(&["localhost"]);
    let proxy = start_on_plain_files(d, &a, "").await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut loaders = Vec::new();
    for _ in 0..4 {
        let (ca, stop, addr) = (ca.clone(), stop.clone(), proxy.addr);
        loaders.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, Vec::new());
            let connector = tokio_rustls::TlsConnector::from(ca.client_config(&[b"http/1.1"]));
            while !stop.load(Ordering::Relaxed) {
                let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                match connector.connect(name, tcp).await {
                    Ok(_) => ok += 1,
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (ok, failed)
        }));
    }
    let pairs = [&b, &a];
    for i in 0..100 {
        let next = pairs[i % 2];
        mv_over(d, next);
        wait_for_serial(proxy.addr, &ca, &serial_of(&next.leaf_der)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for l in loaders {
        let (ok, failed) = l.await.unwrap();
        assert!(failed.is_empty(), "handshakes failed during reloads: {failed:?}");
        total += ok;
    }
    assert!(total > 0, "the load generators made no handshake");
    // No rejection count is asserted here: on a machine this loaded, the
    // test itself can stall for over a second between its two renames, and
    // rejecting a pair that stayed half-written that long is right.
    proxy.shutdown().await.unwrap();
}

/// SIGHUP makes the binary re-read its certificates, with no watch and no
/// poll that could have done it instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new();
    let first = ca.issue(&["localhost"]);
    write_plain(d, &first);
    let origin = Origin::hello().await;
    let ws = WsOrigin::start().await;
    let extra = "watch = false\npoll_interval = \"0s\"";
    let (proxy, addr) =
        support::process::ProxyProcess::start(d, &config("cert.pem", "key.pem", extra, &origin, &ws)).await;
    let old = OldConnections::open(addr, &ca).await;

    let second = ca.issue(&["localhost"]);
    rewrite_key_first(d, &second.chain_pem, &second.key_pem);
    assert_eq!(served_serial(addr, &ca).await, serial_of(&first.leaf_der));
    proxy.signal("HUP");
    wait_for_serial(addr, &ca, &serial_of(&second.leaf_der)).await;
    old.still_work().await;
    // The new certificate can be served before the log line saying so has
    // been read from the process's stderr.
    let serial = serial_of(&second.leaf_der);
    let logged = || {
        let log = proxy.stderr.lock().unwrap();
        log.contains("certificate reloaded") && log.contains(&serial)
    };
    wait_until(Duration::from_secs(10), "the reload to be logged", logged).await;
}

/// A certificate file without its intermediate is served, with a warning
/// naming the file at start and at every reload that publishes one; a full
/// chain in between gets none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_without_its_intermediate_warns_at_start_and_at_reload() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new();
    let first = ca.issue(&["localhost"]);
    write(&d.join("cert.pem"), &first.leaf_pem);
    write(&d.join("key.pem"), &first.key_pem);
    let origin = Origin::hello().await;
    let ws = WsOrigin::start().await;
    let extra = "watch = false\npoll_interval = \"0s\"";
    let (proxy, addr) =
        support::process::ProxyProcess::start(d, &config("cert.pem", "key.pem", extra, &origin, &ws)).await;
    let warnings = || {
        proxy
            .stderr_text()
            .lines()
            .filter(|l| l.contains(" WARN ") && l.contains("the chain is incomplete"))
            .count()
    };
    let named = format!(
        "certificate file {}: the chain is incomplete",
        d.join("cert.pem").display()
    );
    assert_eq!(warnings(), 1, "no warning at start:\n{}", proxy.stderr_text());
    assert!(proxy.stderr_text().contains(&named), "{}", proxy.stderr_text());

    // The full chain: no warning.
    let second = ca.issue(&["localhost"]);
    rewrite_key_first(d, &second.chain_pem, &second.key_pem);
    proxy.signal("HUP");
    wait_for_serial(addr, &ca, &serial_of(&second.leaf_der)).await;

    // A leaf alone again: warned again.
    let third = ca.issue(&["localhost"]);
    rewrite_key_first(d, &third.leaf_pem, &third.key_pem);
    proxy.signal("HUP");
    wait_for_serial(addr, &ca, &serial_of(&third.leaf_der)).await;
    wait_until(DEADLINE, "a warning for the reloaded leaf", || warnings() >= 2).await;
    assert_eq!(warnings(), 2, "{}", proxy.stderr_text());
}

/// A renewal reads the renewed pair alone. The other pair's key is a hard
/// link to a file outside the watched directories, rewritten there with
/// garbage (no event names it): a pass that read every pair would refuse it
/// before publishing the renewed one, which is read second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_reads_only_the_renewed_pair() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new();
    let other = ca.issue(&["other.test"]);
    let first = ca.issue(&["localhost"]);
    let second = ca.issue(&["localhost"]);
    for sub in ["other", "renewed", "outside"] {
        std::fs::create_dir(d.join(sub)).unwrap();
    }
    write(&d.join("other/cert.pem"), &other.chain_pem);
    write(&d.join("outside/key.pem"), &other.key_pem);
    std::fs::hard_link(d.join("outside/key.pem"), d.join("other/key.pem")).unwrap();
    write_plain(&d.join("renewed"), &first);
    let origin = Origin::hello().await;
    let ws = WsOrigin::start().await;
    let toml = format!(
        "{}\n[[tls.certificate]]\ncert = \"renewed/cert.pem\"\nkey = \"renewed/key.pem\"\n",
        config("other/cert.pem", "other/key.pem", "", &origin, &ws)
    );
    let proxy = ProxyHandle::start(&toml, d).await;
    assert_eq!(served_serial(proxy.addr, &ca).await, serial_of(&first.leaf_der));

    // In place, through the link outside: the inode changes, no watched
    // directory hears of it.
    write(&d.join("outside/key.pem"), "not a key\n");
    mv_over(&d.join("renewed"), &second);
    wait_for_serial(proxy.addr, &ca, &serial_of(&second.leaf_der)).await;
    assert_eq!(proxy.rejected(), 0, "the pair that did not change was read again");
    proxy.shutdown().await.unwrap();
}
