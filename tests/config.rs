//! The configuration as an operator meets it: files loaded through the
//! library API, and the exact text of what is reported when they are wrong.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use portcullis::config::{
    from_str, Bootstrap, Config, ConfigError, ConfigErrors, LogFormat, Origin, TlsVersion, EMBEDDED_DEFAULT,
};

/// No environment: `load` and `embedded_default` apply PORTCULLIS_LISTEN,
/// PORTCULLIS_TLS_CERT and PORTCULLIS_TLS_KEY from the process, and what
/// these tests check must not depend on the shell of whoever runs them.
/// tests/env_and_logs.rs covers the variables.
fn no_env(_: &str) -> Option<String> {
    None
}

fn load(path: &Path) -> Result<Config, ConfigErrors> {
    Config::load_with_env(path, &no_env)
}

/// A route that makes an otherwise empty file valid.
const ROUTE: &str = "[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:8080\"\n";

fn parse(text: &str) -> Config {
    match from_str(text, Path::new("proxy.toml")) {
        Ok(config) => config,
        Err(errors) => panic!("expected a valid configuration, got:\n{errors}"),
    }
}

fn errors(text: &str) -> ConfigErrors {
    match from_str(text, Path::new("proxy.toml")) {
        Ok(config) => panic!("expected errors, got {config:#?}"),
        Err(errors) => errors,
    }
}

/// The one error `text` has.
fn error(text: &str) -> ConfigError {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "expected exactly one error, got:\n{errors}");
    errors.0[0].clone()
}

/// The error of a route whose upstream is `upstream`.
fn upstream_error(upstream: &str) -> ConfigError {
    let e = error(&format!("[[route]]\npath = \"/\"\nupstream = \"{upstream}\"\n"));
    assert_eq!(e.key, "route[0].upstream");
    assert_eq!((e.origin.line, e.origin.column), (3, 12));
    e
}

fn upstream_of(upstream: &str) -> (String, u16) {
    let config = parse(&format!("[[route]]\npath = \"/\"\nupstream = \"{upstream}\"\n"));
    let upstream = &config.routes[0].upstream;
    (upstream.host.clone(), upstream.port)
}

#[test]
fn unknown_key_suggests_the_closest_valid_key() {
    let e = error(&format!("[server]\nlisen = \"0.0.0.0:443\"\n{ROUTE}"));
    assert_eq!(
        e.to_string(),
        "proxy.toml:2:1: server.lisen: unknown key `lisen` in [server]\n  help: did you mean `listen`?"
    );
}

#[test]
fn unknown_key_without_a_close_match_lists_the_valid_keys() {
    let e = error(&format!("{ROUTE}banana = 1\n"));
    assert_eq!(e.key, "route[0].banana");
    assert_eq!(e.message, "unknown key `banana` in [[route]]");
    assert_eq!(
        e.hint,
        "valid keys in [[route]]: host, path, upstream, read_timeout, connect_timeout, tunnel_idle_timeout, keepalive, keepalive_timeout, max_body, upstream_ca, upstream_server_name, upstream_insecure_skip_verify, require_client_cert, websocket, path_normalization, path_exact, path_regex, rewrite, prefix_wins, ports, strip_prefix, rewrite_prefix, redirect, status, respond, methods, request, response, upstream_host, forwarded_for, redirect_rewrite, cookie_path, cookie_flags, send_proxy_protocol, forwarded, root, alias, try_files, index, precompressed, compression, error_pages, intercept_errors, request_buffering, response_buffering"
    );

    let e = error(&format!("{ROUTE}[servers]\n"));
    assert_eq!(e.key, "servers");
    assert_eq!(e.hint, "did you mean `server`?");
}

#[test]
fn unknown_key_known_from_nginx_names_the_portcullis_key() {
    let e = error("[[route]]\npath = \"/\"\nproxy_pass = \"http://127.0.0.1:8080\"\nupstream = \"http://127.0.0.1:8080\"\n");
    assert_eq!(e.key, "route[0].proxy_pass");
    assert_eq!(e.hint, "portcullis calls this setting `upstream`");
}

#[test]
fn wrong_type_says_what_was_expected_with_an_example() {
    let e = error(&format!("[server]\nmax_connections = true\n{ROUTE}"));
    assert_eq!(
        e.to_string(),
        "proxy.toml:2:19: server.max_connections: expected an integer, found a boolean\n  help: for example: max_connections = 10000"
    );

    let e = error(&format!("[server]\nmax_connections = \"500\"\n{ROUTE}"));
    assert_eq!(e.message, "expected an integer, found a string");
    assert_eq!(e.hint, "remove the quotes: max_connections = 500");

    let e = error(&format!("{ROUTE}host = 42\n"));
    assert_eq!(e.message, "expected a string, found an integer");
    assert_eq!(
        e.hint,
        "write it in double quotes, for example: host = \"example.com\""
    );

    let e = error(&format!("[log]\naccess_log = \"yes\"\n{ROUTE}"));
    assert_eq!(e.message, "expected true or false, found a string");
    assert_eq!(e.hint, "write access_log = true or access_log = false");

    let e = error(&format!("server = 1\n{ROUTE}"));
    assert_eq!(e.message, "expected a table, found an integer");

    let e = error(&format!("[server]\nthreads = 0\n{ROUTE}"));
    assert_eq!(e.message, "0 is not allowed; the value must be at least 1");
}

#[test]
fn request_path_defences_are_on_by_default_and_can_be_relaxed() {
    let config = parse(ROUTE);
    assert!(config.routes[0].websocket);
    assert!(config.routes[0].path_normalization);
    assert!(!config.server.underscores_in_headers);

    let config = parse(&format!(
        "[server]\nunderscores_in_headers = true\n{ROUTE}websocket = false\npath_normalization = \"off\"\n"
    ));
    assert!(!config.routes[0].websocket);
    assert!(!config.routes[0].path_normalization);
    assert!(config.server.underscores_in_headers);

    let e = error(&format!("{ROUTE}path_normalization = false\n"));
    assert_eq!(
        e.to_string(),
        "proxy.toml:4:22: route[0].path_normalization: expected \"on\" or \"off\", found a boolean\n  help: write path_normalization = \"off\""
    );
    let e = error(&format!("{ROUTE}merge_slashes = \"off\"\n"));
    assert_eq!(e.key, "route[0].merge_slashes");
    assert!(e.hint.contains("path_normalization"), "{}", e.hint);
    let e = error(&format!("{ROUTE}websocket = \"no\"\n"));
    assert_eq!(e.hint, "write websocket = true or websocket = false");
}

#[test]
fn bad_durations_are_explained() {
    let e = error(&format!("{ROUTE}read_timeout = \"5 parsecs\"\n"));
    assert_eq!(e.key, "route[0].read_timeout");
    assert_eq!(e.message, "`5 parsecs` has an unknown unit `parsecs`");
    assert_eq!(
        e.hint,
        "write a number followed by a unit: ms, s, m, h or d, for example \"500ms\", \"90s\", \"24h\" or \"1h30m\""
    );

    let e = error(&format!("[server]\nhandshake_timeout = \"30\"\n{ROUTE}"));
    assert_eq!(e.message, "`30` has no unit");
    assert_eq!(
        e.hint,
        "write \"30s\" for 30 seconds or \"30ms\" for milliseconds; units: ms, s, m, h, d"
    );

    let e = error(&format!("[server]\nhandshake_timeout = 30\n{ROUTE}"));
    assert_eq!(e.message, "expected a duration string, found an integer");
    assert_eq!(
        e.hint,
        "give the unit and quote it, for example: handshake_timeout = \"30s\" for 30 seconds"
    );

    let e = error(&format!("{ROUTE}tunnel_idle_timeout = \"0s\"\n"));
    assert_eq!(e.message, "`0s` is zero, which would make this time out at once");
}

#[test]
fn upstream_keepalive_is_read_and_bad_values_are_explained() {
    let config = parse(&format!(
        "{ROUTE}keepalive = 8\nkeepalive_timeout = \"5s\"\n[[route]]\npath = \"/off\"\n\
         upstream = \"http://127.0.0.1:8081\"\nkeepalive = 0\n"
    ));
    assert_eq!(config.routes[0].keepalive, 8);
    assert_eq!(config.routes[0].keepalive_timeout, Duration::from_secs(5));
    assert_eq!(config.routes[1].keepalive, 0);

    // Other proxies' spellings point to the key. In [[route]]
    // `keepalive_timeout` is a key of its own, while in [server] it points
    // to idle_timeout (nginx's client-side directive).
    for (alias, key) in [
        ("keepalive_connections = 2", "keepalive"),
        ("upstream_keepalive = 2", "keepalive"),
        ("keepalive_idle_timeout = \"9s\"", "keepalive_timeout"),
    ] {
        let e = error(&format!("{ROUTE}{alias}\n"));
        assert_eq!(
            e.hint,
            format!("portcullis calls this setting `{key}`"),
            "{alias}"
        );
    }
    let e = error(&format!("[server]\nkeepalive_timeout = \"20s\"\n{ROUTE}"));
    assert_eq!(e.hint, "portcullis calls this setting `idle_timeout`");

    let e = error(&format!("{ROUTE}keepalive = -1\n"));
    assert_eq!(
        e.to_string(),
        "proxy.toml:4:13: route[0].keepalive: -1 is not allowed; the value must be 0 or more\n  \
         help: give the number of idle connections to keep, for example: keepalive = 64 \
         (keepalive = 0 closes every connection after its exchange)"
    );

    let e = error(&format!("{ROUTE}keepalive = \"64\"\n"));
    assert_eq!(e.key, "route[0].keepalive");
    assert_eq!(e.message, "expected an integer, found a string");
    assert_eq!(e.hint, "remove the quotes: keepalive = 64");

    let e = error(&format!("{ROUTE}keepalive_timeout = \"0s\"\n"));
    assert_eq!(
        e.to_string(),
        "proxy.toml:4:21: route[0].keepalive_timeout: a zero keepalive_timeout would close every idle \
         connection at once\n  help: write keepalive = 0 to close every upstream connection after its \
         exchange, or give a duration such as keepalive_timeout = \"60s\""
    );

    let e = error(&format!("{ROUTE}keepalive_timeout = 60\n"));
    assert_eq!(e.key, "route[0].keepalive_timeout");
    assert_eq!(
        e.hint,
        "give the unit and quote it, for example: keepalive_timeout = \"60s\" for 60 seconds"
    );
}

#[test]
fn durations_are_read_in_human_units() {
    let config = parse(&format!(
        "[server]\nhandshake_timeout = \"500ms\"\nshutdown_grace = \"0s\"\n{ROUTE}read_timeout = \"90s\"\ntunnel_idle_timeout = \"1h30m\"\n"
    ));
    assert_eq!(config.server.handshake_timeout, Duration::from_millis(500));
    assert_eq!(config.server.shutdown_grace, Duration::ZERO);
    assert_eq!(config.routes[0].read_timeout, Duration::from_secs(90));
    assert_eq!(config.routes[0].tunnel_idle_timeout, Duration::from_secs(5400));
}

#[test]
fn bad_listen_addresses_are_explained() {
    let e = error(&format!(
        "[server]\nlisten = [\"0.0.0.0:443\", \"localhost:443\"]\n{ROUTE}"
    ));
    assert_eq!(
        e.to_string(),
        "proxy.toml:2:26: server.listen[1]: `localhost` is not an IP address; listen addresses are IP literals, not names\n  help: write \"127.0.0.1:443\" (\"0.0.0.0:443\" listens on every IPv4 address, \"127.0.0.1:443\" on this machine only)"
    );

    let e = error(&format!("[server]\nlisten = \"443\"\n{ROUTE}"));
    assert_eq!(e.key, "server.listen");
    assert_eq!(e.message, "`443` has a port but no IP address");

    let e = error(&format!("[server]\nlisten = \"::1:443\"\n{ROUTE}"));
    assert_eq!(
        e.hint,
        "put the address in brackets: \"[::1]:443\" (or \"[::1:443]:8443\" if 443 is part of the address)"
    );

    let e = error(&format!("[server]\nlisten = 443\n{ROUTE}"));
    assert_eq!(
        e.to_string(),
        "proxy.toml:2:10: server.listen: expected an address string or a list of them, found an integer\n  help: give an IP address with the port, for example: listen = \"0.0.0.0:443\""
    );

    let e = error(&format!("[server]\nlisten = []\n{ROUTE}"));
    assert_eq!(e.message, "no address to listen on");

    let e = error(&format!(
        "[server]\nlisten = [\"[::]:443\", \"[::]:443\"]\n{ROUTE}"
    ));
    assert_eq!(e.key, "server.listen[1]");
    assert_eq!(e.message, "[::]:443 is listed twice (also as server.listen[0])");
}

#[test]
fn listen_takes_one_address_or_a_list() {
    let one = parse(&format!("[server]\nlisten = \"0.0.0.0:443\"\n{ROUTE}"));
    assert_eq!(
        one.server.listen,
        vec!["0.0.0.0:443".parse::<SocketAddr>().unwrap()]
    );
    let two = parse(&format!(
        "[server]\nlisten = [\"0.0.0.0:443\", \"[::]:443\"]\nthreads = 2\nmax_connections = 20_000\n{ROUTE}"
    ));
    assert_eq!(two.server.listen.len(), 2);
    assert_eq!(two.server.threads, Some(2));
    assert_eq!(two.server.max_connections, 20_000);
}

#[test]
fn bad_min_version_lists_the_valid_values() {
    let e = error(&format!("[tls]\nmin_version = \"1.1\"\n{ROUTE}"));
    assert_eq!(
        e.to_string(),
        "proxy.toml:2:15: tls.min_version: `1.1` is not supported: portcullis speaks TLS 1.2 and 1.3 only\n  help: valid values: \"1.2\" (TLS 1.2 and 1.3) or \"1.3\" (TLS 1.3 only)"
    );
    let e = error(&format!("[tls]\nmin_version = \"TLSv1.3\"\n{ROUTE}"));
    assert_eq!(e.hint, "write min_version = \"1.3\"");
    let e = error(&format!("[tls]\nmin_version = 1.3\n{ROUTE}"));
    assert_eq!(e.message, "expected a string, found a float");

    let config = parse(&format!("[tls]\nmin_version = \"1.3\"\n{ROUTE}"));
    assert_eq!(config.tls.min_version, TlsVersion::V1_3);
}

#[test]
fn cert_and_key_come_together() {
    let e = error(&format!("[tls]\ncert = \"/etc/ssl/fullchain.pem\"\n{ROUTE}"));
    assert_eq!(
        e.to_string(),
        "proxy.toml:2:8: tls.cert: `cert` is set but `key` is not: a certificate needs its private key\n  help: add the key next to it, for example: key = \"/etc/letsencrypt/live/example.com/privkey.pem\""
    );

    let e = error(&format!(
        "[[tls.certificate]]\nkey = \"/etc/ssl/privkey.pem\"\n{ROUTE}"
    ));
    assert_eq!(e.key, "tls.certificate[0].key");
    assert_eq!(
        e.message,
        "`key` is set but `cert` is not: a private key needs its certificate"
    );

    let e = error(&format!(
        "[tls.certificate]\ncert = \"a.pem\"\nkey = \"a.key\"\n{ROUTE}"
    ));
    assert_eq!(
        e.message,
        "`[tls.certificate]` declares a single table, but [[tls.certificate]] is a list of tables"
    );

    let e = error(&format!("[[tls.certificate]]\nnames = [\"a.example\"]\n{ROUTE}"));
    assert_eq!(e.key, "tls.certificate[0]");
    assert_eq!(e.message, "this certificate has neither `cert` nor `key`");
}

#[test]
fn no_certificate_means_self_signed() {
    let config = parse(ROUTE);
    assert!(config.tls.certificates.is_empty());
    assert_eq!(config.tls.min_version, TlsVersion::V1_2);
}

#[test]
fn certificates_resolve_relative_paths_against_the_config_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxy.toml");
    std::fs::write(
        &file,
        format!(
            "[tls]\ncert = \"certs/fullchain.pem\"\nkey = \"/abs/privkey.pem\"\n\n\
             [[tls.certificate]]\ncert = \"b.pem\"\nkey = \"b.key\"\nnames = [\"B.Example\", \"*.b.example\"]\n{ROUTE}"
        ),
    )
    .unwrap();
    let config = load(&file).unwrap();
    assert_eq!(config.source.as_deref(), Some(file.as_path()));
    let certs = &config.tls.certificates;
    assert_eq!(certs.len(), 2);
    assert_eq!(certs[0].cert, dir.path().join("certs/fullchain.pem"));
    assert_eq!(certs[0].key, PathBuf::from("/abs/privkey.pem"));
    assert!(certs[0].names.is_empty());
    let name = file.display().to_string();
    assert_eq!(certs[0].cert_origin, Origin::new(name.clone(), 2, 8));
    assert_eq!(certs[0].key_origin, Origin::new(name, 3, 7));
    assert_eq!(certs[1].cert, dir.path().join("b.pem"));
    assert_eq!(certs[1].names, vec!["b.example", "*.b.example"]);
}

#[test]
fn a_config_error_can_be_made_at_a_configured_origin() {
    // What the TLS loader does with a certificate it finds expired.
    let config = parse(&format!(
        "[tls]\ncert = \"/etc/ssl/fullchain.pem\"\nkey = \"/etc/ssl/privkey.pem\"\n{ROUTE}"
    ));
    let cert = &config.tls.certificates[0];
    let error = ConfigError::new(
        cert.cert_origin.clone(),
        "tls.cert",
        "certificate expired on 2024-01-01",
        "renew it, for example with certbot renew",
    );
    assert_eq!(
        ConfigErrors::from(error).to_string(),
        "proxy.toml:2:8: tls.cert: certificate expired on 2024-01-01\n  help: renew it, for example with certbot renew\n1 error in proxy.toml"
    );
}

#[test]
fn missing_route_shows_an_example() {
    let e = error("[server]\nlisten = \"0.0.0.0:443\"\n");
    assert_eq!(
        e.to_string(),
        "proxy.toml:1:1: route: no route: portcullis would have nowhere to send requests\n  \
         help: add at least one [[route]] with path and upstream, for example:\n        \
         [[route]]\n        \
         path = \"/\"\n        \
         upstream = \"http://127.0.0.1:8080\""
    );
    let e = error("route = []\n");
    assert_eq!(e.key, "route");
    assert_eq!((e.origin.line, e.origin.column), (1, 9));

    let e = error("[route]\npath = \"/\"\nupstream = \"http://127.0.0.1:8080\"\n");
    assert_eq!(
        e.message,
        "`[route]` declares a single table, but [[route]] is a list of tables"
    );
}

#[test]
fn route_path_and_upstream_are_required() {
    let errors = errors("[server]\n\n[[route]]\nhost = \"example.com\"\n");
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        vec![
            "proxy.toml:3:1: route[0].path: this route has no `path`\n  help: add path = \"/\" to match every request, or a prefix such as path = \"/api\"",
            "proxy.toml:3:1: route[0].upstream: this route has no `upstream`\n  help: add the address of the application, for example: upstream = \"http://127.0.0.1:8080\"",
        ]
    );
}

#[test]
fn route_path_must_start_with_a_slash() {
    let e = error("[[route]]\npath = \"ws\"\nupstream = \"http://127.0.0.1:9222\"\n");
    assert_eq!(
        e.to_string(),
        "proxy.toml:2:8: route[0].path: `ws` does not start with `/`\n  help: write path = \"/ws\""
    );
    let e = error("[[route]]\npath = \"/a?b=1\"\nupstream = \"http://127.0.0.1:9222\"\n");
    assert_eq!(
        e.message,
        "`/a?b=1` contains a query (`?`); routes match on the path only"
    );
    assert_eq!(e.hint, "write path = \"/a\"");
    let e = error("[[route]]\npath = \"/a#b\"\nupstream = \"http://127.0.0.1:9222\"\n");
    assert_eq!(e.hint, "write path = \"/a\"");
}

#[test]
fn duplicate_routes_point_at_both() {
    let text = "[[route]]\npath = \"/ws\"\nupstream = \"http://127.0.0.1:9222\"\n\n\
                [[route]]\nhost = \"example.com\"\npath = \"/ws\"\nupstream = \"http://127.0.0.1:9222\"\n\n\
                [[route]]\npath = \"/ws\"\nupstream = \"http://127.0.0.1:9223\"\n";
    let e = error(text);
    assert_eq!(
        e.to_string(),
        "proxy.toml:11:8: route[2].path: duplicate route: route[0] at proxy.toml:2:8 already has path `/ws` (any host)\n  help: remove one of the two, or tell them apart with `host`"
    );

    let e = error(
        "[[route]]\nhost = \"Example.com\"\npath = \"/\"\nupstream = \"http://a\"\n\
         [[route]]\nhost = \"example.COM\"\npath = \"/\"\nupstream = \"http://b\"\n",
    );
    assert_eq!(
        e.message,
        "duplicate route: route[0] at proxy.toml:3:8 already has host `example.com` and path `/`"
    );
}

#[test]
fn upstream_whitespace_is_trimmed_and_port_defaults_to_80() {
    assert_eq!(
        upstream_of("  http://127.0.0.1:9222  "),
        ("127.0.0.1".into(), 9222)
    );
    assert_eq!(upstream_of("http://App.internal/"), ("app.internal".into(), 80));
    assert_eq!(upstream_of("http://[::1]:8080"), ("::1".into(), 8080));
    let config = parse("[[route]]\npath = \"/\"\nupstream = \"http://[::1]:8080\"\n");
    assert_eq!(config.routes[0].upstream.to_string(), "http://[::1]:8080");
}

#[test]
fn upstream_scheme_is_http_or_https() {
    let config = parse("[[route]]\npath = \"/\"\nupstream = \"https://api.internal\"\n");
    assert_eq!(config.routes[0].upstream.to_string(), "https://api.internal:443");
    assert_eq!(upstream_of("https://127.0.0.1:8443"), ("127.0.0.1".into(), 8443));

    let e = upstream_error("ftp://127.0.0.1:8443");
    assert_eq!(e.message, "unsupported scheme `ftp://`");
    assert_eq!(
        e.hint,
        "upstreams use http:// or https://, for example: upstream = \"http://127.0.0.1:8080\""
    );

    let e = upstream_error("127.0.0.1:8080");
    assert_eq!(e.message, "`127.0.0.1:8080` has no scheme");
    assert_eq!(e.hint, "write upstream = \"http://127.0.0.1:8080\"");

    let e = upstream_error("ws://127.0.0.1:9222");
    assert_eq!(
        e.message,
        "`ws://` is not an upstream scheme: WebSocket upstreams are plain HTTP"
    );
    assert_eq!(
        e.hint,
        "write upstream = \"http://127.0.0.1:9222\"; portcullis forwards the WebSocket upgrade"
    );

    let e = upstream_error("wss://ws.internal");
    assert_eq!(
        e.message,
        "`wss://` is not an upstream scheme: WebSocket upstreams over TLS are HTTPS"
    );
    assert_eq!(
        e.hint,
        "write upstream = \"https://ws.internal\"; portcullis forwards the WebSocket upgrade"
    );
}

#[test]
fn https_upstreams_name_whom_they_trust() {
    use portcullis::config::UpstreamTrust;
    let route = |keys: &str| {
        let text = format!("[[route]]\npath = \"/\"\nupstream = \"https://api.internal:8443\"\n{keys}");
        from_str(&text, Path::new("/etc/portcullis/proxy.toml"))
            .unwrap_or_else(|e| panic!("{e}"))
            .routes
            .remove(0)
    };
    let system = route("").upstream_tls.unwrap();
    assert_eq!((system.trust, system.server_name), (UpstreamTrust::System, None));
    assert_eq!(system.route_key, "route[0]");
    assert_eq!(
        (system.upstream_origin.line, system.upstream_origin.column),
        (3, 12)
    );

    let ca = route("upstream_ca = \"ca/upstream.pem\"\nupstream_server_name = \"API.Internal\"")
        .upstream_tls
        .unwrap();
    let UpstreamTrust::CaFile { path, origin } = ca.trust else {
        panic!("{:?}", ca.trust)
    };
    assert_eq!(path, PathBuf::from("/etc/portcullis/ca/upstream.pem"));
    assert_eq!((origin.line, origin.column), (4, 15));
    assert_eq!(ca.server_name.as_deref(), Some("api.internal"));

    let insecure = route("upstream_insecure_skip_verify = true")
        .upstream_tls
        .unwrap();
    assert_eq!(insecure.trust, UpstreamTrust::InsecureSkipVerify);

    let plain = parse(ROUTE);
    assert!(plain.routes[0].upstream_tls.is_none());
}

#[test]
fn upstream_tls_keys_are_checked() {
    let https = "[[route]]\npath = \"/\"\nupstream = \"https://127.0.0.1:8443\"\n";
    let e = error(&format!("{ROUTE}upstream_server_name = \"api.internal\"\n"));
    assert_eq!(
        e.to_string(),
        "proxy.toml:4:24: route[0].upstream_server_name: `upstream_server_name` is for https:// upstreams, and http://127.0.0.1:8080 is plain HTTP\n  help: write upstream = \"https://127.0.0.1:8080\" if the application serves TLS there, or remove upstream_server_name"
    );
    let e = error(&format!(
        "{https}upstream_ca = \"ca.pem\"\nupstream_insecure_skip_verify = true\n"
    ));
    assert_eq!(e.key, "route[0].upstream_insecure_skip_verify");
    assert_eq!((e.origin.line, e.origin.column), (5, 33));
    let e = error(&format!("{https}upstream_server_name = \"*.internal\"\n"));
    assert_eq!(e.key, "route[0].upstream_server_name");
    assert!(e.message.contains("wildcard"), "{}", e.message);
    let e = error(&format!("{https}upstream_insecure_skip_verify = \"yes\"\n"));
    assert_eq!(e.message, "expected true or false, found a string");
    let e = error(&format!("{https}proxy_ssl_trusted_certificate = \"ca.pem\"\n"));
    assert_eq!(e.hint, "portcullis calls this setting `upstream_ca`");
}

#[test]
fn upstream_has_no_path() {
    let e = upstream_error("http://127.0.0.1:8080/api");
    assert_eq!(
        e.to_string(),
        "proxy.toml:3:12: route[0].upstream: the upstream has a path (`/api`); only an address is allowed\n  help: write upstream = \"http://127.0.0.1:8080\" and put the path in the route's `path`: portcullis forwards the request path unchanged"
    );
}

#[test]
fn upstream_has_no_query_or_fragment() {
    let e = upstream_error("http://127.0.0.1:8080?a=1");
    assert_eq!(e.message, "the upstream has a query (`?a=1`)");
    assert_eq!(
        e.hint,
        "write upstream = \"http://127.0.0.1:8080\": portcullis forwards each request's own query unchanged"
    );
    let e = upstream_error("http://127.0.0.1:8080/#top");
    assert_eq!(e.message, "the upstream has a fragment (`#top`)");
    assert_eq!(
        e.hint,
        "write upstream = \"http://127.0.0.1:8080\": fragments are never sent to a server"
    );
}

#[test]
fn upstream_has_no_user_info_and_does_not_echo_it() {
    let e = upstream_error("http://admin:hunter2@127.0.0.1:8080");
    assert_eq!(
        e.message,
        "the upstream contains user info (`...@`), which portcullis does not send"
    );
    assert_eq!(
        e.hint,
        "remove everything up to the `@`: upstream = \"http://127.0.0.1:8080\""
    );
    assert!(!e.to_string().contains("hunter2"));
}

#[test]
fn upstream_needs_a_host_and_a_valid_port() {
    let e = upstream_error("http://:8080");
    assert_eq!(e.message, "the upstream has no host");
    assert_eq!(e.hint, "write upstream = \"http://127.0.0.1:8080\"");

    let e = upstream_error("http://127.0.0.1:");
    assert_eq!(e.message, "the upstream has an empty port after `:`");

    let e = upstream_error("http://127.0.0.1:99999");
    assert_eq!(e.message, "`99999` is not a port number");
    assert_eq!(e.hint, "give a port from 1 to 65535, such as :8080");
}

#[test]
fn upstream_ipv6_needs_brackets() {
    let e = upstream_error("http://::1:8080");
    assert_eq!(
        e.message,
        "`::1:8080` looks like an IPv6 address without brackets"
    );
    assert_eq!(e.hint, "put an IPv6 address in brackets: http://[::1]:8080");
    let e = upstream_error("http://[::zz]:8080");
    assert_eq!(e.message, "`::zz` is not an IPv6 address");
}

#[test]
fn toml_syntax_errors_have_positions() {
    let e = error("[[route]]\npath = \"/\"\nupstream = http://127.0.0.1:8080\n");
    assert_eq!(
        e.to_string(),
        "proxy.toml:3:12: TOML syntax: string values must be quoted, expected literal string\n  help: put text in double quotes, for example: upstream = \"http://127.0.0.1:8080\""
    );
    assert_eq!(e.key, "");
}

#[test]
fn syntax_errors_do_not_cause_false_missing_errors() {
    // The unreadable line loses `upstream`; saying "no upstream" as well
    // would send the operator looking for the wrong problem.
    let errors = errors("[[route]]\npath = \"/\"\nupstream \"http://127.0.0.1:8080\"\n");
    assert_eq!(errors.len(), 1, "{errors}");
    assert_eq!(errors.0[0].origin.line, 3);
    assert!(errors.0[0].message.starts_with("TOML syntax: "));
}

#[test]
fn several_errors_are_reported_at_once_in_file_order() {
    let text = "\
[server]
listen = \"0.0.0.0\"
max_conections = 5

[tls]
min_version = \"1.0\"

[[route]]
path = \"/\"
upstream = \"ftp://127.0.0.1:8080\"

[[route]]
path = \"/ws\"
upstream = \"http://127.0.0.1:9222\"
read_timeout = \"forever\"
";
    let errors = errors(text);
    let positions: Vec<(usize, usize, &str)> = errors
        .iter()
        .map(|e| (e.origin.line, e.origin.column, e.key.as_str()))
        .collect();
    assert_eq!(
        positions,
        vec![
            (2, 10, "server.listen"),
            (3, 1, "server.max_conections"),
            (6, 15, "tls.min_version"),
            (10, 12, "route[0].upstream"),
            (15, 16, "route[1].read_timeout"),
        ]
    );
    let display = errors.to_string();
    assert!(
        display.starts_with(
            "proxy.toml:2:10: server.listen: `0.0.0.0` has no port\n  help: add one, for example \"0.0.0.0:8443\"\n\
             proxy.toml:3:1: server.max_conections: unknown key `max_conections` in [server]\n  help: did you mean `max_connections`?\n"
        ),
        "{display}"
    );
    assert!(display.ends_with("\n5 errors in proxy.toml"), "{display}");
}

#[test]
fn missing_config_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.toml");
    let errors = match load(&path) {
        Ok(_) => panic!("loaded a file that does not exist"),
        Err(errors) => errors,
    };
    let name = path.display().to_string();
    assert_eq!(
        errors.to_string(),
        format!(
            "{name}: the configuration file does not exist\n  help: check the path, or create the file: proxy.toml.example documents every setting\n1 error in {name}"
        )
    );
    assert_eq!(errors.0[0].origin, Origin::whole_file(name));
}

#[test]
fn a_directory_is_not_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let errors = load(dir.path()).err().unwrap();
    assert_eq!(
        errors.0[0].message,
        "this is a directory, not a configuration file"
    );
}

#[test]
fn embedded_default_loads() {
    let config = Config::embedded_default_with_env(&no_env).unwrap();
    assert!(config.source.is_none());
    assert_eq!(
        config.server.listen,
        vec!["127.0.0.1:8443".parse::<SocketAddr>().unwrap()]
    );
    assert!(config.tls.certificates.is_empty());
    let routes: Vec<(&str, String)> = config
        .routes
        .iter()
        .map(|r| (r.path.as_str(), r.upstream.to_string()))
        .collect();
    assert_eq!(
        routes,
        vec![
            ("/", "http://127.0.0.1:8080".to_string()),
            ("/ws", "http://127.0.0.1:9222".to_string()),
        ]
    );
    assert!(EMBEDDED_DEFAULT.contains("[[route]]"));
}

#[test]
fn defaults_apply_to_what_is_left_out() {
    let config = parse(ROUTE);
    let server = &config.server;
    assert_eq!(
        server.listen,
        vec!["127.0.0.1:8443".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(server.handshake_timeout, Duration::from_secs(10));
    assert_eq!(server.header_read_timeout, Duration::from_secs(30));
    assert_eq!(server.shutdown_grace, Duration::from_secs(30));
    assert_eq!(server.max_connections, 10_000);
    assert_eq!(server.max_connections_per_ip, None);
    assert_eq!(server.max_header_size, 64 * 1024);
    assert_eq!(server.threads, None);
    let route = &config.routes[0];
    assert_eq!(route.host, None);
    assert_eq!(route.read_timeout, Duration::from_secs(60));
    assert_eq!(route.connect_timeout, Duration::from_secs(10));
    assert_eq!(route.tunnel_idle_timeout, Duration::from_secs(86_400));
    assert_eq!(route.keepalive, 64);
    assert_eq!(route.keepalive_timeout, Duration::from_secs(60));
    assert_eq!(route.max_body, None);
    assert_eq!(route.origin, Origin::new("proxy.toml", 1, 1));
    assert!(config.log.access_log);
    assert_eq!(config.log.level, "info");
    assert!(config.http.is_none());
    assert_eq!(config.tls.bootstrap, Bootstrap::Off);
    assert!(config.tls.watch);
    assert_eq!(config.tls.poll_interval, Some(Duration::from_secs(60)));
}

#[test]
fn example_file_loads_with_every_default() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("proxy.toml.example");
    let config = match load(&path) {
        Ok(config) => config,
        Err(errors) => panic!("proxy.toml.example does not load:\n{errors}"),
    };
    let defaults = parse(ROUTE);
    assert_eq!(config.server.listen, defaults.server.listen);
    assert_eq!(config.server.handshake_timeout, defaults.server.handshake_timeout);
    assert_eq!(
        config.server.header_read_timeout,
        defaults.server.header_read_timeout
    );
    assert_eq!(config.server.shutdown_grace, defaults.server.shutdown_grace);
    assert_eq!(config.server.max_connections, defaults.server.max_connections);
    assert_eq!(
        config.server.max_connections_per_ip,
        defaults.server.max_connections_per_ip
    );
    assert_eq!(config.server.max_header_size, defaults.server.max_header_size);
    assert_eq!(config.routes[0].max_body, defaults.routes[0].max_body);
    assert_eq!(config.tls.min_version, defaults.tls.min_version);
    assert_eq!(config.routes.len(), 2);
    assert_eq!(
        config.routes[0].tunnel_idle_timeout,
        defaults.routes[0].tunnel_idle_timeout
    );
    assert_eq!(config.routes[0].keepalive, defaults.routes[0].keepalive);
    assert_eq!(config.routes[0].websocket, defaults.routes[0].websocket);
    assert_eq!(
        config.routes[0].path_normalization,
        defaults.routes[0].path_normalization
    );
    assert_eq!(
        config.server.underscores_in_headers,
        defaults.server.underscores_in_headers
    );
    assert_eq!(
        config.routes[0].keepalive_timeout,
        defaults.routes[0].keepalive_timeout
    );
    assert_eq!(config.log.level, defaults.log.level);
    assert_eq!(config.tls.bootstrap, defaults.tls.bootstrap);
    assert_eq!(config.tls.watch, defaults.tls.watch);
    assert_eq!(config.tls.poll_interval, defaults.tls.poll_interval);
    assert!(config.http.is_none());
    assert!(config.admin.is_none());
    assert_eq!(config.log.format, LogFormat::Text);
}

/// The example's [admin] block is commented out (the listener is off by
/// default); uncommented, it must load and show the default address.
#[test]
fn example_admin_block_loads_when_uncommented() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("proxy.toml.example")).unwrap();
    let block: Vec<&str> = text
        .lines()
        .skip_while(|line| *line != "# [admin]")
        .take_while(|line| line.starts_with('#') || line.is_empty())
        // Up to the next commented-out table.
        .enumerate()
        .take_while(|(index, line)| *index == 0 || !is_commented_table(line))
        .map(|(_, line)| line)
        .filter_map(|line| line.strip_prefix("# "))
        .filter(|line| *line == "[admin]" || line.starts_with("listen = "))
        .collect();
    assert_eq!(block, ["[admin]", "listen = \"127.0.0.1:9901\""]);
    let config = parse(&format!("{}\n{ROUTE}", block.join("\n")));
    assert_eq!(
        config.admin.expect("[admin] parsed").listen,
        addr("127.0.0.1:9901")
    );
    for page in ["/healthz", "/readyz", "/metrics", "/connections"] {
        assert!(text.contains(page), "proxy.toml.example does not mention {page}");
    }
}

/// Whether `line` is a commented-out table header, such as `# [admin]`.
fn is_commented_table(line: &str) -> bool {
    line.strip_prefix("# ")
        .is_some_and(|rest| rest.starts_with('[') && rest.ends_with(']') && !rest.contains(' '))
}

/// The example's [http] block is commented out (binding port 80 needs
/// privileges); uncommented, it must load and show the defaults.
#[test]
fn example_http_block_loads_when_uncommented() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("proxy.toml.example")).unwrap();
    let block: Vec<&str> = text
        .lines()
        .skip_while(|line| *line != "# [http]")
        .take_while(|line| line.starts_with('#') || line.is_empty())
        // Up to the next commented-out table.
        .enumerate()
        .take_while(|(index, line)| *index == 0 || !is_commented_table(line))
        .map(|(_, line)| line)
        .filter_map(|line| line.strip_prefix("# "))
        .filter(|line| {
            *line == "[http]"
                || ["listen", "acme_webroot", "redirect_to_https"]
                    .iter()
                    .any(|k| line.starts_with(&format!("{k} = ")))
        })
        .collect();
    assert_eq!(
        block.len(),
        4,
        "the [http] block of proxy.toml.example: {block:?}"
    );
    let config = parse(&format!("{}\n{ROUTE}", block.join("\n")));
    let http = config.http.expect("[http] parsed");
    assert_eq!(
        http.listen,
        vec![
            "0.0.0.0:80".parse::<SocketAddr>().unwrap(),
            "[::]:80".parse::<SocketAddr>().unwrap()
        ]
    );
    assert_eq!(http.acme_webroot, Some(PathBuf::from("/var/www/certbot")));
    assert!(http.redirect_to_https);
}

#[test]
fn example_file_documents_every_key() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("proxy.toml.example")).unwrap();
    for key in [
        "listen",
        "handshake_timeout",
        "header_read_timeout",
        "shutdown_grace",
        "max_connections",
        "max_connections_per_ip",
        "max_header_size",
        "threads",
        "cert",
        "key",
        "min_version",
        "[[tls.certificate]]",
        "names",
        "host",
        "path",
        "upstream",
        "read_timeout",
        "connect_timeout",
        "tunnel_idle_timeout",
        "keepalive",
        "keepalive_timeout",
        "max_body",
        "upstream_ca",
        "upstream_server_name",
        "upstream_insecure_skip_verify",
        "access_log",
        "level",
        "format",
        "[admin]",
        "bootstrap",
        "watch",
        "poll_interval",
        "# hsts",
        "[http]",
        "acme_webroot",
        "redirect_to_https",
        "[tls.client_auth]",
        "ca",
        "mode",
        "pinned_sha256",
        "require_client_cert",
    ] {
        let setting = if key.starts_with('[') {
            format!("{key}\n")
        } else {
            format!("{key} = ")
        };
        assert!(text.contains(&setting), "proxy.toml.example lacks `{key}`");
    }
}

// ---------------------------------------------------------------- [http]

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[test]
fn http_table_is_optional_and_read_when_present() {
    assert!(parse(ROUTE).http.is_none());

    let config = parse(&format!(
        "[http]\nlisten = [\"0.0.0.0:80\", \"[::]:80\"]\nacme_webroot = \"/var/www/certbot\"\n{ROUTE}"
    ));
    let http = config.http.unwrap();
    assert_eq!(http.listen, vec![addr("0.0.0.0:80"), addr("[::]:80")]);
    assert_eq!(http.acme_webroot, Some(PathBuf::from("/var/www/certbot")));
    assert!(http.redirect_to_https);

    // One address as a string, port 0, no webroot, no redirect.
    let config = parse(&format!(
        "[http]\nlisten = \"127.0.0.1:0\"\nredirect_to_https = false\n{ROUTE}"
    ));
    let http = config.http.unwrap();
    assert_eq!(http.listen, vec![addr("127.0.0.1:0")]);
    assert_eq!(http.acme_webroot, None);
    assert!(!http.redirect_to_https);
}

#[test]
fn acme_webroot_resolves_against_the_config_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxy.toml");
    std::fs::write(
        &file,
        format!("[http]\nlisten = \"0.0.0.0:80\"\nacme_webroot = \"webroot\"\n{ROUTE}"),
    )
    .unwrap();
    let config = load(&file).unwrap();
    assert_eq!(
        config.http.unwrap().acme_webroot,
        Some(dir.path().join("webroot"))
    );
}

#[test]
fn http_needs_listen() {
    let e = error(&format!("[http]\nacme_webroot = \"/var/www/certbot\"\n{ROUTE}"));
    assert_eq!(
        e.to_string(),
        "proxy.toml:1:1: http.listen: [http] has no `listen`: plain HTTP needs an address to listen on\n  help: add the addresses, for example: listen = [\"0.0.0.0:80\", \"[::]:80\"]; or remove [http] to serve TLS only"
    );

    let e = error(&format!("[http]\nlisten = []\n{ROUTE}"));
    assert_eq!(e.key, "http.listen");
    assert_eq!(e.message, "no address to listen on");
    assert_eq!(
        e.hint,
        "give at least one, for example: listen = [\"0.0.0.0:80\", \"[::]:80\"]"
    );
}

#[test]
fn http_listen_errors_are_explained_with_port_80() {
    let e = error(&format!("[http]\nlisten = 80\n{ROUTE}"));
    assert_eq!(
        e.to_string(),
        "proxy.toml:2:10: http.listen: expected an address string or a list of them, found an integer\n  help: give an IP address with the port, for example: listen = \"0.0.0.0:80\""
    );

    let e = error(&format!("[http]\nlisten = [\"0.0.0.0\"]\n{ROUTE}"));
    assert_eq!(e.key, "http.listen[0]");
    assert_eq!(e.message, "`0.0.0.0` has no port");
    assert_eq!(e.hint, "add one, for example \"0.0.0.0:80\"");

    let e = error(&format!("[http]\nlisten = [\"localhost:80\"]\n{ROUTE}"));
    assert_eq!(
        e.message,
        "`localhost` is not an IP address; listen addresses are IP literals, not names"
    );

    let e = error(&format!("[http]\nlisten = [80]\n{ROUTE}"));
    assert_eq!(e.key, "http.listen[0]");
    assert_eq!(
        e.hint,
        "write each address in double quotes, for example: \"0.0.0.0:80\""
    );
}

#[test]
fn http_listen_duplicates_are_errors() {
    let e = error(&format!(
        "[http]\nlisten = [\"[::]:80\", \"0.0.0.0:80\", \"[::]:80\"]\n{ROUTE}"
    ));
    assert_eq!(
        e.to_string(),
        "proxy.toml:2:36: http.listen[2]: [::]:80 is listed twice (also as http.listen[0])\n  help: remove one of them"
    );
}

#[test]
fn http_listen_may_not_take_a_tls_address() {
    let e = error(&format!(
        "[server]\nlisten = [\"0.0.0.0:443\", \"[::]:443\"]\n\n[http]\nlisten = [\"0.0.0.0:80\", \"[::]:443\"]\n{ROUTE}"
    ));
    assert_eq!(
        e.to_string(),
        "proxy.toml:5:25: http.listen[1]: [::]:443 is also a TLS listener (server.listen[1])\n  help: an address serves either TLS or plain HTTP: give [http] its own port, usually 80, for example: listen = [\"0.0.0.0:80\", \"[::]:80\"]"
    );

    // A specific address under a wildcard on the same port takes the same socket.
    let e = error(&format!(
        "[server]\nlisten = \"0.0.0.0:8443\"\n[http]\nlisten = \"127.0.0.1:8443\"\n{ROUTE}"
    ));
    assert_eq!(e.key, "http.listen");
    assert_eq!(
        e.message,
        "127.0.0.1:8443 overlaps the TLS listener 0.0.0.0:8443 (server.listen): both take port 8443 on that address"
    );

    // Without [server], the default TLS address counts.
    let e = error(&format!("[http]\nlisten = \"127.0.0.1:8443\"\n{ROUTE}"));
    assert_eq!(
        e.message,
        "127.0.0.1:8443 is also a TLS listener (the default server.listen)"
    );

    // Port 0 is a fresh port each time: no clash.
    let config = parse(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n{ROUTE}"
    ));
    assert_eq!(config.http.unwrap().listen, vec![addr("127.0.0.1:0")]);

    // IPv6 sockets are v6-only, so the families do not clash.
    let config = parse(&format!(
        "[server]\nlisten = \"0.0.0.0:8080\"\n[http]\nlisten = \"[::]:8080\"\n{ROUTE}"
    ));
    assert!(config.http.is_some());
}

#[test]
fn http_unknown_keys_name_the_portcullis_key() {
    let e = error(&format!(
        "[http]\nlisten = \"0.0.0.0:80\"\nroot = \"/var/www/certbot\"\n{ROUTE}"
    ));
    assert_eq!(
        e.to_string(),
        "proxy.toml:3:1: http.root: unknown key `root` in [http]\n  help: portcullis calls this setting `acme_webroot`"
    );

    let e = error(&format!("[http]\nlisten = \"0.0.0.0:80\"\nreturn = 301\n{ROUTE}"));
    assert_eq!(e.hint, "portcullis calls this setting `redirect_to_https`");

    let e = error(&format!(
        "[http]\nlisten = \"0.0.0.0:80\"\nredirect_to_http = true\n{ROUTE}"
    ));
    assert_eq!(e.hint, "did you mean `redirect_to_https`?");

    let e = error(&format!("[http]\nlisten = \"0.0.0.0:80\"\nbanana = 1\n{ROUTE}"));
    assert_eq!(
        e.hint,
        "valid keys in [http]: listen, acme_webroot, redirect_to_https, proxy_protocol, unknown_host"
    );

    let e = error(&format!("[htp]\nlisten = \"0.0.0.0:80\"\n{ROUTE}"));
    assert_eq!(e.key, "htp");
    assert_eq!(e.hint, "did you mean `http`?");
}

#[test]
fn http_type_errors_have_examples() {
    let e = error(&format!(
        "[http]\nlisten = \"0.0.0.0:80\"\nredirect_to_https = \"yes\"\n{ROUTE}"
    ));
    assert_eq!(
        e.to_string(),
        "proxy.toml:3:21: http.redirect_to_https: expected true or false, found a string\n  help: write redirect_to_https = true or redirect_to_https = false"
    );

    let e = error(&format!(
        "[http]\nlisten = \"0.0.0.0:80\"\nacme_webroot = 5\n{ROUTE}"
    ));
    assert_eq!(e.key, "http.acme_webroot");
    assert_eq!(e.message, "expected a string, found an integer");
    assert_eq!(
        e.hint,
        "write it in double quotes, for example: acme_webroot = \"/var/www/certbot\""
    );

    let e = error(&format!("http = \"0.0.0.0:80\"\n{ROUTE}"));
    assert_eq!(e.key, "http");
    assert_eq!(e.message, "expected a table, found a string");
    assert_eq!(
        e.hint,
        "write [http] on a line of its own, followed by its settings"
    );
}

#[test]
fn acme_webroot_must_be_the_webroot() {
    let e = error(&format!(
        "[http]\nlisten = \"0.0.0.0:80\"\nacme_webroot = \"/var/www/certbot/.well-known/acme-challenge/\"\n{ROUTE}"
    ));
    assert_eq!(
        e.to_string(),
        "proxy.toml:3:16: http.acme_webroot: `/var/www/certbot/.well-known/acme-challenge/` is inside the webroot: portcullis adds /.well-known/acme-challenge/ itself\n  help: write acme_webroot = \"/var/www/certbot\", the directory given to certbot --webroot -w"
    );

    let e = error(&format!(
        "[http]\nlisten = \"0.0.0.0:80\"\nacme_webroot = \"\"\n{ROUTE}"
    ));
    assert_eq!(e.message, "the path is empty");
    assert_eq!(e.hint, "for example: acme_webroot = \"/var/www/certbot\"");

    let e = error(&format!(
        "[http]\nlisten = \"0.0.0.0:80\"\nacme_webroot = \"~/certbot\"\n{ROUTE}"
    ));
    assert_eq!(e.message, "`~/certbot` starts with `~`, which is not expanded");
    assert_eq!(e.hint, "write the full path, such as /var/www/certbot");
}

// ---------------------------------------------------------------- [tls] reloading

const CERT: &str = "cert = \"/etc/ssl/fullchain.pem\"\nkey = \"/etc/ssl/privkey.pem\"\n";

#[test]
fn bootstrap_self_signed_with_a_certificate() {
    let config = parse(&format!("[tls]\n{CERT}bootstrap = \"self-signed\"\n{ROUTE}"));
    assert_eq!(config.tls.bootstrap, Bootstrap::SelfSigned);

    let config = parse(&format!(
        "[tls]\nbootstrap = \"self-signed\"\n[[tls.certificate]]\n{CERT}{ROUTE}"
    ));
    assert_eq!(config.tls.bootstrap, Bootstrap::SelfSigned);
}

#[test]
fn bad_bootstrap_lists_the_valid_values() {
    let e = error(&format!("[tls]\n{CERT}bootstrap = \"on\"\n{ROUTE}"));
    assert_eq!(
        e.to_string(),
        "proxy.toml:4:13: tls.bootstrap: `on` is not a bootstrap mode\n  help: valid values: \"self-signed\" (serve a temporary self-signed certificate until the configured files exist); leave bootstrap out to require the files at start"
    );

    let e = error(&format!("[tls]\n{CERT}bootstrap = \"Self_Signed\"\n{ROUTE}"));
    assert_eq!(e.message, "`Self_Signed` is not how the mode is written");
    assert_eq!(e.hint, "write bootstrap = \"self-signed\"");

    let e = error(&format!("[tls]\n{CERT}bootstrap = true\n{ROUTE}"));
    assert_eq!(e.message, "expected a string, found a boolean");
    assert_eq!(
        e.hint,
        "write bootstrap = \"self-signed\", or leave it out to require the certificate files at start"
    );
}

#[test]
fn bootstrap_without_a_certificate_is_an_error() {
    let e = error(&format!("[tls]\nbootstrap = \"self-signed\"\n{ROUTE}"));
    assert_eq!(
        e.to_string(),
        "proxy.toml:2:13: tls.bootstrap: `bootstrap` is set but no certificate is configured: there is nothing to bootstrap\n  help: configure the certificate to wait for with cert and key (or [[tls.certificate]]), or remove bootstrap: with no certificate configured, portcullis serves a self-signed one anyway"
    );
}

#[test]
fn watch_and_poll_interval() {
    let config = parse(&format!(
        "[tls]\n{CERT}watch = false\npoll_interval = \"5m\"\n{ROUTE}"
    ));
    assert!(!config.tls.watch);
    assert_eq!(config.tls.poll_interval, Some(Duration::from_secs(300)));

    let config = parse(&format!("[tls]\npoll_interval = \"0s\"\n{ROUTE}"));
    assert_eq!(config.tls.poll_interval, None);
    assert!(config.tls.watch);
}

#[test]
fn bad_watch_and_poll_interval_are_explained() {
    let e = error(&format!("[tls]\nwatch = \"false\"\n{ROUTE}"));
    assert_eq!(
        e.to_string(),
        "proxy.toml:2:9: tls.watch: expected true or false, found a string\n  help: remove the quotes: watch = false"
    );

    let e = error(&format!("[tls]\npoll_interval = 60\n{ROUTE}"));
    assert_eq!(e.key, "tls.poll_interval");
    assert_eq!(e.message, "expected a duration string, found an integer");
    assert_eq!(
        e.hint,
        "give the unit and quote it, for example: poll_interval = \"60s\" for 60 seconds"
    );

    let e = error(&format!("[tls]\npoll_interval = \"soon\"\n{ROUTE}"));
    assert_eq!(e.message, "`soon` is not a duration");

    let e = error(&format!("[tls]\npoll_interval = \"100ms\"\n{ROUTE}"));
    assert_eq!(
        e.to_string(),
        "proxy.toml:2:17: tls.poll_interval: `100ms` is too short: every poll reads and parses the certificate files\n  help: give at least \"1s\" (certificates change every few weeks), or \"0s\" to turn polling off"
    );
}

#[test]
fn tls_unknown_keys_name_the_portcullis_key() {
    let e = error(&format!("[tls]\nreload_interval = \"1m\"\n{ROUTE}"));
    assert_eq!(e.hint, "portcullis calls this setting `poll_interval`");
    let e = error(&format!("[tls]\nwatch_files = true\n{ROUTE}"));
    assert_eq!(e.hint, "portcullis calls this setting `watch`");
    let e = error(&format!("[tls]\nbootstap = \"self-signed\"\n{CERT}{ROUTE}"));
    assert_eq!(e.hint, "did you mean `bootstrap`?");
    let e = error(&format!("[tls]\nbanana = 1\n{ROUTE}"));
    assert_eq!(
        e.hint,
        "valid keys in [tls]: cert, key, min_version, certificate, bootstrap, watch, poll_interval, hsts, \
         cipher_suites, groups, session_resumption, ocsp_stapling, client_auth, unknown_sni"
    );
    let e = error(&format!("[tls]\nssl_stapling = true\n{ROUTE}"));
    assert_eq!(e.hint, "portcullis calls this setting `ocsp_stapling`");
}

#[test]
fn new_settings_report_every_error_at_once() {
    let text = "\
[tls]
bootstrap = \"yes\"
poll_interval = \"10\"

[http]
listn = \"0.0.0.0:80\"
acme_webroot = \"\"
redirect_to_https = 1
";
    let errors = errors(&format!("{text}{ROUTE}"));
    let positions: Vec<(usize, usize, &str)> = errors
        .iter()
        .map(|e| (e.origin.line, e.origin.column, e.key.as_str()))
        .collect();
    assert_eq!(
        positions,
        vec![
            (2, 13, "tls.bootstrap"),
            (2, 13, "tls.bootstrap"),
            (3, 17, "tls.poll_interval"),
            (5, 1, "http.listen"),
            (6, 1, "http.listn"),
            (7, 16, "http.acme_webroot"),
            (8, 21, "http.redirect_to_https"),
        ],
        "{errors}"
    );
}

// ---------------------------------------------------------------- [admin]

#[test]
fn admin_is_off_without_its_table_and_on_loopback_9901_with_it() {
    assert!(parse(ROUTE).admin.is_none());
    let config = parse(&format!("[admin]\n{ROUTE}"));
    assert_eq!(config.admin.unwrap().listen, addr("127.0.0.1:9901"));
    let config = parse(&format!("[admin]\nlisten = \"[::1]:9000\"\n{ROUTE}"));
    assert_eq!(config.admin.unwrap().listen, addr("[::1]:9000"));
    // Port 0, as tests use it: a fresh port, so no clash with anything.
    let config = parse(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n{ROUTE}"
    ));
    assert_eq!(config.admin.unwrap().listen, addr("127.0.0.1:0"));
}

#[test]
fn admin_keys_and_types_are_checked() {
    let e = error(&format!("[admin]\nlisen = \"127.0.0.1:9901\"\n{ROUTE}"));
    assert_eq!(
        e.to_string(),
        "proxy.toml:2:1: admin.lisen: unknown key `lisen` in [admin]\n  help: did you mean `listen`?"
    );
    let e = error(&format!("[admin]\nbind = \"127.0.0.1:9901\"\n{ROUTE}"));
    assert_eq!(e.hint, "portcullis calls this setting `listen`");
    let e = error(&format!("[admin]\nport = 9901\n{ROUTE}"));
    assert_eq!(e.hint, "valid keys in [admin]: listen");

    let e = error(&format!("[admin]\nlisten = [\"127.0.0.1:9901\"]\n{ROUTE}"));
    assert_eq!(
        e.to_string(),
        "proxy.toml:2:10: admin.listen: expected an address string, found a list\n  help: the admin listener takes one address, for example: listen = \"127.0.0.1:9901\""
    );
    let e = error(&format!("[admin]\nlisten = 9901\n{ROUTE}"));
    assert_eq!(e.message, "expected an address string, found an integer");
    assert_eq!(
        e.hint,
        "give an IP address with the port, for example: listen = \"127.0.0.1:9901\""
    );
    let e = error(&format!("[admin]\nlisten = true\n{ROUTE}"));
    assert_eq!(e.hint, "for example: listen = \"127.0.0.1:9901\"");

    let e = error(&format!("[admin]\nlisten = \"localhost:9901\"\n{ROUTE}"));
    assert_eq!(e.key, "admin.listen");
    assert_eq!((e.origin.line, e.origin.column), (2, 10));
    assert_eq!(
        e.message,
        "`localhost` is not an IP address; listen addresses are IP literals, not names"
    );
    let e = error(&format!("[admin]\nlisten = \"127.0.0.1\"\n{ROUTE}"));
    assert_eq!(e.hint, "add one, for example \"127.0.0.1:9901\"");

    let e = error(&format!("admin = true\n{ROUTE}"));
    assert_eq!(e.key, "admin");
    assert_eq!(e.message, "expected a table, found a boolean");

    let e = error(&format!("[metrics]\n{ROUTE}"));
    assert_eq!(e.hint, "portcullis calls this setting `admin`");
}

#[test]
fn admin_listen_may_not_take_a_tls_or_plain_http_address() {
    let e = error(&format!(
        "[server]\nlisten = [\"0.0.0.0:443\", \"127.0.0.1:9000\"]\n[admin]\nlisten = \"127.0.0.1:9000\"\n{ROUTE}"
    ));
    assert_eq!(
        e.to_string(),
        "proxy.toml:4:10: admin.listen: 127.0.0.1:9000 is also a TLS listener (server.listen[1])\n  help: the admin listener needs an address of its own: give [admin] another port, for example: listen = \"127.0.0.1:9901\""
    );

    // The default address, under a TLS wildcard on its port: reported at
    // the [admin] header, since no address is written.
    let e = error(&format!(
        "[server]\nlisten = \"0.0.0.0:9901\"\n\n[admin]\n{ROUTE}"
    ));
    assert_eq!(e.key, "admin.listen");
    assert_eq!(e.origin.line, 4);
    assert_eq!(
        e.message,
        "127.0.0.1:9901 (the default admin.listen) overlaps the TLS listener 0.0.0.0:9901 (server.listen): both take port 9901 on that address"
    );
    assert!(e.hint.ends_with("listen = \"127.0.0.1:9902\""), "{}", e.hint);

    // Without [server], the default TLS address counts.
    let e = error(&format!("[admin]\nlisten = \"127.0.0.1:8443\"\n{ROUTE}"));
    assert_eq!(
        e.message,
        "127.0.0.1:8443 is also a TLS listener (the default server.listen)"
    );

    let e = error(&format!(
        "[http]\nlisten = [\"0.0.0.0:80\", \"[::]:80\"]\n[admin]\nlisten = \"[::1]:80\"\n{ROUTE}"
    ));
    assert_eq!(
        e.message,
        "[::1]:80 overlaps the plain-HTTP listener [::]:80 (http.listen[1]): both take port 80 on that address"
    );

    // Other ports, or the other family, are fine.
    let config = parse(&format!(
        "[server]\nlisten = \"0.0.0.0:443\"\n[http]\nlisten = \"0.0.0.0:80\"\n[admin]\nlisten = \"[::1]:443\"\n{ROUTE}"
    ));
    assert_eq!(config.admin.unwrap().listen, addr("[::1]:443"));
}

#[test]
fn admin_errors_are_reported_with_the_others() {
    let errors = errors(&format!(
        "[admin]\nlisten = \"nowhere\"\nbanana = 1\n[log]\nformat = \"xml\"\n{ROUTE}"
    ));
    let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["admin.listen", "admin.banana", "log.format"], "{errors}");
}

// ---------------------------------------------------------------- [log] format

#[test]
fn log_format_is_text_by_default_or_json() {
    assert_eq!(parse(ROUTE).log.format, LogFormat::Text);
    assert_eq!(
        parse(&format!("[log]\nlevel = \"warn\"\n{ROUTE}")).log.format,
        LogFormat::Text
    );
    assert_eq!(
        parse(&format!("[log]\nformat = \"text\"\n{ROUTE}")).log.format,
        LogFormat::Text
    );
    assert_eq!(
        parse(&format!("[log]\nformat = \"json\"\n{ROUTE}")).log.format,
        LogFormat::Json
    );
}

#[test]
fn log_format_errors_list_the_valid_values() {
    let e = error(&format!("[log]\nformat = \"xml\"\n{ROUTE}"));
    assert_eq!(
        e.to_string(),
        "proxy.toml:2:10: log.format: `xml` is not a log format\n  help: valid values: \"text\" (the default), \"combined\" (nginx's combined access lines) or \"json\" (one JSON object per line)"
    );
    let e = error(&format!("[log]\nformat = \"JSON\"\n{ROUTE}"));
    assert_eq!(e.message, "`JSON` is not how the format is written");
    assert_eq!(e.hint, "write format = \"json\"");
    let e = error(&format!("[log]\nformat = true\n{ROUTE}"));
    assert_eq!(e.message, "expected a string, found a boolean");
    assert!(e.hint.starts_with("valid values: \"text\""), "{}", e.hint);
    let e = error(&format!("[log]\nlog_format = \"json\"\n{ROUTE}"));
    assert_eq!(e.hint, "portcullis calls this setting `format`");
    let e = error(&format!("[log]\nbanana = 1\n{ROUTE}"));
    assert_eq!(
        e.hint,
        "valid keys in [log]: access_log, level, format, access_template"
    );
}

// ---------------------------------------------------------------- limits

#[test]
fn limits_are_read_as_sizes_and_counts() {
    let config = parse(
        "[server]\nmax_header_size = \"16KiB\"\nmax_connections_per_ip = 100\n\
         [[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:8080\"\nmax_body = \"10MiB\"\n\
         [[route]]\npath = \"/small\"\nupstream = \"http://127.0.0.1:8080\"\nmax_body = 1_000\n",
    );
    assert_eq!(config.server.max_header_size, 16 * 1024);
    assert_eq!(config.server.max_connections_per_ip, Some(100));
    assert_eq!(config.routes[0].max_body, Some(10 << 20));
    assert_eq!(config.routes[1].max_body, Some(1000));

    // Integers are bytes; units are binary and case does not matter.
    let config = parse(&format!("[server]\nmax_header_size = 8192\n{ROUTE}"));
    assert_eq!(config.server.max_header_size, 8192);
    let config = parse(&format!("[server]\nmax_header_size = \"1 mib\"\n{ROUTE}"));
    assert_eq!(config.server.max_header_size, 1 << 20);
}

#[test]
fn bad_sizes_are_explained() {
    let e = error(&format!("{ROUTE}max_body = \"10MB\"\n"));
    assert_eq!(
        e.to_string(),
        "proxy.toml:4:12: route[0].max_body: `10MB` is ambiguous: `MB` may mean powers of 1000 or of 1024\n  \
         help: write \"10MiB\" (10 × 1048576 bytes, which is what nginx's `10m` means)"
    );
    let e = error(&format!("{ROUTE}max_body = \"10m\"\n"));
    assert!(e.hint.contains("\"10MiB\""), "{}", e.hint);
    let e = error(&format!("{ROUTE}max_body = \"65536\"\n"));
    assert_eq!(e.message, "`65536` has no unit");
    assert!(e.hint.starts_with("remove the quotes"), "{}", e.hint);
    let e = error(&format!("{ROUTE}max_body = \"1.5MiB\"\n"));
    assert_eq!(e.message, "`1.5MiB` is not a whole number");
    assert!(e.hint.contains("\"1536KiB\""), "{}", e.hint);
    let e = error(&format!("{ROUTE}max_body = \"lots\"\n"));
    assert_eq!(e.message, "`lots` is not a size");
    let e = error(&format!("{ROUTE}max_body = -1\n"));
    assert_eq!(e.message, "-1 is negative; a size cannot be");
    let e = error(&format!("{ROUTE}max_body = true\n"));
    assert_eq!(e.message, "expected a size, found a boolean");
    assert_eq!(
        e.hint,
        "write a number of bytes or a size with a unit, for example: max_body = \"10MiB\""
    );
    let e = error(&format!("{ROUTE}max_body = \"99999999999GiB\"\n"));
    assert!(e.message.contains("too large"), "{}", e.message);
}

#[test]
fn a_zero_max_body_is_refused_rather_than_read_as_nginx_does() {
    let e = error(&format!("{ROUTE}max_body = 0\n"));
    assert_eq!(e.key, "route[0].max_body");
    assert_eq!(e.message, "0 would refuse every request body");
    assert!(e.hint.contains("leave max_body out for no limit"), "{}", e.hint);
    assert!(e.hint.contains("client_max_body_size 0"), "{}", e.hint);
}

#[test]
fn max_header_size_is_bounded() {
    // A bare number is bytes: 64 is probably meant as KiB.
    let e = error(&format!("[server]\nmax_header_size = 64\n{ROUTE}"));
    assert_eq!(
        e.to_string(),
        "proxy.toml:2:19: server.max_header_size: 64B is below the minimum of 8KiB (8192 bytes)\n  \
         help: a number is bytes: for 64 KiB write max_header_size = \"64KiB\""
    );
    let e = error(&format!("[server]\nmax_header_size = \"4KiB\"\n{ROUTE}"));
    assert_eq!(e.message, "4KiB is below the minimum of 8KiB (8192 bytes)");
    assert!(e.hint.contains("\"8KiB\""), "{}", e.hint);
    let e = error(&format!("[server]\nmax_header_size = \"2MiB\"\n{ROUTE}"));
    assert_eq!(e.message, "2MiB is above the maximum of 1MiB");
    assert!(e.hint.contains("\"1MiB\""), "{}", e.hint);
    let e = error(&format!("[server]\nmax_connections_per_ip = 0\n{ROUTE}"));
    assert_eq!(e.key, "server.max_connections_per_ip");
    assert_eq!(e.message, "0 is not allowed; the value must be at least 1");
}

#[test]
fn limit_names_from_nginx_name_the_portcullis_keys() {
    let e = error(&format!("{ROUTE}client_max_body_size = \"10m\"\n"));
    assert_eq!(e.key, "route[0].client_max_body_size");
    assert_eq!(e.hint, "portcullis calls this setting `max_body`");
    let e = error(&format!("[server]\nlarge_client_header_buffers = 4\n{ROUTE}"));
    assert_eq!(e.hint, "portcullis calls this setting `max_header_size`");
    let e = error(&format!("[server]\nlimit_conn = 10\n{ROUTE}"));
    assert_eq!(e.hint, "portcullis calls this setting `max_connections_per_ip`");
}

#[test]
fn every_bad_limit_is_reported_at_once() {
    let errors = errors(&format!(
        "[server]\nmax_header_size = \"1k\"\nmax_connections_per_ip = -2\n{ROUTE}max_body = 0\n"
    ));
    let keys: Vec<&str> = errors.0.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "server.max_header_size",
            "server.max_connections_per_ip",
            "route[0].max_body"
        ]
    );
}

#[test]
fn hsts_is_off_by_default_and_checked_when_set() {
    assert_eq!(parse(ROUTE).tls.hsts, None);
    let config = parse(&format!(
        "[tls]\nhsts = \"max-age=63072000; includeSubDomains\"\n{ROUTE}"
    ));
    assert_eq!(
        config.tls.hsts.as_deref(),
        Some("max-age=63072000; includeSubDomains")
    );
    for bad in ["includeSubDomains", "max-age=soon", "max-age="] {
        let e = error(&format!("[tls]\nhsts = {bad:?}\n{ROUTE}"));
        assert_eq!(e.key, "tls.hsts");
        assert_eq!(e.origin.line, 2);
        assert!(e.message.contains("max-age=<seconds>"), "{e}");
        assert!(e.hint.contains("max-age=63072000"), "{e}");
    }
}
