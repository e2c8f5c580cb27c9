//! `[[stream]]` as an operator writes it: what is accepted, and the exact
//! place and words of each mistake.

use std::path::Path;
use std::time::Duration;

use portcullis::config::{
    from_str, Config, ConfigError, ConfigErrors, ProxyProtocol, StreamMode, StreamProtocol,
};

fn parse(text: &str) -> Config {
    from_str(text, Path::new("proxy.toml"))
        .unwrap_or_else(|e| panic!("expected a valid configuration, got:\n{e}"))
}

fn errors(text: &str) -> ConfigErrors {
    match from_str(text, Path::new("proxy.toml")) {
        Ok(config) => panic!("expected errors, got {config:#?}"),
        Err(errors) => errors,
    }
}

fn error(text: &str) -> ConfigError {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "expected exactly one error, got:\n{errors}");
    errors.0[0].clone()
}

const NATS: &str =
    "[[stream]]\nlisten = [\"0.0.0.0:4222\"]\ntls = \"terminate\"\nupstream = \"tcp://nats:4222\"\n";

#[test]
fn the_issue_example_is_a_whole_configuration() {
    let config = parse(
        r#"
[[stream]]
name = "nats"
listen = ["0.0.0.0:4222"]
tls = "terminate"
upstream = "tcp://nats:4222"
idle_timeout = "24h"
connect_timeout = "5s"
proxy_protocol = "v2"
max_connections = 10000
protocol = "nats"
alpn = ["nats"]

[[stream]]
listen = ["0.0.0.0:8883"]
tls = "passthrough"
default = "tcp://fallback:8883"
[[stream.route]]
sni = "mqtt.example.com"
upstream = "tcp://broker:8883"
[[stream.route]]
sni = "*.Internal.example.com"
upstream = "tcp://internal:8883"
"#,
    );
    // Streams alone: no route asked for, no HTTPS listener bound.
    assert!(config.routes.is_empty());
    assert!(config.server.listen.is_empty());
    assert_eq!(config.streams.len(), 2);
    let nats = &config.streams[0];
    assert_eq!(nats.name, "nats");
    assert_eq!(nats.idle_timeout, Duration::from_secs(86400));
    assert_eq!(nats.connect_timeout, Duration::from_secs(5));
    assert_eq!(nats.handshake_timeout, Duration::from_secs(10));
    assert_eq!(nats.proxy_protocol, Some(ProxyProtocol::V2));
    let StreamMode::Terminate {
        upstream,
        alpn,
        protocol,
        client_auth,
    } = &nats.mode
    else {
        panic!("{:?}", nats.mode)
    };
    assert_eq!(upstream.to_string(), "tcp://nats:4222");
    assert_eq!(alpn, &vec![b"nats".to_vec()]);
    assert_eq!(*protocol, Some(StreamProtocol::Nats));
    assert!(client_auth.is_none());
    let mqtt = &config.streams[1];
    assert_eq!(mqtt.name, "0.0.0.0:8883");
    let StreamMode::Passthrough { routes, default } = &mqtt.mode else {
        panic!("{:?}", mqtt.mode)
    };
    assert_eq!(routes[1].sni, "*.internal.example.com");
    assert_eq!(
        default.as_ref().map(|d| d.to_string()).as_deref(),
        Some("tcp://fallback:8883")
    );
}

#[test]
fn streams_beside_routes_keep_the_https_listener() {
    let config = parse(&format!(
        "{NATS}[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:8080\"\n"
    ));
    assert_eq!(config.server.listen, vec!["127.0.0.1:8443".parse().unwrap()]);
    // A written listener is kept without routes too (it answers 404).
    let config = parse(&format!("[server]\nlisten = [\"127.0.0.1:9443\"]\n{NATS}"));
    assert_eq!(config.server.listen, vec!["127.0.0.1:9443".parse().unwrap()]);
    // Without streams, a route is still required.
    let e = error("[server]\nlisten = [\"127.0.0.1:9443\"]\n");
    assert_eq!(e.key, "route");
}

#[test]
fn a_stream_needs_its_tls_mode_written() {
    let e = error("[[stream]]\nlisten = [\"0.0.0.0:4222\"]\nupstream = \"tcp://nats:4222\"\n");
    assert_eq!(e.key, "stream[0].tls");
    assert_eq!(e.message, "this stream has no `tls`");
    let e = error(&NATS.replace("\"terminate\"", "\"ssl\""));
    assert_eq!(e.to_string(), "proxy.toml:3:7: stream[0].tls: `ssl` is not how the mode is written\n  help: write tls = \"terminate\"");
    let e = error(&NATS.replace("\"terminate\"", "true"));
    assert!(e.hint.contains("tls = \"terminate\""), "{e}");
}

#[test]
fn nginx_names_are_answered_with_ours() {
    let text = "[[stream]]\nlisten = [\"0.0.0.0:8883\"]\nssl_preread = true\nproxy_pass = \"tcp://b:1\"\nproxy_timeout = \"1h\"\n";
    let errors = errors(text);
    let shown = errors.to_string();
    assert!(shown.contains("proxy.toml:3:1: stream[0].ssl_preread: unknown key `ssl_preread` in [[stream]]\n  help: portcullis calls this setting `tls`"), "{shown}");
    assert!(shown.contains("stream[0].proxy_pass: unknown key `proxy_pass` in [[stream]]\n  help: portcullis calls this setting `upstream`"), "{shown}");
    assert!(
        shown.contains("help: portcullis calls this setting `idle_timeout`"),
        "{shown}"
    );
    let e = error(&format!("{NATS}proxy_protocol = \"on\"\n"));
    assert_eq!(e.key, "stream[0].proxy_protocol");
    assert!(e.hint.contains("write proxy_protocol = \"v1\""), "{e}");
    let e = error(&format!("{NATS}proxy_protocol = true\n"));
    assert!(e.hint.contains("\"v2\""), "{e}");
}

#[test]
fn upstreams_are_tcp_addresses_with_a_port() {
    let e = error(&NATS.replace("tcp://nats:4222", "tcp://nats"));
    assert_eq!(
        e.to_string(),
        "proxy.toml:4:12: stream[0].upstream: `tcp://nats` has no port, and tcp:// has no default one\n  help: write the port, for example: \"tcp://nats:4222\""
    );
    let e = error(&NATS.replace("tcp://nats:4222", "http://nats:4222"));
    assert!(e.message.contains("[[route]]"), "{e}");
    let e = error("[[stream]]\nlisten = [\"0.0.0.0:4222\"]\ntls = \"none\"\n");
    assert_eq!(e.key, "stream[0].upstream");
    assert_eq!(e.message, "this stream has no `upstream`");
}

#[test]
fn keys_a_mode_does_not_take_are_errors() {
    let e =
        error("[[stream]]\nlisten = [\"0.0.0.0:8883\"]\ntls = \"passthrough\"\nupstream = \"tcp://b:1\"\n");
    assert_eq!(e.key, "stream[0].upstream");
    assert!(e.hint.contains("[[stream.route]]"), "{e}");
    let e = error(&format!(
        "{NATS}[[stream.route]]\nsni = \"a.example\"\nupstream = \"tcp://a:1\"\n"
    ));
    assert_eq!(e.key, "stream[0].route");
    let e = error(
        &NATS
            .replace("terminate", "none")
            .replace("upstream", "protocol = \"nats\"\nupstream"),
    );
    assert_eq!(e.key, "stream[0].protocol");
    assert!(e.hint.contains("tls = \"terminate\""), "{e}");
    let e = error("[[stream]]\nlisten = [\"0.0.0.0:8883\"]\ntls = \"passthrough\"\nalpn = [\"h2\"]\ndefault = \"tcp://b:1\"\n");
    assert_eq!(e.key, "stream[0].alpn");
    let e = error("[[stream]]\nlisten = [\"0.0.0.0:8883\"]\ntls = \"passthrough\"\n");
    assert!(e.message.contains("no [[stream.route]] and no `default`"), "{e}");
}

#[test]
fn sni_routes_are_names_each_routed_once() {
    let base = "[[stream]]\nlisten = [\"0.0.0.0:8883\"]\ntls = \"passthrough\"\n";
    let route = |sni: &str| format!("[[stream.route]]\nsni = \"{sni}\"\nupstream = \"tcp://b:1\"\n");
    let e = error(&format!("{base}{}{}", route("a.example"), route("A.example")));
    assert_eq!(e.key, "stream[0].route[1].sni");
    assert_eq!(e.message, "stream[0].route[0] already routes `a.example`");
    let e = error(&format!("{base}{}", route("10.0.0.1")));
    assert!(e.message.contains("IP address"), "{e}");
    let e = error(&format!("{base}{}", route("a.*.example")));
    assert_eq!(e.key, "stream[0].route[0].sni");
    let shown = errors(&format!(
        "{base}[[stream.route]]\nserver_name = \"a\"\nupstream = \"tcp://b:1\"\n"
    ))
    .to_string();
    assert!(shown.contains("portcullis calls this setting `sni`"), "{shown}");
}

#[test]
fn stream_addresses_are_their_own() {
    let text = format!(
        "[server]\nlisten = [\"0.0.0.0:4222\"]\n[admin]\nlisten = \"127.0.0.1:9901\"\n{NATS}\
         [[stream]]\nlisten = [\"127.0.0.1:9901\", \"127.0.0.1:4223\"]\ntls = \"none\"\nupstream = \"tcp://a:1\"\n\
         [[stream]]\nname = \"third\"\nlisten = \"127.0.0.1:4223\"\ntls = \"none\"\nupstream = \"tcp://a:1\"\n\
         [[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:8080\"\n"
    );
    let errors = errors(&text);
    let shown = errors.to_string();
    assert_eq!(errors.len(), 3, "{shown}");
    assert!(
        shown.contains("stream[0].listen[0]: 0.0.0.0:4222 is also a TLS listener (server.listen[0])"),
        "{shown}"
    );
    assert!(
        shown.contains("stream[1].listen[0]: 127.0.0.1:9901 is also a listener of [admin] (admin.listen)"),
        "{shown}"
    );
    assert!(
        shown.contains("stream[2].listen: 127.0.0.1:4223 is also a stream listener (stream[1].listen[1])"),
        "{shown}"
    );
}

#[test]
fn stream_client_auth_is_read_like_the_listeners() {
    let e = error(&format!("{NATS}[stream.client_auth]\nmode = \"required\"\n"));
    assert_eq!(e.key, "stream[0].client_auth.ca");
    assert!(e.message.starts_with("[stream.client_auth] has no `ca`"), "{e}");
    let config = parse(&format!(
        "{NATS}[stream.client_auth]\nca = \"ca.pem\"\nmode = \"optional\"\n"
    ));
    let StreamMode::Terminate { client_auth, .. } = &config.streams[0].mode else {
        panic!()
    };
    assert!(client_auth.as_ref().unwrap().ca.ends_with("ca.pem"));
}
