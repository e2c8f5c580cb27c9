//! OCSP stapling (`[tls] ocsp_stapling`) against `openssl ocsp` run as the
//! CA's responder, seen by `openssl s_client -status` as a client would
//! see it: a good response stapled, none for a revoked certificate or
//! when the responder is down (and start-up not held up by it), none when
//! stapling is off, a renewed certificate stapled anew, and a response
//! signed by someone other than the CA never served.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use std::io::{BufRead, BufReader};
use support::admin::AdminProxy;

/// `openssl ocsp` running, with the read end of its output kept open (it
/// would die of SIGPIPE otherwise); killed when dropped.
struct Responder(std::process::Child, Option<BufReader<std::process::ChildStdout>>);

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// openssl arguments for a new unencrypted P-256 key.
const NEW_P256: [&str; 5] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

/// A self-signed certificate and its key, as `{name}.pem` and `{name}.key`.
fn self_signed(dir: &Path, name: &str, subject: &str) {
    let (key, cert) = (format!("{name}.key"), format!("{name}.pem"));
    let request = [
        "-x509", "-keyout", &key, "-out", &cert, "-subj", subject, "-days", "30",
    ];
    openssl(dir, &[&["req"][..], &NEW_P256, &request].concat());
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA with its own OCSP responder (`openssl ocsp`), answering from an
/// index of the serials it issued.
struct Ca {
    dir: tempfile::TempDir,
    name: &'static str,
    responder: Option<Responder>,
    port: u16,
}

impl Ca {
    /// A CA named `name` whose index says `entries` (serial, "V" or "R").
    async fn start(name: &'static str, entries: &[(&str, char)]) -> Ca {
        let dir = tempfile::tempdir().unwrap();
        let subject = format!("/CN={name}");
        self_signed(dir.path(), "ca", &subject);
        let mut index = String::new();
        for (serial, status) in entries {
            let revoked = if *status == 'R' { "261201000000Z" } else { "" };
            index.push_str(&format!(
                "{status}\t351231235959Z\t{revoked}\t{serial}\tunknown\t/CN=localhost\n"
            ));
        }
        std::fs::write(dir.path().join("index.txt"), index).unwrap();
        // A renewal has the subject of the certificate it renews.
        std::fs::write(dir.path().join("index.txt.attr"), "unique_subject = no\n").unwrap();
        let mut ca = Ca {
            dir,
            name,
            responder: None,
            port: 0,
        };
        ca.port = ca.respond(&["-rsigner", "ca.pem", "-rkey", "ca.key"]).await;
        ca
    }

    /// Starts `openssl ocsp` on a port of its choosing, signing with
    /// `signer`; returns the port.
    async fn respond(&mut self, signer: &[&str]) -> u16 {
        let mut child = Command::new("openssl")
            .args([
                "ocsp",
                "-port",
                "0",
                "-index",
                "index.txt",
                "-CA",
                "ca.pem",
                "-nmin",
                "10",
                "-ignore_err",
            ])
            .args(signer)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(self.dir.path().join("responder.log")).unwrap())
            .spawn()
            .expect("openssl ocsp starts");
        let stdout = child.stdout.take().unwrap();
        let mut responder = Responder(child, None);
        // openssl prints its address at once; the read ends with its output.
        let first_line = tokio::task::spawn_blocking(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            reader.read_line(&mut line).map(|_| (line, reader))
        });
        let (line, reader) = support::within(Duration::from_secs(10), "openssl ocsp to listen", first_line)
            .await
            .unwrap()
            .expect("openssl ocsp says where it listens");
        responder.1 = Some(reader);
        // "ACCEPT [::]:43077 PID=2517"
        let port = line
            .split_whitespace()
            .nth(1)
            .and_then(|addr| addr.rsplit(':').next())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("unexpected openssl ocsp output: {line}"));
        self.responder = Some(responder);
        port
    }

    /// Issues a certificate for localhost with `serial` (hex) that names
    /// `responder` (this CA's own by default), and writes the full chain
    /// and key into `site` as fullchain.pem and privkey.pem.
    fn issue(&self, site: &Path, serial: &str, responder: Option<u16>) {
        let port = responder.unwrap_or(self.port);
        let dir = self.dir.path();
        std::fs::write(
            dir.join("ext.cnf"),
            format!(
                "subjectAltName=DNS:localhost,IP:127.0.0.1\n\
                 authorityInfoAccess=OCSP;URI:http://127.0.0.1:{port}/\n"
            ),
        )
        .unwrap();
        let request = [
            "-new",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=localhost",
        ];
        openssl(dir, &[&["req"][..], &NEW_P256, &request].concat());
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                &format!("0x{serial}"),
                "-days",
                "10",
                "-extfile",
                "ext.cnf",
                "-out",
                "leaf.pem",
            ],
        );
        let chain = std::fs::read_to_string(dir.join("leaf.pem")).unwrap()
            + &std::fs::read_to_string(dir.join("ca.pem")).unwrap();
        write_atomically(&site.join("fullchain.pem"), &chain);
        write_atomically(
            &site.join("privkey.pem"),
            &std::fs::read_to_string(dir.join("leaf.key")).unwrap(),
        );
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

/// What `openssl s_client -status` says about the staple and the
/// certificate it got. It runs beside the runtime that serves it.
async fn s_client(addr: SocketAddr, ca: &Path) -> String {
    let ca = ca.to_path_buf();
    tokio::task::spawn_blocking(move || s_client_blocking(addr, &ca))
        .await
        .unwrap()
}

fn s_client_blocking(addr: SocketAddr, ca: &Path) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "localhost",
            "-status",
            "-CAfile",
        ])
        .arg(ca)
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stapled_good(output: &str) -> bool {
    output.contains("OCSP Response Status: successful") && output.contains("Cert Status: good")
}

fn no_staple(output: &str) -> bool {
    output.contains("OCSP response: no response sent") && output.contains("Verify return code: 0 (ok)")
}

fn config(stapling: bool) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n\n[tls]\ncert = \"fullchain.pem\"\nkey = \"privkey.pem\"\n\
         ocsp_stapling = {stapling}\n\n[[route]]\npath = \"/\"\nrespond = {{ status = 200, body = \"ok\" }}\n"
    )
}

async fn start(site: &Path, stapling: bool) -> AdminProxy {
    AdminProxy::start(&config(stapling), site).await
}

async fn wait_for_s_client(addr: SocketAddr, ca: &Path, what: &str, want: fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let output = s_client(addr, ca).await;
        if want(&output) {
            return output;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "s_client never saw {what}:\n{output}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for_count(proxy: &AdminProxy, result: &str) {
    let name = format!("portcullis_ocsp_responses_total{{result=\"{result}\"}}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while proxy.metric(&name).await.unwrap_or(0.0) < 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "{name} never counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_good_response_is_stapled_and_only_when_stapling_is_on() {
    let ca = Ca::start("Stapling CA", &[("1001", 'V')]).await;
    let on = tempfile::tempdir().unwrap();
    let off = tempfile::tempdir().unwrap();
    ca.issue(on.path(), "1001", None);
    for name in ["fullchain.pem", "privkey.pem"] {
        std::fs::copy(on.path().join(name), off.path().join(name)).unwrap();
    }
    let stapling = start(on.path(), true).await;
    let plain = start(off.path(), false).await;

    let output = wait_for_s_client(stapling.tls, &ca.ca_file(), "a good staple", stapled_good).await;
    assert!(output.contains("Verify return code: 0 (ok)"), "{output}");
    assert_eq!(
        stapling
            .metric("portcullis_certificate_ocsp_stapled{name=\"localhost\",serial=\"1001\"}")
            .await,
        Some(1.0)
    );
    // The same certificate on a proxy with stapling off: no staple, and no
    // question asked of the responder.
    let output = s_client(plain.tls, &ca.ca_file()).await;
    assert!(no_staple(&output), "{output}");
    assert_eq!(
        plain
            .metric("portcullis_ocsp_responses_total{result=\"good\"}")
            .await,
        None
    );
    stapling.stop().await;
    plain.stop().await;
}

#[tokio::test]
async fn a_revoked_certificate_is_served_without_a_staple() {
    let ca = Ca::start("Revoking CA", &[("2002", 'R')]).await;
    let site = tempfile::tempdir().unwrap();
    ca.issue(site.path(), "2002", None);
    let proxy = start(site.path(), true).await;
    wait_for_count(&proxy, "refused").await;
    let output = s_client(proxy.tls, &ca.ca_file()).await;
    assert!(no_staple(&output), "{output}");
    proxy.stop().await;
}

#[tokio::test]
async fn a_responder_that_is_down_holds_nothing_up() {
    let ca = Ca::start("Silent CA", &[("3003", 'V')]).await;
    // A port with nothing listening on it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let site = tempfile::tempdir().unwrap();
    ca.issue(site.path(), "3003", Some(port));
    let proxy = start(site.path(), true).await;
    // Handshakes are served at once, without a staple.
    let output = s_client(proxy.tls, &ca.ca_file()).await;
    assert!(no_staple(&output), "{output}");
    wait_for_count(&proxy, "failed").await;
    let output = s_client(proxy.tls, &ca.ca_file()).await;
    assert!(no_staple(&output), "{output}");
    proxy.stop().await;
}

#[tokio::test]
async fn a_renewed_certificate_is_stapled_anew() {
    let ca = Ca::start("Renewing CA", &[("4004", 'V'), ("4005", 'V')]).await;
    let site = tempfile::tempdir().unwrap();
    ca.issue(site.path(), "4004", None);
    let proxy = start(site.path(), true).await;
    wait_for_s_client(proxy.tls, &ca.ca_file(), "the first staple", stapled_good).await;
    // certbot renews: new files, a new serial.
    ca.issue(site.path(), "4005", None);
    let output = wait_for_s_client(
        proxy.tls,
        &ca.ca_file(),
        "the renewed certificate stapled",
        |out| stapled_good(out) && out.contains("Serial Number: 4005"),
    )
    .await;
    assert!(output.contains("Verify return code: 0 (ok)"), "{output}");
    proxy.stop().await;
}

#[tokio::test]
async fn a_response_signed_by_another_key_is_never_served() {
    let mut ca = Ca::start("Honest CA", &[("5005", 'V')]).await;
    // The responder signs with a key the CA never authorised: a
    // self-signed "responder" certificate of its own.
    self_signed(ca.dir.path(), "rogue", "/CN=Rogue responder");
    drop(ca.responder.take());
    ca.port = ca.respond(&["-rsigner", "rogue.pem", "-rkey", "rogue.key"]).await;
    let site = tempfile::tempdir().unwrap();
    ca.issue(site.path(), "5005", None);
    let proxy = start(site.path(), true).await;
    wait_for_count(&proxy, "refused").await;
    let output = s_client(proxy.tls, &ca.ca_file()).await;
    assert!(no_staple(&output), "{} {output}", ca.name);
    proxy.stop().await;
}

#[tokio::test]
async fn a_reload_turns_stapling_on_and_off() {
    let ca = Ca::start("Reloading CA", &[("6006", 'V')]).await;
    let site = support::Site {
        dir: tempfile::tempdir().unwrap(),
        ca: support::TestCa::new(),
    };
    ca.issue(site.dir.path(), "6006", None);
    let with = |on: bool| {
        support::live::config("", "").replace(
            "key = \"privkey.pem\"\n",
            &format!("key = \"privkey.pem\"\nocsp_stapling = {on}\n"),
        ) + "[[route]]\npath = \"/\"\nrespond = { status = 200, body = \"ok\" }\n"
    };
    let proxy = support::live::LiveProxy::start(&site, &with(false)).await;
    assert!(no_staple(&s_client(proxy.tls, &ca.ca_file()).await));
    proxy.apply(&with(true)).await;
    wait_for_s_client(
        proxy.tls,
        &ca.ca_file(),
        "a staple after the reload",
        stapled_good,
    )
    .await;
    proxy.apply(&with(false)).await;
    wait_for_s_client(proxy.tls, &ca.ca_file(), "no staple after the reload", no_staple).await;
}
