//! The `portcullis` binary as an operator uses it: `check` validates a
//! configuration and the certificates it names (exit 0, or 2 with every
//! error pointing at file:line and key), and `run` refuses to start on the
//! same errors with the same exit code.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::certs::{expired_pair, v1_pair};
use support::{Site, TestCa};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

use support::process::run_to_end as portcullis;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes `tls` (the `[tls]` table) plus one route into `dir/proxy.toml`.
/// The `cert` key sits on line 5 and `key` on line 6.
fn write_config(dir: &Path, cert: &str, key: &str) -> std::path::PathBuf {
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n\n[tls]\ncert = \"{cert}\"\nkey = \"{key}\"\n\n[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9\"\n"
    );
    let path = dir.join("proxy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn expect_config_error(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "exit code; stderr:\n{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
}

#[test]
fn check_accepts_a_valid_configuration_and_summarises_it() {
    let site = Site::new();
    let config = write_config(site.dir.path(), "fullchain.pem", "privkey.pem");
    let o = portcullis(&["check"], &config);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert!(out.contains("configuration is valid"), "{out}");
    assert!(out.contains("route   / -> http://127.0.0.1:9"), "{out}");
    assert!(out.contains("SANs localhost, 127.0.0.1"), "{out}");
}

#[test]
fn missing_certificate_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "nope/fullchain.pem", "nope/privkey.pem");
    for cmd in [&["check"][..], &["run"][..]] {
        let o = portcullis(cmd, &config);
        expect_config_error(&o, &["proxy.toml:5:", "tls.cert", "does not exist"]);
    }
}

#[test]
fn file_without_a_certificate() {
    let site = Site::new();
    std::fs::write(site.path("empty.pem"), "").unwrap();
    let config = write_config(site.dir.path(), "empty.pem", "privkey.pem");
    expect_config_error(
        &portcullis(&["check"], &config),
        &["proxy.toml:5:", "tls.cert", "empty.pem"],
    );
}

#[test]
fn file_without_a_key() {
    let site = Site::new();
    // The certificate file is no key file.
    let config = write_config(site.dir.path(), "fullchain.pem", "fullchain.pem");
    expect_config_error(
        &portcullis(&["check"], &config),
        &["proxy.toml:6:", "tls.key", "no usable private key"],
    );
}

#[test]
fn key_that_does_not_match_the_certificate() {
    let site = Site::new();
    let other = TestCa::new().issue(&["localhost"]);
    std::fs::write(site.path("other.key"), other.key_pem).unwrap();
    let config = write_config(site.dir.path(), "fullchain.pem", "other.key");
    expect_config_error(
        &portcullis(&["check"], &config),
        &["proxy.toml:6:", "tls.key", "does not belong"],
    );
}

#[test]
fn expired_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = expired_pair();
    std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), key).unwrap();
    let config = write_config(dir.path(), "cert.pem", "key.pem");
    for cmd in [&["check"][..], &["run"][..]] {
        expect_config_error(
            &portcullis(cmd, &config),
            &["proxy.toml:5:", "expired", "2021-01-01"],
        );
    }
}

#[test]
fn x509_v1_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cert, key) = v1_pair(d);
    std::fs::write(d.join("cert.pem"), cert).unwrap();
    std::fs::write(d.join("key.pem"), key).unwrap();
    let config = write_config(d, "cert.pem", "key.pem");
    expect_config_error(
        &portcullis(&["check"], &config),
        &["proxy.toml:5:", "tls.cert", "v1"],
    );
}

#[test]
fn configuration_errors_exit_2_and_name_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 4\n\n[[route]]\npath = \"ws\"\nupstream = \"http://127.0.0.1:9222/ws\"\n",
    )
    .unwrap();
    for cmd in [&["check"][..], &["run"][..]] {
        let o = portcullis(cmd, &path);
        expect_config_error(
            &o,
            &[
                "proxy.toml:3:1: server.workers",
                "proxy.toml:6:",
                "route[0].path",
                "proxy.toml:7:",
                "route[0].upstream",
            ],
        );
    }
}

#[test]
fn missing_configuration_file() {
    let o = portcullis(&["check"], Path::new("/nonexistent/proxy.toml"));
    expect_config_error(&o, &["/nonexistent/proxy.toml"]);
}

#[test]
fn address_in_use_is_a_clear_runtime_error() {
    let site = Site::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let path = site.path("proxy.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = [\"{addr}\"]\n[tls]\ncert = \"fullchain.pem\"\nkey = \"privkey.pem\"\n[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9\"\n"
        ),
    )
    .unwrap();
    let o = portcullis(&["run"], &path);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot listen on {addr}")) && err.contains("another process"),
        "{err}"
    );
}

#[test]
fn check_without_a_file_describes_the_embedded_default() {
    let o = Command::new(BIN)
        .arg("check")
        .env_remove("PORTCULLIS_CONFIG")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        out.contains("embedded default configuration: configuration is valid"),
        "{out}"
    );
    assert!(out.contains("listen  https://127.0.0.1:8443"), "{out}");
    assert!(out.contains("route   / -> http://127.0.0.1:8080"), "{out}");
    assert!(out.contains("route   /ws -> http://127.0.0.1:9222"), "{out}");
    assert!(out.contains("temporary self-signed certificate"), "{out}");
}

/// The version Cargo.lock pins for `krate` (the first, if several).
fn locked_version(krate: &str) -> String {
    let lock = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock")).unwrap();
    let needle = format!("name = \"{krate}\"\nversion = \"");
    let start = lock
        .find(&needle)
        .unwrap_or_else(|| panic!("{krate} not in Cargo.lock"))
        + needle.len();
    lock[start..].split('"').next().unwrap().to_owned()
}

/// `--version` says what ran, for bug reports: the version, the commit
/// (12 hex digits, or "unknown" when built without git), and the rustls and
/// aws-lc versions as Cargo.lock pins them.
#[test]
fn version_names_the_commit_and_the_tls_stack() {
    let o = Command::new(BIN).arg("--version").output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(lines[0], format!("portcullis {}", env!("CARGO_PKG_VERSION")));
    let commit = lines[1]
        .strip_prefix("commit ")
        .map(str::trim)
        .unwrap_or_default();
    assert!(
        commit == "unknown" || (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{out}"
    );
    assert_eq!(commit, env!("PORTCULLIS_GIT_COMMIT"));
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["rustls", &locked_version("rustls")],
        "{out}"
    );
    let aws_lc_sys = format!("{})", locked_version("aws-lc-sys"));
    assert_eq!(
        lines[3].split_whitespace().collect::<Vec<_>>(),
        [
            "aws-lc-rs",
            &locked_version("aws-lc-rs"),
            "(aws-lc-sys",
            &aws_lc_sys
        ],
        "{out}"
    );
    // -V stays one line.
    let o = Command::new(BIN).arg("-V").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim_end(),
        format!("portcullis {}", env!("CARGO_PKG_VERSION"))
    );
}

/// One access-log line per request, with client, request, status, bytes,
/// duration and upstream; none when `access_log = false`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines() {
    for enabled in [true, false] {
        let site = Site::new();
        let origin = support::Origin::hello().await;
        let config = format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[tls]\ncert = \"fullchain.pem\"\nkey = \"privkey.pem\"\n\
             [log]\naccess_log = {enabled}\n[[route]]\npath = \"/\"\nupstream = \"{}\"\n",
            origin.url()
        );
        let (proxy, addr) = support::process::ProxyProcess::start(site.dir.path(), &config).await;
        let (status, _, body) = support::fetch(addr, &site.ca, support::get("/logged?q=1")).await;
        assert_eq!(status, 200);
        let (status, _, _) = support::fetch(addr, &site.ca, support::get("/after")).await;
        assert_eq!(status, 200);
        let expected = format!("127.0.0.1 \"GET /logged?q=1\" 200 {} ", body.len());
        let upstream = format!("upstream=http://{}", origin.addr);
        // The second request's line proves the first one had its chance to be written.
        let stderr = proxy.stderr.clone();
        support::wait_until(
            std::time::Duration::from_secs(10),
            "the access log of both requests",
            || {
                let log = stderr.lock().unwrap();
                !enabled || log.contains("\"GET /after\"")
            },
        )
        .await;
        let log = stderr.lock().unwrap().clone();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("\"GET /logged?q=1\""))
            .collect();
        if enabled {
            assert_eq!(lines.len(), 1, "{log}");
            assert!(
                lines[0].contains(&expected) && lines[0].contains(&upstream) && lines[0].contains("ms"),
                "{log}"
            );
        } else {
            assert!(lines.is_empty(), "{log}");
        }
    }
}

#[test]
fn check_reports_a_bootstrap_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[tls]\ncert = \"live/x/fullchain.pem\"\nkey = \"live/x/privkey.pem\"\n\
         bootstrap = \"self-signed\"\n[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9\"\n",
    )
    .unwrap();
    let o = portcullis(&["check"], &path);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        out.contains("fullchain.pem does not exist yet") && out.contains("bootstrap"),
        "{out}"
    );
}

/// `check` on `cert` and `key` inside `site`'s directory: exit code 0, and
/// stderr.
fn check_valid(site: &Site, cert: &str, key: &str) -> String {
    let config = write_config(site.dir.path(), cert, key);
    let o = portcullis(&["check"], &config);
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "a valid certificate was refused:\n{err}"
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("configuration is valid"),
        "{err}"
    );
    err
}

#[test]
fn check_warns_when_the_certificate_file_lacks_its_issuer() {
    let site = Site::new();
    let issued = site.ca.issue(&["localhost"]);
    std::fs::write(site.path("leaf.pem"), &issued.leaf_pem).unwrap();
    std::fs::write(site.path("leaf-key.pem"), &issued.key_pem).unwrap();
    let err = check_valid(&site, "leaf.pem", "leaf-key.pem");
    let warning = err
        .lines()
        .find(|l| l.starts_with("WARNING: "))
        .unwrap_or_else(|| panic!("no warning for a leaf without its issuer:\n{err}"));
    let path = site.path("leaf.pem");
    for needle in [
        &format!("certificate file {}", path.display()),
        "the chain is incomplete",
        "CN=portcullis test CA",
        "append the intermediate certificate(s)",
    ] {
        assert!(warning.contains(needle), "{needle:?} not in {warning}");
    }
}

#[test]
fn check_says_nothing_of_a_full_chain_or_a_self_signed_certificate() {
    let site = Site::new();
    let err = check_valid(&site, "fullchain.pem", "privkey.pem");
    assert!(!err.contains("WARNING"), "{err}");

    let (cert, key) = support::https_origin::self_signed(&["localhost"]);
    std::fs::write(site.path("self.pem"), cert).unwrap();
    std::fs::write(site.path("self-key.pem"), key).unwrap();
    let err = check_valid(&site, "self.pem", "self-key.pem");
    assert!(!err.contains("WARNING"), "{err}");
}

#[test]
fn check_points_certbots_cert_pem_at_fullchain_pem() {
    let site = Site::new();
    let issued = site.ca.issue(&["localhost"]);
    let live = site.path("live/example.com");
    std::fs::create_dir_all(&live).unwrap();
    std::fs::write(live.join("cert.pem"), &issued.leaf_pem).unwrap();
    std::fs::write(live.join("privkey.pem"), &issued.key_pem).unwrap();
    let err = check_valid(&site, "live/example.com/cert.pem", "live/example.com/privkey.pem");
    let fullchain = live.join("fullchain.pem");
    assert!(
        err.contains("the chain is incomplete")
            && err.contains(&format!("use {} instead", fullchain.display())),
        "{err}"
    );
}
