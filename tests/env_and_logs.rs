//! What containers rely on: the environment variables that override the
//! configuration file (`PORTCULLIS_LISTEN`, `PORTCULLIS_TLS_CERT`,
//! `PORTCULLIS_TLS_KEY`), through the library with a map standing in for
//! the environment and through the binary with real variables; and the
//! JSON access log, read back from the binary's stderr.

mod support;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use portcullis::config::{Bootstrap, Config, ConfigErrors, Origin, TlsVersion};
use support::process::ProxyProcess;
use support::{fetch, get, route, Site};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// A route that makes an otherwise empty file valid.
const ROUTE: &str = "[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:8080\"\n";

/// The configuration file's name in these tests: relative paths in the
/// file resolve against /etc/portcullis, those from the environment
/// against the current directory.
const FILE: &str = "/etc/portcullis/proxy.toml";

/// Every variable portcullis reads, removed from the commands started
/// here so that the shell of whoever runs the tests does not leak in.
const VARIABLES: [&str; 4] = [
    "PORTCULLIS_CONFIG",
    "PORTCULLIS_LISTEN",
    "PORTCULLIS_TLS_CERT",
    "PORTCULLIS_TLS_KEY",
];

/// An environment holding exactly `pairs`.
fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

fn parse_with(text: &str, pairs: &[(&str, &str)]) -> Config {
    match Config::from_str_with_env(text, Path::new(FILE), &env(pairs)) {
        Ok(config) => config,
        Err(errors) => panic!("expected a valid configuration, got:\n{errors}"),
    }
}

fn errors_with(text: &str, pairs: &[(&str, &str)]) -> ConfigErrors {
    match Config::from_str_with_env(text, Path::new(FILE), &env(pairs)) {
        Ok(config) => panic!("expected errors, got {config:#?}"),
        Err(errors) => errors,
    }
}

/// The one error `text` has with `pairs`, displayed.
fn error_with(text: &str, pairs: &[(&str, &str)]) -> String {
    let errors = errors_with(text, pairs);
    assert_eq!(errors.len(), 1, "expected exactly one error, got:\n{errors}");
    errors.0[0].to_string()
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn addrs(list: &[&str]) -> Vec<SocketAddr> {
    list.iter().map(|a| addr(a)).collect()
}

// ---------------------------------------------------------------- PORTCULLIS_LISTEN

#[test]
fn listen_variable_replaces_server_listen() {
    let text = format!("[server]\nlisten = \"127.0.0.1:8443\"\nmax_connections = 5\n{ROUTE}");
    let config = parse_with(&text, &[("PORTCULLIS_LISTEN", "0.0.0.0:443, [::]:443")]);
    assert_eq!(config.server.listen, addrs(&["0.0.0.0:443", "[::]:443"]));
    // The rest of [server] is the file's.
    assert_eq!(config.server.max_connections, 5);

    let config = parse_with(&text, &[("PORTCULLIS_LISTEN", "127.0.0.1:9443")]);
    assert_eq!(config.server.listen, addrs(&["127.0.0.1:9443"]));

    // A trailing comma is ignored, as in a TOML list.
    let config = parse_with(ROUTE, &[("PORTCULLIS_LISTEN", "127.0.0.1:9443,")]);
    assert_eq!(config.server.listen, addrs(&["127.0.0.1:9443"]));

    // Without the variable, the file (or its default) stands.
    assert_eq!(parse_with(&text, &[]).server.listen, addrs(&["127.0.0.1:8443"]));
    assert_eq!(parse_with(ROUTE, &[]).server.listen, addrs(&["127.0.0.1:8443"]));
}

#[test]
fn listen_variable_errors_name_the_variable() {
    assert_eq!(
        error_with(ROUTE, &[("PORTCULLIS_LISTEN", "localhost:8443")]),
        "environment variable PORTCULLIS_LISTEN: server.listen: `localhost` is not an IP address; listen addresses are IP literals, not names\n  help: write \"127.0.0.1:8443\" (\"0.0.0.0:8443\" listens on every IPv4 address, \"127.0.0.1:8443\" on this machine only)"
    );

    let errors = errors_with(
        ROUTE,
        &[("PORTCULLIS_LISTEN", "0.0.0.0:443,443,[::]:443,[::]:443")],
    );
    let found: Vec<(String, &str, &str)> = errors
        .iter()
        .map(|e| (e.origin.to_string(), e.key.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (
                "environment variable PORTCULLIS_LISTEN".to_string(),
                "server.listen[1]",
                "`443` has a port but no IP address"
            ),
            (
                "environment variable PORTCULLIS_LISTEN".to_string(),
                "server.listen[3]",
                "[::]:443 is listed twice (also as server.listen[2])"
            ),
        ]
    );
    assert!(
        errors
            .to_string()
            .ends_with("\n2 errors in environment variable PORTCULLIS_LISTEN"),
        "{errors}"
    );

    for empty in ["", " , "] {
        assert_eq!(
            error_with(ROUTE, &[("PORTCULLIS_LISTEN", empty)]),
            "environment variable PORTCULLIS_LISTEN: server.listen: no address to listen on\n  help: give at least one, separated by commas, for example: PORTCULLIS_LISTEN=0.0.0.0:443,[::]:443"
        );
    }
}

#[test]
fn listen_variable_is_what_the_other_listeners_may_not_take() {
    let http = "[http]\nlisten = \"0.0.0.0:8443\"\n";
    let text = format!("[server]\nlisten = \"127.0.0.1:9443\"\n{http}{ROUTE}");
    assert!(parse_with(&text, &[]).http.is_some());
    assert_eq!(
        error_with(&text, &[("PORTCULLIS_LISTEN", "0.0.0.0:8443")]),
        "/etc/portcullis/proxy.toml:4:10: http.listen: 0.0.0.0:8443 is also a TLS listener (PORTCULLIS_LISTEN)\n  help: an address serves either TLS or plain HTTP: give [http] its own port, usually 80, for example: listen = [\"0.0.0.0:80\", \"[::]:80\"]"
    );

    // A file listen that clashes is replaced, so it clashes no more.
    let text = format!("[server]\nlisten = \"0.0.0.0:8443\"\n{http}{ROUTE}");
    assert_eq!(errors_with(&text, &[]).len(), 1);
    let config = parse_with(&text, &[("PORTCULLIS_LISTEN", "0.0.0.0:443")]);
    assert_eq!(config.server.listen, addrs(&["0.0.0.0:443"]));

    // And the admin listener.
    let errors = errors_with(
        &format!("[admin]\n{ROUTE}"),
        &[("PORTCULLIS_LISTEN", "0.0.0.0:9901")],
    );
    assert_eq!(
        errors.0[0].message,
        "127.0.0.1:9901 (the default admin.listen) overlaps the TLS listener 0.0.0.0:9901 (PORTCULLIS_LISTEN): both take port 9901 on that address"
    );
}

#[test]
fn the_file_is_still_checked_as_written() {
    // A variable replaces a value; it does not excuse an error in it.
    let e = error_with(
        &format!("[server]\nlisten = \"nowhere\"\n{ROUTE}"),
        &[("PORTCULLIS_LISTEN", "0.0.0.0:443")],
    );
    assert!(
        e.starts_with("/etc/portcullis/proxy.toml:2:10: server.listen: `nowhere`"),
        "{e}"
    );
}

// ---------------------------------------------------------------- PORTCULLIS_TLS_CERT and _KEY

const PAIR: [(&str, &str); 2] = [
    ("PORTCULLIS_TLS_CERT", "/run/secrets/tls.crt"),
    ("PORTCULLIS_TLS_KEY", "/run/secrets/tls.key"),
];

#[test]
fn tls_variables_replace_the_file_pair() {
    let text = format!(
        "[tls]\ncert = \"fullchain.pem\"\nkey = \"privkey.pem\"\nmin_version = \"1.3\"\n\n\
         [[tls.certificate]]\ncert = \"/certs/other.pem\"\nkey = \"/certs/other.key\"\n{ROUTE}"
    );
    let config = parse_with(&text, &PAIR);
    let certs = &config.tls.certificates;
    assert_eq!(certs.len(), 2);
    assert_eq!(certs[0].cert, PathBuf::from("/run/secrets/tls.crt"));
    assert_eq!(certs[0].key, PathBuf::from("/run/secrets/tls.key"));
    assert_eq!(certs[0].cert_origin, Origin::environment("PORTCULLIS_TLS_CERT"));
    assert_eq!(certs[0].key_origin, Origin::environment("PORTCULLIS_TLS_KEY"));
    assert_eq!(certs[0].config_key, "tls");
    assert!(certs[0].names.is_empty());
    // The other certificates and the rest of [tls] are the file's.
    assert_eq!(certs[1].cert, PathBuf::from("/certs/other.pem"));
    assert_eq!(config.tls.min_version, TlsVersion::V1_3);

    // Without the variables, the file's pair.
    let config = parse_with(&text, &[]);
    assert_eq!(
        config.tls.certificates[0].cert,
        PathBuf::from("/etc/portcullis/fullchain.pem")
    );

    // A file without a pair gets the environment's, first.
    let config = parse_with(ROUTE, &PAIR);
    assert_eq!(config.tls.certificates.len(), 1);
    assert_eq!(
        config.tls.certificates[0].cert,
        PathBuf::from("/run/secrets/tls.crt")
    );
    let config = parse_with(
        &format!("[[tls.certificate]]\ncert = \"/certs/other.pem\"\nkey = \"/certs/other.key\"\n{ROUTE}"),
        &PAIR,
    );
    let paths: Vec<&Path> = config.tls.certificates.iter().map(|c| c.cert.as_path()).collect();
    assert_eq!(
        paths,
        [Path::new("/run/secrets/tls.crt"), Path::new("/certs/other.pem")]
    );
}

#[test]
fn relative_tls_variables_resolve_against_the_current_directory() {
    let config = parse_with(
        ROUTE,
        &[
            ("PORTCULLIS_TLS_CERT", "certs/fullchain.pem"),
            ("PORTCULLIS_TLS_KEY", "./certs/privkey.pem"),
        ],
    );
    let cwd = std::env::current_dir().unwrap();
    let pair = &config.tls.certificates[0];
    assert_eq!(pair.cert, cwd.join("certs/fullchain.pem"));
    assert_eq!(pair.key, cwd.join("./certs/privkey.pem"));
    assert!(!pair.cert.starts_with("/etc/portcullis"));
}

#[test]
fn tls_variables_come_together() {
    // Even when the file has the other half: a certificate from the
    // environment is never paired with a key from the file.
    let text = format!("[tls]\ncert = \"fullchain.pem\"\nkey = \"privkey.pem\"\n{ROUTE}");
    assert_eq!(
        error_with(&text, &[("PORTCULLIS_TLS_CERT", "/run/secrets/tls.crt")]),
        "environment variable PORTCULLIS_TLS_CERT: set without PORTCULLIS_TLS_KEY: a certificate needs its private key\n  help: set PORTCULLIS_TLS_KEY too (a value from the configuration file is never paired with one from the environment), or unset PORTCULLIS_TLS_CERT"
    );
    assert_eq!(
        error_with(ROUTE, &[("PORTCULLIS_TLS_KEY", "/run/secrets/tls.key")]),
        "environment variable PORTCULLIS_TLS_KEY: set without PORTCULLIS_TLS_CERT: a private key needs its certificate\n  help: set PORTCULLIS_TLS_CERT too (a value from the configuration file is never paired with one from the environment), or unset PORTCULLIS_TLS_KEY"
    );
}

#[test]
fn tls_variable_values_are_checked_like_the_file() {
    assert_eq!(
        error_with(
            ROUTE,
            &[("PORTCULLIS_TLS_CERT", ""), ("PORTCULLIS_TLS_KEY", "/k.pem")]
        ),
        "environment variable PORTCULLIS_TLS_CERT: tls.cert: the path is empty\n  help: for example: PORTCULLIS_TLS_CERT=/etc/letsencrypt/live/example.com/fullchain.pem"
    );
    assert_eq!(
        error_with(
            ROUTE,
            &[("PORTCULLIS_TLS_CERT", "/c.pem"), ("PORTCULLIS_TLS_KEY", "~/k.pem")]
        ),
        "environment variable PORTCULLIS_TLS_KEY: tls.key: `~/k.pem` starts with `~`, which is not expanded\n  help: write the full path, such as /etc/letsencrypt/live/example.com/privkey.pem"
    );
}

#[test]
fn bootstrap_may_wait_for_the_pair_of_the_environment() {
    let text = format!("[tls]\nbootstrap = \"self-signed\"\n{ROUTE}");
    let config = parse_with(&text, &PAIR);
    assert_eq!(config.tls.bootstrap, Bootstrap::SelfSigned);
    assert_eq!(
        config.tls.certificates[0].cert,
        PathBuf::from("/run/secrets/tls.crt")
    );
    // Without them there is nothing to wait for.
    assert!(errors_with(&text, &[]).0[0]
        .message
        .contains("nothing to bootstrap"));
}

#[test]
fn certificate_errors_from_the_environment_name_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("missing.crt").display().to_string();
    let key = dir.path().join("missing.key").display().to_string();
    let config = parse_with(
        ROUTE,
        &[("PORTCULLIS_TLS_CERT", &cert), ("PORTCULLIS_TLS_KEY", &key)],
    );
    let errors = match portcullis::tls::load_initial(&config.tls) {
        Ok(_) => panic!("loaded certificate files that do not exist"),
        Err(errors) => errors,
    };
    let text = errors.to_string();
    assert!(
        text.starts_with("environment variable PORTCULLIS_TLS_CERT: tls.cert: "),
        "{text}"
    );
    assert!(text.contains("missing.crt"), "{text}");
}

// ---------------------------------------------------------------- all together

#[test]
fn environment_errors_follow_those_of_the_file() {
    let errors = errors_with(
        &format!("[server]\nmax_connections = 0\n{ROUTE}"),
        &[
            ("PORTCULLIS_LISTEN", "0.0.0.0"),
            ("PORTCULLIS_TLS_CERT", "/run/secrets/tls.crt"),
        ],
    );
    let origins: Vec<String> = errors.iter().map(|e| e.origin.to_string()).collect();
    assert_eq!(
        origins,
        [
            "/etc/portcullis/proxy.toml:2:19",
            "environment variable PORTCULLIS_LISTEN",
            "environment variable PORTCULLIS_TLS_CERT",
        ]
    );
    assert!(errors.to_string().ends_with("\n3 errors"), "{errors}");
}

#[test]
fn an_unreadable_file_is_reported_with_the_variables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.toml");
    let errors = match Config::load_with_env(&path, &env(&[("PORTCULLIS_LISTEN", "nowhere")])) {
        Ok(_) => panic!("loaded a file that does not exist"),
        Err(errors) => errors,
    };
    let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(messages.len(), 2, "{errors}");
    assert_eq!(messages[0], "the configuration file does not exist");
    assert_eq!(errors.0[1].origin, Origin::environment("PORTCULLIS_LISTEN"));
}

#[test]
fn load_with_env_applies_the_variables_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, ROUTE).unwrap();
    let config = Config::load_with_env(&path, &env(&[("PORTCULLIS_LISTEN", "[::1]:8443")])).unwrap();
    assert_eq!(config.server.listen, addrs(&["[::1]:8443"]));
    assert_eq!(config.source.as_deref(), Some(path.as_path()));
}

#[test]
fn embedded_default_honours_the_variables() {
    let plain = Config::embedded_default_with_env(&env(&[])).unwrap();
    assert_eq!(plain.server.listen, addrs(&["127.0.0.1:8443"]));
    assert!(plain.tls.certificates.is_empty());

    let config = Config::embedded_default_with_env(&env(&[
        ("PORTCULLIS_LISTEN", "0.0.0.0:8443,[::]:8443"),
        PAIR[0],
        PAIR[1],
    ]))
    .unwrap();
    assert!(config.source.is_none());
    assert_eq!(config.server.listen, addrs(&["0.0.0.0:8443", "[::]:8443"]));
    assert_eq!(config.tls.certificates.len(), 1);
    assert_eq!(
        config.tls.certificates[0].key,
        PathBuf::from("/run/secrets/tls.key")
    );
    let routes: Vec<(&str, String)> = config
        .routes
        .iter()
        .map(|r| (r.path.as_str(), r.upstream.to_string()))
        .collect();
    assert_eq!(
        routes,
        [
            ("/", "http://127.0.0.1:8080".to_string()),
            ("/ws", "http://127.0.0.1:9222".to_string())
        ]
    );

    let errors = Config::embedded_default_with_env(&env(&[("PORTCULLIS_LISTEN", "8443")])).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors.0[0].origin, Origin::environment("PORTCULLIS_LISTEN"));
}

// ---------------------------------------------------------------- the binary

/// The binary with `args`, none of the variables of the caller's shell,
/// and `vars`.
fn command(args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args);
    for name in VARIABLES {
        command.env_remove(name);
    }
    command.envs(vars.iter().copied());
    command
}

fn output(args: &[&str], vars: &[(&str, &str)]) -> Output {
    command(args, vars).env("RUST_LOG", "warn").output().unwrap()
}

#[test]
fn check_applies_the_variables_with_and_without_a_file() {
    let site = Site::new();
    let file = site.path("proxy.toml");
    std::fs::write(&file, format!("[server]\nlisten = \"127.0.0.1:1\"\n{ROUTE}")).unwrap();
    let cert = site.path("fullchain.pem").display().to_string();
    let key = site.path("privkey.pem").display().to_string();
    let vars = [
        ("PORTCULLIS_LISTEN", "127.0.0.1:9443,[::1]:9443"),
        ("PORTCULLIS_TLS_CERT", cert.as_str()),
        ("PORTCULLIS_TLS_KEY", key.as_str()),
    ];
    let file = file.display().to_string();
    for args in [vec!["check", "--config", file.as_str()], vec!["check"]] {
        let o = output(&args, &vars);
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            out.contains("listen  https://127.0.0.1:9443\n"),
            "{args:?}: {out}"
        );
        assert!(out.contains("listen  https://[::1]:9443\n"), "{args:?}: {out}");
        assert!(!out.contains("127.0.0.1:1\n"), "{args:?}: {out}");
        assert!(out.contains("SANs localhost, 127.0.0.1"), "{args:?}: {out}");
        assert!(!out.contains("self-signed"), "{args:?}: {out}");
    }

    // A bad variable is a configuration error, exit code 2, with or
    // without a file, for check and for run.
    for args in [
        vec!["check", "--config", file.as_str()],
        vec!["check"],
        vec!["run"],
    ] {
        let o = output(&args, &[("PORTCULLIS_LISTEN", "localhost:8443")]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(
                "environment variable PORTCULLIS_LISTEN: server.listen: `localhost` is not an IP address"
            ),
            "{args:?}: {err}"
        );
    }
}

/// A port that was free a moment ago. Racy in general; acceptable here,
/// where a fixed address in the variable is the feature under test.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn variables_alone_serve_the_given_certificate_on_the_given_address() {
    let site = Site::new();
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let key = site.path("privkey.pem").display().to_string();
    let listen_text = listen.to_string();
    let mut command = command(
        &["run"],
        &[
            ("PORTCULLIS_LISTEN", listen_text.as_str()),
            // Relative: resolved against the directory the binary starts in.
            ("PORTCULLIS_TLS_CERT", "fullchain.pem"),
            ("PORTCULLIS_TLS_KEY", key.as_str()),
        ],
    );
    command.current_dir(site.dir.path());
    let (proxy, addr) = ProxyProcess::start_command(command).await;
    assert_eq!(addr, listen);

    // Verified against the test CA: the self-signed stand-in would fail.
    let tls = support::tls_connect(addr, &site.ca, &[b"http/1.1"]).await;
    let served = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let chain = std::fs::read(site.path("fullchain.pem")).unwrap();
    let expected = rustls_pki_types::pem::PemObject::pem_slice_iter(&chain)
        .next()
        .unwrap()
        .unwrap();
    let expected: rustls_pki_types::CertificateDer<'static> = expected;
    assert_eq!(served, expected);
    let stderr = proxy.stderr_text();
    assert!(!stderr.contains("NO CERTIFICATE CONFIGURED"), "{stderr}");
    assert!(stderr.contains("embedded default configuration"), "{stderr}");
}

/// Starts the binary with `config` in `site`'s directory and no variables.
async fn start(site: &Site, config: &str) -> (ProxyProcess, SocketAddr) {
    let path = site.path("proxy.toml");
    std::fs::write(&path, config).unwrap();
    let path = path.display().to_string();
    ProxyProcess::start_command(command(&["--config", &path, "run"], &[])).await
}

/// The first line of `proxy`'s stderr that contains `needle`, once there is one.
async fn line_with(proxy: &ProxyProcess, needle: &str) -> String {
    proxy.line_with(needle).await
}

#[tokio::test]
async fn json_access_line_through_the_binary() {
    let site = Site::new();
    let origin = support::Origin::hello().await;
    let config = format!(
        "{}\n[log]\nformat = \"json\"\n",
        site.config(&route("/", &origin.url(), ""))
    );
    let (proxy, addr) = start(&site, &config).await;
    let before = SystemTime::now() - Duration::from_secs(1);

    let target = "/json-probe?q=%22quoted%22&x=1";
    let (status, _, body) = fetch(addr, &site.ca, get(target)).await;
    assert_eq!(status, 200);
    assert_eq!(body, format!("hello from {target}"));

    let line = line_with(&proxy, "\"target\":\"/json-probe").await;
    let record: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
    let object = record.as_object().unwrap();
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "bytes",
            "client",
            "duration_ms",
            "method",
            "request_id",
            "status",
            "target",
            "time",
            "upstream"
        ],
        "{line}"
    );
    let time = humantime::parse_rfc3339(record["time"].as_str().unwrap()).unwrap();
    assert!(time >= before && time <= SystemTime::now(), "{line}");
    assert_eq!(record["client"], "127.0.0.1", "{line}");
    assert_eq!(record["method"], "GET", "{line}");
    assert_eq!(record["target"], target, "{line}");
    assert_eq!(record["status"], 200, "{line}");
    assert_eq!(record["bytes"], body.len() as u64, "{line}");
    let duration = record["duration_ms"].as_f64().unwrap();
    assert!((0.0..10_000.0).contains(&duration), "{line}");
    assert_eq!(record["upstream"], origin.url().as_str(), "{line}");

    // Every other line is a JSON object too.
    let listening = line_with(&proxy, "listening on https://").await;
    let event: serde_json::Value =
        serde_json::from_str(&listening).unwrap_or_else(|e| panic!("not one JSON object ({e}): {listening}"));
    assert_eq!(event["level"], "INFO", "{listening}");
    assert!(event["time"].as_str().is_some(), "{listening}");
    assert!(
        event["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("listening on https://{addr}")),
        "{listening}"
    );
    for line in proxy.stderr_text().lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| v.is_object()),
            "not a JSON object: {line}"
        );
    }
}

#[tokio::test]
async fn text_access_line_is_the_default() {
    let site = Site::new();
    let origin = support::Origin::hello().await;
    let (proxy, addr) = start(&site, &site.config(&route("/", &origin.url(), ""))).await;
    let (status, _, body) = fetch(addr, &site.ca, get("/text-probe")).await;
    assert_eq!(status, 200);
    let line = line_with(&proxy, "\"GET /text-probe\"").await;
    let expected = format!("127.0.0.1 \"GET /text-probe\" 200 {} ", body.len());
    assert!(line.contains(&expected), "{line}");
    assert!(
        line.contains(&format!("ms upstream={} request_id=", origin.url())),
        "{line}"
    );
    assert!(!line.contains('{'), "{line}");
}
