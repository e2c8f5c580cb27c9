//! `portcullis import-nginx` as an operator runs it: the sample nginx
//! configurations of tests/import_nginx/ copied into a directory with real
//! certificates, translated, their report and exit status read, the result
//! checked by `portcullis check`, and one of them served against a real
//! origin to see that it behaves as nginx would.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use http::{Request, StatusCode};
use support::{fetch, full, Origin, ProxyHandle, Site};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/import_nginx");

/// A directory with the samples, `fullchain.pem`/`privkey.pem` for
/// localhost, and the directories the samples serve files from.
fn site() -> Site {
    let site = Site::new();
    copy(Path::new(SAMPLES), site.dir.path());
    for dir in ["static", "public", "build", "errors"] {
        std::fs::create_dir_all(site.path(dir)).unwrap();
    }
    std::fs::write(site.path("errors/50x.html"), "down\n").unwrap();
    site
}

fn copy(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn import(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .arg("import-nginx")
        .args(args)
        .output()
        .unwrap()
}

fn check(dir: &Path, config: &str) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .args(["check", "--config", config])
        .env_remove("PORTCULLIS_LISTEN")
        .env_remove("PORTCULLIS_TLS_CERT")
        .env_remove("PORTCULLIS_TLS_KEY")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_typical_configuration_is_translated_whole_and_passes_check() {
    let site = site();
    let out = import(site.dir.path(), &["typical.conf", "-o", "proxy.toml"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    assert!(stdout.is_empty(), "the TOML went to the file: {stdout}");
    let toml = std::fs::read_to_string(site.path("proxy.toml")).unwrap();
    for line in [
        "upstream = \"app\"  # typical.conf:50 proxy_pass http://app;",
        "strip_prefix = true  # typical.conf:66 proxy_pass http://127.0.0.1:3000/;",
        "upstream_host = \"upstream\"  # nginx sends the upstream's host:port as Host",
        "max_body = \"10MiB\"  # typical.conf:46 client_max_body_size 10m;",
        "path_regex = \"(?i)\\\\.(png|jpg)$\"",
        "respond = { status = 200, body = \"ok\\n\" }  # typical.conf:71 return 200 \"ok\\n\";",
        "[upstream.passive]",
        "types = [\"text/html\"]  # nginx's default gzip_types: text/html",
    ] {
        assert!(toml.contains(line), "no {line:?} in:\n{toml}");
    }
    for line in [
        "typical.conf:23: map $http_upgrade $connection_upgrade: dropped (not needed: WebSocket handshakes are always forwarded)",
        "typical.conf:37: return 301 https://$host$request_uri: approximated ([http] redirect_to_https answers 308",
        "import-nginx: written to proxy.toml;",
        "0 changing behaviour; check: valid",
    ] {
        assert!(stderr.contains(line), "no {line:?} in:\n{stderr}");
    }
    let checked = check(site.dir.path(), "proxy.toml");
    assert_eq!(checked.status.code(), Some(0), "{}", text(&checked.stderr));
}

#[test]
fn without_an_output_file_the_toml_goes_to_stdout_and_the_report_to_stderr() {
    let site = site();
    let out = import(site.dir.path(), &["stream.conf"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    assert!(stdout.contains("tls = \"passthrough\""), "{stdout}");
    assert!(stdout.contains("sni = \"*.b.example.com\""), "{stdout}");
    assert!(
        stdout.contains("idle_timeout = \"10m\"  # nginx's default proxy_timeout 10m"),
        "{stdout}"
    );
    assert!(!stderr.contains("[[stream]]"), "{stderr}");
    std::fs::write(site.path("streams.toml"), &stdout).unwrap();
    let checked = check(site.dir.path(), "streams.toml");
    assert_eq!(checked.status.code(), Some(0), "{}", text(&checked.stderr));
}

#[test]
fn what_changes_behaviour_is_reported_by_file_and_line_and_exits_3() {
    let site = site();
    let out = import(site.dir.path(), &["decisions.conf", "-o", "proxy.toml"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr:\n{stderr}");
    for line in [
        "decisions.conf:4: proxy_cache_path /var/cache/nginx keys_zone=one:10m: needs a decision (portcullis has no response cache yet",
        "decisions.conf:10: auth_basic admin: needs a decision (portcullis has no basic authentication",
        "decisions.conf:15: proxy_cache one: needs a decision",
        "decisions.conf:16: if ($http_user_agent ~ bot): dropped (if blocks have no translation",
        "decisions.conf:19: sub_filter http:// https://: needs a decision (portcullis does not rewrite response bodies)",
        "decisions.conf:20: content_by_lua_block: needs a decision (portcullis runs no scripts)",
    ] {
        assert!(stderr.contains(line), "no {line:?} in:\n{stderr}");
    }
    // Written anyway, and valid.
    let checked = check(site.dir.path(), "proxy.toml");
    assert_eq!(checked.status.code(), Some(0), "{}", text(&checked.stderr));
}

#[test]
fn several_servers_become_host_bound_routes_and_server_picks_one() {
    let site = site();
    let out = import(site.dir.path(), &["sites.conf", "-o", "all.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let all = std::fs::read_to_string(site.path("all.toml")).unwrap();
    for line in [
        "host = \"a.example.com\"",
        "host = \"www.b.example.com\"",
        "rewrite_prefix = \"/v1/\"",
        "forwarded_for = \"replace\"",
        "request.set = { X-Forwarded-Port = \"{server_port}\" }",
        "listen = [\"0.0.0.0:443\", \"0.0.0.0:9001\"]",
        "respond = { status = 404, body = \"no such site\\n\" }",
    ] {
        assert!(all.contains(line), "no {line:?} in:\n{all}");
    }
    let checked = check(site.dir.path(), "all.toml");
    assert_eq!(checked.status.code(), Some(0), "{}", text(&checked.stderr));

    let out = import(
        site.dir.path(),
        &["sites.conf", "--server", "www.b.example.com", "-o", "b.toml"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let b = std::fs::read_to_string(site.path("b.toml")).unwrap();
    assert!(
        b.contains("rewrite_prefix") && !b.contains("8081") && !b.contains("no such site"),
        "{b}"
    );
    assert!(
        !b.contains("host = "),
        "one server: its routes take every host\n{b}"
    );

    let out = import(site.dir.path(), &["sites.conf", "--server", "c.example.com"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--server c.example.com: no server block has this name"));
}

#[test]
fn static_files_with_an_application_fallback() {
    let site = site();
    let out = import(site.dir.path(), &["static.conf", "-o", "proxy.toml"]);
    let stderr = text(&out.stderr);
    // The pool's answers keep their Location as the upstream wrote it.
    assert_eq!(out.status.code(), Some(3), "stderr:\n{stderr}");
    assert!(
        stderr.contains(
            "static.conf:17: location @app: approximated (the pool's own URLs in Location are not rewritten"
        ),
        "{stderr}"
    );
    let toml = std::fs::read_to_string(site.path("proxy.toml")).unwrap();
    let dir = site.dir.path().display();
    for line in [
        "try_files = [\"{path}\", \"{path}.html\", \"{path}/\", \"@app\"]".to_string(),
        "servers = [\"http://127.0.0.1:3000\"]".to_string(),
        format!("alias = \"{dir}/build/\""),
        "precompressed = [\"gzip\"]".to_string(),
        format!("error_pages = {{ 502 = \"{dir}/errors/50x.html\", 503 = \"{dir}/errors/50x.html\" }}"),
        "min_length = \"1000B\"".to_string(),
    ] {
        assert!(toml.contains(&line), "no {line:?} in:\n{toml}");
    }
    let checked = check(site.dir.path(), "proxy.toml");
    assert_eq!(checked.status.code(), Some(0), "{}", text(&checked.stderr));
}

#[test]
fn unreadable_and_unparsable_files_exit_2_naming_file_and_line() {
    let site = site();
    let out = import(site.dir.path(), &["broken.conf"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).trim(),
        "portcullis import-nginx: broken.conf:5: \"proxy_pass\" has no \";\" before \"}\""
    );
    assert!(out.stdout.is_empty());

    let out = import(site.dir.path(), &["nope.conf"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("nope.conf: cannot read the file"),
        "{}",
        text(&out.stderr)
    );

    std::fs::write(site.path("a.conf"), "http {\n  include b.conf;\n}\n").unwrap();
    std::fs::write(site.path("b.conf"), "include a.conf;\n").unwrap();
    let out = import(site.dir.path(), &["a.conf"]);
    assert_eq!(out.status.code(), Some(2));
    let want = "b.conf:1: include cycle: a.conf -> b.conf -> a.conf";
    assert!(text(&out.stderr).contains(want), "{}", text(&out.stderr));
}

#[test]
fn garbage_and_cut_files_are_errors_never_panics() {
    let site = site();
    let typical = std::fs::read(site.path("typical.conf")).unwrap();
    let mut inputs: Vec<Vec<u8>> = vec![
        vec![0xff, 0xfe, 0x00, b'{', b'"'],
        b"}}}}".to_vec(),
        b"http { server { location".to_vec(),
        b"\"\\".to_vec(),
        b"http { server { listen [::; location ~ ( { proxy_pass http://[; } } }".to_vec(),
        b"http { server { listen 99999 ssl; return; rewrite; proxy_pass; location; } }".to_vec(),
    ];
    // The typical file cut at every 97th byte.
    inputs.extend((1..typical.len()).step_by(97).map(|n| typical[..n].to_vec()));
    for (i, input) in inputs.iter().enumerate() {
        std::fs::write(site.path("in.conf"), input).unwrap();
        let out = import(site.dir.path(), &["in.conf", "-o", "out.toml"]);
        let code = out.status.code();
        assert!(
            matches!(code, Some(0 | 2 | 3)),
            "input {i}: {code:?}\n{}",
            text(&out.stderr)
        );
        assert!(
            !text(&out.stderr).contains("panicked"),
            "input {i}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn without_its_helper_binary_the_command_says_where_to_run_it() {
    let site = site();
    let alone = site.path("alone");
    std::fs::create_dir_all(&alone).unwrap();
    std::fs::copy(BIN, alone.join("portcullis")).unwrap();
    let out = Command::new(alone.join("portcullis"))
        .current_dir(site.dir.path())
        .args(["import-nginx", "typical.conf"])
        .env("PATH", "")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot run portcullis-import-nginx")
            && stderr.contains("run the import where nginx runs"),
        "{stderr}"
    );
}

/// The import of a small configuration served against a real origin: the
/// path and Host the upstream sees, nginx's body limit, a redirect.
#[tokio::test]
async fn the_imported_configuration_behaves_as_nginx_does_on_the_wire() {
    let site = site();
    let origin = Origin::start(|req: Request<hyper::body::Incoming>| async move {
        http::Response::new(full(format!("{} {}", req.method(), req.uri())))
    })
    .await;
    let conf = format!(
        "http {{
    server {{
        listen 127.0.0.1:0 ssl;
        ssl_certificate fullchain.pem;
        ssl_certificate_key privkey.pem;
        location /app/ {{
            proxy_pass http://{0}/;
        }}
        location / {{
            proxy_pass http://{0};
            proxy_set_header Host $host;
        }}
        location = /old {{
            return 301 https://$host/new$is_args$args;
        }}
    }}
}}
",
        origin.addr
    );
    std::fs::write(site.path("e2e.conf"), conf).unwrap();
    let out = import(site.dir.path(), &["e2e.conf", "-o", "proxy.toml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let toml = std::fs::read_to_string(site.path("proxy.toml")).unwrap();
    let proxy = ProxyHandle::start(&toml, site.dir.path()).await;

    let (status, _, body) = fetch(proxy.addr, &site.ca, support::get("/app/x?q=1")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "GET /x?q=1"));
    // nginx's default Host for proxy_pass is the upstream's host:port.
    assert_eq!(origin.last_seen().headers["host"], origin.addr.to_string());

    let (status, _, _) = fetch(proxy.addr, &site.ca, support::get("/y")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(origin.last_seen().headers["host"], "localhost");

    // nginx's default client_max_body_size is 1m.
    let big = Request::post("https://localhost/y")
        .header("host", "localhost")
        .header("content-length", (1 << 20) + 1)
        .body(full(vec![b'x'; (1 << 20) + 1]))
        .unwrap();
    let seen = origin.count();
    let (status, _, _) = fetch(proxy.addr, &site.ca, big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(origin.count(), seen, "nothing forwarded");

    let (status, headers, _) = fetch(proxy.addr, &site.ca, support::get("/old?a=b")).await;
    assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(headers["location"], "https://localhost/new?a=b");
}
